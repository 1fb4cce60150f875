/** CONNECT / CONNACK over real sockets, with the exact bytes the broker sends. */
import assert from "node:assert/strict";
import type { ConnackPacket, DisconnectPacket, Packet } from "../../src/codec/mod.ts";
import { hex, RawClient, toHex, withBroker } from "../helpers/broker.ts";

/** CONNECT 3.1.1, clean session, keep alive 60, client id "c1". */
const CONNECT_V4 = hex(
  "10 0e" + // CONNECT, remaining length 14
    " 00 04 4d 51 54 54" + // protocol name "MQTT"
    " 04" + // level 4 (3.1.1)
    " 02" + // flags: clean session
    " 00 3c" + // keep alive 60 s
    " 00 02 63 31", // client id "c1"
);

function connectV5(clientId: string, flags = 0x02, keepAlive = 60, properties: number[] = []): Uint8Array {
  const id = new TextEncoder().encode(clientId);
  const body = [
    0,
    4,
    0x4d,
    0x51,
    0x54,
    0x54,
    5,
    flags,
    keepAlive >> 8,
    keepAlive & 0xff,
    properties.length,
    ...properties,
    id.length >> 8,
    id.length & 0xff,
    ...id,
  ];
  return new Uint8Array([0x10, body.length, ...body]);
}

Deno.test("[MQTT-3.2.0-1] a 3.1.1 CONNECT is answered CONNACK 20 02 00 00", async () => {
  await withBroker("", async ({ port }) => {
    const client = await RawClient.connect(port);
    await client.send(CONNECT_V4);
    assert.equal(toHex(await client.readBytes(4)), "20 02 00 00");
    await client.close();
  });
});

Deno.test("[MQTT-3.1.2-1] MQTT 3.1 (MQIsdp, level 3) is accepted", async () => {
  await withBroker("", async ({ port }) => {
    const client = await RawClient.connect(port, 3);
    await client.send(hex("10 10 00 06 4d 51 49 73 64 70 03 02 00 3c 00 02 63 31")); // "MQIsdp", level 3
    assert.equal(toHex(await client.readBytes(4)), "20 02 00 00");
    await client.close();
  });
});

Deno.test("[MQTT-3.1.2-2] an unsupported protocol level gets CONNACK 0x01 and the connection closes", async () => {
  await withBroker("", async ({ port }) => {
    const client = await RawClient.connect(port);
    await client.send(hex("10 0e 00 04 4d 51 54 54 07 02 00 3c 00 02 63 31")); // level 7
    assert.equal(toHex(await client.expectClosed()), "20 02 00 01");
  });
});

Deno.test("[MQTT-3.1.3-8] 3.1.1 empty client id without clean session: CONNACK 0x02 and close", async () => {
  await withBroker("", async ({ port }) => {
    const client = await RawClient.connect(port);
    await client.send(hex("10 0c 00 04 4d 51 54 54 04 00 00 3c 00 00"));
    assert.equal(toHex(await client.expectClosed()), "20 02 00 02");
  });
});

Deno.test("[MQTT-3.1.3-6] 3.1.1 empty client id with clean session is accepted", async () => {
  await withBroker("", async ({ port }) => {
    const client = await RawClient.connect(port);
    await client.send(hex("10 0c 00 04 4d 51 54 54 04 02 00 3c 00 00"));
    assert.equal(toHex(await client.readBytes(4)), "20 02 00 00");
    await client.close();
  });
});

Deno.test("[MQTT-3.2.2-16] v5 empty client id gets an Assigned Client Identifier and the server's limits", async () => {
  await withBroker("mqtt.max_topic_alias = 7\nmqtt.receive_maximum = 50", async ({ port }) => {
    const client = await RawClient.connect(port, 5);
    await client.send(connectV5(""));
    const connack = await client.readPacket() as ConnackPacket;
    assert.equal(connack.type, "connack");
    assert.equal(connack.reasonCode, 0);
    assert.match(connack.properties.assignedClientIdentifier ?? "", /^auto-/);
    assert.equal(connack.properties.topicAliasMaximum, 7);
    assert.equal(connack.properties.receiveMaximum, 50);
    assert.equal(connack.properties.retainAvailable, 1);
    assert.equal(connack.properties.sharedSubscriptionAvailable, 1);
    assert.equal(connack.properties.maximumPacketSize, 1048576);
    await client.close();
  });
});

Deno.test("[MQTT-3.1.0-1] a first packet other than CONNECT closes the connection", async () => {
  await withBroker("", async ({ port }) => {
    const client = await RawClient.connect(port);
    await client.send(hex("c0 00")); // PINGREQ
    assert.equal((await client.expectClosed()).length, 0);
  });
});

Deno.test("[MQTT-3.1.0-2] a second CONNECT: v5 gets DISCONNECT 0x82, then close", async () => {
  await withBroker("", async ({ port }) => {
    const client = await RawClient.connect(port, 5);
    await client.send(connectV5("c2"));
    assert.equal((await client.readPacket()).type, "connack");
    await client.send(connectV5("c2"));
    const disconnect = await client.readPacket() as DisconnectPacket;
    assert.equal(disconnect.type, "disconnect");
    assert.equal(disconnect.reasonCode, 0x82);
    await client.expectClosed();
  });
});

Deno.test("[MQTT-3.1.4-3] session takeover: the first v5 connection hears DISCONNECT 0x8E and is closed", async () => {
  await withBroker("", async ({ port }) => {
    const first = await RawClient.connect(port, 5);
    await first.send(connectV5("same"));
    assert.equal((await first.readPacket()).type, "connack");
    const second = await RawClient.connect(port, 5);
    await second.send(connectV5("same", 0x00));
    const connack = await second.readPacket() as ConnackPacket;
    assert.equal(connack.reasonCode, 0);
    const disconnect = await first.readPacket() as DisconnectPacket;
    assert.equal(disconnect.type, "disconnect");
    assert.equal(disconnect.reasonCode, 0x8e);
    await first.expectClosed();
    await second.close();
  });
});

Deno.test("[MQTT-3.2.2-1] [MQTT-3.2.2-2] session present: 0 after clean start, 1 when a session is resumed", async () => {
  await withBroker("", async ({ port }) => {
    const persistent = hex("10 0e 00 04 4d 51 54 54 04 00 00 3c 00 02 70 31"); // clean session 0, id "p1"
    const a = await RawClient.connect(port);
    await a.send(persistent);
    assert.equal(toHex(await a.readBytes(4)), "20 02 00 00");
    await a.send(hex("e0 00")); // DISCONNECT
    await a.expectClosed();
    const b = await RawClient.connect(port);
    await b.send(persistent);
    assert.equal(toHex(await b.readBytes(4)), "20 02 01 00");
    await b.close();
  });
});

Deno.test("[MQTT-3.1.2-24] keep alive: silence for 1.5 × keep alive closes the connection (v5: 0x8D)", async () => {
  await withBroker("", async ({ port }) => {
    const client = await RawClient.connect(port, 5);
    await client.send(connectV5("ka", 0x02, 1));
    assert.equal((await client.readPacket()).type, "connack");
    const started = Date.now();
    const disconnect = await client.readPacket() as DisconnectPacket;
    assert.equal(disconnect.reasonCode, 0x8d);
    await client.expectClosed();
    assert.ok(Date.now() - started >= 1400, "closed before 1.5 × keep alive");
  });
});

Deno.test("[MQTT-3.12.4-1] PINGREQ is answered PINGRESP and keeps the connection alive", async () => {
  await withBroker("", async ({ port }) => {
    const client = await RawClient.connect(port);
    await client.send(hex("10 0e 00 04 4d 51 54 54 04 02 00 01 00 02 6b 61")); // keep alive 1 s
    assert.equal(toHex(await client.readBytes(4)), "20 02 00 00");
    for (let i = 0; i < 4; i++) {
      await new Promise((resolve) => setTimeout(resolve, 600));
      await client.send(hex("c0 00"));
      assert.equal(toHex(await client.readBytes(2)), "d0 00");
    }
    await client.close();
  });
});

Deno.test("a socket that never sends CONNECT is closed after the connect timeout", async () => {
  await withBroker("mqtt.connect_timeout_ms = 300", async ({ port }) => {
    const client = await RawClient.connect(port);
    const started = Date.now();
    await client.expectClosed();
    assert.ok(Date.now() - started >= 250);
  });
});

Deno.test("v5 Server Keep Alive: a keep alive above the maximum is replaced and announced [MQTT-3.2.2-21]", async () => {
  await withBroker("mqtt.max_keepalive = 30", async ({ port }) => {
    const client = await RawClient.connect(port, 5);
    await client.send(connectV5("sk", 0x02, 300));
    const connack: Packet = await client.readPacket();
    assert.ok(connack.type === "connack");
    assert.equal(connack.properties.serverKeepAlive, 30);
    await client.close();
  });
});

Deno.test("v5 server reference: clients are redirected with 0x9C Use Another Server", async () => {
  await withBroker("mqtt.server_reference = other.example:1883", async ({ port }) => {
    const client = await RawClient.connect(port, 5);
    await client.send(connectV5("r"));
    const connack = await client.readPacket() as ConnackPacket;
    assert.equal(connack.reasonCode, 0x9c);
    assert.equal(connack.properties.serverReference, "other.example:1883");
    await client.expectClosed();
  });
});

Deno.test("[MQTT-3.1.2-28] v5 Response Information is sent only to clients that request it", async () => {
  await withBroker("mqtt.response_information = replies/%c/", async ({ port }) => {
    const asking = await RawClient.connect(port, 5);
    await asking.send(connectV5("asker", 0x02, 60, [0x19, 0x01])); // Request Response Information = 1
    const connack = await asking.readPacket() as ConnackPacket;
    assert.equal(connack.properties.responseInformation, "replies/asker/");
    await asking.close();
    const silent = await RawClient.connect(port, 5);
    await silent.send(connectV5("quiet"));
    assert.equal((await silent.readPacket() as ConnackPacket).properties.responseInformation, undefined);
    await silent.close();
  });
});
