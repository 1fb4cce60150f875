/** Two or three cluster nodes in one process, one in-memory log, a fake clock: no sockets, no sleeps. */
import assert from "node:assert/strict";
import { encodeEvent } from "../../src/cluster/events.ts";
import { MqttError, ReasonCode } from "../../src/codec/mod.ts";
import { MemoryLog } from "../../src/storage/memory/memory_log.ts";
import { FakeClient, goneNodePublish, TestCluster } from "./support.ts";

Deno.test("cluster: a QoS 1 publish on one node reaches a subscriber on the other exactly once", async () => {
  const cluster = new TestCluster();
  try {
    const [a, b] = [await cluster.start("a"), await cluster.start("b")];
    const sub = new FakeClient(b, "sub");
    await sub.connect();
    sub.subscribe("t/#", 1);
    const pub = new FakeClient(a, "pub");
    await pub.connect();
    await cluster.settle();
    pub.publish("t/1", "hello", 1, 7);
    const [ack] = await pub.acks();
    assert.deepEqual([ack.type, ack.packetId, ack.reasonCode], ["puback", 7, 0]);
    await cluster.settle();
    assert.deepEqual(sub.delivered().map((d) => [d.topic, d.payload, d.qos]), [["t/1", "hello", 1]]);
    assert.deepEqual(pub.delivered(), [], "the publisher is not subscribed");
  } finally {
    await cluster.stop();
  }
});

Deno.test("cluster: a node's metrics and status count what it appended and applied, the nodes it sees, and whether the log is up", async () => {
  const cluster = new TestCluster();
  try {
    const [a, b] = [await cluster.start("a"), await cluster.start("b")];
    const sub = new FakeClient(b, "sub");
    await sub.connect();
    sub.subscribe("t/#", 1);
    const pub = new FakeClient(a, "pub");
    await pub.connect();
    await cluster.settle();
    const before = { a: a.metrics(), b: b.metrics() };
    for (let i = 1; i <= 3; i++) pub.publish("t/1", `m${i}`, 1, i);
    await pub.acks();
    await cluster.settle();
    assert.equal(sub.delivered().length, 3);
    const after = { a: a.metrics(), b: b.metrics() };
    assert.equal(after.a.log.entriesAppended - before.a.log.entriesAppended, 3, "the three publishes, by a");
    assert.equal(after.b.log.entriesAppended, before.b.log.entriesAppended, "b appended nothing for them");
    for (const node of ["a", "b"] as const) {
      assert.ok(
        after[node].log.entriesApplied - before[node].log.entriesApplied >= 3,
        `${node} applied them`,
      );
      assert.equal(after[node].up, true);
      assert.equal(after[node].nodes, 2);
      assert.equal(after[node].log.pendingBytes, 0);
    }
    const status = a.status();
    assert.deepEqual(
      status.nodes.map((node) => [node.nodeId, node.self, node.alive]),
      [["a", true, true], ["b", false, true]],
      "itself first, then the node it heard of",
    );
    assert.deepEqual(status.log, a.metrics().log);
    cluster.service.setReachable(false);
    assert.equal(a.metrics().up, false, "the log unreachable: down");
    assert.equal(a.status().up, false);
    cluster.service.setReachable(true);
  } finally {
    await cluster.stop();
  }
});

Deno.test("cluster: a persistent session moves to another node with its queue, packet ids and QoS 2 stage", async () => {
  const cluster = new TestCluster();
  try {
    const [a, b] = [await cluster.start("a"), await cluster.start("b")];
    const onA = new FakeClient(a, "device");
    await onA.connect({ cleanStart: false, expiry: 3600, receiveMaximum: 2 });
    onA.subscribe("cmd/#", 2);
    const pub = new FakeClient(b, "pub");
    await pub.connect();
    await cluster.settle();
    for (const n of [1, 2, 3, 4]) pub.publish("cmd/x", `m${n}`, 2, n);
    await cluster.settle();
    const first = onA.delivered();
    assert.deepEqual(first.map((d) => [d.payload, d.packetId]), [["m1", 1], ["m2", 2]], "window of 2");
    onA.ack(1, "pubrec"); // m1 reaches the PUBREL stage; m2 stays unacknowledged
    await cluster.settle();
    assert.equal(onA.sent("pubrel").length, 1);
    onA.disconnect();
    await cluster.settle();
    pub.publish("cmd/x", "m5", 2, 5);
    await cluster.settle();

    const onB = new FakeClient(b, "device");
    const resumed = await onB.connect({ cleanStart: false, expiry: 3600, receiveMaximum: 2 });
    assert.equal(resumed.sessionPresent, true);
    const pubrels = onB.sent("pubrel");
    assert.deepEqual(pubrels.map((p) => (p as { packetId: number }).packetId), [1], "PUBREL for m1 again");
    assert.deepEqual(onB.delivered().map((d) => [d.payload, d.packetId, d.dup]), [["m2", 2, true]]);
    onB.ack(1, "pubcomp");
    onB.ack(2, "pubrec");
    onB.ack(2, "pubcomp");
    await cluster.settle();
    assert.deepEqual(onB.delivered().map((d) => d.payload), ["m2", "m3", "m4"]);
    for (const id of [3, 4]) {
      onB.ack(id, "pubrec");
      await cluster.settle();
      onB.ack(id, "pubcomp");
    }
    await cluster.settle();
    assert.deepEqual(onB.delivered().map((d) => d.payload), ["m2", "m3", "m4", "m5"], "in order, once each");
  } finally {
    await cluster.stop();
  }
});

Deno.test("cluster: one client id, one connection: a claim on another node takes over and fences the old holder", async () => {
  const cluster = new TestCluster();
  try {
    const [a, b] = [await cluster.start("a"), await cluster.start("b")];
    const old = new FakeClient(a, "dup");
    const stale = await old.connect({ cleanStart: false, expiry: 60 });
    old.subscribe("x", 1);
    await cluster.settle();
    const fresh = new FakeClient(b, "dup");
    const claimed = await fresh.connect({ cleanStart: false, expiry: 60 });
    await cluster.settle();
    assert.equal(old.takenOver, true, "the connection on node a was told to go (0x8E)");
    assert.ok(claimed.epoch > stale.epoch);
    assert.equal(claimed.sessionPresent, true);

    // Whatever the old holder still sends is refused on every node.
    const refused = a.receive(stale, {
      type: "unsubscribe",
      packetId: 9,
      topicFilters: ["x"],
      properties: {},
    });
    await cluster.settle();
    assert.deepEqual(refused, []);
    const pub = new FakeClient(a, "pub");
    await pub.connect();
    pub.publish("x", "still subscribed", 1, 1);
    await cluster.settle();
    assert.deepEqual(fresh.delivered().map((d) => d.payload), ["still subscribed"]);
    const direct = b.broker.receive(stale, { type: "pingreq" });
    assert.deepEqual(direct.map((e) => e.kind === "close" && e.reasonCode), [0x8e]);
  } finally {
    await cluster.stop();
  }
});

Deno.test("cluster: a QoS 2 publish from a persistent session reaches a subscriber on another node exactly once", async () => {
  const cluster = new TestCluster();
  try {
    const [a, b] = [await cluster.start("a"), await cluster.start("b")];
    const sub = new FakeClient(b, "sub");
    await sub.connect();
    sub.subscribe("q2", 2);
    const pub = new FakeClient(a, "pub");
    await pub.connect({ cleanStart: false, expiry: 60 });
    await cluster.settle();
    pub.publish("q2", "once", 2, 3);
    await cluster.settle();
    pub.publish("q2", "once", 2, 3); // a resend before PUBREL is not routed again [MQTT-4.3.3-10]
    await cluster.settle();
    const acks = await pub.acks();
    assert.deepEqual(acks.map((ack) => [ack.type, ack.packetId]), [["pubrec", 3]]);
    assert.equal(pub.sent("pubrec").length, 1, "the resend is acknowledged again");
    assert.deepEqual(sub.delivered().map((d) => [d.payload, d.qos]), [["once", 2]]);
  } finally {
    await cluster.stop();
  }
});

Deno.test("cluster: when a node dies its clients' wills go out once, after the node timeout", async () => {
  const cluster = new TestCluster();
  try {
    const [a, b, c] = [await cluster.start("a"), await cluster.start("b"), await cluster.start("c")];
    const will = {
      topic: "status/dev",
      payload: new TextEncoder().encode("gone"),
      qos: 1 as const,
      retain: false,
      properties: {},
    };
    const device = new FakeClient(a, "dev");
    await device.connect({ will });
    const onB = new FakeClient(b, "watch-b");
    await onB.connect();
    onB.subscribe("status/#", 1);
    const onC = new FakeClient(c, "watch-c");
    await onC.connect({ cleanStart: false, expiry: 600 });
    onC.subscribe("status/#", 1);
    await cluster.settle();
    await cluster.kill(a);
    await cluster.advance(3000);
    assert.deepEqual(onB.delivered(), [], "not before the timeout");
    await cluster.advance(5000);
    assert.deepEqual(onB.delivered().map((d) => d.payload), ["gone"]);
    assert.deepEqual(onC.delivered().map((d) => d.payload), ["gone"]);
    await cluster.advance(10_000);
    assert.equal(onB.delivered().length + onC.delivered().length, 2, "exactly once each");
  } finally {
    await cluster.stop();
  }
});

Deno.test("cluster: Will Delay is honoured across nodes and cancelled by a reconnect on another node", async () => {
  const cluster = new TestCluster();
  try {
    const [a, b] = [await cluster.start("a"), await cluster.start("b")];
    const watch = new FakeClient(b, "watch");
    await watch.connect();
    watch.subscribe("w/#", 0);
    const will = (payload: string) => ({
      topic: "w/dev",
      payload: new TextEncoder().encode(payload),
      qos: 0 as const,
      retain: false,
      properties: { willDelayInterval: 10 },
    });
    const dev = new FakeClient(a, "dev");
    await dev.connect({ cleanStart: false, expiry: 60, will: will("first") });
    dev.disconnect(true);
    await cluster.settle();
    await cluster.advance(5000);
    const back = new FakeClient(b, "dev");
    await back.connect({ cleanStart: false, expiry: 60, will: will("second") });
    await cluster.advance(20_000);
    assert.deepEqual(watch.delivered(), [], "the reconnect cancelled the delayed will");
    back.disconnect(true);
    await cluster.settle();
    await cluster.advance(9000);
    assert.deepEqual(watch.delivered(), []);
    await cluster.advance(2000);
    assert.deepEqual(watch.delivered().map((d) => d.payload), ["second"]);
  } finally {
    await cluster.stop();
  }
});

Deno.test("cluster: a persistent session expires on every node at its Session Expiry Interval", async () => {
  const cluster = new TestCluster();
  try {
    const [a, b] = [await cluster.start("a"), await cluster.start("b")];
    const dev = new FakeClient(a, "expiring");
    await dev.connect({ cleanStart: false, expiry: 30 });
    dev.subscribe("e", 1);
    dev.disconnect();
    await cluster.settle();
    await cluster.advance(29_000);
    assert.ok(a.broker.session("expiring") && b.broker.session("expiring"));
    await cluster.advance(2000);
    assert.equal(a.broker.session("expiring"), undefined);
    assert.equal(b.broker.session("expiring"), undefined);
    const again = new FakeClient(b, "expiring");
    assert.equal((await again.connect({ cleanStart: false, expiry: 30 })).sessionPresent, false);
  } finally {
    await cluster.stop();
  }
});

Deno.test("cluster: retained messages set on one node are seen by subscribers on the others", async () => {
  const cluster = new TestCluster();
  try {
    const [a, b] = [await cluster.start("a"), await cluster.start("b")];
    const pub = new FakeClient(a, "pub");
    await pub.connect();
    pub.publish("r/1", "kept", 1, 1, true);
    await pub.acks();
    await cluster.settle();
    const sub = new FakeClient(b, "sub");
    await sub.connect();
    sub.subscribe("r/#", 1);
    assert.deepEqual(sub.delivered().map((d) => d.payload), ["kept"]);
  } finally {
    await cluster.stop();
  }
});

Deno.test("cluster: a $share group with members on three nodes gets each message exactly once, spread over them", async () => {
  const cluster = new TestCluster();
  try {
    const nodes = [await cluster.start("a"), await cluster.start("b"), await cluster.start("c")];
    const members = [
      new FakeClient(nodes[0], "m-a"),
      new FakeClient(nodes[1], "m-b"),
      new FakeClient(nodes[2], "m-c"),
    ];
    await members[0].connect();
    await members[1].connect();
    await members[2].connect({ cleanStart: false, expiry: 60 }); // a persistent member too
    for (const member of members) member.subscribe("$share/g/jobs/#", 1);
    const pub = new FakeClient(nodes[0], "pub");
    await pub.connect();
    await cluster.settle();
    for (let i = 0; i < 30; i++) {
      pub.publish(`jobs/${i}`, `${i}`, 1, i + 1);
      await cluster.settle();
      // acknowledge as a client would, so the windows never fill
      for (const member of members) {
        for (const d of member.delivered().slice(member.acked)) member.ack(d.packetId!);
        member.acked = member.delivered().length;
      }
      await cluster.settle();
    }
    const got = members.map((member) => member.delivered().map((d) => Number(d.payload)));
    const all = got.flat().sort((x, y) => x - y);
    assert.deepEqual(all, Array.from({ length: 30 }, (_, i) => i), "each message to exactly one member");
    for (const [index, share] of got.entries()) {
      assert.ok(share.length >= 5, `member ${index} got ${share.length}`);
    }

    members[1].disconnect();
    await cluster.settle();
    pub.publish("jobs/after", "after", 1, 99);
    await cluster.settle();
    const after = members.filter((member) => member.delivered().some((d) => d.payload === "after"));
    assert.equal(after.length, 1, "the group continues without the member that left");
    assert.notEqual(after[0], members[1]);
  } finally {
    await cluster.stop();
  }
});

Deno.test("cluster: a node that joins later gets every retained message and persistent session, and serves them", async () => {
  const cluster = new TestCluster();
  try {
    const [a, b] = [await cluster.start("a"), await cluster.start("b")];
    const device = new FakeClient(a, "device");
    await device.connect({ cleanStart: false, expiry: 3600 });
    device.subscribe("cmd/#", 1);
    device.disconnect();
    const pub = new FakeClient(b, "pub");
    await pub.connect();
    pub.publish("status/1", "on", 1, 1, true);
    pub.publish("cmd/1", "queued while away", 1, 2);
    await pub.acks();
    await cluster.settle();

    const c = await cluster.start("c");
    const watcher = new FakeClient(c, "watcher");
    await watcher.connect();
    watcher.subscribe("status/#", 1);
    assert.deepEqual(watcher.delivered().map((d) => d.payload), ["on"], "retained reached the new node");

    const resumed = new FakeClient(c, "device");
    assert.equal((await resumed.connect({ cleanStart: false, expiry: 3600 })).sessionPresent, true);
    assert.deepEqual(resumed.delivered().map((d) => d.payload), ["queued while away"]);
    pub.publish("cmd/2", "live", 1, 3);
    await cluster.settle();
    assert.deepEqual(resumed.delivered().map((d) => d.payload), ["queued while away", "live"]);
  } finally {
    await cluster.stop();
  }
});

Deno.test("cluster: a node restarted with its disk resumes from its place in the log; with an empty disk it rejoins", async () => {
  const cluster = new TestCluster();
  try {
    const [a, b] = [await cluster.start("a"), await cluster.start("b")];
    const sub = new FakeClient(a, "sub");
    await sub.connect({ cleanStart: false, expiry: 600 });
    sub.subscribe("t", 1);
    sub.disconnect();
    await cluster.settle();
    await cluster.kill(b);
    const pub = new FakeClient(a, "pub");
    await pub.connect();
    pub.publish("t", "while b was down", 1, 1);
    await pub.acks();
    await cluster.settle();

    const restarted = await cluster.start("b");
    const onB = new FakeClient(restarted, "sub");
    assert.equal((await onB.connect({ cleanStart: false, expiry: 600 })).sessionPresent, true);
    assert.deepEqual(onB.delivered().map((d) => d.payload), ["while b was down"], "b caught up from the log");
    onB.ack(onB.delivered()[0].packetId!);
    onB.disconnect();
    await cluster.settle();

    await cluster.kill(restarted);
    cluster.forget("b");
    pub.publish("t", "while b was gone for good", 1, 2);
    await pub.acks();
    await cluster.settle();
    const fresh = await cluster.start("b");
    const again = new FakeClient(fresh, "sub");
    assert.equal((await again.connect({ cleanStart: false, expiry: 600 })).sessionPresent, true);
    assert.deepEqual(
      again.delivered().map((d) => d.payload),
      ["while b was gone for good"],
      "filled from node a",
    );
  } finally {
    await cluster.stop();
  }
});

Deno.test("cluster: while the log is unreachable a node serves its own subscribers, refuses what needs the cluster, and a refused QoS 2 message reaches nobody", async () => {
  const cluster = new TestCluster();
  try {
    const [a] = [await cluster.start("a"), await cluster.start("b")];
    const local = new FakeClient(a, "local");
    await local.connect();
    local.subscribe("t", 2);
    const pub = new FakeClient(a, "pub");
    await pub.connect();
    await cluster.settle();
    cluster.service.setReachable(false);
    pub.publish("t", "qos1", 1, 1);
    pub.publish("t", "qos2", 2, 2);
    const outcomes = await Promise.allSettled(
      pub.effects.flatMap((effect) => effect.kind === "ack" ? [effect.durable ?? Promise.resolve()] : []),
    );
    assert.deepEqual(outcomes.map((outcome) => outcome.status), ["rejected", "rejected"], "no PUBACK/PUBREC");
    assert.deepEqual(
      local.delivered().map((d) => d.payload),
      ["qos1"],
      "QoS 1 served locally; QoS 2 held back",
    );
    assert.equal(a.health().ok, false);
    cluster.service.setReachable(true);
    pub.publish("t", "after", 1, 3);
    await pub.acks().catch(() => {});
    await cluster.settle();
    assert.deepEqual(local.delivered().map((d) => d.payload), ["qos1", "after"]);
  } finally {
    await cluster.stop();
  }
});

Deno.test("cluster: message expiry counts the same on every node (a message expired while queued is not delivered)", async () => {
  const cluster = new TestCluster();
  try {
    const [a, b] = [await cluster.start("a"), await cluster.start("b")];
    for (const id of ["early", "late"]) {
      const device = new FakeClient(a, id);
      await device.connect({ cleanStart: false, expiry: 600 });
      device.subscribe("e/#", 1);
      device.disconnect();
    }
    const pub = new FakeClient(b, "pub");
    await pub.connect();
    pub.send({
      type: "publish",
      topic: "e/short",
      payload: new TextEncoder().encode("short"),
      qos: 1,
      retain: false,
      dup: false,
      packetId: 1,
      properties: { messageExpiryInterval: 5 },
    });
    pub.publish("e/long", "long", 1, 2);
    await pub.acks();
    await cluster.settle();
    await cluster.advance(3000);
    const early = new FakeClient(b, "early");
    await early.connect({ cleanStart: false, expiry: 600 });
    assert.deepEqual(early.delivered().map((d) => d.payload), ["short", "long"], "3 s: not expired yet");
    await cluster.advance(3000);
    const late = new FakeClient(a, "late");
    await late.connect({ cleanStart: false, expiry: 600 });
    assert.deepEqual(late.delivered().map((d) => d.payload), ["long"], "6 s: the 5 s message expired");
  } finally {
    await cluster.stop();
  }
});

Deno.test("cluster: a publish that lands twice in the log (a retried send) is delivered once: its origin tells", async () => {
  const cluster = new TestCluster();
  const retrier = new MemoryLog(cluster.service, { nodeId: "retrier" });
  try {
    const b = await cluster.start("b");
    const sub = new FakeClient(b, "sub");
    await sub.connect();
    sub.subscribe("t/#", 1);
    await cluster.settle();
    await retrier.start();
    for (
      const event of [
        goneNodePublish(1, "first"),
        goneNodePublish(1, "first"),
        goneNodePublish(2, "second"),
        goneNodePublish(1, "first"),
      ]
    ) {
      await retrier.append(encodeEvent(cluster.clock.now(), event));
    }
    await cluster.settle();
    assert.deepEqual(sub.delivered().map((d) => d.payload), ["first", "second"]);
  } finally {
    await retrier.stop();
    await cluster.stop();
  }
});

Deno.test("cluster: the per-address cap on persistent sessions counts claims made on every node", async () => {
  const cluster = new TestCluster();
  const quota = { maxSessions: 0, maxPersistentPerUser: 0, maxPersistentPerAddress: 1 };
  try {
    const [a, b] = [await cluster.start("a", quota), await cluster.start("b", quota)];
    const first = new FakeClient(a, "first");
    await first.connect({ cleanStart: false, expiry: 3600, address: "192.0.2.7" });
    const second = new FakeClient(b, "second");
    await assert.rejects(
      second.connect({ cleanStart: false, expiry: 3600, address: "192.0.2.7" }),
      (error: unknown) => error instanceof MqttError && error.reasonCode === ReasonCode.QuotaExceeded,
    );
    const elsewhere = new FakeClient(b, "elsewhere");
    await elsewhere.connect({ cleanStart: false, expiry: 3600, address: "192.0.2.8" });
    for (const node of [a, b]) {
      assert.deepEqual(
        [...["first", "second", "elsewhere"]].map((id) => node.broker.session(id) !== undefined),
        [
          true,
          false,
          true,
        ],
        `the same sessions on ${node.nodeId}`,
      );
    }
  } finally {
    await cluster.stop();
  }
});

Deno.test("cluster: QoS 0 publishes and session timers while the log is unreachable neither crash the node nor get lost", async () => {
  const cluster = new TestCluster();
  try {
    const [a, b] = [await cluster.start("a"), await cluster.start("b")];
    const dev = new FakeClient(a, "expiring");
    await dev.connect({ cleanStart: false, expiry: 2 });
    dev.disconnect();
    const pub = new FakeClient(a, "pub");
    await pub.connect();
    await cluster.settle();
    cluster.service.setReachable(false);
    pub.publish("t", "lost in the outage", 0);
    await cluster.advance(3000); // the expiry timers come due: their events cannot be appended
    pub.publish("t", "refused", 1, 1);
    // The QoS 1 append fails last; the QoS 0 forward and the timers' appends (an unhandled rejection each,
    // which ends the test as it would end the broker) have failed before it.
    await assert.rejects(pub.acks());
    assert.ok(a.broker.session("expiring") && b.broker.session("expiring"), "expiry waits for the log");
    cluster.service.setReachable(true);
    await cluster.advance(1000); // the timers are appended again
    await cluster.settle();
    assert.equal(a.broker.session("expiring"), undefined);
    assert.equal(b.broker.session("expiring"), undefined);
  } finally {
    await cluster.stop();
  }
});
