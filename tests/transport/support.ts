/**
 * Shared by the transport tests: certificates made at test time by the `openssl` binary (a CA, a server
 * certificate for 127.0.0.1/localhost, a client certificate CN=device-1, and a client certificate from a
 * CA the broker does not trust), and MQTT.js clients on any URL (mqtts://, ws://, wss://).
 */
import type { JsClient } from "../interop/tools.ts";

export interface TestCerts {
  dir: string;
  caFile: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  /** Signed by a CA the broker does not know. */
  rogueCert: string;
  rogueKey: string;
  /** PEM text of the files above. */
  pem: { ca: string; clientCert: string; clientKey: string; rogueCert: string; rogueKey: string };
}

async function openssl(args: string[], cwd: string): Promise<void> {
  let output: Deno.CommandOutput;
  try {
    output = await new Deno.Command("openssl", { args, cwd, stdout: "piped", stderr: "piped" }).output();
  } catch (error) {
    throw new Error(`MISSING TOOL openssl (apt-get install -y openssl): ${error}`);
  }
  if (!output.success) {
    throw new Error(`openssl ${args.join(" ")} failed:\n${new TextDecoder().decode(output.stderr)}`);
  }
}

const EC_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];

async function makeCa(dir: string, name: string, cn: string): Promise<void> {
  await openssl([
    "req",
    "-x509",
    ...EC_KEY,
    "-keyout",
    `${name}.key`,
    "-out",
    `${name}.crt`,
    "-days",
    "2",
    "-subj",
    `/CN=${cn}`,
  ], dir);
}

/** A leaf certificate signed by `ca`, always X.509 v3 (rustls refuses v1 certificates). */
async function makeLeaf(
  dir: string,
  name: string,
  ca: string,
  cn: string,
  extensions: string,
): Promise<void> {
  await openssl(
    ["req", ...EC_KEY, "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", `/CN=${cn}`],
    dir,
  );
  await Deno.writeTextFile(`${dir}/${name}.ext`, extensions);
  await openssl([
    "x509",
    "-req",
    "-in",
    `${name}.csr`,
    "-CA",
    `${ca}.crt`,
    "-CAkey",
    `${ca}.key`,
    "-CAcreateserial",
    "-out",
    `${name}.crt`,
    "-days",
    "2",
    "-extfile",
    `${name}.ext`,
  ], dir);
}

let certs: Promise<TestCerts> | undefined;

/** The test certificates, made once per test process in a temporary directory removed at exit. */
export function testCerts(): Promise<TestCerts> {
  return certs ??= (async () => {
    const dir = await Deno.makeTempDir({ prefix: "mqtt-proxy-certs-" });
    globalThis.addEventListener("unload", () => {
      try {
        Deno.removeSync(dir, { recursive: true });
      } catch { /* already gone */ }
    });
    await makeCa(dir, "ca", "mqtt-proxy test CA");
    await makeCa(dir, "rogue-ca", "untrusted CA");
    await makeLeaf(
      dir,
      "server",
      "ca",
      "localhost",
      "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
    );
    await makeLeaf(dir, "client", "ca", "device-1", "extendedKeyUsage=clientAuth\n");
    await makeLeaf(dir, "rogue", "rogue-ca", "intruder", "extendedKeyUsage=clientAuth\n");
    const read = (name: string) => Deno.readTextFile(`${dir}/${name}`);
    return {
      dir,
      caFile: `${dir}/ca.crt`,
      serverCert: `${dir}/server.crt`,
      serverKey: `${dir}/server.key`,
      clientCert: `${dir}/client.crt`,
      clientKey: `${dir}/client.key`,
      rogueCert: `${dir}/rogue.crt`,
      rogueKey: `${dir}/rogue.key`,
      pem: {
        ca: await read("ca.crt"),
        clientCert: await read("client.crt"),
        clientKey: await read("client.key"),
        rogueCert: await read("rogue.crt"),
        rogueKey: await read("rogue.key"),
      },
    };
  })();
}

/** Subscribes `subscriber`, publishes from `publisher` and returns what arrived (bounded wait). */
export async function roundTrip(subscriber: JsClient, publisher: JsClient, topic: string, payload: string) {
  await subscriber.client.subscribeAsync(topic, { qos: 1 });
  await publisher.client.publishAsync(topic, payload, { qos: 1 });
  const [message] = await subscriber.inbox.take(1);
  return message;
}
