/** Authentication and authorization through the whole broker, over real sockets and real clients. */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { createHash, createHmac, pbkdf2Sync, randomBytes } from "node:crypto";
import { addOrUpdateUser, scramCredentialLine } from "../../src/auth/mod.ts";
import type { AuthPacket, ConnackPacket, Packet } from "../../src/codec/mod.ts";
import { RawClient, toHex, withBroker } from "../helpers/broker.ts";
import { connect, publishPacket, readPublish, subscribe, subscription } from "../helpers/clients.ts";

async function tempFile(text: string): Promise<string> {
  const path = await Deno.makeTempFile();
  await Deno.writeTextFile(path, text);
  return path;
}

async function rawConnect(
  port: number,
  version: 4 | 5,
  clientId: string,
  username?: string,
  password?: string,
) {
  const client = await RawClient.connect(port, version);
  await client.sendPacket({
    type: "connect",
    protocolName: "MQTT",
    protocolVersion: version,
    cleanStart: true,
    keepAlive: 30,
    clientId,
    username,
    password: password === undefined ? undefined : new TextEncoder().encode(password),
    properties: {},
  }, version);
  return client;
}

Deno.test("password file: right password connects; wrong one gets 3.1.1 0x04 / v5 0x86; anonymous 0x05 / 0x87", async () => {
  const file = await tempFile(await addOrUpdateUser("", "alice", "s3cret"));
  try {
    await withBroker(`auth.password_file = ${file}`, async ({ port }) => {
      const ok = await rawConnect(port, 4, "a1", "alice", "s3cret");
      assert.equal(toHex(await ok.readBytes(4)), "20 02 00 00");
      await ok.close();
      const wrong = await rawConnect(port, 4, "a2", "alice", "nope");
      assert.equal(toHex(await wrong.expectClosed()), "20 02 00 04");
      const anonymous = await rawConnect(port, 4, "a3");
      assert.equal(toHex(await anonymous.expectClosed()), "20 02 00 05");
      const wrong5 = await rawConnect(port, 5, "a4", "alice", "nope");
      assert.equal((await wrong5.readPacket() as ConnackPacket).reasonCode, 0x86);
      await wrong5.expectClosed();
    });
  } finally {
    await Deno.remove(file);
  }
});

Deno.test("access-key signature computed by Paho Python's hmac is accepted; a wrong one is refused", async () => {
  const keys = await tempFile("AK1 = SK-secret\n");
  try {
    await withBroker(`auth.access_keys_file = ${keys}`, async ({ port }) => {
      const script = `
import base64, hmac, hashlib, sys, json
import paho.mqtt.client as mqtt
port, secret = int(sys.argv[1]), sys.argv[2]
results = {}
for name, user, key in [("plain", "AK1", secret), ("aliyun", "Signature|AK1|inst-1", secret), ("wrong", "AK1", "bad")]:
    client_id = "GID_dev@@@" + name
    password = base64.b64encode(hmac.new(key.encode(), client_id.encode(), hashlib.sha1).digest()).decode()
    c = mqtt.Client(client_id=client_id, protocol=mqtt.MQTTv311)
    c.username_pw_set(user, password)
    codes = []
    c.on_connect = lambda cl, u, f, rc: codes.append(rc)
    c.connect("127.0.0.1", port, 10)
    for _ in range(50):
        c.loop(0.1)
        if codes: break
    results[name] = codes[0] if codes else None
    c.disconnect()
print(json.dumps(results))
`;
      const output = await new Deno.Command("/usr/bin/python3", {
        args: ["-c", script, String(port), "SK-secret"],
        stdout: "piped",
        stderr: "piped",
      }).output().catch((error) => {
        throw new Error(`/usr/bin/python3 is required (apt-get install python3-paho-mqtt): ${error}`);
      });
      const stderr = new TextDecoder().decode(output.stderr);
      assert.equal(output.code, 0, `paho script failed (apt-get install python3-paho-mqtt?): ${stderr}`);
      const results = JSON.parse(new TextDecoder().decode(output.stdout));
      assert.deepEqual(results, { plain: 0, aliyun: 0, wrong: 4 });
    });
  } finally {
    await Deno.remove(keys);
  }
});

Deno.test("ACL: denied publish is v5 PUBACK 0x87 and 3.1.1 silently dropped; denied subscribe is 0x87 / 0x80", async () => {
  const acl = await tempFile("allow readwrite open/#\ndeny publish open/locked\n");
  try {
    await withBroker(`auth.acl_file = ${acl}\nauth.acl_default = deny`, async ({ port }) => {
      const { client: sub } = await connect(port, "sub", 5);
      assert.deepEqual(await subscribe(sub, 5, [subscription("open/#", 1), subscription("closed/#", 1)]), [
        1,
        0x87,
      ]);
      const { client: sub4 } = await connect(port, "sub4", 4);
      assert.deepEqual(await subscribe(sub4, 4, [subscription("closed/x", 0)]), [0x80]);
      const { client: pub5 } = await connect(port, "pub5", 5);
      await pub5.sendPacket(publishPacket("open/locked", "x", 1, { packetId: 3 }), 5);
      const ack = await pub5.readPacket();
      assert.ok(ack.type === "puback" && ack.reasonCode === 0x87);
      const { client: pub4 } = await connect(port, "pub4", 4);
      await pub4.sendPacket(publishPacket("open/locked", "x", 1, { packetId: 4 }), 4);
      const ack4 = await pub4.readPacket();
      assert.ok(ack4.type === "puback" && ack4.reasonCode === 0); // [MQTT-3.3.5-2]
      assert.ok(await sub.expectSilence(150), "a denied publish was delivered");
      await pub4.sendPacket(publishPacket("open/fine", "y", 1, { packetId: 5 }), 4);
      assert.equal((await readPublish(sub)).topic, "open/fine");
      await Promise.all([sub.close(), sub4.close(), pub5.close(), pub4.close()]);
    });
  } finally {
    await Deno.remove(acl);
  }
});

Deno.test("reload (SIGHUP) picks up a changed ACL while clients stay connected", async () => {
  const acl = await tempFile("allow readwrite a/#\n");
  try {
    await withBroker(`auth.acl_file = ${acl}\nauth.acl_default = deny`, async ({ port, running }) => {
      const { client } = await connect(port, "c", 5);
      assert.deepEqual(await subscribe(client, 5, [subscription("b/1", 0)], {}, 1), [0x87]);
      await Deno.writeTextFile(acl, "allow readwrite a/#\nallow readwrite b/#\n");
      await running.reload();
      assert.deepEqual(await subscribe(client, 5, [subscription("b/1", 0)], {}, 2), [0]);
      await client.close();
    });
  } finally {
    await Deno.remove(acl);
  }
});

/** A SCRAM-SHA-256 client written from RFC 5802, independent of the broker's code. */
function scramClient(user: string, password: string) {
  const nonce = randomBytes(12).toString("base64");
  const first = `n=${user},r=${nonce}`;
  return {
    first: new TextEncoder().encode(`n,,${first}`),
    final(serverFirst: string): { message: Uint8Array; expectedServer: string } {
      const attrs = Object.fromEntries(serverFirst.split(",").map((kv) => [kv[0], kv.slice(2)]));
      const salted = pbkdf2Sync(password, Buffer.from(attrs.s, "base64"), Number(attrs.i), 32, "sha256");
      const clientKey = createHmac("sha256", salted).update("Client Key").digest();
      const storedKey = createHash("sha256").update(clientKey).digest();
      const withoutProof = `c=biws,r=${attrs.r}`;
      const authMessage = `${first},${serverFirst},${withoutProof}`;
      const signature = createHmac("sha256", storedKey).update(authMessage).digest();
      const proof = clientKey.map((b, i) => b ^ signature[i]);
      const serverKey = createHmac("sha256", salted).update("Server Key").digest();
      const expectedServer = `v=${createHmac("sha256", serverKey).update(authMessage).digest("base64")}`;
      return {
        message: new TextEncoder().encode(`${withoutProof},p=${Buffer.from(proof).toString("base64")}`),
        expectedServer,
      };
    },
  };
}

async function scramConnect(
  port: number,
  user: string,
  password: string,
): Promise<{ client: RawClient; last: Packet; expected: string }> {
  const client = await RawClient.connect(port, 5);
  const scram = scramClient(user, password);
  await client.sendPacket({
    type: "connect",
    protocolName: "MQTT",
    protocolVersion: 5,
    cleanStart: true,
    keepAlive: 30,
    clientId: `scram-${user}`,
    properties: { authenticationMethod: "SCRAM-SHA-256", authenticationData: scram.first },
  }, 5);
  const challenge = await client.readPacket() as AuthPacket;
  assert.equal(challenge.type, "auth");
  assert.equal(challenge.reasonCode, 0x18);
  const { message, expectedServer } = scram.final(
    new TextDecoder().decode(challenge.properties.authenticationData),
  );
  await client.sendPacket({
    type: "auth",
    reasonCode: 0x18,
    properties: { authenticationMethod: "SCRAM-SHA-256", authenticationData: message },
  }, 5);
  return { client, last: await client.readPacket(), expected: expectedServer };
}

Deno.test("v5 enhanced authentication SCRAM-SHA-256: success proves the server, wrong password is 0x87, unknown method 0x8C", async () => {
  const file = await tempFile(`${await scramCredentialLine("dev", "pa55")}\n`);
  try {
    await withBroker(`auth.scram_file = ${file}`, async ({ port }) => {
      const ok = await scramConnect(port, "dev", "pa55");
      assert.ok(ok.last.type === "connack" && ok.last.reasonCode === 0);
      assert.equal(ok.last.properties.authenticationMethod, "SCRAM-SHA-256");
      assert.equal(new TextDecoder().decode(ok.last.properties.authenticationData), ok.expected);
      await ok.client.close();
      const bad = await scramConnect(port, "dev", "wrong");
      assert.ok(bad.last.type === "connack" && bad.last.reasonCode === 0x87);
      await bad.client.expectClosed();
      const other = await RawClient.connect(port, 5);
      await other.sendPacket({
        type: "connect",
        protocolName: "MQTT",
        protocolVersion: 5,
        cleanStart: true,
        keepAlive: 30,
        clientId: "x",
        properties: { authenticationMethod: "KERBEROS" },
      }, 5);
      const refused = await other.readPacket();
      assert.ok(refused.type === "connack" && refused.reasonCode === 0x8c);
      await other.expectClosed();
    });
  } finally {
    await Deno.remove(file);
  }
});
