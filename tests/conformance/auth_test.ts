/**
 * Conformance: MQTT 5.0 enhanced authentication (§4.12, AUTH §3.15) with the broker's SCRAM-SHA-256
 * method, driven by a SCRAM client written here from RFC 5802 over real sockets.
 */
import assert from "node:assert/strict";
import { createHash, createHmac, pbkdf2Sync, randomBytes } from "node:crypto";
import { scramCredentialLine } from "../../src/auth/mod.ts";
import type {
  AuthPacket,
  ConnackPacket,
  ConnectPacket,
  DisconnectPacket,
  Packet,
  Properties,
} from "../../src/codec/mod.ts";
import { RawClient, withBroker } from "../helpers/broker.ts";
import { publish, readPublish, subscribeOk, tempFile, text } from "./support.ts";

const METHOD = "SCRAM-SHA-256";
const AUTH_REASON_CODES = [0x00, 0x18, 0x19];

function b64(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes));
}

/** The client side of one SCRAM-SHA-256 exchange. */
function scram(user: string, password: string) {
  const nonce = b64(new Uint8Array(randomBytes(18)));
  const bare = `n=${user},r=${nonce}`;
  let expectedServerSignature = "";
  return {
    first: new TextEncoder().encode(`n,,${bare}`),
    final(serverFirstBytes: Uint8Array | undefined): Uint8Array {
      const serverFirst = new TextDecoder().decode(serverFirstBytes);
      const fields = new Map(serverFirst.split(",").map((part) => [part[0], part.slice(2)]));
      assert.ok(fields.get("r")!.startsWith(nonce), "the server nonce extends ours");
      const salt = Uint8Array.from(atob(fields.get("s")!), (c) => c.charCodeAt(0));
      const salted = pbkdf2Sync(password, salt, Number(fields.get("i")), 32, "sha256");
      const clientKey = createHmac("sha256", salted).update("Client Key").digest();
      const storedKey = createHash("sha256").update(clientKey).digest();
      const withoutProof = `c=biws,r=${fields.get("r")}`;
      const authMessage = `${bare},${serverFirst},${withoutProof}`;
      const clientSignature = createHmac("sha256", storedKey).update(authMessage).digest();
      const proof = new Uint8Array(clientKey.map((byte, i) => byte ^ clientSignature[i]));
      const serverKey = createHmac("sha256", salted).update("Server Key").digest();
      expectedServerSignature = `v=${
        b64(new Uint8Array(createHmac("sha256", serverKey).update(authMessage).digest()))
      }`;
      return new TextEncoder().encode(`${withoutProof},p=${b64(proof)}`);
    },
    get serverFinal(): string {
      return expectedServerSignature;
    },
  };
}

function connectPacket(clientId: string, properties: Properties): ConnectPacket {
  return {
    type: "connect",
    protocolName: "MQTT",
    protocolVersion: 5,
    cleanStart: true,
    keepAlive: 60,
    clientId,
    properties,
  };
}

interface Exchange {
  client: RawClient;
  packets: Packet[];
  serverFinal: string;
}

/** CONNECT with SCRAM, answer the server's AUTH, and collect what the server sent. */
async function scramConnect(
  port: number,
  clientId: string,
  password: string,
  properties: Properties = {},
): Promise<Exchange> {
  const client = await RawClient.connect(port, 5);
  const exchange = scram("dev", password);
  await client.sendPacket(
    connectPacket(clientId, {
      ...properties,
      authenticationMethod: METHOD,
      authenticationData: exchange.first,
    }),
    5,
  );
  const packets: Packet[] = [await client.readPacket()];
  const challenge = packets[0] as AuthPacket;
  if (challenge.type === "auth") {
    await client.sendPacket({
      type: "auth",
      reasonCode: 0x18,
      properties: {
        authenticationMethod: METHOD,
        authenticationData: exchange.final(challenge.properties.authenticationData),
      },
    }, 5);
    packets.push(await client.readPacket());
  }
  return { client, packets, serverFinal: exchange.serverFinal };
}

async function withScram(fn: (port: number) => Promise<void>): Promise<void> {
  const file = await tempFile(`${await scramCredentialLine("dev", "pa55", 1024)}\n`);
  try {
    await withBroker(`auth.scram_file = ${file}`, ({ port }) => fn(port));
  } finally {
    await Deno.remove(file);
  }
}

Deno.test("v5 [MQTT-4.12.0-2] [MQTT-4.12.0-5] [MQTT-3.15.2-1] [MQTT-3.2.0-1] SCRAM: AUTH 0x18 with the method, then CONNACK 0x00 echoing it with the server's proof", async () => {
  await withScram(async (port) => {
    const { client, packets, serverFinal } = await scramConnect(port, "scram-ok", "pa55");
    assert.deepEqual(
      packets.map((p) => p.type),
      ["auth", "connack"],
      "only AUTH may come before the CONNACK",
    );
    const [auth, connack] = packets as [AuthPacket, ConnackPacket];
    assert.equal(auth.reasonCode, 0x18);
    assert.ok(AUTH_REASON_CODES.includes(auth.reasonCode));
    assert.equal(auth.properties.authenticationMethod, METHOD);
    assert.equal(connack.reasonCode, 0);
    assert.equal(connack.properties.authenticationMethod, METHOD);
    assert.equal(text(connack.properties.authenticationData!), serverFinal);
    await subscribeOk(client, 5, [["scram", 0]]);
    await publish(client, 5, "scram", "works", 0);
    assert.equal(text((await readPublish(client)).payload), "works");
    await client.close();
  });
});

Deno.test("v5 [MQTT-4.12.0-4] [MQTT-3.2.2-7] a failed SCRAM exchange: CONNACK of 0x80 or more, then close", async () => {
  await withScram(async (port) => {
    const { client, packets } = await scramConnect(port, "scram-bad", "wrong");
    const last = packets[packets.length - 1] as ConnackPacket;
    assert.equal(last.type, "connack");
    assert.ok(last.reasonCode >= 0x80, `0x${last.reasonCode.toString(16)}`);
    assert.equal(last.sessionPresent, false);
    assert.equal((await client.expectClosed()).length, 0);
  });
});

Deno.test("v5 [MQTT-3.1.4-6] a CONNECT refused during authentication: the PUBLISH sent behind it is not processed", async () => {
  await withScram(async (port) => {
    const { client: sub } = await scramConnect(port, "scram-sub", "pa55");
    await subscribeOk(sub, 5, [["after-refusal", 0]]);
    const client = await RawClient.connect(port, 5);
    await client.sendPacket(connectPacket("unknown-method", { authenticationMethod: "NOPE" }), 5);
    await client.sendPacket({
      type: "publish",
      topic: "after-refusal",
      payload: new Uint8Array(1),
      qos: 0,
      retain: false,
      dup: false,
      properties: {},
    }, 5);
    const connack = await client.readPacket() as ConnackPacket;
    assert.deepEqual([connack.type, connack.reasonCode], ["connack", 0x8c]);
    await client.expectClosed();
    assert.ok(await sub.expectSilence(150));
    await sub.close();
  });
});

Deno.test("v5 [MQTT-4.12.1-2] a failed re-authentication closes the connection (after DISCONNECT with a reason of 0x80 or more)", async () => {
  await withScram(async (port) => {
    const { client } = await scramConnect(port, "reauth", "pa55");
    // a successful re-authentication first: AUTH 0x19 ... AUTH 0x00
    const again = scram("dev", "pa55");
    await client.sendPacket({
      type: "auth",
      reasonCode: 0x19,
      properties: { authenticationMethod: METHOD, authenticationData: again.first },
    }, 5);
    const challenge = await client.readPacket() as AuthPacket;
    assert.deepEqual([challenge.type, challenge.reasonCode], ["auth", 0x18]);
    await client.sendPacket({
      type: "auth",
      reasonCode: 0x18,
      properties: {
        authenticationMethod: METHOD,
        authenticationData: again.final(challenge.properties.authenticationData),
      },
    }, 5);
    const done = await client.readPacket() as AuthPacket;
    assert.deepEqual([done.type, done.reasonCode, done.properties.authenticationMethod], [
      "auth",
      0x00,
      METHOD,
    ]);
    // then one with a wrong password
    const bad = scram("dev", "wrong");
    await client.sendPacket({
      type: "auth",
      reasonCode: 0x19,
      properties: { authenticationMethod: METHOD, authenticationData: bad.first },
    }, 5);
    const challenge2 = await client.readPacket() as AuthPacket;
    await client.sendPacket({
      type: "auth",
      reasonCode: 0x18,
      properties: {
        authenticationMethod: METHOD,
        authenticationData: bad.final(challenge2.properties.authenticationData),
      },
    }, 5);
    const packets: Packet[] = [];
    for (;;) {
      try {
        packets.push(await client.readPacket());
      } catch {
        break;
      }
    }
    assert.ok(client.closedByServer, "the connection is closed");
    for (const packet of packets) {
      assert.equal(packet.type, "disconnect");
      assert.ok((packet as DisconnectPacket).reasonCode >= 0x80);
    }
  });
});

Deno.test("v5 [MQTT-3.15.2-2] [MQTT-3.15.2-3] the server's AUTH carries no Reason String or User Property beyond the client's Maximum Packet Size", async () => {
  await withScram(async (port) => {
    const client = await RawClient.connect(port, 5);
    const exchange = scram("dev", "pa55");
    const limit = 120;
    await client.sendPacket(
      connectPacket("auth-size", {
        maximumPacketSize: limit,
        authenticationMethod: METHOD,
        authenticationData: exchange.first,
      }),
      5,
    );
    const head = await client.readBytes(2);
    const length = head[1] & 0x80 ? head[1] & 0x7f : head[1];
    assert.equal(head[0], 0xf0, "an AUTH");
    assert.ok(head[1] < 0x80 && 2 + length <= limit, `AUTH of ${2 + length} bytes over a limit of ${limit}`);
    await client.close();
  });
});
