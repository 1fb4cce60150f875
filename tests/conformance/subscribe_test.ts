/**
 * Conformance: SUBSCRIBE / SUBACK / UNSUBSCRIBE / UNSUBACK, topic names and filters, shared
 * subscriptions (MQTT 3.1.1 §3.8-3.11, §4.7; MQTT 5.0 §3.8-3.11, §4.7, §4.8).
 */
import assert from "node:assert/strict";
import type { ProtocolVersion, SubackPacket, UnsubackPacket } from "../../src/codec/mod.ts";
import { hex, toHex, withBroker } from "../helpers/broker.ts";
import {
  ack,
  connect,
  expectDisconnect,
  frame,
  publish,
  readPublish,
  sleep,
  str,
  subscribeOk,
  subscription,
  text,
} from "./support.ts";

const VERSIONS: ProtocolVersion[] = [4, 5];
const label = (version: ProtocolVersion) => (version === 5 ? "v5" : "v3.1.1");
const props = (version: ProtocolVersion) => (version === 5 ? [0] : []);

function subscribeFrame(
  version: ProtocolVersion,
  packetId: number,
  entries: Array<[string | number[], number]>,
): Uint8Array {
  const body = [packetId >> 8, packetId & 0xff, ...props(version)];
  for (const [filter, options] of entries) body.push(...str(filter), options);
  return frame(0x82, body);
}

function unsubscribeFrame(
  version: ProtocolVersion,
  packetId: number,
  filters: Array<string | number[]>,
): Uint8Array {
  const body = [packetId >> 8, packetId & 0xff, ...props(version)];
  for (const filter of filters) body.push(...str(filter));
  return frame(0xa2, body);
}

/** Sends a SUBSCRIBE frame and returns the SUBACK's codes. */
async function subackCodes(
  client: Awaited<ReturnType<typeof connect>>["client"],
  bytes: Uint8Array,
): Promise<number[]> {
  await client.send(bytes);
  const packet = await client.readPacket();
  assert.equal(packet.type, "suback");
  return (packet as SubackPacket).reasonCodes;
}

Deno.test("[MQTT-3.6.1-1] [MQTT-3.8.1-1] [MQTT-3.10.1-1] [MQTT-3.14.1-1] PUBREL, SUBSCRIBE, UNSUBSCRIBE, DISCONNECT with wrong fixed-header flags: closed (v5: DISCONNECT 0x81)", async () => {
  await withBroker("", async ({ port }) => {
    for (const version of VERSIONS) {
      const frames = [
        hex("60 02 00 01"),
        subscribeFrame(version, 1, [["a", 0]]).map((b, i) => (i === 0 ? 0x80 : b)),
        subscribeFrame(version, 1, [["a", 0]]).map((b, i) => (i === 0 ? 0x8a : b)),
        unsubscribeFrame(version, 1, ["a"]).map((b, i) => (i === 0 ? 0xa0 : b)),
        hex("e1 00"),
        hex("e8 00"),
      ];
      for (const bytes of frames) {
        const { client } = await connect(port, "flags", version);
        await client.send(bytes);
        await expectDisconnect(client, version, 0x81).catch((error) => {
          throw new Error(`${label(version)} ${toHex(bytes)}: ${error.message}`);
        });
      }
    }
  });
});

Deno.test("[MQTT-3.8.3-1] [MQTT-3.10.3-1] ill-formed UTF-8 in a SUBSCRIBE or UNSUBSCRIBE topic filter: closed (v5: DISCONNECT 0x81)", async () => {
  await withBroker("", async ({ port }) => {
    for (const version of VERSIONS) {
      for (
        const bytes of [
          subscribeFrame(version, 1, [[[0x61, 0xc3, 0x28], 0]]),
          unsubscribeFrame(version, 1, [[0xed, 0xa0, 0x80]]),
        ]
      ) {
        const { client } = await connect(port, "utf8", version);
        await client.send(bytes);
        await expectDisconnect(client, version, 0x81);
      }
    }
  });
});

Deno.test("v3.1.1 [MQTT-3.8.3-2] a server without wildcard support refuses wildcard filters with 0x80", async () => {
  await withBroker("mqtt.wildcard_subscription_available = false", async ({ port }) => {
    const { client } = await connect(port, "nowild", 4);
    assert.deepEqual(await subackCodes(client, subscribeFrame(4, 1, [["a/+", 1], ["a/b", 1], ["#", 0]])), [
      0x80,
      1,
      0x80,
    ]);
    await client.close();
  });
});

Deno.test("v3.1.1 [MQTT-3.8.3-3] a SUBSCRIBE without any topic filter closes the connection", async () => {
  await withBroker("", async ({ port }) => {
    const { client } = await connect(port, "empty", 4);
    await client.send(hex("82 02 00 01"));
    await expectDisconnect(client, 4, 0);
  });
});

Deno.test("v5 [MQTT-3.8.3-2] a SUBSCRIBE without any topic filter: DISCONNECT 0x82", async () => {
  await withBroker("", async ({ port }) => {
    const { client } = await connect(port, "empty", 5);
    await client.send(hex("82 03 00 01 00"));
    await expectDisconnect(client, 5, 0x82);
  });
});

Deno.test("v3.1.1 [MQTT-3.8.3-4] reserved bits or QoS 3 in a requested QoS byte close the connection", async () => {
  await withBroker("", async ({ port }) => {
    for (const options of [0x03, 0x04, 0x80, 0x41]) {
      const { client } = await connect(port, "rsv", 4);
      await client.send(subscribeFrame(4, 1, [["a", options]]));
      await expectDisconnect(client, 4, 0);
    }
  });
});

Deno.test("v5 [MQTT-3.8.3-5] reserved bits in the Subscription Options: DISCONNECT 0x81", async () => {
  await withBroker("", async ({ port }) => {
    for (const options of [0x40, 0x80, 0xc1]) {
      const { client } = await connect(port, "rsv", 5);
      await client.send(subscribeFrame(5, 1, [["a", options]]));
      await expectDisconnect(client, 5, 0x81);
    }
  });
});

Deno.test("v5 [MQTT-3.8.3-3] No Local: messages are not forwarded to the client that published them", async () => {
  await withBroker("", async ({ port }) => {
    const { client: self } = await connect(port, "nl", 5);
    await subscribeOk(self, 5, [subscription("nl", 0, { noLocal: true })]);
    const { client: other } = await connect(port, "nl-other", 5);
    await subscribeOk(other, 5, [subscription("nl", 0, { noLocal: true })]);
    await publish(self, 5, "nl", "mine", 0);
    assert.equal(text((await readPublish(other)).payload), "mine");
    assert.ok(await self.expectSilence(150));
    await Promise.all([self.close(), other.close()]);
  });
});

Deno.test("v5 [MQTT-3.8.3-4] No Local on a shared subscription: DISCONNECT 0x82", async () => {
  await withBroker("", async ({ port }) => {
    const { client } = await connect(port, "nl-share", 5);
    await client.send(subscribeFrame(5, 1, [["$share/g/t", 0x04]]));
    await expectDisconnect(client, 5, 0x82);
  });
});

Deno.test("[MQTT-3.8.4-1] [MQTT-3.8.4-2] every SUBSCRIBE is answered by a SUBACK with its packet id, in order", async () => {
  await withBroker("", async ({ port }) => {
    for (const version of VERSIONS) {
      const { client } = await connect(port, "suback", version);
      const ids = [1, 0x7fff, 65535, 2];
      await client.send(
        new Uint8Array(ids.flatMap((id) => [...subscribeFrame(version, id, [[`f/${id}`, 1]])])),
      );
      for (const id of ids) {
        const packet = await client.readPacket() as SubackPacket;
        assert.deepEqual([packet.type, packet.packetId, packet.reasonCodes], ["suback", id, [1]]);
      }
      await client.close();
    }
  });
});

Deno.test("[MQTT-3.8.4-3] v5 [MQTT-3.8.4-4] a SUBSCRIBE to an existing filter replaces it, re-sends retained messages, loses no message", async () => {
  await withBroker("", async ({ port }) => {
    for (const version of VERSIONS) {
      const { client: pub } = await connect(port, "re-pub", version);
      await publish(pub, version, "re", "retained", 0, { retain: true });
      const { client } = await connect(port, "re", version);
      await subscribeOk(client, version, [["re", 0]]);
      assert.equal(text((await readPublish(client)).payload), "retained");
      await subscribeOk(client, version, [["re", 1]]);
      const again = await readPublish(client);
      assert.deepEqual([text(again.payload), again.retain], ["retained", true], "retained message re-sent");
      await publish(pub, version, "re", "live", 1);
      const live = await readPublish(client);
      assert.deepEqual([text(live.payload), live.qos], ["live", 1], "one subscription, with the new QoS");
      await ack(client, version, live);
      assert.ok(await client.expectSilence(100));
      await publish(pub, version, "re", "", 0, { retain: true });
      await Promise.all([client.close(), pub.close()]);
    }
  });
});

Deno.test("v3.1.1 [MQTT-3.8.4-4] [MQTT-3.8.4-5] [MQTT-3.9.3-1] [MQTT-3.9.3-2] one SUBSCRIBE with several filters: one SUBACK, one return code (0x00-0x02 or 0x80) per filter, in order", async () => {
  await withBroker("mqtt.max_qos = 1", async ({ port }) => {
    const { client } = await connect(port, "multi", 4);
    const codes = await subackCodes(
      client,
      subscribeFrame(4, 1, [["m/a", 2], ["m/#/x", 0], ["m/b", 0], ["m/c", 1]]),
    );
    assert.deepEqual(codes, [1, 0x80, 0, 1]);
    const { client: pub } = await connect(port, "multi-pub", 4);
    for (const topic of ["m/a", "m/b", "m/c"]) await publish(pub, 4, topic, topic, 1);
    const got = [];
    for (let i = 0; i < 3; i++) {
      const packet = await readPublish(client);
      got.push(`${packet.topic}@${packet.qos}`);
      await ack(client, 4, packet);
    }
    assert.deepEqual(got, ["m/a@1", "m/b@0", "m/c@1"]);
    await Promise.all([client.close(), pub.close()]);
  });
});

Deno.test("v5 [MQTT-3.8.4-5] [MQTT-3.8.4-6] [MQTT-3.8.4-7] [MQTT-3.9.3-1] [MQTT-3.9.3-2] one SUBSCRIBE with several filters: one SUBACK, one Subscribe Reason Code per filter, in order", async () => {
  await withBroker("mqtt.max_qos = 1", async ({ port }) => {
    const { client } = await connect(port, "multi", 5);
    const codes = await subackCodes(
      client,
      subscribeFrame(5, 1, [["m/a", 2], ["m/#/x", 0], ["m/b", 0], ["m/c", 1], ["", 0]]),
    );
    assert.deepEqual(codes, [1, 0x8f, 0, 1, 0x8f]);
    const valid = [0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8f, 0x91, 0x97, 0x9e, 0xa1, 0xa2];
    assert.ok(codes.every((code) => valid.includes(code)));
    await client.close();
  });
});

Deno.test("[MQTT-3.8.4-6] v5 [MQTT-3.8.4-8] messages are delivered at the minimum of the published QoS and the granted QoS", async () => {
  await withBroker("", async ({ port }) => {
    for (const version of VERSIONS) {
      const subs = [];
      for (const granted of [0, 1, 2] as const) {
        const { client } = await connect(port, `min${granted}`, version);
        await subscribeOk(client, version, [["min", granted]]);
        subs.push(client);
      }
      const { client: pub } = await connect(port, "min-pub", version);
      for (const qos of [0, 1, 2] as const) await publish(pub, version, "min", `${qos}`, qos);
      for (let granted = 0; granted < 3; granted++) {
        for (let published = 0; published < 3; published++) {
          const packet = await readPublish(subs[granted]);
          assert.equal(
            packet.qos,
            Math.min(granted, published),
            `${label(version)} granted ${granted} published ${published}`,
          );
          await ack(subs[granted], version, packet);
        }
      }
      await Promise.all([...subs.map((c) => c.close()), pub.close()]);
    }
  });
});

Deno.test("v5 [MQTT-3.9.2-1] [MQTT-3.9.2-2] [MQTT-3.11.2-1] [MQTT-3.11.2-2] SUBACK and UNSUBACK never exceed the client's Maximum Packet Size", async () => {
  await withBroker("", async ({ port }) => {
    const { client } = await connect(port, "small", 5, { properties: { maximumPacketSize: 7 } });
    await client.send(subscribeFrame(5, 1, [["a/#/b", 0], ["ok", 1]]));
    const suback = await client.readBytes(2);
    assert.ok(2 + suback[1] <= 7, `SUBACK of ${2 + suback[1]} bytes`);
    await client.readBytes(suback[1]);
    await client.send(unsubscribeFrame(5, 2, ["never", "ok"]));
    const unsuback = await client.readBytes(2);
    assert.ok(2 + unsuback[1] <= 7, `UNSUBACK of ${2 + unsuback[1]} bytes`);
    await client.close();
  });
});

Deno.test("[MQTT-3.10.3-2] an UNSUBSCRIBE without any topic filter: closed (v5: DISCONNECT 0x82)", async () => {
  await withBroker("", async ({ port }) => {
    for (const version of VERSIONS) {
      const { client } = await connect(port, "unsub-empty", version);
      await client.send(unsubscribeFrame(version, 1, []));
      await expectDisconnect(client, version, 0x82);
    }
  });
});

Deno.test("[MQTT-3.10.4-1] UNSUBSCRIBE deletes only the subscription whose filter is character-for-character the same", async () => {
  await withBroker("", async ({ port }) => {
    for (const version of VERSIONS) {
      const { client } = await connect(port, "exact", version);
      await subscribeOk(client, version, [["x/+", 0], ["x/b", 1]]);
      await client.send(unsubscribeFrame(version, 2, ["x/+", "X/B", "x/#"]));
      assert.equal((await client.readPacket()).type, "unsuback");
      const { client: pub } = await connect(port, "exact-pub", version);
      await publish(pub, version, "x/c", "gone", 1);
      await publish(pub, version, "x/b", "kept", 1);
      const got = await readPublish(client);
      assert.deepEqual([got.topic, got.qos], ["x/b", 1]);
      await ack(client, version, got);
      assert.ok(await client.expectSilence(100));
      await Promise.all([client.close(), pub.close()]);
    }
  });
});

Deno.test("[MQTT-3.10.4-2] [MQTT-3.10.4-3] after UNSUBSCRIBE no new message is added, and a QoS 2 delivery already started completes", async () => {
  await withBroker("", async ({ port }) => {
    for (const version of VERSIONS) {
      const { client } = await connect(port, "unsub-flow", version);
      await subscribeOk(client, version, [["uf", 2]]);
      const { client: pub } = await connect(port, "unsub-flow-pub", version);
      await publish(pub, version, "uf", "started", 2);
      const started = await readPublish(client);
      await client.send(unsubscribeFrame(version, 5, ["uf"]));
      assert.equal((await client.readPacket()).type, "unsuback");
      await publish(pub, version, "uf", "after", 2);
      await client.sendPacket(
        { type: "pubrec", packetId: started.packetId!, reasonCode: 0, properties: {} },
        version,
      );
      const rel = await client.readPacket();
      assert.deepEqual([rel.type, (rel as { packetId: number }).packetId], ["pubrel", started.packetId]);
      await client.sendPacket(
        { type: "pubcomp", packetId: started.packetId!, reasonCode: 0, properties: {} },
        version,
      );
      assert.ok(await client.expectSilence(150), "nothing after the UNSUBSCRIBE");
      await Promise.all([client.close(), pub.close()]);
    }
  });
});

Deno.test("[MQTT-3.10.4-4] [MQTT-3.10.4-5] [MQTT-3.10.4-6] v5 [MQTT-3.11.3-1] [MQTT-3.11.3-2] one UNSUBACK per UNSUBSCRIBE with its packet id, also when nothing was deleted, one code per filter in order", async () => {
  await withBroker("", async ({ port }) => {
    for (const version of VERSIONS) {
      const { client } = await connect(port, "unsuback", version);
      await subscribeOk(client, version, [["u/1", 0], ["u/3", 0]]);
      await client.send(unsubscribeFrame(version, 0x0abc, ["u/1", "u/2", "u/3"]));
      const packet = await client.readPacket() as UnsubackPacket;
      assert.deepEqual([packet.type, packet.packetId], ["unsuback", 0x0abc]);
      if (version === 5) assert.deepEqual(packet.reasonCodes, [0x00, 0x11, 0x00]);
      await client.send(unsubscribeFrame(version, 0x0abd, ["none"]));
      const empty = await client.readPacket() as UnsubackPacket;
      assert.deepEqual([empty.type, empty.packetId], ["unsuback", 0x0abd]);
      if (version === 5) assert.deepEqual(empty.reasonCodes, [0x11]);
      const { client: pub } = await connect(port, "unsuback-pub", version);
      await publish(pub, version, "u/1", "x", 0);
      await publish(pub, version, "u/3", "x", 0);
      assert.ok(await client.expectSilence(100), "both filters were removed");
      await Promise.all([client.close(), pub.close()]);
    }
  });
});

const BAD_FILTERS = ["a/#/b", "a#", "#a", "a/b#", "a+", "+a/b", "a/++", "a/+b/c"];
const GOOD_FILTERS = ["#", "+", "+/+", "a/+/b/#", "/+", "+/#", "a//b"];

Deno.test("v3.1.1 [MQTT-4.7.1-2] [MQTT-4.7.1-3] '#' only as the last whole level, '+' only as a whole level: other filters get 0x80", async () => {
  await withBroker("", async ({ port }) => {
    const { client } = await connect(port, "wild", 4);
    const codes = await subackCodes(
      client,
      subscribeFrame(4, 1, [...BAD_FILTERS, ...GOOD_FILTERS].map((f) => [f, 0])),
    );
    assert.deepEqual(codes, [...BAD_FILTERS.map(() => 0x80), ...GOOD_FILTERS.map(() => 0)]);
    await client.close();
  });
});

Deno.test("v5 [MQTT-4.7.1-1] [MQTT-4.7.1-2] '#' only as the last whole level, '+' only as a whole level: other filters get 0x8F", async () => {
  await withBroker("", async ({ port }) => {
    const { client } = await connect(port, "wild", 5);
    const codes = await subackCodes(
      client,
      subscribeFrame(5, 1, [...BAD_FILTERS, ...GOOD_FILTERS].map((f) => [f, 0])),
    );
    assert.deepEqual(codes, [...BAD_FILTERS.map(() => 0x8f), ...GOOD_FILTERS.map(() => 0)]);
    await client.close();
  });
});

Deno.test("[MQTT-4.7.2-1] filters starting with a wildcard do not match topics starting with $", async () => {
  await withBroker("", async ({ port, running }) => {
    for (const version of VERSIONS) {
      const { client: wild } = await connect(port, "dollar-wild", version);
      await subscribeOk(wild, version, [["#", 0], ["+/x", 0], ["+/+", 0]]);
      const { client: exact } = await connect(port, "dollar-exact", version);
      await subscribeOk(exact, version, [["$app/#", 0]]);
      const { client: pub } = await connect(port, "dollar-pub", version);
      // Clients may not publish to $ topics (issue 10): the $ message comes from the broker, as $SYS does.
      const payload = new TextEncoder().encode("dollar");
      running.broker.publish({
        topic: "$app/x",
        payload,
        qos: 0,
        retain: false,
        properties: {},
        publisherId: "",
      });
      await publish(pub, version, "app/x", "plain", 0);
      assert.equal(text((await readPublish(exact)).payload), "dollar");
      assert.equal(
        text((await readPublish(wild)).payload),
        "plain",
        "the $ topic did not reach the wildcard subscriber",
      );
      assert.ok(await wild.expectSilence(100));
      await Promise.all([wild.close(), exact.close(), pub.close()]);
    }
  });
});

Deno.test("[MQTT-4.7.3-1] an empty Topic Filter: v5 SUBACK 0x8F, v3.1.1 closed (see protocol_edges_test.ts); an empty Topic Name closes (v5: 0x82 without alias)", async () => {
  await withBroker("", async ({ port }) => {
    for (const version of VERSIONS) {
      const { client } = await connect(port, "empty", version);
      if (version === 5) {
        assert.deepEqual(await subackCodes(client, subscribeFrame(version, 1, [["", 0]])), [0x8f]);
      } else {
        await client.send(subscribeFrame(version, 1, [["", 0]]));
        await expectDisconnect(client, version, 0);
        continue;
      }
      await client.send(frame(0x30, [...str(""), ...props(version), 0x78]));
      await expectDisconnect(client, version, 0x82);
    }
    const { client } = await connect(port, "empty-name", 4);
    await client.send(frame(0x30, [...str(""), 0x78]));
    await expectDisconnect(client, 4, 0);
  });
});

Deno.test("[MQTT-4.7.3-2] U+0000 in a Topic Name or Topic Filter: closed (v5: DISCONNECT 0x81)", async () => {
  await withBroker("", async ({ port }) => {
    for (const version of VERSIONS) {
      for (
        const bytes of [
          subscribeFrame(version, 1, [[[0x61, 0x00], 0]]),
          frame(0x30, [...str([0x00]), ...props(version), 0x78]),
          unsubscribeFrame(version, 1, [[0x00, 0x61]]),
        ]
      ) {
        const { client } = await connect(port, "nul", version);
        await client.send(bytes);
        await expectDisconnect(client, version, 0x81);
      }
    }
  });
});

Deno.test("[MQTT-4.7.3-3] a topic of 65535 bytes (the most a UTF-8 string can hold) works end to end", async () => {
  await withBroker("", async ({ port }) => {
    for (const version of VERSIONS) {
      const topic = "t".repeat(65535);
      const { client } = await connect(port, "long", version);
      await subscribeOk(client, version, [[topic, 0]]);
      await publish(client, version, topic, "long", 0);
      const got = await readPublish(client);
      assert.equal(got.topic.length, 65535);
      await client.close();
    }
  });
});

Deno.test("[MQTT-4.7.3-4] topics and filters are matched without normalisation", async () => {
  await withBroker("", async ({ port }) => {
    for (const version of VERSIONS) {
      const { client } = await connect(port, "norm", version);
      await subscribeOk(client, version, [["a/b", 0], ["caf\u00e9", 0]]);
      const { client: pub } = await connect(port, "norm-pub", version);
      for (const topic of ["a//b", "a/b/", "A/b", "/a/b", "cafe\u0301", "a/b", "caf\u00e9"]) {
        await publish(pub, version, topic, topic, 0);
      }
      const got = [(await readPublish(client)).topic, (await readPublish(client)).topic];
      assert.deepEqual(got, ["a/b", "caf\u00e9"]);
      assert.ok(await client.expectSilence(100));
      await Promise.all([client.close(), pub.close()]);
    }
  });
});

Deno.test("v5 [MQTT-4.8.2-1] [MQTT-4.8.2-2] a shared subscription needs $share/<ShareName>/<filter>, ShareName without / + #: others get 0x8F", async () => {
  await withBroker("", async ({ port }) => {
    const { client } = await connect(port, "share-syntax", 5);
    const bad = ["$share//a", "$share/g", "$share/g/", "$share/g+/a", "$share/g#/a", "$share/g/a/#/b"];
    const good = ["$share/g/a", "$share/group-1/a/+/#"];
    const codes = await subackCodes(client, subscribeFrame(5, 1, [...bad, ...good].map((f) => [f, 0])));
    assert.deepEqual(codes, [...bad.map(() => 0x8f), ...good.map(() => 0)]);
    await client.close();
  });
});

Deno.test("v5 [MQTT-4.8.2-3] a shared subscription delivers at the QoS granted to that member", async () => {
  await withBroker("", async ({ port }) => {
    const { client: member } = await connect(port, "share-q0", 5);
    await subscribeOk(member, 5, [["$share/g/sq", 0]]);
    const { client: pub } = await connect(port, "share-pub", 5);
    await publish(pub, 5, "sq", "m", 2);
    const got = await readPublish(member);
    assert.deepEqual([got.qos, got.packetId], [0, undefined]);
    await Promise.all([member.close(), pub.close()]);
  });
});

Deno.test("v5 [MQTT-4.8.2-4] a QoS 1 message in flight to a shared member that disconnects is completed when it reconnects", async () => {
  await withBroker("", async ({ port }) => {
    const session = { sessionExpiryInterval: 60 };
    const { client: member } = await connect(port, "share-member", 5, { properties: session });
    await subscribeOk(member, 5, [["$share/g/sr", 1]]);
    const { client: pub } = await connect(port, "share-pub", 5);
    await publish(pub, 5, "sr", "inflight", 1);
    const first = await readPublish(member);
    await member.close();
    const { client: again } = await connect(port, "share-member", 5, { cleanStart: false });
    const resent = await readPublish(again);
    assert.deepEqual([text(resent.payload), resent.dup, resent.packetId], ["inflight", true, first.packetId]);
    await ack(again, 5, resent);
    await Promise.all([again.close(), pub.close()]);
  });
});

Deno.test("v5 [MQTT-4.8.2-5] when a shared member's session ends before it reconnects, its in-flight message goes to no other member", async () => {
  await withBroker("", async ({ port }) => {
    const { client: a } = await connect(port, "share-a", 5, { properties: { sessionExpiryInterval: 1 } });
    await subscribeOk(a, 5, [["$share/g/se", 1]]);
    const { client: pub } = await connect(port, "share-pub", 5);
    await publish(pub, 5, "se", "for-a", 1);
    assert.equal(text((await readPublish(a)).payload), "for-a");
    const { client: b } = await connect(port, "share-b", 5);
    await subscribeOk(b, 5, [["$share/g/se", 1]]);
    await a.close();
    await sleep(1500); // a's session expires with the message unacknowledged
    assert.ok(await b.expectSilence(200), "the message of the ended session is not passed on");
    await publish(pub, 5, "se", "for-b", 1);
    assert.equal(text((await readPublish(b)).payload), "for-b");
    await Promise.all([b.close(), pub.close()]);
  });
});

Deno.test("v5 [MQTT-4.8.2-6] a PUBACK of 0x80 or more from a shared member discards the message: no other member gets it", async () => {
  await withBroker("", async ({ port }) => {
    const { client: a } = await connect(port, "nack-a", 5);
    await subscribeOk(a, 5, [["$share/g/sn", 1]]);
    const { client: b } = await connect(port, "nack-b", 5);
    await subscribeOk(b, 5, [["$share/g/sn", 1]]);
    const { client: pub } = await connect(port, "nack-pub", 5);
    await publish(pub, 5, "sn", "once", 1);
    let pair: [typeof a, typeof a] | undefined;
    for (let i = 0; i < 100 && !pair; i++) {
      if (!(await a.expectSilence(20))) pair = [a, b];
      else if (!(await b.expectSilence(0))) pair = [b, a];
    }
    assert.ok(pair, "one member got the message");
    const [receiver, other] = pair;
    const got = await readPublish(receiver);
    await receiver.sendPacket(
      { type: "puback", packetId: got.packetId!, reasonCode: 0x80, properties: {} },
      5,
    );
    assert.ok(await other.expectSilence(200), "the refused message was not sent to the other member");
    assert.ok(await receiver.expectSilence(50));
    await Promise.all([a.close(), b.close(), pub.close()]);
  });
});

Deno.test("v5 [MQTT-3.8.4-3] a SUBSCRIBE with the filter of an existing non-shared subscription replaces its options", async () => {
  await withBroker("", async ({ port }) => {
    const { client } = await connect(port, "replace", 5);
    await subscribeOk(client, 5, [subscription("rp", 2, { noLocal: false })]);
    await subscribeOk(client, 5, [subscription("rp", 0, { noLocal: true })]);
    await publish(client, 5, "rp", "own", 1);
    assert.ok(await client.expectSilence(150), "No Local of the replacing subscription applies");
    const { client: pub } = await connect(port, "replace-pub", 5);
    await publish(pub, 5, "rp", "other", 2);
    const got = await readPublish(client);
    assert.deepEqual([text(got.payload), got.qos], ["other", 0]);
    await Promise.all([client.close(), pub.close()]);
  });
});
