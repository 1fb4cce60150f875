/**
 * Broker-core features through MQTT.js 5, the most used JavaScript client, once as an MQTT 3.1.1 client
 * (protocolVersion 4) and once as an MQTT 5 client. Everything runs over real loopback sockets.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import type { IClientOptions } from "mqtt";
import { withBroker } from "../helpers/broker.ts";
import { closed, connectJs, disconnectJs, endJs, sleep, spec, withTimeout } from "./tools.ts";

type Version = 4 | 5;

/** Options for a persistent session at either version (v5 needs a Session Expiry Interval > 0). */
function persistent(version: Version, clientId: string): IClientOptions {
  return version === 5
    ? { protocolVersion: 5, clientId, clean: false, properties: { sessionExpiryInterval: 300 } }
    : { protocolVersion: 4, clientId, clean: false };
}

for (const version of [4, 5] as const) {
  const v = `MQTT.js v${version === 4 ? "3.1.1" : "5"}`;
  const base: IClientOptions = { protocolVersion: version };
  const tag = spec(version);

  Deno.test(`${v}: ${tag.sessionPresent} clean connect has no session; a persistent one is resumed; ${tag.cleanDiscards}`, async () => {
    await withBroker("", async ({ port }) => {
      const clean = await connectJs(port, { ...base, clientId: `clean-${version}`, clean: true });
      assert.equal(clean.connack.sessionPresent, false);
      assert.equal(clean.connack.returnCode ?? clean.connack.reasonCode ?? 0, 0);
      await disconnectJs(clean.client);

      const first = await connectJs(port, persistent(version, `durable-${version}`));
      assert.equal(first.connack.sessionPresent, false, "a brand new persistent session is not 'present'");
      await first.client.subscribeAsync("p/x", { qos: 1 });
      await disconnectJs(first.client);

      const again = await connectJs(port, persistent(version, `durable-${version}`));
      assert.equal(again.connack.sessionPresent, true, "the stored session must be resumed");
      await disconnectJs(again.client);

      const wiped = await connectJs(port, { ...base, clientId: `durable-${version}`, clean: true });
      assert.equal(
        wiped.connack.sessionPresent,
        false,
        `${tag.cleanDiscards} clean start discards the session`,
      );
      await disconnectJs(wiped.client);
    });
  });

  Deno.test(`${v}: ${tag.topicMatch} wildcard subscribe, then unsubscribe stops delivery ${tag.unsubscribe}`, async () => {
    await withBroker("", async ({ port }) => {
      const sub = await connectJs(port, { ...base, clientId: `wsub-${version}` });
      const pub = await connectJs(port, { ...base, clientId: `wpub-${version}` });
      try {
        const granted = await sub.client.subscribeAsync({
          "w/+/x": { qos: 0 },
          "h/#": { qos: 0 },
          end: { qos: 1 },
        });
        assert.deepEqual(granted.map((g) => [g.topic, g.qos]), [["w/+/x", 0], ["h/#", 0], ["end", 1]]);
        for (const topic of ["w/1/x", "w/1/y", "w/1/2/x", "w//x", "h", "h/a", "h/a/b", "hh/a"]) {
          await pub.client.publishAsync(topic, `to ${topic}`, { qos: 0 });
        }
        await pub.client.publishAsync("end", "marker", { qos: 0 });
        const got = await sub.inbox.take(6);
        assert.deepEqual(got.map((m) => m.topic), ["w/1/x", "w//x", "h", "h/a", "h/a/b", "end"]);

        await sub.client.unsubscribeAsync(["w/+/x", "h/#"]);
        sub.inbox.clear();
        await pub.client.publishAsync("w/2/x", "gone", { qos: 1 });
        await pub.client.publishAsync("h/z", "gone", { qos: 1 });
        await pub.client.publishAsync("end", "marker2", { qos: 1 });
        const after = await sub.inbox.take(1);
        assert.deepEqual(after.map((m) => `${m.topic}=${m.payload}`), ["end=marker2"]);
        await sub.inbox.expectCount(1, 200);
      } finally {
        await endJs(sub.client, pub.client);
      }
    });
  });

  Deno.test(`${v}: ${tag.minQos} QoS 0/1/2 both ways; delivery QoS is min(publish, subscription)`, async () => {
    await withBroker("", async ({ port }) => {
      const sub = await connectJs(port, { ...base, clientId: `qsub-${version}` });
      const pub = await connectJs(port, { ...base, clientId: `qpub-${version}` });
      try {
        const granted = await sub.client.subscribeAsync({
          "q/0": { qos: 0 },
          "q/1": { qos: 1 },
          "q/2": { qos: 2 },
        });
        assert.deepEqual(
          granted.map((g) => g.qos),
          [0, 1, 2],
          `${tag.subackOrder} granted QoS per filter, in order`,
        );
        const expected: string[] = [];
        for (const subQos of [0, 1, 2] as const) {
          for (const pubQos of [0, 1, 2] as const) {
            // publishAsync resolves after PUBACK (QoS 1) or PUBCOMP (QoS 2) from the broker.
            const packet = await pub.client.publishAsync(`q/${subQos}`, `p${pubQos}`, { qos: pubQos });
            if (pubQos > 0) assert.ok(packet, "QoS > 0 publish must be acknowledged");
            expected.push(`q/${subQos}=p${pubQos}@${Math.min(subQos, pubQos)}`);
          }
        }
        const got = await sub.inbox.take(9);
        // One publisher, one subscriber per topic: each topic's messages arrive in publish order.
        for (const topic of ["q/0", "q/1", "q/2"]) {
          assert.deepEqual(
            got.filter((m) => m.topic === topic).map((m) => `${m.topic}=${m.payload}@${m.qos}`),
            expected.filter((e) => e.startsWith(`${topic}=`)),
          );
        }
        assert.ok(got.every((m) => !m.packet.dup), "no DUP on a first delivery");
        await sub.inbox.expectCount(9, 200);
      } finally {
        await endJs(sub.client, pub.client);
      }
    });
  });

  Deno.test(
    `${v}: retained: ${tag.retainReplace} replace, ${tag.retainOnSubscribe} sent with RETAIN on subscribe,${
      version === 4 ? " [MQTT-3.8.4-3] re-sent on re-subscribe," : ""
    } ${tag.retainDelete} deleted by empty payload`,
    async () => {
      await withBroker("", async ({ port }) => {
        const pub = await connectJs(port, { ...base, clientId: `rpub-${version}` });
        const live = await connectJs(port, { ...base, clientId: `rlive-${version}` });
        try {
          await live.client.subscribeAsync("r/#", { qos: 1 });
          await pub.client.publishAsync("r/a", "first", { qos: 1, retain: true });
          await pub.client.publishAsync("r/a", "second", { qos: 1, retain: true }); // replaces
          await pub.client.publishAsync("r/b", "kept", { qos: 0, retain: true });
          await pub.client.publishAsync("r/c", "not retained", { qos: 1, retain: false });
          const forwarded = await live.inbox.take(4);
          assert.ok(
            forwarded.every((m) => m.retain === false),
            `${tag.retainLiveFlag} a live forward to an existing subscription has RETAIN 0`,
          );

          const late = await connectJs(port, { ...base, clientId: `rlate-${version}` });
          await late.client.subscribeAsync("r/#", { qos: 1 });
          const retained = (await late.inbox.take(2)).sort((a, b) => a.topic.localeCompare(b.topic));
          assert.deepEqual(
            retained.map((m) => [m.topic, m.payload, m.retain, m.qos]),
            [["r/a", "second", true, 1], ["r/b", "kept", true, 0]],
          );
          await late.inbox.expectCount(2, 200); // r/c was never retained (tag.notRetained)
          if (version === 4) {
            // [MQTT-3.8.4-3] an identical SUBSCRIBE replaces the subscription and re-sends retained messages.
            await late.client.subscribeAsync("r/#", { qos: 1 });
            assert.deepEqual((await late.inbox.take(4)).slice(2).map((m) => m.topic).sort(), ["r/a", "r/b"]);
          }
          await endJs(late.client);

          await pub.client.publishAsync("r/a", "", { qos: 1, retain: true }); // delete
          const deleteForward = await live.inbox.take(5);
          assert.equal(
            deleteForward[4].payload,
            "",
            "the empty retained publish is forwarded like any other",
          );
          const later = await connectJs(port, { ...base, clientId: `rlater-${version}` });
          await later.client.subscribeAsync("r/#", { qos: 1 });
          const left = await later.inbox.take(1);
          assert.deepEqual(left.map((m) => m.topic), ["r/b"]);
          await later.inbox.expectCount(1, 200); // the empty message is not stored
          await endJs(later.client);
        } finally {
          await endJs(pub.client, live.client);
        }
      });
    },
  );

  Deno.test(`${v}: ${tag.willOnClose} the will is published when the socket dies; ${tag.willDiscarded} not after DISCONNECT`, async () => {
    await withBroker("", async ({ port }) => {
      const watcher = await connectJs(port, { ...base, clientId: `watch-${version}` });
      try {
        await watcher.client.subscribeAsync("will/#", { qos: 1 });
        const polite = await connectJs(port, {
          ...base,
          clientId: `polite-${version}`,
          will: { topic: "will/polite", payload: "should not be sent", qos: 1, retain: false },
        });
        await disconnectJs(polite.client);

        const doomed = await connectJs(port, {
          ...base,
          clientId: `doomed-${version}`,
          will: { topic: "will/doomed", payload: "gone", qos: 1, retain: false },
        });
        doomed.client.stream.destroy(); // abnormal close: no DISCONNECT
        const [will] = await watcher.inbox.take(1);
        assert.deepEqual([will.topic, will.payload, will.qos, will.retain], [
          "will/doomed",
          "gone",
          1,
          false,
        ]);
        await watcher.inbox.expectCount(1, 300);
        await endJs(doomed.client);
      } finally {
        await endJs(watcher.client);
      }
    });
  });

  Deno.test(`${v}: ${tag.takeover} takeover: a second client with the same id disconnects the first`, async () => {
    await withBroker("", async ({ port }) => {
      const first = await connectJs(port, { ...base, clientId: `twin-${version}` });
      let disconnectReason: number | undefined;
      first.client.on("disconnect", (packet) => {
        disconnectReason = packet.reasonCode;
      });
      const firstClosed = closed(first.client);
      const second = await connectJs(port, { ...base, clientId: `twin-${version}` });
      try {
        await firstClosed;
        if (version === 5) assert.equal(disconnectReason, 0x8e, "v5: DISCONNECT 0x8E Session taken over");
        else assert.equal(disconnectReason, undefined, "3.1.1 has no server DISCONNECT");
        // The new connection works.
        await second.client.subscribeAsync("tw", { qos: 1 });
        await second.client.publishAsync("tw", "alive", { qos: 1 });
        assert.deepEqual((await second.inbox.take(1)).map((m) => m.payload), ["alive"]);
      } finally {
        await endJs(first.client, second.client);
      }
    });
  });

  Deno.test(`${v}: ${tag.offlineQueue} persistent session queues QoS 1/2 while offline, delivered in order ${tag.ordered}`, async () => {
    await withBroker("", async ({ port }) => {
      const id = `offline-${version}`;
      const first = await connectJs(port, persistent(version, id));
      await first.client.subscribeAsync({ "off/1": { qos: 1 }, "off/2": { qos: 2 } });
      await disconnectJs(first.client);

      const pub = await connectJs(port, { ...base, clientId: `offpub-${version}` });
      try {
        for (let i = 0; i < 5; i++) await pub.client.publishAsync("off/1", `a${i}`, { qos: 1 });
        for (let i = 0; i < 3; i++) await pub.client.publishAsync("off/2", `b${i}`, { qos: 2 });
        await pub.client.publishAsync("off/1", "qos0 not queued", { qos: 0 });

        const again = await connectJs(port, persistent(version, id));
        assert.equal(again.connack.sessionPresent, true);
        const got = await again.inbox.take(8);
        assert.deepEqual(got.filter((m) => m.topic === "off/1").map((m) => `${m.payload}@${m.qos}`), [
          "a0@1",
          "a1@1",
          "a2@1",
          "a3@1",
          "a4@1",
        ]);
        assert.deepEqual(got.filter((m) => m.topic === "off/2").map((m) => `${m.payload}@${m.qos}`), [
          "b0@2",
          "b1@2",
          "b2@2",
        ]);
        await again.inbox.expectCount(8, 300);
        await disconnectJs(again.client);

        // Everything was acknowledged: a third connection gets nothing more.
        const third = await connectJs(port, persistent(version, id));
        await third.inbox.expectCount(0, 300);
        await endJs(third.client);
      } finally {
        await endJs(pub.client);
      }
    });
  });

  Deno.test(`${v}: large payloads (300 KiB) survive QoS 1 and 2 in both directions, byte for byte`, async () => {
    await withBroker("", async ({ port }) => {
      const sub = await connectJs(port, { ...base, clientId: `big-sub-${version}` });
      const pub = await connectJs(port, { ...base, clientId: `big-pub-${version}` });
      try {
        await sub.client.subscribeAsync("big/#", { qos: 2 });
        const payload = new Uint8Array(300 * 1024);
        for (let i = 0; i < payload.length; i++) payload[i] = (i * 31 + 7) & 0xff;
        const text = Array.from(payload.subarray(0, 64), (b) => b.toString(16)).join("");
        for (const qos of [1, 2] as const) {
          await pub.client.publishAsync(`big/${qos}`, Buffer.from(payload), { qos });
        }
        const got = await sub.inbox.take(2);
        for (const [i, m] of got.entries()) {
          assert.equal(m.topic, `big/${i + 1}`);
          assert.equal(m.qos, i + 1);
          const bytes = m.packet.payload as Uint8Array;
          assert.equal(bytes.length, payload.length);
          assert.equal(Array.from(bytes.subarray(0, 64), (b) => b.toString(16)).join(""), text);
          assert.ok(bytes.every((b, k) => b === payload[k]), "payload bytes differ");
        }
      } finally {
        await endJs(sub.client, pub.client);
      }
    });
  });

  Deno.test(`${v}: keep alive 1 s: MQTT.js PINGREQs keep the connection open [MQTT-3.1.2-24]`, async () => {
    await withBroker("", async ({ port }) => {
      const c = await connectJs(port, { ...base, clientId: `ka-${version}`, keepalive: 1 });
      let pings = 0;
      c.client.on("packetreceive", (packet) => {
        if (packet.cmd === "pingresp") pings++;
      });
      try {
        await sleep(2600);
        assert.ok(!c.client.disconnected, "still connected after 2.6 × keep alive");
        assert.ok(pings >= 1, `PINGRESP received (${pings})`);
        await c.client.subscribeAsync("ka", { qos: 1 });
        await c.client.publishAsync("ka", "still here", { qos: 1 });
        assert.deepEqual((await c.inbox.take(1)).map((m) => m.payload), ["still here"]);
      } finally {
        await endJs(c.client);
      }
    });
  });

  Deno.test(`${v}: many clients in parallel, fan-out of one QoS 1 message to all of them`, async () => {
    await withBroker("", async ({ port }) => {
      const clients = await Promise.all(
        Array.from({ length: 20 }, (_, i) => connectJs(port, { ...base, clientId: `fan-${version}-${i}` })),
      );
      try {
        await Promise.all(clients.map((c) => c.client.subscribeAsync("fan/#", { qos: 1 })));
        await clients[0].client.publishAsync("fan/out", "hello all", { qos: 1 });
        const got = await withTimeout(Promise.all(clients.map((c) => c.inbox.take(1))), 6000, "fan-out");
        assert.equal(got.filter(([m]) => m.payload === "hello all" && m.qos === 1).length, 20);
      } finally {
        await endJs(...clients.map((c) => c.client));
      }
    });
  });
}
