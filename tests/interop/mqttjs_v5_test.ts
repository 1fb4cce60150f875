/** MQTT 5 features through MQTT.js 5 (protocolVersion 5), over real loopback sockets. */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import type { IClientOptions } from "mqtt";
import { RawClient, withBroker } from "../helpers/broker.ts";
import { connectJs, disconnectJs, endJs, sleep, withTimeout } from "./tools.ts";

const V5: IClientOptions = { protocolVersion: 5 };

Deno.test("MQTT.js v5: CONNACK advertises the server's limits", async () => {
  await withBroker("mqtt.max_topic_alias = 7\nmqtt.receive_maximum = 50\n", async ({ port }) => {
    const { client, connack } = await connectJs(port, { ...V5, clientId: "limits" });
    try {
      assert.equal(connack.reasonCode, 0);
      assert.equal(connack.properties?.topicAliasMaximum, 7);
      assert.equal(connack.properties?.receiveMaximum, 50);
    } finally {
      await endJs(client);
    }
  });
});

Deno.test("MQTT.js v5: [MQTT-3.8.3-3] No Local: own messages are not delivered back", async () => {
  await withBroker("", async ({ port }) => {
    const a = await connectJs(port, { ...V5, clientId: "nl-a" });
    const b = await connectJs(port, { ...V5, clientId: "nl-b" });
    try {
      await a.client.subscribeAsync("nl/t", { qos: 1, nl: true });
      await b.client.subscribeAsync("nl/t", { qos: 1, nl: false });
      await a.client.publishAsync("nl/t", "from a", { qos: 1 });
      await b.client.publishAsync("nl/t", "from b", { qos: 1 });
      assert.deepEqual((await b.inbox.take(2)).map((m) => m.payload), ["from a", "from b"]);
      assert.deepEqual((await a.inbox.take(1)).map((m) => m.payload), ["from b"]);
      await a.inbox.expectCount(1, 200);
    } finally {
      await endJs(a.client, b.client);
    }
  });
});

Deno.test("MQTT.js v5: [MQTT-3.3.1-12] [MQTT-3.3.1-13] Retain As Published keeps RETAIN on live forwards", async () => {
  await withBroker("", async ({ port }) => {
    const rap = await connectJs(port, { ...V5, clientId: "rap-1" });
    const plain = await connectJs(port, { ...V5, clientId: "rap-0" });
    try {
      await rap.client.subscribeAsync("rap/t", { qos: 1, rap: true });
      await plain.client.subscribeAsync("rap/t", { qos: 1, rap: false });
      await rap.client.publishAsync("rap/t", "r", { qos: 1, retain: true });
      await rap.client.publishAsync("rap/t", "n", { qos: 1, retain: false });
      assert.deepEqual((await rap.inbox.take(2)).map((m) => `${m.payload}:${m.retain}`), [
        "r:true",
        "n:false",
      ]);
      assert.deepEqual((await plain.inbox.take(2)).map((m) => `${m.payload}:${m.retain}`), [
        "r:false",
        "n:false",
      ]);
    } finally {
      await endJs(rap.client, plain.client);
    }
  });
});

Deno.test("MQTT.js v5: Retain Handling 0 [MQTT-3.3.1-9], 1 [MQTT-3.3.1-10], 2 [MQTT-3.3.1-11]", async () => {
  await withBroker("", async ({ port }) => {
    const pub = await connectJs(port, { ...V5, clientId: "rh-pub" });
    const sub = await connectJs(port, { ...V5, clientId: "rh-sub" });
    try {
      await pub.client.publishAsync("rh/0", "zero", { qos: 1, retain: true });
      await pub.client.publishAsync("rh/1", "one", { qos: 1, retain: true });
      await pub.client.publishAsync("rh/2", "two", { qos: 1, retain: true });

      await sub.client.subscribeAsync("rh/2", { qos: 1, rh: 2 });
      await sub.client.subscribeAsync("rh/1", { qos: 1, rh: 1 });
      await sub.client.subscribeAsync("rh/0", { qos: 1, rh: 0 });
      const first = await sub.inbox.take(2);
      assert.deepEqual(first.map((m) => `${m.topic}=${m.payload}:${m.retain}`).sort(), [
        "rh/0=zero:true",
        "rh/1=one:true",
      ]);
      await sub.inbox.expectCount(2, 200);

      // Subscribing again: handling 0 sends again, 1 does not (the subscription exists), 2 never.
      sub.inbox.clear();
      await sub.client.subscribeAsync("rh/2", { qos: 1, rh: 2 });
      await sub.client.subscribeAsync("rh/1", { qos: 1, rh: 1 });
      await sub.client.subscribeAsync("rh/0", { qos: 1, rh: 0 });
      const second = await sub.inbox.take(1);
      assert.deepEqual(second.map((m) => `${m.topic}=${m.payload}`), ["rh/0=zero"]);
      await sub.inbox.expectCount(1, 200);
    } finally {
      await endJs(pub.client, sub.client);
    }
  });
});

Deno.test("MQTT.js v5: [MQTT-3.3.4-3] [MQTT-3.3.4-4] subscription identifiers are sent with matching messages, all of them on overlap", async () => {
  await withBroker("", async ({ port }) => {
    const sub = await connectJs(port, { ...V5, clientId: "sid" });
    const pub = await connectJs(port, { ...V5, clientId: "sid-pub" });
    try {
      await sub.client.subscribeAsync("sid/+", { qos: 1, properties: { subscriptionIdentifier: 11 } });
      await sub.client.subscribeAsync("sid/#", { qos: 0, properties: { subscriptionIdentifier: 22 } });
      await sub.client.subscribeAsync("other", { qos: 1 });
      await pub.client.publishAsync("sid/a", "both", { qos: 1 });
      await pub.client.publishAsync("sid/a/b", "deep", { qos: 1 });
      await pub.client.publishAsync("other", "none", { qos: 1 });
      const got = await sub.inbox.take(3);
      const ids = (m: (typeof got)[number]) => {
        const value = m.packet.properties?.subscriptionIdentifier;
        return value === undefined ? [] : (Array.isArray(value) ? [...value] : [value]).sort((x, y) => x - y);
      };
      const byPayload = new Map(got.map((m) => [m.payload, m]));
      assert.deepEqual(ids(byPayload.get("both")!), [11, 22]);
      assert.equal(
        byPayload.get("both")!.qos,
        1,
        "[MQTT-3.3.4-2] one delivery at the highest QoS of the overlap",
      );
      assert.deepEqual(ids(byPayload.get("deep")!), [22]);
      assert.deepEqual(
        ids(byPayload.get("none")!),
        [],
        "no id when the subscription has none",
      );
      await sub.inbox.expectCount(3, 200);
    } finally {
      await endJs(sub.client, pub.client);
    }
  });
});

Deno.test("MQTT.js v5: shared subscription $share/g/...: each message goes to exactly one member of the group", async () => {
  await withBroker("mqtt.shared_subscription_strategy = round_robin\n", async ({ port }) => {
    const members = await Promise.all(
      [0, 1, 2].map((i) => connectJs(port, { ...V5, clientId: `member-${i}` })),
    );
    const solo = await connectJs(port, { ...V5, clientId: "solo" });
    const pub = await connectJs(port, { ...V5, clientId: "share-pub" });
    try {
      await pub.client.publishAsync("job/state", "retained", { qos: 1, retain: true });
      for (const m of members) await m.client.subscribeAsync("$share/g/job/#", { qos: 1 });
      await solo.client.subscribeAsync("job/state", { qos: 1 });
      assert.deepEqual((await solo.inbox.take(1)).map((m) => `${m.payload}:${m.retain}`), ["retained:true"]);
      solo.inbox.clear();
      assert.ok(
        members.every((m) => m.inbox.messages.length === 0),
        "retained messages are not sent to a shared subscription when it is made",
      );
      await solo.client.unsubscribeAsync("job/state");
      await solo.client.subscribeAsync("job/#", { qos: 1, rh: 2 });
      const total = 30;
      for (let i = 0; i < total; i++) await pub.client.publishAsync(`job/${i % 3}`, `j${i}`, { qos: 1 });
      assert.equal(
        (await solo.inbox.take(total)).length,
        total,
        "a non-shared subscriber gets every message",
      );
      await solo.inbox.expectCount(total, 100);
      const deadline = Date.now() + 5000;
      const count = () => members.reduce((n, m) => n + m.inbox.messages.length, 0);
      while (count() < total && Date.now() < deadline) await sleep(20);
      await sleep(100);
      const all = members.flatMap((m) => m.inbox.messages.map((x) => x.payload));
      assert.equal(all.length, total, "each message delivered exactly once to the group");
      assert.equal(new Set(all).size, total, "no duplicates within the group");
      assert.deepEqual(
        members.map((m) => m.inbox.messages.length),
        [10, 10, 10],
        "round robin spreads evenly",
      );
      assert.ok(
        members.every((m) => m.inbox.messages.every((x) => x.topic.startsWith("job/"))),
        "members see the real topic, not the $share filter",
      );
    } finally {
      await endJs(...members.map((m) => m.client), solo.client, pub.client);
    }
  });
});

Deno.test("MQTT.js v5: [MQTT-3.3.2-12] inbound topic alias set by one PUBLISH, used by the next with an empty topic", async () => {
  await withBroker("", async ({ port }) => {
    const sub = await connectJs(port, { ...V5, clientId: "alias-sub" });
    const pub = await connectJs(port, { ...V5, clientId: "alias-pub" });
    try {
      assert.ok((pub.connack.properties?.topicAliasMaximum ?? 0) >= 2, "the broker accepts topic aliases");
      await sub.client.subscribeAsync("alias/#", { qos: 1 });
      await pub.client.publishAsync("alias/long/topic/one", "set", { qos: 1, properties: { topicAlias: 1 } });
      await pub.client.publishAsync("", "use", { qos: 1, properties: { topicAlias: 1 } });
      await pub.client.publishAsync("alias/two", "set2", { qos: 0, properties: { topicAlias: 2 } });
      await pub.client.publishAsync("", "use2", { qos: 0, properties: { topicAlias: 2 } });
      await pub.client.publishAsync("alias/three", "remap", { qos: 1, properties: { topicAlias: 1 } });
      await pub.client.publishAsync("", "use-remapped", { qos: 1, properties: { topicAlias: 1 } });
      const got = await sub.inbox.take(6);
      assert.deepEqual(got.map((m) => `${m.topic}=${m.payload}`), [
        "alias/long/topic/one=set",
        "alias/long/topic/one=use",
        "alias/two=set2",
        "alias/two=use2",
        "alias/three=remap",
        "alias/three=use-remapped",
      ]);
      assert.ok(
        got.every((m) => m.packet.properties?.topicAlias === undefined),
        "[MQTT-3.1.2-27] no alias towards a client that allowed none",
      );
      assert.ok(!pub.client.disconnected, "the publisher stays connected");
    } finally {
      await endJs(sub.client, pub.client);
    }
  });
});

Deno.test("MQTT.js v5: [MQTT-3.1.2-26] [MQTT-3.3.2-11] outbound topic aliases within the client's Topic Alias Maximum, resolved by MQTT.js", async () => {
  await withBroker("", async ({ port }) => {
    const sub = await connectJs(port, {
      ...V5,
      clientId: "oalias-sub",
      properties: { topicAliasMaximum: 2 },
    });
    const pub = await connectJs(port, { ...V5, clientId: "oalias-pub" });
    try {
      await sub.client.subscribeAsync("oa/#", { qos: 1 });
      const topics = ["oa/one", "oa/one", "oa/one", "oa/two", "oa/two", "oa/three", "oa/one", "oa/three"];
      for (const [i, topic] of topics.entries()) await pub.client.publishAsync(topic, `m${i}`, { qos: 1 });
      const got = await sub.inbox.take(topics.length);
      assert.deepEqual(got.map((m) => m.topic), topics, "every topic resolves correctly");
      assert.deepEqual(got.map((m) => m.payload), topics.map((_, i) => `m${i}`));
      const aliases = got.map((m) => m.packet.properties?.topicAlias);
      assert.ok(
        aliases.every((a) => a === undefined || (a >= 1 && a <= 2)),
        `aliases within 1..2: ${aliases}`,
      );
      // The broker uses aliases: a repeat of the topic just sent goes out with an empty topic name.
      assert.equal(got[1].packet.topic, "", "the second 'oa/one' is sent as an alias only");
      assert.equal(got[1].packet.properties?.topicAlias, aliases[0]);
      assert.ok(!sub.client.disconnected, "MQTT.js accepted every alias");
    } finally {
      await endJs(sub.client, pub.client);
    }
  });
});

Deno.test("MQTT.js v5: [MQTT-3.3.2-5] an expired message is not delivered; [MQTT-3.3.2-6] the interval left is sent", async () => {
  await withBroker("", async ({ port }) => {
    const session = { ...V5, clientId: "expiry", clean: false, properties: { sessionExpiryInterval: 60 } };
    const first = await connectJs(port, session);
    await first.client.subscribeAsync("exp/#", { qos: 1 });
    await disconnectJs(first.client);
    const pub = await connectJs(port, { ...V5, clientId: "exp-pub" });
    try {
      await pub.client.publishAsync("exp/short", "dies", {
        qos: 1,
        properties: { messageExpiryInterval: 1 },
      });
      await pub.client.publishAsync("exp/long", "lives", {
        qos: 1,
        properties: { messageExpiryInterval: 60 },
      });
      await pub.client.publishAsync("exp/none", "forever", { qos: 1 });
      await sleep(2200);
      const again = await connectJs(port, session);
      const got = await again.inbox.take(2);
      assert.deepEqual(got.map((m) => m.payload), ["lives", "forever"]);
      const left = got[0].packet.properties?.messageExpiryInterval;
      assert.ok(
        left !== undefined && left >= 55 && left <= 58,
        `expiry interval left ${left}, expected about 57-58`,
      );
      assert.equal(got[1].packet.properties?.messageExpiryInterval, undefined);
      await again.inbox.expectCount(2, 200);
      await endJs(again.client);
    } finally {
      await endJs(pub.client);
    }
  });
});

Deno.test("MQTT.js v5: user properties [MQTT-3.3.2-17] [MQTT-3.3.2-18], content type [MQTT-3.3.2-20], response topic [MQTT-3.3.2-15], correlation data [MQTT-3.3.2-16], payload format [MQTT-3.3.2-4] are forwarded unaltered", async () => {
  await withBroker("", async ({ port }) => {
    const sub = await connectJs(port, { ...V5, clientId: "props-sub" });
    const pub = await connectJs(port, { ...V5, clientId: "props-pub" });
    try {
      await sub.client.subscribeAsync("props/#", { qos: 2 });
      const correlation = Buffer.from([0, 1, 2, 0xfe, 0xff]);
      for (const qos of [0, 1, 2] as const) {
        await pub.client.publishAsync(`props/${qos}`, '{"a":1}', {
          qos,
          properties: {
            payloadFormatIndicator: true,
            contentType: "application/json; charset=utf-8",
            responseTopic: "props/reply/é",
            correlationData: correlation,
            userProperties: { first: "1", repeated: ["x", "y"], "ünï": "cödé" },
          },
        });
      }
      const got = await sub.inbox.take(3);
      for (const m of got) {
        const p = m.packet.properties!;
        assert.equal(p.payloadFormatIndicator, true);
        assert.equal(p.contentType, "application/json; charset=utf-8");
        assert.equal(p.responseTopic, "props/reply/é");
        assert.deepEqual([...(p.correlationData as Uint8Array)], [...correlation]);
        assert.deepEqual({ ...p.userProperties }, { first: "1", repeated: ["x", "y"], "ünï": "cödé" });
        assert.deepEqual(Object.keys(p.userProperties!), ["first", "repeated", "ünï"], "order kept");
        assert.equal(m.payload, '{"a":1}');
      }
    } finally {
      await endJs(sub.client, pub.client);
    }
  });
});

Deno.test("MQTT.js v5: request/response with Response Topic and Correlation Data", async () => {
  await withBroker("", async ({ port }) => {
    const responder = await connectJs(port, { ...V5, clientId: "responder" });
    const requester = await connectJs(port, { ...V5, clientId: "requester" });
    try {
      await responder.client.subscribeAsync("svc/square", { qos: 1 });
      responder.client.on("message", (_topic, payload, packet) => {
        const n = Number(payload.toString());
        const reply = packet.properties?.responseTopic;
        if (!reply) return;
        responder.client.publish(reply, String(n * n), {
          qos: 1,
          properties: { correlationData: packet.properties?.correlationData },
        });
      });
      await requester.client.subscribeAsync("svc/reply/requester", { qos: 1 });
      const asked = [3, 7, 12];
      for (const n of asked) {
        await requester.client.publishAsync("svc/square", String(n), {
          qos: 1,
          properties: { responseTopic: "svc/reply/requester", correlationData: Buffer.from(`req-${n}`) },
        });
      }
      const replies = await requester.inbox.take(asked.length);
      const answers = new Map(
        replies.map((
          m,
        ) => [Buffer.from(m.packet.properties!.correlationData as Uint8Array).toString(), m.payload]),
      );
      assert.deepEqual(Object.fromEntries(answers), { "req-3": "9", "req-7": "49", "req-12": "144" });
    } finally {
      await endJs(responder.client, requester.client);
    }
  });
});

Deno.test("MQTT.js v5: Session Expiry Interval: a session outlives its interval only while it lasts [MQTT-3.1.2-23]", async () => {
  await withBroker("", async ({ port }) => {
    const short = { ...V5, clientId: "se-short", clean: false, properties: { sessionExpiryInterval: 1 } };
    const long = { ...V5, clientId: "se-long", clean: false, properties: { sessionExpiryInterval: 60 } };
    const zero = { ...V5, clientId: "se-zero", clean: false, properties: { sessionExpiryInterval: 0 } };
    for (const options of [short, long, zero]) {
      const c = await connectJs(port, options);
      await c.client.subscribeAsync("se/#", { qos: 1 });
      await disconnectJs(c.client);
    }
    const zeroAgain = await connectJs(port, zero);
    assert.equal(
      zeroAgain.connack.sessionPresent,
      false,
      "interval 0: the session ended with the connection",
    );
    await disconnectJs(zeroAgain.client);

    const pub = await connectJs(port, { ...V5, clientId: "se-pub" });
    await pub.client.publishAsync("se/x", "queued", { qos: 1 });
    await endJs(pub.client);
    await sleep(2100);

    const shortAgain = await connectJs(port, short);
    assert.equal(shortAgain.connack.sessionPresent, false, "interval 1 s: expired after 2.1 s");
    await shortAgain.inbox.expectCount(0, 200);
    const longAgain = await connectJs(port, long);
    assert.equal(longAgain.connack.sessionPresent, true, "interval 60 s: still there");
    assert.deepEqual((await longAgain.inbox.take(1)).map((m) => m.payload), ["queued"]);
    await endJs(shortAgain.client, longAgain.client);
  });
});

Deno.test("MQTT.js v5: DISCONNECT 0x04 (with will) publishes the will, 0x00 discards it [MQTT-3.14.4-3]", async () => {
  await withBroker("", async ({ port }) => {
    const watcher = await connectJs(port, { ...V5, clientId: "w4-watch" });
    try {
      await watcher.client.subscribeAsync("w4/#", { qos: 1 });
      for (const reasonCode of [0x00, 0x04]) {
        const c = await connectJs(port, {
          ...V5,
          clientId: `w4-${reasonCode}`,
          will: { topic: `w4/${reasonCode}`, payload: Buffer.from("will"), qos: 1, retain: false },
        });
        await withTimeout(c.client.endAsync(false, { reasonCode }), 3000, "end with reason");
      }
      const got = await watcher.inbox.take(1);
      assert.deepEqual(got.map((m) => m.topic), ["w4/4"]);
      await watcher.inbox.expectCount(1, 300);
    } finally {
      await endJs(watcher.client);
    }
  });
});

Deno.test("MQTT.js v5: a will with properties reaches subscribers when the socket dies", async () => {
  await withBroker("", async ({ port }) => {
    const watcher = await connectJs(port, { ...V5, clientId: "w5-watch" });
    try {
      await watcher.client.subscribeAsync("w5/#", { qos: 2 });
      const doomed = await connectJs(port, {
        ...V5,
        clientId: "w5-doomed",
        will: {
          topic: "w5/status",
          payload: Buffer.from("offline"),
          qos: 2,
          retain: true,
          properties: { contentType: "text/plain", userProperties: { why: "crash" } },
        },
      });
      doomed.client.stream.destroy();
      const [will] = await watcher.inbox.take(1);
      assert.deepEqual([will.topic, will.payload, will.qos], ["w5/status", "offline", 2]);
      assert.equal(will.packet.properties?.contentType, "text/plain");
      assert.deepEqual({ ...will.packet.properties?.userProperties }, { why: "crash" });
      await endJs(doomed.client);

      // The will was retained: a new subscriber sees it with RETAIN set.
      const late = await connectJs(port, { ...V5, clientId: "w5-late" });
      await late.client.subscribeAsync("w5/status", { qos: 1 });
      const [retained] = await late.inbox.take(1);
      assert.deepEqual([retained.payload, retained.retain], ["offline", true]);
      await endJs(late.client);
    } finally {
      await endJs(watcher.client);
    }
  });
});

Deno.test("MQTT.js v5: [MQTT-4.9.0-1] [MQTT-4.9.0-2] a client back with a smaller Receive Maximum gets its unacknowledged QoS 2 messages as its window allows (MQTT.js disconnects with 0x93 past it)", async () => {
  await withBroker("", async ({ port }) => {
    // The first connection (raw, so that it can leave them unanswered) takes six QoS 2 messages and sends
    // no PUBREC.
    const first = await RawClient.connect(port, 5);
    const pub = await connectJs(port, { ...V5, clientId: "rm-pub" });
    try {
      await first.sendPacket({
        type: "connect",
        protocolName: "MQTT",
        protocolVersion: 5,
        cleanStart: true,
        keepAlive: 0,
        clientId: "rm-sub",
        properties: { sessionExpiryInterval: 60, receiveMaximum: 10 },
      }, 5);
      assert.equal((await first.readPacket()).type, "connack");
      await first.sendPacket({
        type: "subscribe",
        packetId: 1,
        subscriptions: [{
          topicFilter: "rm/t",
          qos: 2,
          noLocal: false,
          retainAsPublished: false,
          retainHandling: 0,
        }],
        properties: {},
      }, 5);
      assert.equal((await first.readPacket()).type, "suback");
      for (let i = 0; i < 6; i++) await pub.client.publishAsync("rm/t", `m${i}`, { qos: 2 });
      for (let i = 0; i < 6; i++) assert.equal((await first.readPacket()).type, "publish");
    } finally {
      await first.close();
    }
    // MQTT.js back with room for two: all six come, none past the window, on this one connection.
    const again = await connectJs(port, {
      ...V5,
      clientId: "rm-sub",
      clean: false,
      properties: { sessionExpiryInterval: 60, receiveMaximum: 2 },
    });
    const errors: string[] = [];
    again.client.on("error", (error) => errors.push(error.message));
    try {
      assert.equal(again.connack.sessionPresent, true);
      const received = await again.inbox.take(6).catch((error) => {
        const state = again.client.connected ? "still connected" : "disconnected";
        throw new Error(`${error.message}; MQTT.js ${state}, errors: ${errors.join("; ") || "none seen"}`);
      });
      assert.deepEqual(received.map((m) => m.payload), ["m0", "m1", "m2", "m3", "m4", "m5"]);
      assert.deepEqual(errors, []);
      assert.equal(again.client.connected, true);
    } finally {
      await endJs(again.client, pub.client);
    }
  });
});
