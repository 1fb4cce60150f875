/**
 * When a node stores how far it applied the log: with whatever the applied entries changed in its
 * storage, and not for entries that changed nothing there (one commit per received batch was most of the
 * time a node took to apply one).
 */
import assert from "node:assert/strict";
import { FakeClient, TestCluster } from "./support.ts";

Deno.test("cluster: publishes that reach only transient sessions do not store the applied position per batch", async () => {
  const cluster = new TestCluster();
  try {
    const [a, b] = [await cluster.start("a"), await cluster.start("b")];
    const sub = new FakeClient(b, "sub");
    await sub.connect();
    sub.subscribe("t/#", 0);
    const pub = new FakeClient(a, "pub");
    await pub.connect();
    await cluster.settle();
    const before = cluster.metaSaves.get("b") ?? 0;
    for (let i = 0; i < 20; i++) {
      pub.publish("t/1", `m${i}`, 1, i + 1);
      await cluster.settle(); // each publish is a batch of its own
    }
    assert.equal(sub.delivered().length, 20);
    const saves = (cluster.metaSaves.get("b") ?? 0) - before;
    assert.ok(
      saves <= 1,
      `b stored its applied position ${saves} times for 20 batches that changed nothing stored`,
    );
  } finally {
    await cluster.stop();
  }
});

Deno.test("cluster: a publish queued for a persistent session is stored together with the applied position", async () => {
  const cluster = new TestCluster();
  try {
    const [a, b] = [await cluster.start("a"), await cluster.start("b")];
    const device = new FakeClient(b, "device");
    await device.connect({ cleanStart: false, expiry: 3600 });
    device.subscribe("cmd/#", 1);
    const pub = new FakeClient(a, "pub");
    await pub.connect();
    await cluster.settle();
    for (let i = 0; i < 3; i++) {
      pub.publish("cmd/x", `m${i}`, 1, i + 1);
      await cluster.settle();
      assert.equal(
        cluster.storedApplied("b"),
        String(b.appliedPosition),
        `after publish ${i}, b's storage holds the position of the batch that queued it`,
      );
    }
    assert.deepEqual(device.delivered().map((d) => d.payload), ["m0", "m1", "m2"]);
  } finally {
    await cluster.stop();
  }
});
