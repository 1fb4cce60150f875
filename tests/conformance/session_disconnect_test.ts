/**
 * Conformance: PINGREQ, DISCONNECT, AUTH framing, session lifetime and error handling (MQTT 3.1.1
 * §3.12, §3.14, §4.1, §4.8; MQTT 5.0 §3.12, §3.14, §3.15, §4.1, §4.13).
 */
import assert from "node:assert/strict";
import type { DisconnectPacket, Packet, ProtocolVersion } from "../../src/codec/mod.ts";
import { hex, RawClient, toHex, withBroker } from "../helpers/broker.ts";
import {
  connect,
  connectFrame,
  disconnect,
  expectDisconnect,
  frame,
  publish,
  rawConnect,
  readConnack,
  readPublish,
  sleep,
  str,
  subscribeOk,
  text,
} from "./support.ts";

const VERSIONS: ProtocolVersion[] = [4, 5];

/** Reads packets until the server closes; returns them. */
async function readUntilClosed(client: RawClient): Promise<Packet[]> {
  const packets: Packet[] = [];
  for (;;) {
    try {
      packets.push(await client.readPacket());
    } catch {
      return packets;
    }
  }
}

Deno.test("[MQTT-3.12.4-1] PINGREQ is answered with PINGRESP (d0 00)", async () => {
  await withBroker("", async ({ port }) => {
    for (const version of VERSIONS) {
      const { client } = await connect(port, "ping", version);
      await client.send(hex("c0 00 c0 00"));
      assert.equal(toHex(await client.readBytes(4)), "d0 00 d0 00");
      await client.close();
    }
  });
});

Deno.test("v3.1.1 [MQTT-3.14.1-1] a DISCONNECT with reserved flag bits set closes the connection and keeps the will", async () => {
  await withBroker("", async ({ port }) => {
    const { client: sub } = await connect(port, "flags-sub", 4);
    await subscribeOk(sub, 4, [["w/flags", 0]]);
    const { client } = await connect(port, "flags", 4, {
      will: { topic: "w/flags", payload: new Uint8Array([1]), qos: 0, retain: false, properties: {} },
    });
    await client.send(hex("e1 00"));
    await expectDisconnect(client, 4, 0);
    assert.equal((await readPublish(sub)).topic, "w/flags", "not a normal DISCONNECT: the will goes out");
    await sub.close();
  });
});

Deno.test("v5 [MQTT-3.14.1-1] [MQTT-3.15.1-1] DISCONNECT or AUTH with reserved flag bits set: DISCONNECT 0x81", async () => {
  await withBroker("", async ({ port }) => {
    for (const bytes of [hex("e1 00"), hex("e2 01 00"), hex("f1 00"), hex("f4 02 19 00")]) {
      const { client } = await connect(port, "flags", 5);
      await client.send(bytes);
      await expectDisconnect(client, 5, 0x81);
    }
  });
});

Deno.test("v5 [MQTT-3.14.0-1] no DISCONNECT before a successful CONNACK: a broken or refused CONNECT is just closed", async () => {
  await withBroker("mqtt.max_client_id_length = 23", async ({ port }) => {
    const broken = await rawConnect(port, connectFrame({ version: 5, clientId: "b", flags: 0x03 }), 5);
    const rest = await broken.expectClosed();
    assert.ok(rest.length === 0 || rest[0] === 0x20, `sent ${toHex(rest)}`);
    const first = await RawClient.connect(port, 5);
    await first.send(hex("c0 00"));
    assert.equal((await first.expectClosed()).length, 0, "PINGREQ before CONNECT: closed silently");
    const refused = await rawConnect(port, connectFrame({ version: 5, clientId: "r".repeat(30) }), 5);
    const packets = await readUntilClosed(refused);
    assert.deepEqual(packets.map((p) => p.type), ["connack"]);
  });
});

const DISCONNECT_CODES = new Set([
  0x00,
  0x04,
  0x80,
  0x81,
  0x82,
  0x83,
  0x87,
  0x89,
  0x8b,
  0x8d,
  0x8e,
  0x8f,
  0x90,
  0x93,
  0x94,
  0x95,
  0x96,
  0x97,
  0x98,
  0x99,
  0x9a,
  0x9b,
  0x9c,
  0x9d,
  0x9e,
  0x9f,
  0xa0,
  0xa1,
  0xa2,
]);

Deno.test("v5 [MQTT-3.14.2-1] [MQTT-3.14.2-2] the server's DISCONNECTs use DISCONNECT Reason Codes and never carry a Session Expiry Interval", async () => {
  await withBroker("", async ({ port }) => {
    const seen: DisconnectPacket[] = [];
    const triggers: Array<Uint8Array | "takeover"> = [
      hex("c0 80 00"), // malformed
      frame(0x30, [...str("a/+"), 0, 0x78]), // topic name invalid
      frame(0x30, [...str("t"), 3, 0x23, 0x01, 0x00, 0x78]), // topic alias 256 > Topic Alias Maximum
      connectFrame({ version: 5, clientId: "again" }), // protocol error
      hex("e0 01 03"), // a reason code DISCONNECT does not define: Protocol Error (docs/conformance.md)
      "takeover",
    ];
    for (const trigger of triggers) {
      const { client } = await connect(port, "codes", 5, { properties: { sessionExpiryInterval: 30 } });
      if (trigger === "takeover") {
        await connect(port, "codes", 5, { properties: { sessionExpiryInterval: 30 } });
      } else await client.send(trigger);
      const packet = await client.readPacket() as DisconnectPacket;
      assert.equal(packet.type, "disconnect");
      seen.push(packet);
      await client.expectClosed();
    }
    for (const packet of seen) {
      assert.ok(DISCONNECT_CODES.has(packet.reasonCode), `0x${packet.reasonCode.toString(16)}`);
      assert.equal(packet.properties.sessionExpiryInterval, undefined);
    }
    assert.deepEqual(seen.map((p) => p.reasonCode), [0x81, 0x90, 0x94, 0x82, 0x82, 0x8e]);
  });
});

Deno.test("v5 [MQTT-3.14.2-3] [MQTT-3.14.2-4] the server's DISCONNECT leaves out its Reason String when it would exceed the client's Maximum Packet Size", async () => {
  await withBroker("", async ({ port }) => {
    const { client } = await connect(port, "small-disconnect", 5, { properties: { maximumPacketSize: 8 } });
    await client.send(frame(0x30, [...str("t"), 3, 0x23, 0, 0, 0x78])); // topic alias 0
    const bytes = await client.expectClosed();
    assert.ok(bytes.length > 0 && bytes[0] === 0xe0, `a DISCONNECT was sent: ${toHex(bytes)}`);
    assert.ok(
      bytes.length <= 8,
      `DISCONNECT of ${bytes.length} bytes exceeds the client's Maximum Packet Size 8: ${toHex(bytes)}`,
    );
  });
});

Deno.test("v5 [MQTT-3.14.4-1] [MQTT-3.14.4-2] after its DISCONNECT the server sends nothing more and closes the connection", async () => {
  await withBroker("", async ({ port }) => {
    const { client } = await connect(port, "last-word", 5);
    await subscribeOk(client, 5, [["busy", 0]]);
    const { client: pub } = await connect(port, "last-word-pub", 5);
    const flood = (async () => {
      for (let i = 0; i < 300; i++) await publish(pub, 5, "busy", `${i}`, 0);
    })();
    await sleep(5);
    await client.send(hex("c0 80 00")); // malformed while messages are flowing to this client
    const packets = await readUntilClosed(client);
    await flood;
    const last = packets[packets.length - 1] as DisconnectPacket;
    assert.deepEqual([last.type, last.reasonCode], ["disconnect", 0x81]);
    assert.equal(packets.filter((p) => p.type === "disconnect").length, 1);
    assert.ok(client.closedByServer);
    await pub.close();
  });
});

Deno.test("v5 [MQTT-4.1.0-1] [MQTT-4.1.0-2] the session is kept while connected and discarded once the Session Expiry Interval passed", async () => {
  await withBroker("", async ({ port }) => {
    const { client } = await connect(port, "expiring", 5, { properties: { sessionExpiryInterval: 1 } });
    await subscribeOk(client, 5, [["keep", 1]]);
    await sleep(1300);
    const { client: pub } = await connect(port, "expiring-pub", 5);
    await publish(pub, 5, "keep", "still", 1);
    assert.equal(text((await readPublish(client)).payload), "still", "not discarded while connected");
    await disconnect(client, 5);
    await sleep(1400);
    const { client: late, connack } = await connect(port, "expiring", 5, { cleanStart: false });
    assert.equal(connack.sessionPresent, false, "discarded after the interval");
    await Promise.all([late.close(), pub.close()]);
  });
});

Deno.test("v3.1.1 [MQTT-4.1.0-1] [MQTT-4.1.0-2] a persistent session is kept between connections; a clean one lasts as long as its connection", async () => {
  await withBroker("", async ({ port }) => {
    const { client: persistent } = await connect(port, "p", 4, { cleanStart: false });
    await subscribeOk(persistent, 4, [["p", 1]]);
    await disconnect(persistent, 4);
    const { client: clean } = await connect(port, "c", 4, { cleanStart: true });
    await subscribeOk(clean, 4, [["c", 1]]);
    await disconnect(clean, 4);
    await sleep(300);
    const p2 = await rawConnect(port, connectFrame({ clientId: "p", flags: 0x00 }));
    assert.equal(toHex(await p2.readBytes(4)), "20 02 01 00");
    const c2 = await rawConnect(port, connectFrame({ clientId: "c", flags: 0x00 }));
    assert.equal(toHex(await c2.readBytes(4)), "20 02 00 00");
    await Promise.all([p2.close(), c2.close()]);
  });
});

Deno.test("v5 [MQTT-4.13.1-1] [MQTT-4.13.2-1] malformed packets and protocol errors: DISCONNECT with the reason code, then the connection is closed", async () => {
  await withBroker("", async ({ port }) => {
    const cases: Array<[Uint8Array, number | number[]]> = [
      [hex("30 03 00 05 61"), 0x81], // topic longer than the packet
      [hex("38 04 00 01 61 00"), [0x81, 0x82]], // QoS 0 with DUP
      [frame(0x30, [...str(""), 3, 0x23, 0, 5, 0x78]), 0x82], // unknown topic alias
      [hex("82 03 00 01 00"), 0x82], // SUBSCRIBE without filters
      [hex("d0 00"), 0x82], // PINGRESP from a client
      [hex("20 03 00 00 00"), 0x82], // CONNACK from a client
      [frame(0x30, [...str("t"), 2, 0x26, 0x00, 0x78]), 0x81], // truncated property
      [frame(0x30, [...str("t"), 2, 0x01, 0x05, 0x78]), 0x82], // payload format indicator 5
    ];
    for (const [bytes, code] of cases) {
      const { client } = await connect(port, "errors", 5);
      await client.send(bytes);
      await expectDisconnect(client, 5, code).catch((error) => {
        throw new Error(`${toHex(bytes)}: ${error.message}`);
      });
    }
  });
});

Deno.test("v3.1.1 [MQTT-4.8.0-1] protocol violations close the connection", async () => {
  await withBroker("", async ({ port }) => {
    const cases = [
      hex("30 03 00 05 61"),
      hex("38 03 00 01 61"),
      hex("82 02 00 01"),
      hex("d0 00"),
      hex("20 02 00 00"),
      hex("f0 00"), // AUTH does not exist before MQTT 5
      hex("e0 01 00"), // DISCONNECT with a body
    ];
    for (const bytes of cases) {
      const { client } = await connect(port, "errors", 4);
      await client.send(bytes);
      await expectDisconnect(client, 4, 0).catch((error) => {
        throw new Error(`${toHex(bytes)}: ${error.message}`);
      });
    }
  });
});

Deno.test("v5 [MQTT-3.2.2-7] [MQTT-4.13.2-1] a CONNACK with a reason of 0x80 or more is followed by the close", async () => {
  await withBroker("mqtt.max_client_id_length = 23", async ({ port }) => {
    const client = await rawConnect(port, connectFrame({ version: 5, clientId: "k".repeat(40) }), 5);
    const connack = await readConnack(client);
    assert.ok(connack.reasonCode >= 0x80);
    assert.equal((await client.expectClosed()).length, 0);
  });
});
