/**
 * Each authentication method with a real client: passwords with mosquitto_pub/sub and MQTT.js, access keys
 * with Paho Python, SCRAM-SHA-256 with MQTT.js's AUTH hook, client certificates with mosquitto_pub --cert.
 * Right credentials get in and see only what the ACL allows; wrong ones are refused alike.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import mqtt, { type IConnackPacket } from "mqtt";
import type { IAuthPacket } from "mqtt-packet";
import { scramCredentialLine } from "../../src/auth/mod.ts";
import {
  connectJs,
  connectUrl,
  endJs,
  PYTHON,
  requireTool,
  run,
  runOk,
  withTimeout,
} from "../interop/tools.ts";
import { testCerts } from "../transport/support.ts";
import { scramClient } from "./scram_client.ts";
import { passwordFile, tempFiles, withSecureBroker } from "./support.ts";

Deno.test("security clients: passwords with mosquitto_pub and MQTT.js; wrong, missing and anonymous refused", async () => {
  await requireTool("mosquitto_pub");
  await using files = await tempFiles({
    passwords: await passwordFile({ alice: "alice-pw", bob: "bob-pw" }),
    acl: "user alice\nallow readwrite alice/#\nuser bob\nallow subscribe alice/#\n",
  });
  const properties = [
    `auth.password_file = ${files.paths.passwords}`,
    `auth.acl_file = ${files.paths.acl}`,
    "auth.acl_default = deny",
    "auth.failure_delay_ms = 0",
  ].join("\n");
  await withSecureBroker(properties, async ({ port }) => {
    const bob = await connectJs(port, { clientId: "bob", username: "bob", password: "bob-pw" });
    try {
      await bob.client.subscribeAsync("alice/#", { qos: 1 });
      const base = ["-h", "127.0.0.1", "-p", String(port), "-t", "alice/status", "-q", "1"];
      await runOk("mosquitto_pub", [...base, "-u", "alice", "-P", "alice-pw", "-m", "hello"]);
      const [message] = await bob.inbox.take(1);
      assert.equal(message.payload, "hello");
      for (const credentials of [["-u", "alice", "-P", "nope"], ["-u", "alice"], []]) {
        for (const version of ["mqttv311", "mqttv5"]) {
          const refused = await run("mosquitto_pub", [...base, "-V", version, ...credentials, "-m", "x"]);
          assert.notEqual(refused.code, 0, `mosquitto_pub ${credentials.join(" ")} -V ${version} got in`);
        }
      }
      await bob.inbox.expectCount(1, 100);
      // MQTT.js sees the same refusal for an unknown user and a wrong password
      const errors: string[] = [];
      for (const [username, password] of [["nobody", "x"], ["alice", "wrong"]]) {
        const error = await connectJs(port, {
          clientId: `try-${username}`,
          username,
          password,
          protocolVersion: 5,
        })
          .then(() => assert.fail(`${username} got in`), (error: Error) => error.message);
        errors.push(error);
      }
      assert.equal(errors[0], errors[1]);
      assert.match(errors[0], /Bad User Name or Password/);
    } finally {
      await endJs(bob.client);
    }
  });
});

Deno.test("security clients: access-key signatures with Paho Python at 3.1.1 and 5; wrong ones refused alike", async () => {
  await requireTool("paho");
  await using files = await tempFiles({ keys: "AK1 = SK-secret\n" });
  const properties = `auth.access_keys_file = ${files.paths.keys}\nauth.failure_delay_ms = 0`;
  await withSecureBroker(properties, async ({ port }) => {
    const script = `
import base64, hmac, hashlib, sys, json
import paho.mqtt.client as mqtt
port = int(sys.argv[1])
results = {}
cases = [("plain", "AK1", "SK-secret"), ("aliyun", "Signature|AK1|inst-1", "SK-secret"),
         ("wrong signature", "Signature|AK1|inst-1", "bad"), ("unknown key", "Signature|AK9|inst-1", "SK-secret")]
for version, protocol in [("v311", mqtt.MQTTv311), ("v5", mqtt.MQTTv5)]:
    for name, user, key in cases:
        client_id = "GID_dev@@@" + name.replace(" ", "-") + "-" + version
        password = base64.b64encode(hmac.new(key.encode(), client_id.encode(), hashlib.sha1).digest()).decode()
        c = mqtt.Client(client_id=client_id, protocol=protocol)
        c.username_pw_set(user, password)
        answer = []
        if protocol == mqtt.MQTTv5:
            c.on_connect = lambda cl, u, f, rc, props=None: answer.append(
                [rc.value, getattr(props, "ReasonString", None)])
        else:
            c.on_connect = lambda cl, u, f, rc: answer.append([rc, None])
        c.connect("127.0.0.1", port, 10)
        for _ in range(80):
            c.loop(0.1)
            if answer: break
        results[name + " " + version] = answer[0] if answer else None
        c.disconnect()
print(json.dumps(results))
`;
    const output = await run(PYTHON, ["-c", script, String(port)], 30_000);
    assert.equal(output.code, 0, output.stderr);
    const results = JSON.parse(output.stdout.trim().split("\n").at(-1)!);
    assert.deepEqual(results["plain v311"], [0, null]);
    assert.deepEqual(results["aliyun v311"], [0, null]);
    assert.deepEqual(results["plain v5"][0], 0);
    assert.deepEqual(results["wrong signature v311"], [4, null]);
    assert.deepEqual(results["unknown key v311"], [4, null]);
    assert.equal(results["wrong signature v5"][0], 134);
    assert.deepEqual(results["unknown key v5"], results["wrong signature v5"]);
  });
});

/** MQTT.js over MQTT 5 with SCRAM-SHA-256 through its AUTH hook; resolves the CONNACK or rejects. */
async function scramWithMqttJs(port: number, user: string, password: string) {
  const scram = scramClient(user, password);
  const client = mqtt.connect(`mqtt://127.0.0.1:${port}`, {
    protocolVersion: 5,
    clientId: `scram-js-${user}`,
    reconnectPeriod: 0,
    properties: { authenticationMethod: "SCRAM-SHA-256", authenticationData: Buffer.from(scram.first) },
  });
  client.handleAuth = (packet: IAuthPacket, callback) => {
    const serverFirst = Buffer.from(packet.properties!.authenticationData!).toString();
    callback(undefined, {
      cmd: "auth",
      reasonCode: 0x18,
      properties: {
        authenticationMethod: "SCRAM-SHA-256",
        authenticationData: Buffer.from(scram.final(serverFirst)),
      },
    });
  };
  try {
    return await withTimeout(
      new Promise<IConnackPacket>((resolve, reject) => {
        client.once("connect", resolve);
        client.once("error", reject);
        client.once("close", () => reject(new Error("closed before CONNACK")));
      }),
      6000,
      "MQTT.js SCRAM login",
    );
  } finally {
    await endJs(client);
  }
}

Deno.test("security clients: SCRAM-SHA-256 with MQTT.js; unknown user and wrong password refused alike", async () => {
  await using files = await tempFiles({ scram: `${await scramCredentialLine("dev", "pa55")}\n` });
  await withSecureBroker(
    `auth.scram_file = ${files.paths.scram}\nauth.failure_delay_ms = 0`,
    async ({ port }) => {
      const connack = await scramWithMqttJs(port, "dev", "pa55");
      assert.equal(connack.reasonCode, 0);
      const wrong = await scramWithMqttJs(port, "dev", "nope").then(
        () => "accepted",
        (e: Error) => e.message,
      );
      const unknown = await scramWithMqttJs(port, "ghost", "nope").then(
        () => "accepted",
        (e: Error) => e.message,
      );
      assert.notEqual(wrong, "accepted");
      assert.equal(unknown, wrong);
      // and a plain MQTT.js CONNECT without credentials is anonymous, which a SCRAM-only broker refuses
      await assert.rejects(connectJs(port, { clientId: "anon", protocolVersion: 5 }), /Not authorized/);
    },
  );
});

Deno.test("security clients: mosquitto_pub --cert: the certificate's CN is the identity, a CONNECT user name is ignored", async () => {
  await requireTool("mosquitto_pub");
  const certs = await testCerts();
  await using files = await tempFiles({
    passwords: await passwordFile({ admin: "admin-pw" }),
    acl: "pattern allow readwrite devices/%u/#\nuser admin\nallow readwrite #\n",
  });
  const properties = [
    "listener.default.host = 127.0.0.1",
    "listener.default.port = 0",
    "listener.mtls.type = tls",
    "listener.mtls.host = 127.0.0.1",
    "listener.mtls.port = 0",
    `listener.mtls.cert_file = ${certs.serverCert}`,
    `listener.mtls.key_file = ${certs.serverKey}`,
    `listener.mtls.ca_file = ${certs.caFile}`,
    "listener.mtls.require_client_cert = true",
    "listener.mtls.use_cn_as_username = true",
    `auth.password_file = ${files.paths.passwords}`,
    `auth.acl_file = ${files.paths.acl}`,
    "auth.acl_default = deny",
  ].join("\n");
  await withSecureBroker(properties, async ({ port, running }) => {
    const mtls = running.listeners.find((listener) => listener.name === "mtls")!.port;
    const admin = await connectJs(port, { clientId: "admin", username: "admin", password: "admin-pw" });
    try {
      await admin.client.subscribeAsync("#", { qos: 1 });
      const base = ["-h", "127.0.0.1", "-p", String(mtls), "--cafile", certs.caFile, "-q", "1"];
      const cert = ["--cert", certs.clientCert, "--key", certs.clientKey];
      await runOk("mosquitto_pub", [...base, ...cert, "-t", "devices/device-1/state", "-m", "mine"]);
      // claims to be admin in CONNECT: the certificate says device-1, so this publish is dropped
      await runOk("mosquitto_pub", [
        ...base,
        ...cert,
        "-u",
        "admin",
        "-P",
        "x",
        "-t",
        "control/all",
        "-m",
        "forged",
      ]);
      const [message] = await admin.inbox.take(1);
      assert.equal(message.topic, "devices/device-1/state");
      await admin.inbox.expectCount(1, 200);
      await assert.rejects(connectUrl(`mqtts://127.0.0.1:${mtls}`, { clientId: "none", ca: certs.pem.ca }));
    } finally {
      await endJs(admin.client);
    }
  });
});
