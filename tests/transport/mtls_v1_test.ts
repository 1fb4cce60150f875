/**
 * Mutual TLS accepts an X.509 v1 client certificate signed by the configured CA, as Mosquitto does (the
 * TLS engine's own verifier would refuse it), still refuses one from another CA, and logs each refused
 * TLS client with its address.
 */
import assert from "node:assert/strict";
import { startBroker } from "../../main.ts";
import { parseConfig } from "../../src/config/mod.ts";
import { createLogger } from "../../src/observe/mod.ts";
import { connectUrl, endJs } from "../interop/tools.ts";
import { testCerts } from "./support.ts";

async function openssl(args: string[], cwd: string): Promise<void> {
  const output = await new Deno.Command("openssl", { args, cwd, stdout: "piped", stderr: "piped" }).output();
  if (!output.success) {
    throw new Error(`openssl ${args.join(" ")}: ${new TextDecoder().decode(output.stderr)}`);
  }
}

/** A v1 certificate (no extensions: `x509 -req` without -extfile) for `cn`, signed by `ca` in `caDir`. */
async function v1Certificate(
  dir: string,
  caDir: string,
  ca: string,
  cn: string,
): Promise<{ cert: string; key: string }> {
  await openssl([
    "req",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-keyout",
    `${cn}.key`,
    "-out",
    `${cn}.csr`,
    "-subj",
    `/CN=${cn}`,
  ], dir);
  await openssl([
    "x509",
    "-req",
    "-in",
    `${cn}.csr`,
    "-CA",
    `${caDir}/${ca}.crt`,
    "-CAkey",
    `${caDir}/${ca}.key`,
    "-set_serial",
    "7",
    "-out",
    `${cn}.crt`,
    "-days",
    "2",
  ], dir);
  const text = new TextDecoder().decode(
    (await new Deno.Command("openssl", {
      args: ["x509", "-in", `${dir}/${cn}.crt`, "-noout", "-text"],
      stdout: "piped",
    }).output()).stdout,
  );
  assert.match(text, /Version: 1 \(0x0\)/, "openssl made a v1 certificate");
  return {
    cert: await Deno.readTextFile(`${dir}/${cn}.crt`),
    key: await Deno.readTextFile(`${dir}/${cn}.key`),
  };
}

Deno.test("mtls: an X.509 v1 client certificate from the trusted CA connects; a v1 one from another CA is refused and logged with its address", async () => {
  const certs = await testCerts();
  const dir = await Deno.makeTempDir({ prefix: "mqtt-proxy-v1-" });
  const lines: Record<string, unknown>[] = [];
  try {
    const good = await v1Certificate(dir, certs.dir, "ca", "legacy-device");
    const bad = await v1Certificate(dir, certs.dir, "rogue-ca", "legacy-intruder");
    const config = parseConfig(
      [
        "listener.s.type = tls",
        "listener.s.host = 127.0.0.1",
        "listener.s.port = 0",
        `listener.s.cert_file = ${certs.serverCert}`,
        `listener.s.key_file = ${certs.serverKey}`,
        `listener.s.ca_file = ${certs.caFile}`,
        "listener.s.require_client_cert = true",
        "listener.s.use_cn_as_username = true",
        "storage.type = memory",
      ].join("\n"),
      "t",
    );
    const running = await startBroker(
      config,
      createLogger({ level: "info", write: (line) => lines.push(JSON.parse(line)) }),
    );
    try {
      const url = `mqtts://127.0.0.1:${running.listeners[0].port}`;
      const device = await connectUrl(url, {
        ca: certs.pem.ca,
        cert: good.cert,
        key: good.key,
        clientId: "v1-dev",
        protocolVersion: 5,
      });
      await endJs(device.client);
      await assert.rejects(
        connectUrl(url, { ca: certs.pem.ca, cert: bad.cert, key: bad.key, clientId: "v1-rogue" }),
      );
      await assert.rejects(connectUrl(url, { ca: certs.pem.ca, clientId: "no-cert" }));
    } finally {
      await running.stop();
    }
    const connected = lines.find((line) => line.event === "client.connected");
    assert.equal(connected?.user, "legacy-device", "the v1 certificate's CN is the user name");
    const rejected = lines.filter((line) => line.event === "listener.client_rejected");
    assert.equal(rejected.length, 2, JSON.stringify(rejected));
    for (const line of rejected) assert.match(String(line.remote), /^127\.0\.0\.1:\d+$/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
