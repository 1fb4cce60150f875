/** Conformance: MQTT 5.0 CONNECT / CONNACK (§3.1, §3.2), real sockets. Test names carry the statement ids. */
import assert from "node:assert/strict";
import {
  type ConnackPacket,
  type ConnectPacket,
  Decoder,
  type DisconnectPacket,
  type Properties,
} from "../../src/codec/mod.ts";
import { RawClient, toHex, withBroker } from "../helpers/broker.ts";
import {
  connect,
  connectFrame,
  disconnect,
  expectClosedBeforeConnack,
  frame,
  passwordFile,
  publish,
  rawConnect,
  readConnack,
  readPublish,
  sleep,
  str,
  subscribeOk,
  text,
  will,
} from "./support.ts";

const V = 5;

function connectPacket(clientId: string, fields: Partial<ConnectPacket> = {}): ConnectPacket {
  return {
    type: "connect",
    protocolName: "MQTT",
    protocolVersion: 5,
    cleanStart: true,
    keepAlive: 60,
    clientId,
    properties: {},
    ...fields,
  };
}

/** Sends a CONNECT and returns the client with its CONNACK, whatever the reason code. */
async function tryConnect(
  port: number,
  packet: ConnectPacket,
): Promise<{ client: RawClient; connack: ConnackPacket }> {
  const client = await RawClient.connect(port, 5);
  await client.sendPacket(packet, 5);
  return { client, connack: await readConnack(client) };
}

const session = (seconds: number): Properties => ({ sessionExpiryInterval: seconds });

Deno.test("v5 [MQTT-3.1.0-1] a first packet other than CONNECT closes the connection without a DISCONNECT", async () => {
  await withBroker("", async ({ port }) => {
    for (const first of [frame(0xc0, []), frame(0x30, [...str("t"), 0, 0x78]), frame(0xf0, [0x18, 0])]) {
      const client = await rawConnect(port, first, 5);
      assert.equal((await client.expectClosed()).length, 0, toHex(first));
    }
  });
});

Deno.test("v5 [MQTT-3.1.2-1] [MQTT-3.2.2-8] a level-5 CONNECT with a wrong protocol name: closed; a CONNACK, if any, is a v5 CONNACK 0x84", async () => {
  await withBroker("", async ({ port }) => {
    const client = await rawConnect(
      port,
      connectFrame({ version: 5, clientId: "n", protocolName: "MQTX" }),
      5,
    );
    const rest = await expectClosedBeforeConnack(client);
    if (rest.length > 0) {
      const decoder = new Decoder({ maxPacketSize: 1 << 20, protocolVersion: 5 });
      decoder.push(rest);
      const connack = decoder.next() as ConnackPacket; // throws on a reason code that is no Connect Reason Code
      assert.equal(connack.reasonCode, 0x84);
    }
  });
});

Deno.test("v5 [MQTT-3.1.2-2] an unsupported protocol version: closed, any CONNACK refuses", async () => {
  await withBroker("", async ({ port }) => {
    const bytes = connectFrame({ version: 5, clientId: "v6" });
    bytes[8] = 6; // protocol level byte after 00 04 "MQTT"
    const client = await rawConnect(port, bytes, 5);
    await expectClosedBeforeConnack(client);
  });
});

Deno.test("v5 [MQTT-3.1.2-3] [MQTT-3.1.4-1] a set reserved CONNECT flag is malformed: closed, any CONNACK refuses", async () => {
  await withBroker("", async ({ port }) => {
    const client = await rawConnect(port, connectFrame({ version: 5, clientId: "r", flags: 0x03 }), 5);
    await expectClosedBeforeConnack(client);
  });
});

Deno.test("v5 [MQTT-3.1.2-4] [MQTT-3.1.4-4] [MQTT-3.2.2-2] Clean Start 1 discards the session: Session Present 0, subscriptions and queue gone", async () => {
  await withBroker("", async ({ port }) => {
    const { client: first } = await connect(port, "cs", V, { properties: session(60) });
    await subscribeOk(first, V, [["cs/t", 1]]);
    await disconnect(first, V);
    const { client: pub } = await connect(port, "cs-pub", V);
    await publish(pub, V, "cs/t", "queued", 1);
    const { client: again, connack } = await connect(port, "cs", V, {
      cleanStart: true,
      properties: session(60),
    });
    assert.equal(connack.sessionPresent, false);
    await publish(pub, V, "cs/t", "live", 1);
    assert.ok(await again.expectSilence(200));
    await again.close();
    await pub.close();
  });
});

Deno.test("v5 [MQTT-3.1.2-5] [MQTT-3.1.2-23] [MQTT-3.2.2-3] [MQTT-4.5.0-1] Clean Start 0 resumes a stored session: Session Present 1 and the messages stored meanwhile", async () => {
  await withBroker("", async ({ port }) => {
    const { client: first } = await connect(port, "rs", V, { cleanStart: false, properties: session(60) });
    await subscribeOk(first, V, [["rs/#", 2]]);
    await disconnect(first, V);
    const { client: pub } = await connect(port, "rs-pub", V);
    await publish(pub, V, "rs/1", "one", 1);
    await publish(pub, V, "rs/2", "two", 2);
    const { client: again, connack } = await connect(port, "rs", V, {
      cleanStart: false,
      properties: session(60),
    });
    assert.equal(connack.sessionPresent, true);
    const m1 = await readPublish(again);
    const m2 = await readPublish(again);
    assert.deepEqual([m1.topic, text(m1.payload), m2.topic, text(m2.payload)], [
      "rs/1",
      "one",
      "rs/2",
      "two",
    ]);
    await again.close();
    await pub.close();
  });
});

Deno.test("v5 [MQTT-3.1.2-6] [MQTT-3.2.2-3] Clean Start 0 without a stored session creates one: Session Present 0", async () => {
  await withBroker("", async ({ port }) => {
    const { client, connack } = await connect(port, "new", V, { cleanStart: false, properties: session(60) });
    assert.equal(connack.sessionPresent, false);
    await subscribeOk(client, V, [["new", 1]]);
    await disconnect(client, V);
    const { client: again, connack: resumed } = await connect(port, "new", V, { cleanStart: false });
    assert.equal(resumed.sessionPresent, true);
    await again.close();
  });
});

Deno.test("v5 [MQTT-3.1.2-7] [MQTT-3.1.2-8] [MQTT-3.1.2-14] the will is stored and published, not retained, when the connection ends", async () => {
  await withBroker("", async ({ port }) => {
    const { client: sub } = await connect(port, "w-sub", V);
    await subscribeOk(sub, V, [["will/#", 1]]);
    const { client } = await connect(port, "w", V, { will: will("will/w", "gone", 1, false) });
    await client.close();
    const got = await readPublish(sub);
    assert.deepEqual([got.topic, text(got.payload), got.qos, got.retain], ["will/w", "gone", 1, false]);
    const { client: late } = await connect(port, "w-late", V);
    await subscribeOk(late, V, [["will/#", 1]]);
    assert.ok(await late.expectSilence(150));
    await late.close();
    await sub.close();
  });
});

Deno.test("v5 [MQTT-3.1.2-15] Will Retain 1: the will is published as a retained message", async () => {
  await withBroker("", async ({ port }) => {
    const { client } = await connect(port, "wr", V, { will: will("will/r", "bye", 0, true) });
    await client.close();
    await sleep(100);
    const { client: late } = await connect(port, "wr-late", V);
    await subscribeOk(late, V, [["will/r", 0]]);
    const got = await readPublish(late);
    assert.deepEqual([got.topic, text(got.payload), got.retain], ["will/r", "bye", true]);
    await late.close();
  });
});

Deno.test("v5 [MQTT-3.1.2-10] [MQTT-3.14.4-3] DISCONNECT 0x00 removes the will: not published, not even when the session ends", async () => {
  await withBroker("", async ({ port }) => {
    const { client: sub } = await connect(port, "wd-sub", V);
    await subscribeOk(sub, V, [["will/#", 0]]);
    const { client } = await connect(port, "wd", V, {
      properties: session(1),
      will: will("will/d", "no", 0, false, { willDelayInterval: 1 }),
    });
    await disconnect(client, V);
    assert.ok(await sub.expectSilence(1500));
    await sub.close();
  });
});

Deno.test("v5 [MQTT-3.1.2-9] Will Flag set without will properties, topic and payload: closed", async () => {
  await withBroker("", async ({ port }) => {
    const client = await rawConnect(port, connectFrame({ version: 5, clientId: "w9", flags: 0x06 }), 5);
    await expectClosedBeforeConnack(client);
  });
});

Deno.test("v5 [MQTT-3.1.2-11] [MQTT-3.1.2-13] Will QoS or Will Retain without the Will Flag: closed", async () => {
  await withBroker("", async ({ port }) => {
    for (const flags of [0x0a, 0x12, 0x22]) {
      const client = await rawConnect(port, connectFrame({ version: 5, clientId: "w", flags }), 5);
      await expectClosedBeforeConnack(client);
    }
  });
});

Deno.test("v5 [MQTT-3.1.2-12] Will QoS 3: closed", async () => {
  await withBroker("", async ({ port }) => {
    const rest = [0, ...str("t"), ...str("m")];
    const client = await rawConnect(port, connectFrame({ version: 5, clientId: "w", flags: 0x1e, rest }), 5);
    await expectClosedBeforeConnack(client);
  });
});

Deno.test("v5 [MQTT-3.1.2-16] [MQTT-3.1.2-17] [MQTT-3.1.2-18] [MQTT-3.1.2-19] user name and password present exactly when flagged", async () => {
  await withBroker("", async ({ port }) => {
    const broken = [
      connectFrame({ version: 5, clientId: "u", flags: 0x82 }),
      connectFrame({ version: 5, clientId: "u", flags: 0x02, rest: str("user") }),
      connectFrame({ version: 5, clientId: "u", flags: 0xc2, rest: str("user") }),
      connectFrame({ version: 5, clientId: "u", flags: 0x42 }),
    ];
    for (const bytes of broken) {
      const client = await rawConnect(port, bytes, 5);
      await expectClosedBeforeConnack(client);
    }
    // MQTT 5 allows a password without a user name
    const ok = await rawConnect(
      port,
      connectFrame({ version: 5, clientId: "u", flags: 0x42, rest: str("pw") }),
      5,
    );
    assert.equal((await readConnack(ok)).reasonCode, 0);
    await ok.close();
  });
});

Deno.test("v5 [MQTT-3.1.2-22] [MQTT-3.2.2-22] keep alive 1 s without Server Keep Alive: DISCONNECT 0x8D after 1.5 s of silence", async () => {
  await withBroker("", async ({ port }) => {
    const started = Date.now();
    const { client, connack } = await connect(port, "ka", V, { keepAlive: 1 });
    assert.equal(connack.properties.serverKeepAlive, undefined);
    const packet = await client.readPacket() as DisconnectPacket;
    assert.equal(packet.type, "disconnect");
    assert.equal(packet.reasonCode, 0x8d);
    await client.expectClosed();
    const elapsed = Date.now() - started;
    assert.ok(elapsed >= 1400 && elapsed < 3000, `closed after ${elapsed} ms`);
  });
});

Deno.test("v5 [MQTT-3.1.2-24] [MQTT-3.1.2-25] a message above the client's Maximum Packet Size is not sent and counts as delivered", async () => {
  await withBroker("", async ({ port }) => {
    const { client: sub } = await connect(port, "mps", V, {
      properties: { maximumPacketSize: 64, receiveMaximum: 1 },
    });
    await subscribeOk(sub, V, [["mps", 1]]);
    const { client: pub } = await connect(port, "mps-pub", V);
    await publish(pub, V, "mps", "x".repeat(100), 1);
    await publish(pub, V, "mps", "small", 1);
    const got = await readPublish(sub);
    assert.equal(
      text(got.payload),
      "small",
      "the large one was skipped and did not use the only inflight slot",
    );
    assert.ok(got.frame === undefined || got.frame.length <= 64);
    await sub.close();
    await pub.close();
  });
});

Deno.test("v5 [MQTT-3.1.2-26] [MQTT-3.3.2-11] [MQTT-3.3.2-8] outbound Topic Aliases stay within 1..the client's Topic Alias Maximum", async () => {
  await withBroker("", async ({ port }) => {
    const { client: sub } = await connect(port, "alias", V, { properties: { topicAliasMaximum: 2 } });
    await subscribeOk(sub, V, [["al/#", 0]]);
    const { client: pub } = await connect(port, "alias-pub", V);
    const topics = ["al/a", "al/b", "al/c", "al/d"];
    for (let round = 0; round < 2; round++) {
      for (const topic of topics) await publish(pub, V, topic, topic, 0);
    }
    const known = new Map<number, string>();
    for (let i = 0; i < 8; i++) {
      const got = await readPublish(sub);
      const alias = got.properties.topicAlias;
      let topic = got.topic;
      if (alias !== undefined) {
        assert.ok(alias >= 1 && alias <= 2, `alias ${alias}`);
        if (topic === "") topic = known.get(alias)!;
        else known.set(alias, topic);
      }
      assert.equal(topic, text(got.payload));
    }
    assert.ok(known.size > 0, "aliases were used");
    await sub.close();
    await pub.close();
  });
});

Deno.test("v5 [MQTT-3.1.2-27] no Topic Alias is sent to a client that set no Topic Alias Maximum", async () => {
  await withBroker("", async ({ port }) => {
    const { client: sub } = await connect(port, "noalias", V);
    await subscribeOk(sub, V, [["na", 0]]);
    const { client: pub } = await connect(port, "noalias-pub", V);
    for (let i = 0; i < 3; i++) await publish(pub, V, "na", `${i}`, 0);
    for (let i = 0; i < 3; i++) {
      const got = await readPublish(sub);
      assert.equal(got.properties.topicAlias, undefined);
      assert.equal(got.topic, "na");
    }
    await sub.close();
    await pub.close();
  });
});

Deno.test("v5 [MQTT-3.1.2-28] [MQTT-4.12.0-6] the CONNACK has no Response Information unless asked, and no Authentication Method", async () => {
  await withBroker("", async ({ port }) => {
    for (const requestResponseInformation of [undefined, 0]) {
      const properties = requestResponseInformation === undefined ? {} : { requestResponseInformation };
      const { client, connack } = await connect(port, "ri", V, { properties });
      assert.equal(connack.properties.responseInformation, undefined);
      assert.equal(connack.properties.authenticationMethod, undefined);
      assert.equal(connack.properties.authenticationData, undefined);
      await client.close();
    }
  });
});

Deno.test("v5 [MQTT-3.1.2-29] Request Problem Information 0: no Reason String or User Property on PUBACK, PUBREC, PUBCOMP, SUBACK, UNSUBACK", async () => {
  await withBroker("", async ({ port }) => {
    const { client } = await connect(port, "rpi", V, { properties: { requestProblemInformation: 0 } });
    const acks = [];
    await client.sendPacket({
      type: "publish",
      topic: "nobody",
      payload: new Uint8Array(1),
      qos: 1,
      retain: false,
      dup: false,
      packetId: 1,
      properties: {},
    }, V);
    acks.push(await client.readPacket()); // PUBACK 0x10
    await client.sendPacket({
      type: "publish",
      topic: "nobody",
      payload: new Uint8Array(1),
      qos: 2,
      retain: false,
      dup: false,
      packetId: 2,
      properties: {},
    }, V);
    acks.push(await client.readPacket()); // PUBREC 0x10
    await client.sendPacket({ type: "pubrel", packetId: 99, reasonCode: 0, properties: {} }, V);
    acks.push(await client.readPacket()); // PUBCOMP 0x92
    await client.send(frame(0x82, [0, 3, 0, ...str("a/#/b"), 0]));
    acks.push(await client.readPacket()); // SUBACK 0x8F
    await client.send(frame(0xa2, [0, 4, 0, ...str("never")]));
    acks.push(await client.readPacket()); // UNSUBACK 0x11
    assert.deepEqual(acks.map((p) => p.type), ["puback", "pubrec", "pubcomp", "suback", "unsuback"]);
    for (const packet of acks) {
      const properties = (packet as { properties: Properties }).properties;
      assert.equal(properties.reasonString, undefined, `${packet.type} carries a Reason String`);
      assert.equal(properties.userProperties, undefined, `${packet.type} carries User Properties`);
    }
    await client.close();
  });
});

Deno.test("v5 [MQTT-3.1.3-1] [MQTT-3.1.3-3] a CONNECT with client id, will properties, will topic, will payload, user name, password is read in order", async () => {
  await withBroker("", async ({ port }) => {
    const { client: sub } = await connect(port, "order-sub", V);
    await subscribeOk(sub, V, [["w/order", 0]]);
    const willProps = [0x03, ...str("text/plain")];
    const rest = [
      willProps.length,
      ...willProps,
      ...str("w/order"),
      ...str("last"),
      ...str("user"),
      ...str("pw"),
    ];
    const client = await rawConnect(
      port,
      connectFrame({ version: 5, clientId: "order", flags: 0xc6, rest }),
      5,
    );
    assert.equal((await readConnack(client)).reasonCode, 0);
    await client.close();
    const got = await readPublish(sub);
    assert.deepEqual([got.topic, text(got.payload), got.properties.contentType], [
      "w/order",
      "last",
      "text/plain",
    ]);
    await sub.close();
  });
});

Deno.test("v5 [MQTT-3.1.3-3] a CONNECT without the client id field: closed", async () => {
  await withBroker("", async ({ port }) => {
    const client = await rawConnect(port, connectFrame({ version: 5, clientId: undefined }), 5);
    await expectClosedBeforeConnack(client);
  });
});

Deno.test("v5 [MQTT-3.1.3-2] the client id identifies the session state", async () => {
  await withBroker("", async ({ port }) => {
    const { client: a } = await connect(port, "id-a", V, { properties: session(60) });
    await disconnect(a, V);
    const { client: b, connack: cb } = await connect(port, "id-b", V, {
      cleanStart: false,
      properties: session(60),
    });
    assert.equal(cb.sessionPresent, false);
    await disconnect(b, V);
    const { client: a2, connack: ca } = await connect(port, "id-a", V, { cleanStart: false });
    assert.equal(ca.sessionPresent, true);
    await a2.close();
  });
});

Deno.test("v5 [MQTT-3.1.3-4] [MQTT-3.1.3-11] [MQTT-3.1.3-12] ill-formed UTF-8 in client id, will topic or user name: closed", async () => {
  await withBroker("", async ({ port }) => {
    const bad = [0x61, 0xc3, 0x28];
    const cases = [
      connectFrame({ version: 5, clientId: bad }),
      connectFrame({ version: 5, clientId: "w", flags: 0x06, rest: [0, ...str(bad), ...str("m")] }),
      connectFrame({ version: 5, clientId: "u", flags: 0x82, rest: str(bad) }),
      connectFrame({ version: 5, clientId: [0x61, 0x00] }),
    ];
    for (const bytes of cases) {
      const client = await rawConnect(port, bytes, 5);
      await expectClosedBeforeConnack(client);
    }
  });
});

Deno.test("v5 [MQTT-3.1.3-5] client ids of 1 to 23 characters from 0-9 a-z A-Z are accepted", async () => {
  await withBroker("mqtt.max_client_id_length = 23", async ({ port }) => {
    for (const id of ["a", "Z9", "0123456789abcdefghijklm", "nopqrstuvwxyzABCDEFGHIJ", "KLMNOPQRSTUVWXYZ"]) {
      const { client } = await connect(port, id, V);
      await client.close();
    }
  });
});

Deno.test("v5 [MQTT-3.1.3-6] [MQTT-3.1.3-7] [MQTT-3.2.2-16] a zero-length client id gets a new unique Assigned Client Identifier that names the session", async () => {
  await withBroker("", async ({ port }) => {
    const { client: a, connack: ca } = await connect(port, "", V);
    const { client: b, connack: cb } = await connect(port, "", V);
    const idA = ca.properties.assignedClientIdentifier;
    const idB = cb.properties.assignedClientIdentifier;
    assert.ok(idA && idB && idA !== idB, `${idA} / ${idB}`);
    // The CONNECT was processed as if the client had sent idA: connecting with idA takes that session over.
    const { client: c } = await connect(port, idA!, V);
    const taken = await a.readPacket() as DisconnectPacket;
    assert.equal(taken.type, "disconnect");
    assert.equal(taken.reasonCode, 0x8e);
    assert.equal(b.closedByServer, false);
    await Promise.all([b.close(), c.close()]);
  });
});

Deno.test("v5 [MQTT-3.1.3-8] a rejected client id: CONNACK 0x85, then close", async () => {
  await withBroker("mqtt.max_client_id_length = 23", async ({ port }) => {
    const { client, connack } = await tryConnect(port, connectPacket("x".repeat(24)));
    assert.equal(connack.reasonCode, 0x85);
    assert.equal(connack.sessionPresent, false);
    await client.expectClosed();
  });
});

Deno.test("v5 [MQTT-3.1.3-9] [MQTT-3.1.2-8] the will waits for the Will Delay Interval and is not sent if the client reconnects in time", async () => {
  await withBroker("", async ({ port }) => {
    const { client: sub } = await connect(port, "wdi-sub", V);
    await subscribeOk(sub, V, [["wdi/#", 0]]);
    const delayed = {
      properties: session(30),
      will: will("wdi/a", "late", 0, false, { willDelayInterval: 1 }),
    };
    const { client: a } = await connect(port, "wdi-a", V, delayed);
    const { client: b } = await connect(port, "wdi-b", V, {
      ...delayed,
      will: will("wdi/b", "never", 0, false, { willDelayInterval: 1 }),
    });
    const dropped = Date.now();
    await a.close();
    await b.close();
    await sleep(200);
    const { client: b2 } = await connect(port, "wdi-b", V, { cleanStart: false, properties: session(30) });
    const got = await readPublish(sub);
    assert.equal(got.topic, "wdi/a");
    assert.ok(Date.now() - dropped >= 900, "not before the delay");
    assert.ok(await sub.expectSilence(1200), "b reconnected within its delay: no will");
    await b2.close();
    await sub.close();
  });
});

Deno.test("v5 [MQTT-3.1.3-10] the will's User Properties are forwarded in their order", async () => {
  await withBroker("", async ({ port }) => {
    const { client: sub } = await connect(port, "wup-sub", V);
    await subscribeOk(sub, V, [["wup", 0]]);
    const userProperties: [string, string][] = [["z", "1"], ["a", "2"], ["z", "3"], ["m", "4"]];
    const { client } = await connect(port, "wup", V, {
      will: will("wup", "x", 0, false, { userProperties }),
    });
    await client.close();
    const got = await readPublish(sub);
    assert.deepEqual(got.properties.userProperties, userProperties);
    await sub.close();
  });
});

Deno.test("v5 [MQTT-3.1.4-2] [MQTT-3.2.2-7] [MQTT-4.13.2-1] a CONNECT that fails authentication: CONNACK 0x86/0x87, then close", async () => {
  const passwords = await passwordFile({ alice: "secret" });
  await withBroker(`auth.password_file = ${passwords}`, async ({ port }) => {
    const anonymous = await tryConnect(port, connectPacket("anon"));
    assert.equal(anonymous.connack.reasonCode, 0x87);
    await anonymous.client.expectClosed();
    const wrong = await tryConnect(
      port,
      connectPacket("alice", { username: "alice", password: new TextEncoder().encode("nope") }),
    );
    assert.equal(wrong.connack.reasonCode, 0x86);
    await wrong.client.expectClosed();
  });
  await Deno.remove(passwords);
});

Deno.test("v5 [MQTT-3.1.4-3] a second connection with the same client id: the first hears DISCONNECT 0x8E and is closed", async () => {
  await withBroker("", async ({ port }) => {
    const { client: first } = await connect(port, "same", V);
    const { client: second } = await connect(port, "same", V);
    const packet = await first.readPacket() as DisconnectPacket;
    assert.deepEqual([packet.type, packet.reasonCode], ["disconnect", 0x8e]);
    await first.expectClosed();
    await second.close();
  });
});

Deno.test("v5 [MQTT-3.1.4-5] [MQTT-3.2.0-1] CONNACK 0x00 is the first packet, before the messages queued for the session", async () => {
  await withBroker("", async ({ port }) => {
    const { client: first } = await connect(port, "first", V, { properties: session(60) });
    await subscribeOk(first, V, [["q", 1]]);
    await disconnect(first, V);
    const { client: pub } = await connect(port, "first-pub", V);
    await publish(pub, V, "q", "waiting", 1);
    const client = await RawClient.connect(port, 5);
    await client.sendPacket(connectPacket("first", { cleanStart: false }), V);
    const head = await client.readBytes(4);
    assert.equal(toHex(head.subarray(0, 1)), "20");
    assert.equal(toHex(head.subarray(2, 4)), "01 00", "Session Present 1, reason 0x00");
    await client.readBytes(head[1] - 2); // rest of the CONNACK
    assert.equal(text((await readPublish(client)).payload), "waiting");
    await client.close();
    await pub.close();
  });
});

Deno.test("v5 [MQTT-3.1.4-6] after a refused CONNECT nothing the client sent is processed", async () => {
  await withBroker("mqtt.max_client_id_length = 23", async ({ port }) => {
    const { client: sub } = await connect(port, "refused-sub", V);
    await subscribeOk(sub, V, [["refused", 0]]);
    const client = await RawClient.connect(port, 5);
    const connectBytes = connectFrame({ version: 5, clientId: "y".repeat(30) });
    await client.send(
      new Uint8Array([...connectBytes, ...frame(0x30, [...str("refused"), 0, 0x21]), 0xc0, 0x00]),
    );
    const connack = await readConnack(client);
    assert.equal(connack.reasonCode, 0x85);
    assert.equal((await client.expectClosed()).length, 0, "no PINGRESP after the refusing CONNACK");
    assert.ok(await sub.expectSilence(150));
    await sub.close();
  });
});

Deno.test("v5 [MQTT-3.2.0-2] [MQTT-3.1.0-2] one CONNACK per connection: a second CONNECT gets DISCONNECT 0x82", async () => {
  await withBroker("", async ({ port }) => {
    const { client } = await connect(port, "once", V);
    await client.sendPacket(connectPacket("once"), V);
    const packet = await client.readPacket();
    assert.equal(packet.type, "disconnect");
    assert.equal((packet as DisconnectPacket).reasonCode, 0x82);
    assert.equal((await client.expectClosed()).length, 0);
  });
});

Deno.test("v5 [MQTT-3.1.0-2] [MQTT-3.14.2-1] a second CONNECT with an unsupported protocol level or name: DISCONNECT 0x82 (a DISCONNECT Reason Code), then close", async () => {
  await withBroker("", async ({ port }) => {
    for (const [protocolName, level] of [["MQTT", 6], ["MQTX", 5]] as const) {
      const second = connectFrame({ version: 5, clientId: "again", protocolName });
      second[8] = level; // the protocol level byte after 00 04 and the four-letter name
      const { client } = await connect(port, "twice-bad", V);
      await client.send(second);
      const packet = await client.readPacket().catch((error) => ({ type: `undecodable: ${error.message}` }));
      assert.equal(packet.type, "disconnect", toHex(second));
      assert.equal((packet as DisconnectPacket).reasonCode, 0x82);
      await client.expectClosed();
    }
  });
});

Deno.test("v5 [MQTT-3.2.2-1] the Connect Acknowledge Flags carry only Session Present (bits 7-1 are 0)", async () => {
  await withBroker("mqtt.max_client_id_length = 23", async ({ port }) => {
    const flags: number[] = [];
    for (
      const [id, cleanStart] of [["f", true], ["f", false], ["f", false], ["z".repeat(24), true]] as const
    ) {
      const client = await RawClient.connect(port, 5);
      await client.sendPacket(connectPacket(id, { cleanStart, properties: session(60) }), V);
      const head = await client.readBytes(3);
      flags.push(head[2]);
      await client.close();
    }
    assert.deepEqual(flags, [0, 1, 1, 0]);
  });
});

Deno.test("v5 [MQTT-3.2.2-6] [MQTT-3.2.2-7] a refusing CONNACK has Session Present 0 even with a stored session, then close", async () => {
  const passwords = await passwordFile({ alice: "secret" });
  await withBroker(`auth.password_file = ${passwords}`, async ({ port }) => {
    const login = (password: string) =>
      connectPacket("sp", {
        cleanStart: false,
        username: "alice",
        password: new TextEncoder().encode(password),
        properties: session(60),
      });
    const ok = await tryConnect(port, login("secret"));
    assert.equal(ok.connack.reasonCode, 0);
    await disconnect(ok.client, V);
    const refused = await tryConnect(port, login("wrong"));
    assert.equal(refused.connack.reasonCode, 0x86);
    assert.equal(refused.connack.sessionPresent, false);
    await refused.client.expectClosed();
  });
  await Deno.remove(passwords);
});

const CONNECT_REASON_CODES = new Set([
  0x00,
  0x80,
  0x81,
  0x82,
  0x83,
  0x84,
  0x85,
  0x86,
  0x87,
  0x88,
  0x89,
  0x8a,
  0x8c,
  0x90,
  0x95,
  0x97,
  0x99,
  0x9a,
  0x9b,
  0x9c,
  0x9d,
  0x9f,
]);

Deno.test("v5 [MQTT-3.2.2-8] every CONNACK uses a Connect Reason Code", async () => {
  const passwords = await passwordFile({ alice: "secret" });
  await withBroker(`auth.password_file = ${passwords}\nmqtt.max_client_id_length = 23`, async ({ port }) => {
    const attempts = [
      connectPacket("ok", { username: "alice", password: new TextEncoder().encode("secret") }),
      connectPacket("anon"),
      connectPacket("bad", { username: "alice", password: new TextEncoder().encode("x") }),
      connectPacket("long".repeat(10), { username: "alice", password: new TextEncoder().encode("secret") }),
    ];
    const codes: number[] = [];
    for (const packet of attempts) {
      const { client, connack } = await tryConnect(port, packet);
      codes.push(connack.reasonCode);
      await client.close();
    }
    assert.ok(codes.every((code) => CONNECT_REASON_CODES.has(code)), `codes ${codes}`);
    assert.deepEqual(codes, [0x00, 0x87, 0x86, 0x85]);
  });
  await Deno.remove(passwords);
  await withBroker("mqtt.server_reference = elsewhere:1883", async ({ port }) => {
    const { client, connack } = await tryConnect(port, connectPacket("moved"));
    assert.ok(CONNECT_REASON_CODES.has(connack.reasonCode));
    await client.close();
  });
});

Deno.test("v5 [MQTT-3.2.2-9] [MQTT-3.2.2-10] a server limited to QoS 0/1 says so in CONNACK and still accepts SUBSCRIBE at QoS 0, 1 and 2", async () => {
  for (const maxQos of [0, 1]) {
    await withBroker(`mqtt.max_qos = ${maxQos}`, async ({ port }) => {
      const { client, connack } = await connect(port, "mq", V);
      assert.equal(connack.properties.maximumQoS, maxQos);
      await client.send(frame(0x82, [0, 1, 0, ...str("a"), 0, ...str("b"), 1, ...str("c"), 2]));
      const suback = await client.readPacket();
      assert.equal(suback.type, "suback");
      assert.deepEqual((suback as { reasonCodes: number[] }).reasonCodes, [0, Math.min(1, maxQos), maxQos]);
      await client.close();
    });
  }
});

Deno.test("v5 [MQTT-3.2.2-12] a Will QoS above the server's Maximum QoS is refused with CONNACK 0x9B, then close", async () => {
  await withBroker("mqtt.max_qos = 1", async ({ port }) => {
    const { client, connack } = await tryConnect(port, connectPacket("wq", { will: will("w", "x", 2) }));
    assert.equal(connack.reasonCode, 0x9b);
    await client.expectClosed();
  });
});

Deno.test("v5 [MQTT-3.2.2-13] a retained will when retain is not available is refused with CONNACK 0x9A, then close", async () => {
  await withBroker("mqtt.retain_available = false", async ({ port }) => {
    const { client, connack } = await tryConnect(
      port,
      connectPacket("wret", { will: will("w", "x", 0, true) }),
    );
    assert.equal(connack.reasonCode, 0x9a);
    await client.expectClosed();
  });
});

Deno.test("v5 [MQTT-3.2.2-19] [MQTT-3.2.2-20] a refusing CONNACK leaves out its Reason String when it would exceed the client's Maximum Packet Size", async () => {
  await withBroker("mqtt.max_client_id_length = 23", async ({ port }) => {
    const client = await RawClient.connect(port, 5);
    await client.sendPacket(connectPacket("q".repeat(30), { properties: { maximumPacketSize: 8 } }), V);
    const bytes = await client.expectClosed();
    assert.ok(bytes.length > 0, "a CONNACK was sent");
    assert.ok(
      bytes.length <= 8,
      `CONNACK of ${bytes.length} bytes exceeds the client's Maximum Packet Size 8: ${toHex(bytes)}`,
    );
  });
});

Deno.test("v5 [MQTT-4.12.0-1] [MQTT-4.12.0-5] a CONNECT with an Authentication Method the server does not support is refused (0x8C or 0x87)", async () => {
  await withBroker("", async ({ port }) => {
    const { client, connack } = await tryConnect(
      port,
      connectPacket("am", { properties: { authenticationMethod: "NO-SUCH-METHOD" } }),
    );
    if (connack.reasonCode === 0) {
      // Accepting is only allowed if the method is supported, and then the CONNACK must echo it.
      assert.equal(
        connack.properties.authenticationMethod,
        "NO-SUCH-METHOD",
        "accepted without echoing the method",
      );
    } else {
      assert.ok([0x8c, 0x87].includes(connack.reasonCode), `reason 0x${connack.reasonCode.toString(16)}`);
      await client.expectClosed();
    }
    await client.close();
  });
});
