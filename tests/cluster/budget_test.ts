/** The memory budget in a cluster: a node over it takes no new message from its persistent clients either. */
import assert from "node:assert/strict";
import { MemoryBudget } from "../../src/broker/mod.ts";
import { StorageError } from "../../src/storage/mod.ts";
import { FakeClient, TestCluster } from "./support.ts";

/** A budget that is over: 100 bytes allowed, 200 in use. */
function exceededBudget(): MemoryBudget {
  const budget = new MemoryBudget(100);
  budget.sample(200);
  return budget;
}

Deno.test("cluster: over its memory budget a node refuses its persistent clients' new messages with 0x97, and no node gets them", async () => {
  const cluster = new TestCluster();
  try {
    const budget = exceededBudget();
    const a = await cluster.start("a", undefined, budget);
    const b = await cluster.start("b");
    const sub = new FakeClient(b, "sub");
    await sub.connect();
    sub.subscribe("m", 1);
    const pub = new FakeClient(a, "pub");
    await pub.connect({ cleanStart: false, expiry: 60 });
    await cluster.settle();
    const logged = cluster.service.length;
    pub.publish("m", "qos1", 1, 5);
    pub.publish("m", "qos2", 2, 6);
    pub.publish("m", "qos0", 0);
    await cluster.settle();
    assert.equal(cluster.service.length, logged, "nothing went to the log");
    const acks = pub.effects.flatMap((effect) => effect.kind === "ack" ? [effect] : []);
    assert.deepEqual(acks.map((ack) => [ack.type, ack.packetId]), [["puback", 5], [
      "pubrec",
      6,
    ]]);
    for (const ack of acks) {
      await assert.rejects(
        ack.durable!,
        (error) => error instanceof StorageError && error.reasonCode === 0x97,
      );
    }
    assert.equal(budget.refused, 3);
    assert.deepEqual(sub.delivered(), []);
    assert.equal(pub.handle!.session.awaitingRelease.has(6), false, "a refused QoS 2 id is free again");

    budget.sample(50); // under 90% of the limit: messages are taken again
    pub.publish("m", "after", 1, 7);
    await cluster.settle();
    assert.deepEqual(sub.delivered().map((d) => d.payload), ["after"]);
  } finally {
    await cluster.stop();
  }
});

Deno.test("cluster: over its memory budget a node still takes a retained delete and a resent QoS 2 it already took", async () => {
  const cluster = new TestCluster();
  try {
    const budget = new MemoryBudget(100);
    const a = await cluster.start("a", undefined, budget);
    const b = await cluster.start("b");
    const pub = new FakeClient(a, "pub");
    await pub.connect({ cleanStart: false, expiry: 60 });
    pub.publish("r", "kept", 1, 1, true);
    pub.publish("q", "taken", 2, 2);
    await cluster.settle();
    budget.sample(200);
    const logged = cluster.service.length;
    pub.publish("q", "taken", 2, 2); // the resend before PUBREL
    pub.publish("r", "", 1, 3, true); // deletes the retained message
    await cluster.settle();
    assert.equal(cluster.service.length, logged + 2, "both went to the log");
    assert.equal(budget.refused, 0);
    const late = new FakeClient(b, "late");
    await late.connect();
    late.subscribe("r", 1);
    await cluster.settle();
    assert.deepEqual(late.delivered(), [], "the retained message is gone on the other node");
  } finally {
    await cluster.stop();
  }
});
