/**
 * Conformance: PUBLISH and its acknowledgements, QoS flows, retained messages, message expiry, topic
 * aliases and flow control (MQTT 3.1.1 §3.3-3.7, §4.3-4.6; MQTT 5.0 §3.3-3.7, §4.3-4.6, §4.9).
 */
import assert from "node:assert/strict";
import type { Packet, ProtocolVersion, PublishPacket } from "../../src/codec/mod.ts";
import { hex, RawClient, toHex, withBroker } from "../helpers/broker.ts";
import {
  ack,
  connect,
  disconnect,
  expectDisconnect,
  frame,
  publish,
  publishPacket,
  readPublish,
  sleep,
  str,
  subscribeOk,
  subscription,
  tempFile,
  text,
} from "./support.ts";

const VERSIONS: ProtocolVersion[] = [4, 5];
const label = (version: ProtocolVersion) => (version === 5 ? "v5" : "v3.1.1");

/** Options for a session that outlives its connection, at either version. */
function persistentSession(version: ProtocolVersion) {
  return version === 5
    ? { cleanStart: false, properties: { sessionExpiryInterval: 60 } }
    : { cleanStart: false };
}

/** Reads the next `count` packets. */
async function drain(client: RawClient, count: number): Promise<Packet[]> {
  const packets: Packet[] = [];
  for (let i = 0; i < count; i++) packets.push(await client.readPacket());
  return packets;
}

Deno.test("[MQTT-3.3.1-1] [MQTT-4.4.0-1] [MQTT-4.3.3-6] [MQTT-4.3.2-3] [MQTT-4.3.3-3] [MQTT-4.3.3-5] on resume: unacknowledged PUBLISH re-sent with DUP 1 and original ids, PUBREL re-sent instead of a released PUBLISH, nothing re-sent otherwise", async () => {
  await withBroker("", async ({ port }) => {
    for (const version of VERSIONS) {
      const { client: sub } = await connect(port, "resume", version, persistentSession(version));
      await subscribeOk(sub, version, [["r/#", 2]]);
      const { client: pub } = await connect(port, "resume-pub", version);
      await publish(pub, version, "r/1", "q1", 1);
      await publish(pub, version, "r/2", "q2-released", 2);
      await publish(pub, version, "r/3", "q2-unacked", 2);
      const [p1, p2, p3] = await drain(sub, 3) as PublishPacket[];
      await sub.sendPacket(
        { type: "pubrec", packetId: p2.packetId!, reasonCode: 0, properties: {} },
        version,
      );
      const rel = await sub.readPacket();
      assert.deepEqual([rel.type, (rel as { packetId: number }).packetId], ["pubrel", p2.packetId]);
      assert.ok(await sub.expectSilence(300), `${label(version)}: nothing is re-sent while connected`);
      await sub.close();
      const { client: again } = await connect(port, "resume", version, persistentSession(version));
      const resent = await drain(again, 3);
      const seen = resent.map((p) =>
        p.type === "publish"
          ? `publish ${p.packetId} dup=${p.dup} ${text(p.payload)}`
          : `${p.type} ${(p as { packetId: number }).packetId}`
      ).sort();
      const expected = [
        `publish ${p1.packetId} dup=true q1`,
        `pubrel ${p2.packetId}`,
        `publish ${p3.packetId} dup=true q2-unacked`,
      ].sort();
      assert.deepEqual(seen, expected, label(version));
      assert.ok(await again.expectSilence(150), `${label(version)}: the released PUBLISH is not re-sent`);
      await again.close();
      await pub.close();
      const { client: clean } = await connect(port, "resume", version);
      await clean.close();
    }
  });
});

Deno.test("[MQTT-3.3.1-2] [MQTT-3.3.1-3] [MQTT-4.3.2-2] [MQTT-4.3.3-2] the DUP flag of a forwarded PUBLISH is the server's own: 0 on first delivery, 0 at QoS 0", async () => {
  await withBroker("", async ({ port }) => {
    for (const version of VERSIONS) {
      const { client: s0 } = await connect(port, "dup0", version);
      await subscribeOk(s0, version, [["dup", 0]]);
      const { client: s2 } = await connect(port, "dup2", version);
      await subscribeOk(s2, version, [["dup", 2]]);
      const { client: pub } = await connect(port, "dup-pub", version);
      await publish(pub, version, "dup", "a", 1, { dup: true, packetId: 3 });
      await publish(pub, version, "dup", "b", 2, { dup: true, packetId: 4 });
      for (const [client, qos] of [[s0, [0, 0]], [s2, [1, 2]]] as const) {
        for (const expectedQos of qos) {
          const got = await readPublish(client);
          assert.equal(got.dup, false);
          assert.equal(got.qos, expectedQos);
          await ack(client, version, got);
        }
      }
      await Promise.all([s0.close(), s2.close(), pub.close()]);
    }
  });
});

Deno.test("[MQTT-3.3.1-4] a PUBLISH with both QoS bits set: closed (v5: DISCONNECT 0x81)", async () => {
  await withBroker("", async ({ port }) => {
    for (const version of VERSIONS) {
      const { client } = await connect(port, "qos3", version);
      await client.send(frame(0x36, [...str("t"), 0, 1, ...(version === 5 ? [0] : []), 0x78]));
      await expectDisconnect(client, version, 0x81);
    }
  });
});

Deno.test("v3.1.1 [MQTT-3.3.1-5] [MQTT-3.3.1-6] [MQTT-3.3.1-8] a retained message is stored with its QoS and sent with RETAIN 1 to new subscriptions", async () => {
  await withBroker("", async ({ port }) => {
    const { client: pub } = await connect(port, "rp", 4);
    await publish(pub, 4, "ret/a", "kept", 1, { retain: true });
    const { client: sub } = await connect(port, "rs", 4);
    await subscribeOk(sub, 4, [["ret/+", 2]]);
    const got = await readPublish(sub);
    assert.deepEqual([got.topic, text(got.payload), got.retain, got.qos], ["ret/a", "kept", true, 1]);
    await Promise.all([pub.close(), sub.close()]);
  });
});

Deno.test("v3.1.1 [MQTT-3.3.1-7] a retained QoS 0 message replaces the one retained before", async () => {
  await withBroker("", async ({ port }) => {
    const { client: pub } = await connect(port, "rp", 4);
    await publish(pub, 4, "ret/q0", "old", 1, { retain: true });
    await publish(pub, 4, "ret/q0", "new", 0, { retain: true });
    await sleep(50);
    const { client: sub } = await connect(port, "rs", 4);
    await subscribeOk(sub, 4, [["ret/q0", 1]]);
    const got = await readPublish(sub);
    assert.deepEqual([text(got.payload), got.qos, got.retain], ["new", 0, true]);
    assert.ok(await sub.expectSilence(100));
    await Promise.all([pub.close(), sub.close()]);
  });
});

Deno.test("v3.1.1 [MQTT-3.3.1-9] forwards to an established subscription carry RETAIN 0", async () => {
  await withBroker("", async ({ port }) => {
    const { client: sub } = await connect(port, "rs", 4);
    await subscribeOk(sub, 4, [["live", 0]]);
    const { client: pub } = await connect(port, "rp", 4);
    await publish(pub, 4, "live", "r", 0, { retain: true });
    assert.equal(toHex(await sub.readBytes(9)), "30 07 00 04 6c 69 76 65 72");
    await Promise.all([pub.close(), sub.close()]);
  });
});

Deno.test("v3.1.1 [MQTT-3.3.1-10] [MQTT-3.3.1-11] a zero-byte retained PUBLISH is forwarded and removes the retained message", async () => {
  await withBroker("", async ({ port }) => {
    const { client: pub } = await connect(port, "rp", 4);
    await publish(pub, 4, "ret/z", "x", 0, { retain: true });
    const { client: sub } = await connect(port, "rs", 4);
    await subscribeOk(sub, 4, [["ret/z", 0]]);
    assert.equal(text((await readPublish(sub)).payload), "x");
    await publish(pub, 4, "ret/z", "", 0, { retain: true });
    const empty = await readPublish(sub);
    assert.equal(empty.payload.length, 0, "the empty message is forwarded");
    const { client: late } = await connect(port, "late", 4);
    await subscribeOk(late, 4, [["ret/z", 0]]);
    assert.ok(await late.expectSilence(150), "no retained message is left, and the empty one is not stored");
    await Promise.all([pub.close(), sub.close(), late.close()]);
  });
});

Deno.test("v3.1.1 [MQTT-3.3.1-12] a PUBLISH with RETAIN 0 neither stores, replaces nor removes a retained message", async () => {
  await withBroker("", async ({ port }) => {
    const { client: pub } = await connect(port, "rp", 4);
    await publish(pub, 4, "ret/k", "kept", 0, { retain: true });
    await publish(pub, 4, "ret/k", "not-retained", 0);
    await publish(pub, 4, "ret/k", "", 0);
    await publish(pub, 4, "ret/other", "not-retained", 0);
    await sleep(50);
    const { client: sub } = await connect(port, "rs", 4);
    await subscribeOk(sub, 4, [["ret/#", 0]]);
    const got = await readPublish(sub);
    assert.deepEqual([got.topic, text(got.payload)], ["ret/k", "kept"]);
    assert.ok(await sub.expectSilence(100));
    await Promise.all([pub.close(), sub.close()]);
  });
});

Deno.test("v5 [MQTT-3.3.1-5] RETAIN 1 replaces the retained message of the topic", async () => {
  await withBroker("", async ({ port }) => {
    const { client: pub } = await connect(port, "rp", 5);
    await publish(pub, 5, "ret/a", "first", 1, { retain: true });
    await publish(pub, 5, "ret/a", "second", 1, { retain: true });
    const { client: sub } = await connect(port, "rs", 5);
    await subscribeOk(sub, 5, [["ret/a", 1]]);
    const got = await readPublish(sub);
    assert.deepEqual([text(got.payload), got.retain], ["second", true]);
    assert.ok(await sub.expectSilence(100));
    await Promise.all([pub.close(), sub.close()]);
  });
});

Deno.test("v5 [MQTT-3.3.1-6] [MQTT-3.3.1-7] a zero-byte retained PUBLISH is forwarded, removes the retained message and is not stored", async () => {
  await withBroker("", async ({ port }) => {
    const { client: pub } = await connect(port, "rp", 5);
    await publish(pub, 5, "ret/z", "x", 0, { retain: true });
    const { client: sub } = await connect(port, "rs", 5);
    await subscribeOk(sub, 5, [["ret/z", 0]]);
    assert.equal(text((await readPublish(sub)).payload), "x");
    await publish(pub, 5, "ret/z", "", 0, { retain: true });
    assert.equal((await readPublish(sub)).payload.length, 0);
    const { client: late } = await connect(port, "late", 5);
    await subscribeOk(late, 5, [["ret/z", 0]]);
    assert.ok(await late.expectSilence(150));
    await Promise.all([pub.close(), sub.close(), late.close()]);
  });
});

Deno.test("v5 [MQTT-3.3.1-8] a PUBLISH with RETAIN 0 is not stored and does not remove or replace the retained message", async () => {
  await withBroker("", async ({ port }) => {
    const { client: pub } = await connect(port, "rp", 5);
    await publish(pub, 5, "ret/k", "kept", 0, { retain: true });
    await publish(pub, 5, "ret/k", "other", 0);
    await publish(pub, 5, "ret/k", "", 0);
    await sleep(50);
    const { client: sub } = await connect(port, "rs", 5);
    await subscribeOk(sub, 5, [["ret/#", 0]]);
    assert.equal(text((await readPublish(sub)).payload), "kept");
    assert.ok(await sub.expectSilence(100));
    await Promise.all([pub.close(), sub.close()]);
  });
});

Deno.test("v5 [MQTT-3.3.1-9] [MQTT-3.3.1-10] [MQTT-3.3.1-11] Retain Handling 0 always sends retained messages, 1 only for a new subscription, 2 never", async () => {
  await withBroker("", async ({ port }) => {
    const { client: pub } = await connect(port, "rp", 5);
    await publish(pub, 5, "rh", "retained", 0, { retain: true });
    const { client } = await connect(port, "rh", 5);
    for (const [handling, expected] of [[0, 1], [0, 1], [1, 0], [2, 0]] as const) {
      // "rh" exists from the first round on: handling 1 therefore sends nothing
      await subscribeOk(client, 5, [subscription("rh", 0, { retainHandling: handling })]);
      if (expected) assert.equal(text((await readPublish(client)).payload), "retained");
      else {assert.ok(
          await client.expectSilence(100),
          `retain handling ${handling} on an existing subscription`,
        );}
    }
    const { client: fresh } = await connect(port, "rh-new", 5);
    await subscribeOk(fresh, 5, [subscription("rh", 0, { retainHandling: 1 })]);
    assert.equal(
      text((await readPublish(fresh)).payload),
      "retained",
      "handling 1 on a new subscription sends",
    );
    await subscribeOk(fresh, 5, [subscription("+", 0, { retainHandling: 2 })]);
    assert.ok(await fresh.expectSilence(100), "handling 2 on a new subscription sends nothing");
    await Promise.all([pub.close(), client.close(), fresh.close()]);
  });
});

Deno.test("v5 [MQTT-3.3.1-12] [MQTT-3.3.1-13] Retain As Published 0 clears RETAIN on forwards, 1 keeps it", async () => {
  await withBroker("", async ({ port }) => {
    const { client: plain } = await connect(port, "rap0", 5);
    await subscribeOk(plain, 5, [subscription("rap", 0, { retainAsPublished: false })]);
    const { client: kept } = await connect(port, "rap1", 5);
    await subscribeOk(kept, 5, [subscription("rap", 0, { retainAsPublished: true })]);
    const { client: pub } = await connect(port, "rap-pub", 5);
    await publish(pub, 5, "rap", "r", 0, { retain: true });
    await publish(pub, 5, "rap", "n", 0);
    assert.deepEqual([(await readPublish(plain)).retain, (await readPublish(plain)).retain], [false, false]);
    assert.deepEqual([(await readPublish(kept)).retain, (await readPublish(kept)).retain], [true, false]);
    await Promise.all([plain.close(), kept.close(), pub.close()]);
  });
});

Deno.test("[MQTT-3.3.2-1] a PUBLISH too short for its Topic Name: closed (v5: DISCONNECT 0x81)", async () => {
  await withBroker("", async ({ port }) => {
    for (const version of VERSIONS) {
      const { client } = await connect(port, "short", version);
      await client.send(hex("30 03 00 05 61")); // topic length 5, one byte follows
      await expectDisconnect(client, version, 0x81);
    }
  });
});

Deno.test("[MQTT-3.3.2-2] [MQTT-4.7.1-1] [MQTT-4.7.0-1] a Topic Name with + or #: closed (v5: DISCONNECT 0x90)", async () => {
  await withBroker("", async ({ port }) => {
    for (const version of VERSIONS) {
      for (const topic of ["a/+", "#", "a/b#", "+"]) {
        const { client: sub } = await connect(port, "wild-sub", version);
        await subscribeOk(sub, version, [["#", 0]]);
        const { client } = await connect(port, "wild", version);
        await client.send(frame(0x30, [...str(topic), ...(version === 5 ? [0] : []), 0x78]));
        await expectDisconnect(client, version, 0x90);
        assert.ok(await sub.expectSilence(50), `${topic} was not routed`);
        await sub.close();
      }
    }
  });
});

Deno.test("[MQTT-3.3.2-3] the Topic Name sent to a subscriber matches its Topic Filter", async () => {
  await withBroker("", async ({ port }) => {
    for (const version of VERSIONS) {
      const { client: sub } = await connect(port, "match", version);
      await subscribeOk(sub, version, [["s/+/x", 0], ["t/#", 0]]);
      const { client: pub } = await connect(port, "match-pub", version);
      for (const topic of ["s/a/x", "s/b/y", "s/x", "t", "t/1/2", "u/t", "s/c/x/d"]) {
        await publish(pub, version, topic, topic, 0);
      }
      const got: string[] = [];
      for (let i = 0; i < 3; i++) got.push((await readPublish(sub)).topic);
      assert.deepEqual(got, ["s/a/x", "t", "t/1/2"]);
      assert.ok(await sub.expectSilence(100));
      await Promise.all([sub.close(), pub.close()]);
    }
  });
});

Deno.test("v5 [MQTT-3.3.2-4] [MQTT-3.3.2-15] [MQTT-3.3.2-16] [MQTT-3.3.2-17] [MQTT-3.3.2-18] [MQTT-3.3.2-20] Payload Format Indicator, Response Topic, Correlation Data, User Properties (in order) and Content Type are forwarded unaltered", async () => {
  await withBroker("", async ({ port }) => {
    const { client: sub } = await connect(port, "props-sub", 5);
    await subscribeOk(sub, 5, [["props", 1]]);
    const { client: pub } = await connect(port, "props-pub", 5);
    const properties = {
      payloadFormatIndicator: 1,
      responseTopic: "reply/here",
      correlationData: new Uint8Array([0, 1, 2, 255]),
      userProperties: [["b", "1"], ["a", "2"], ["b", "3"], ["é", "ü"]] as [string, string][],
      contentType: "application/json; charset=utf-8",
    };
    await publish(pub, 5, "props", "{}", 1, { properties });
    const got = await readPublish(sub);
    assert.equal(got.properties.payloadFormatIndicator, 1);
    assert.equal(got.properties.responseTopic, "reply/here");
    assert.deepEqual([...got.properties.correlationData!], [0, 1, 2, 255]);
    assert.deepEqual(got.properties.userProperties, properties.userProperties);
    assert.equal(got.properties.contentType, properties.contentType);
    await Promise.all([sub.close(), pub.close()]);
  });
});

Deno.test("v5 [MQTT-3.3.2-5] [MQTT-3.3.2-6] an expired message is not delivered; a waiting one carries the interval left", async () => {
  await withBroker("", async ({ port }) => {
    const { client: sub } = await connect(port, "exp", 5, { properties: { sessionExpiryInterval: 60 } });
    await subscribeOk(sub, 5, [["exp", 1]]);
    await disconnect(sub, 5);
    const { client: pub } = await connect(port, "exp-pub", 5);
    await publish(pub, 5, "exp", "short", 1, { properties: { messageExpiryInterval: 1 } });
    await publish(pub, 5, "exp", "long", 1, { properties: { messageExpiryInterval: 30 } });
    await sleep(2100);
    const { client: again } = await connect(port, "exp", 5, { cleanStart: false });
    const got = await readPublish(again);
    assert.equal(text(got.payload), "long");
    const left = got.properties.messageExpiryInterval!;
    assert.ok(left >= 26 && left <= 29, `interval left ${left}`);
    assert.ok(await again.expectSilence(100));
    await Promise.all([again.close(), pub.close()]);
  });
});

Deno.test("v5 [MQTT-3.3.2-7] the server does not carry Topic Alias mappings from one connection to the next", async () => {
  await withBroker("", async ({ port }) => {
    const { client } = await connect(port, "alias-carry", 5, { properties: { sessionExpiryInterval: 60 } });
    await publish(client, 5, "al/t", "set", 0, { properties: { topicAlias: 1 } });
    await publish(client, 5, "", "use", 0, { properties: { topicAlias: 1 } });
    await client.sendPacket({ type: "pingreq" }, 5);
    assert.equal((await client.readPacket()).type, "pingresp", "alias 1 works on its connection");
    await disconnect(client, 5);
    const { client: again } = await connect(port, "alias-carry", 5, { cleanStart: false });
    await publish(again, 5, "", "stale", 0, { properties: { topicAlias: 1 } });
    await expectDisconnect(again, 5, 0x82);
  });
});

Deno.test("v5 [MQTT-3.3.2-8] a Topic Alias of 0 from the client: DISCONNECT 0x94", async () => {
  await withBroker("", async ({ port }) => {
    const { client } = await connect(port, "alias0", 5);
    await client.send(frame(0x30, [...str("t"), 3, 0x23, 0, 0, 0x78]));
    await expectDisconnect(client, 5, 0x94);
  });
});

Deno.test("v5 [MQTT-3.3.2-12] every Topic Alias from 1 to the Topic Alias Maximum in CONNACK is accepted", async () => {
  await withBroker("mqtt.max_topic_alias = 3", async ({ port }) => {
    const { client: sub } = await connect(port, "alias-sub", 5);
    await subscribeOk(sub, 5, [["ta/#", 0]]);
    const { client, connack } = await connect(port, "alias-max", 5);
    assert.equal(connack.properties.topicAliasMaximum, 3);
    for (const alias of [1, 2, 3]) {
      await publish(client, 5, `ta/${alias}`, "set", 0, { properties: { topicAlias: alias } });
    }
    for (const alias of [3, 2, 1]) {
      await publish(client, 5, "", `via ${alias}`, 0, { properties: { topicAlias: alias } });
    }
    const topics: string[] = [];
    for (let i = 0; i < 6; i++) topics.push((await readPublish(sub)).topic);
    assert.deepEqual(topics, ["ta/1", "ta/2", "ta/3", "ta/3", "ta/2", "ta/1"]);
    await publish(client, 5, "ta/4", "too far", 0, { properties: { topicAlias: 4 } });
    await expectDisconnect(client, 5, 0x94);
    await sub.close();
  });
});

Deno.test("v5 [MQTT-3.3.2-13] [MQTT-3.3.2-19] ill-formed UTF-8 in Response Topic or Content Type: DISCONNECT 0x81", async () => {
  await withBroker("", async ({ port }) => {
    for (const id of [0x08, 0x03]) {
      const { client } = await connect(port, "bad-prop", 5);
      const property = [id, ...str([0x61, 0xc3, 0x28])];
      await client.send(frame(0x30, [...str("t"), property.length, ...property, 0x78]));
      await expectDisconnect(client, 5, 0x81);
    }
  });
});

Deno.test("v5 [MQTT-3.3.2-14] a Response Topic with wildcards is never forwarded to subscribers", async () => {
  await withBroker("", async ({ port }) => {
    const { client: sub } = await connect(port, "rt-sub", 5);
    await subscribeOk(sub, 5, [["rt", 0]]);
    const { client: pub } = await connect(port, "rt-pub", 5);
    await pub.sendPacket(publishPacket("rt", "x", 0, { properties: { responseTopic: "reply/+/#" } }), 5);
    const forwarded = (await sub.expectSilence(300))
      ? undefined
      : (await readPublish(sub)).properties.responseTopic;
    assert.equal(forwarded, undefined, `forwarded with Response Topic ${forwarded}`);
    // the same for a will: refused at CONNECT, or never published with that Response Topic
    const willer = await RawClient.connect(port, 5);
    await willer.sendPacket({
      type: "connect",
      protocolName: "MQTT",
      protocolVersion: 5,
      cleanStart: true,
      keepAlive: 60,
      clientId: "rt-will",
      will: {
        topic: "rt",
        payload: new Uint8Array([1]),
        qos: 0,
        retain: false,
        properties: { responseTopic: "reply/#" },
      },
      properties: {},
    }, 5);
    const connack = await willer.readPacket();
    assert.equal(connack.type, "connack");
    await willer.close();
    const willForwarded = (await sub.expectSilence(300))
      ? undefined
      : (await readPublish(sub)).properties.responseTopic;
    assert.equal(willForwarded, undefined, `will forwarded with Response Topic ${willForwarded}`);
    await Promise.all([sub.close(), pub.close()]);
  });
});

Deno.test("[MQTT-3.3.4-1] [MQTT-4.3.2-4] [MQTT-4.3.3-8] a PUBLISH is answered by its QoS: nothing, PUBACK, PUBREC", async () => {
  await withBroker("", async ({ port }) => {
    for (const version of VERSIONS) {
      const { client: sub } = await connect(port, "ans-sub", version);
      await subscribeOk(sub, version, [["ans", 2]]);
      const { client } = await connect(port, "ans", version);
      const props = version === 5 ? [0] : [];
      await client.send(frame(0x30, [...str("ans"), ...props, 0x30]));
      assert.ok(await client.expectSilence(100), "QoS 0: no answer");
      await client.send(frame(0x32, [...str("ans"), 0, 1, ...props, 0x31]));
      assert.equal(toHex(await client.readBytes(4)), "40 02 00 01");
      await client.send(frame(0x34, [...str("ans"), 0, 2, ...props, 0x32]));
      assert.equal(toHex(await client.readBytes(4)), "50 02 00 02");
      await Promise.all([sub.close(), client.close()]);
    }
  });
});

Deno.test("[MQTT-3.3.5-1] [MQTT-3.3.4-2] overlapping subscriptions: one delivery at the highest granted QoS", async () => {
  await withBroker("", async ({ port }) => {
    for (const version of VERSIONS) {
      const { client: sub } = await connect(port, "ov", version);
      await subscribeOk(sub, version, [["ov/#", 0], ["ov/+", 2], ["ov/x", 1]]);
      const { client: pub } = await connect(port, "ov-pub", version);
      await publish(pub, version, "ov/x", "m", 2);
      const got = await readPublish(sub);
      assert.equal(got.qos, 2);
      await ack(sub, version, got);
      assert.ok(await sub.expectSilence(150), "a single copy");
      await Promise.all([sub.close(), pub.close()]);
    }
  });
});

Deno.test("v5 [MQTT-3.3.4-3] [MQTT-3.3.4-4] the single copy for overlapping subscriptions carries every matching Subscription Identifier", async () => {
  await withBroker("", async ({ port }) => {
    const { client: sub } = await connect(port, "sid", 5);
    await subscribeOk(sub, 5, [["sid/#", 0]], { subscriptionIdentifiers: [7] }, 1);
    await subscribeOk(sub, 5, [["sid/+", 0]], { subscriptionIdentifiers: [300] }, 2);
    await subscribeOk(sub, 5, [["+/x", 0]], {}, 3);
    const { client: pub } = await connect(port, "sid-pub", 5);
    await publish(pub, 5, "sid/x", "m", 0);
    const got = await readPublish(sub);
    assert.deepEqual([...got.properties.subscriptionIdentifiers!].sort((a, b) => a - b), [7, 300]);
    assert.ok(await sub.expectSilence(100));
    await Promise.all([sub.close(), pub.close()]);
  });
});

Deno.test("v3.1.1 [MQTT-3.3.5-2] a PUBLISH the ACL refuses is acknowledged normally and not delivered", async () => {
  const acl = await tempFile("deny publish secret/#\n");
  await withBroker(`auth.acl_file = ${acl}`, async ({ port }) => {
    const { client: sub } = await connect(port, "acl-sub", 4);
    await subscribeOk(sub, 4, [["#", 2]]);
    const { client } = await connect(port, "acl", 4);
    await client.send(frame(0x32, [...str("secret/a"), 0, 5, 0x78]));
    const answer = await client.readBytes(4).then(toHex, () => "closed");
    assert.ok(answer === "40 02 00 05" || answer === "closed", answer);
    assert.ok(await sub.expectSilence(150), "not delivered");
    await Promise.all([sub.close(), client.close()]);
  });
  await Deno.remove(acl);
});

Deno.test("v5 [MQTT-3.3.4-9] [MQTT-3.3.4-10] [MQTT-4.9.0-1] [MQTT-4.9.0-2] [MQTT-4.9.0-3] at most Receive Maximum unacknowledged QoS 1/2 PUBLISH; other packets keep flowing", async () => {
  await withBroker("", async ({ port }) => {
    const { client: sub } = await connect(port, "rm", 5, { properties: { receiveMaximum: 2 } });
    await subscribeOk(sub, 5, [["rm", 2]]);
    const { client: pub } = await connect(port, "rm-pub", 5);
    for (let i = 0; i < 5; i++) await publish(pub, 5, "rm", `m${i}`, i % 2 === 0 ? 1 : 2);
    const first = [await readPublish(sub), await readPublish(sub)];
    assert.deepEqual(first.map((p) => text(p.payload)), ["m0", "m1"]);
    assert.ok(await sub.expectSilence(200), "quota 0: no third QoS > 0 PUBLISH");
    await sub.sendPacket({ type: "pingreq" }, 5);
    assert.equal((await sub.readPacket()).type, "pingresp");
    await sub.send(frame(0x82, [0, 9, 0, ...str("other"), 0]));
    assert.equal((await sub.readPacket()).type, "suback");
    await publish(pub, 5, "other", "q0", 0);
    assert.equal(text((await readPublish(sub)).payload), "q0", "QoS 0 is not held back by the quota");
    await ack(sub, 5, first[0]);
    assert.equal(text((await readPublish(sub)).payload), "m2", "an ack frees one slot");
    assert.ok(await sub.expectSilence(150));
    await Promise.all([sub.close(), pub.close()]);
  });
});

Deno.test("[MQTT-4.6.0-5] [MQTT-4.6.0-6] [MQTT-4.2.0-1] [MQTT-7.1.1-1] messages from one client to one topic reach each subscriber in order over TCP", async () => {
  await withBroker("", async ({ port }) => {
    for (const version of VERSIONS) {
      for (const qos of [0, 1, 2] as const) {
        const { client: sub } = await connect(port, "order", version);
        await subscribeOk(sub, version, [["ord", qos]]);
        const { client: pub } = await connect(port, "order-pub", version);
        const count = 200;
        const sending = (async () => {
          for (let i = 0; i < count; i++) await publish(pub, version, "ord", `${i}`, qos);
        })();
        for (let i = 0; i < count; i++) {
          const got = await readPublish(sub);
          assert.equal(text(got.payload), `${i}`, `${label(version)} QoS ${qos}`);
          await ack(sub, version, got);
        }
        await sending;
        await Promise.all([sub.close(), pub.close()]);
      }
    }
  });
});

Deno.test("[MQTT-4.3.2-5] after its PUBACK, a PUBLISH reusing the packet id (even with DUP) is a new message", async () => {
  await withBroker("", async ({ port }) => {
    for (const version of VERSIONS) {
      const { client: sub } = await connect(port, "new1-sub", version);
      await subscribeOk(sub, version, [["n1", 0]]);
      const { client: pub } = await connect(port, "new1", version);
      await publish(pub, version, "n1", "a", 1, { packetId: 9 });
      await publish(pub, version, "n1", "b", 1, { packetId: 9, dup: true });
      assert.deepEqual([text((await readPublish(sub)).payload), text((await readPublish(sub)).payload)], [
        "a",
        "b",
      ]);
      await Promise.all([sub.close(), pub.close()]);
    }
  });
});

Deno.test("[MQTT-4.3.3-2] [MQTT-4.3.3-8] [MQTT-4.3.3-10] [MQTT-4.3.3-11] [MQTT-4.3.3-12] QoS 2 receiver: PUBREC, a resent PUBLISH is acknowledged but not delivered twice, PUBCOMP echoes PUBREL's id, then the id is new", async () => {
  await withBroker("", async ({ port }) => {
    for (const version of VERSIONS) {
      const { client: sub } = await connect(port, "q2-sub", version);
      await subscribeOk(sub, version, [["q2", 0]]);
      const { client } = await connect(port, "q2", version);
      const props = version === 5 ? [0] : [];
      await client.send(frame(0x34, [...str("q2"), 0x01, 0x02, ...props, 0x61]));
      assert.equal(toHex(await client.readBytes(4)), "50 02 01 02");
      await client.send(frame(0x3c, [...str("q2"), 0x01, 0x02, ...props, 0x61])); // DUP resend before PUBREL
      assert.equal(toHex(await client.readBytes(4)), "50 02 01 02");
      await client.send(hex("62 02 01 02"));
      assert.equal(toHex(await client.readBytes(4)), "70 02 01 02");
      await client.send(frame(0x34, [...str("q2"), 0x01, 0x02, ...props, 0x62])); // same id after PUBCOMP
      assert.equal(toHex(await client.readBytes(4)), "50 02 01 02");
      await client.send(hex("62 02 01 02"));
      assert.equal(toHex(await client.readBytes(4)), "70 02 01 02");
      const payloads = [text((await readPublish(sub)).payload), text((await readPublish(sub)).payload)];
      assert.deepEqual(payloads, ["a", "b"]);
      assert.ok(await sub.expectSilence(100), "the resent PUBLISH was not delivered again");
      await Promise.all([sub.close(), client.close()]);
    }
  });
});

Deno.test("v5 [MQTT-4.3.3-13] the QoS 2 acknowledgement continues after the message expired", async () => {
  await withBroker("", async ({ port }) => {
    const { client } = await connect(port, "q2-exp", 5);
    await publish(client, 5, "nobody", "x", 0);
    await client.sendPacket(
      publishPacket("q2exp", "x", 2, { packetId: 4, properties: { messageExpiryInterval: 1 } }),
      5,
    );
    const rec = await client.readPacket();
    assert.equal(rec.type, "pubrec");
    await sleep(1300);
    await client.sendPacket({ type: "pubrel", packetId: 4, reasonCode: 0, properties: {} }, 5);
    const comp = await client.readPacket();
    assert.deepEqual([comp.type, (comp as { reasonCode: number }).reasonCode], ["pubcomp", 0]);
    await client.close();
  });
});

Deno.test("v5 [MQTT-4.3.3-7] a QoS 2 PUBLISH already sent is not expired: it is re-sent on resume after its interval passed", async () => {
  await withBroker("", async ({ port }) => {
    const { client: sub } = await connect(port, "q2-noexp", 5, { properties: { sessionExpiryInterval: 60 } });
    await subscribeOk(sub, 5, [["noexp", 2]]);
    const { client: pub } = await connect(port, "q2-noexp-pub", 5);
    await publish(pub, 5, "noexp", "keep", 2, { properties: { messageExpiryInterval: 1 } });
    const first = await readPublish(sub);
    await sub.close();
    await sleep(1300);
    const { client: again } = await connect(port, "q2-noexp", 5, { cleanStart: false });
    const resent = await readPublish(again);
    assert.deepEqual([resent.packetId, resent.dup, text(resent.payload)], [first.packetId, true, "keep"]);
    await Promise.all([again.close(), pub.close()]);
  });
});

Deno.test("v5 [MQTT-4.3.3-9] after a PUBREC with a reason of 0x80 or more, the same packet id starts a new message", async () => {
  const acl = await tempFile("deny publish secret/#\n");
  await withBroker(`auth.acl_file = ${acl}`, async ({ port }) => {
    const { client: sub } = await connect(port, "rec80-sub", 5);
    await subscribeOk(sub, 5, [["open/#", 0]]);
    const { client } = await connect(port, "rec80", 5);
    await client.sendPacket(publishPacket("secret/x", "no", 2, { packetId: 7 }), 5);
    const refused = await client.readPacket();
    assert.deepEqual([refused.type, (refused as { reasonCode: number }).reasonCode], ["pubrec", 0x87]);
    await client.sendPacket(publishPacket("open/x", "yes", 2, { packetId: 7 }), 5);
    const accepted = await client.readPacket();
    assert.deepEqual([accepted.type, (accepted as { reasonCode: number }).reasonCode], ["pubrec", 0]);
    assert.equal(text((await readPublish(sub)).payload), "yes");
    await Promise.all([sub.close(), client.close()]);
  });
  await Deno.remove(acl);
});

Deno.test("v5 [MQTT-4.4.0-2] a PUBACK or PUBREC with a reason of 0x80 or more acknowledges: the message is not re-sent", async () => {
  await withBroker("", async ({ port }) => {
    const { client: sub } = await connect(port, "nack", 5, {
      properties: { sessionExpiryInterval: 60, receiveMaximum: 2 },
    });
    await subscribeOk(sub, 5, [["nack", 2]]);
    const { client: pub } = await connect(port, "nack-pub", 5);
    await publish(pub, 5, "nack", "one", 1);
    await publish(pub, 5, "nack", "two", 2);
    const m1 = await readPublish(sub);
    const m2 = await readPublish(sub);
    await sub.sendPacket({ type: "puback", packetId: m1.packetId!, reasonCode: 0x80, properties: {} }, 5);
    await sub.sendPacket({ type: "pubrec", packetId: m2.packetId!, reasonCode: 0x80, properties: {} }, 5);
    await publish(pub, 5, "nack", "three", 1);
    assert.equal(text((await readPublish(sub)).payload), "three", "the refused ones freed their slots");
    await sub.close();
    const { client: again } = await connect(port, "nack", 5, { cleanStart: false });
    const resent = await readPublish(again);
    assert.equal(text(resent.payload), "three", "only the unacknowledged one is re-sent");
    assert.ok(await again.expectSilence(150));
    await Promise.all([again.close(), pub.close()]);
  });
});

const PUBACK_CODES = [0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99];
const PUBREL_CODES = [0x00, 0x92];

Deno.test("v5 [MQTT-3.4.2-1] [MQTT-3.5.2-1] [MQTT-3.6.2-1] [MQTT-3.7.2-1] the server's PUBACK, PUBREC, PUBREL and PUBCOMP use their own Reason Codes", async () => {
  const acl = await tempFile("deny publish secret/#\n");
  await withBroker(`auth.acl_file = ${acl}`, async ({ port }) => {
    const { client: sub } = await connect(port, "codes-sub", 5);
    await subscribeOk(sub, 5, [["some/#", 2]]);
    const { client } = await connect(port, "codes", 5);
    const answers: Array<[string, number]> = [];
    let id = 1;
    for (const topic of ["some/x", "none/x", "secret/x"]) {
      for (const qos of [1, 2] as const) {
        await client.sendPacket(publishPacket(topic, "x", qos, { packetId: id++ }), 5);
        const packet = await client.readPacket() as { type: string; reasonCode: number };
        answers.push([packet.type, packet.reasonCode]);
      }
    }
    await client.sendPacket({ type: "pubrel", packetId: 999, reasonCode: 0, properties: {} }, 5);
    const comp = await client.readPacket() as { type: string; reasonCode: number };
    answers.push([comp.type, comp.reasonCode]);
    // the server's PUBREL: for an unknown PUBREC (0x92) and for a known one (0x00)
    const delivered = [await readPublish(sub), await readPublish(sub)];
    await sub.sendPacket({ type: "pubrec", packetId: 777, reasonCode: 0, properties: {} }, 5);
    const rel = await sub.readPacket() as { type: string; reasonCode: number };
    answers.push([rel.type, rel.reasonCode]);
    const q2 = delivered.find((p) => p.qos === 2)!;
    await sub.sendPacket({ type: "pubrec", packetId: q2.packetId!, reasonCode: 0, properties: {} }, 5);
    const known = await sub.readPacket() as { type: string; reasonCode: number };
    answers.push([known.type, known.reasonCode]);
    for (const [type, code] of answers) {
      const valid = type === "pubrel" || type === "pubcomp" ? PUBREL_CODES : PUBACK_CODES;
      assert.ok(valid.includes(code), `${type} 0x${code.toString(16)}`);
    }
    assert.deepEqual(answers.map(([type, code]) => `${type} ${code}`), [
      "puback 0",
      "pubrec 0",
      "puback 16",
      "pubrec 16",
      "puback 135",
      "pubrec 135",
      "pubcomp 146",
      "pubrel 146",
      "pubrel 0",
    ]);
    await Promise.all([sub.close(), client.close()]);
  });
  await Deno.remove(acl);
});

Deno.test("v5 [MQTT-3.4.2-2] [MQTT-3.4.2-3] [MQTT-3.5.2-2] [MQTT-3.5.2-3] [MQTT-3.6.2-2] [MQTT-3.6.2-3] [MQTT-3.7.2-2] [MQTT-3.7.2-3] acks never exceed the client's Maximum Packet Size", async () => {
  const acl = await tempFile("deny publish secret/#\n");
  await withBroker(`auth.acl_file = ${acl}`, async ({ port }) => {
    const { client } = await connect(port, "small-acks", 5, { properties: { maximumPacketSize: 5 } });
    const sizes: number[] = [];
    const frames = [
      frame(0x32, [...str("secret/a"), 0, 1, 0, 0x78]),
      frame(0x34, [...str("secret/a"), 0, 2, 0, 0x78]),
      frame(0x32, [...str("nobody"), 0, 3, 0, 0x78]),
      hex("62 02 03 09"),
      hex("50 02 03 09"),
    ];
    for (const bytes of frames) {
      await client.send(bytes);
      const head = await client.readBytes(2);
      await client.readBytes(head[1]);
      sizes.push(2 + head[1]);
    }
    assert.ok(sizes.every((size) => size <= 5), `ack sizes ${sizes}`);
    await client.close();
  });
  await Deno.remove(acl);
});

Deno.test("[MQTT-3.6.1-1] a PUBREL with fixed-header flags other than 0010: closed (v5: DISCONNECT 0x81)", async () => {
  await withBroker("", async ({ port }) => {
    for (const version of VERSIONS) {
      for (const first of [0x60, 0x63, 0x6a]) {
        const { client } = await connect(port, "pubrel-flags", version);
        await client.send(new Uint8Array([first, 2, 0, 1]));
        await expectDisconnect(client, version, 0x81);
      }
    }
  });
});
