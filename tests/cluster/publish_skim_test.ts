/**
 * A node reads only the topic, retain flag and origin of a publish that reaches nobody there; these tests
 * show that what it skips still counts: a retried copy is recognised later, and a subscription made
 * earlier in the same batch of the log gets the message.
 */
import assert from "node:assert/strict";
import { encodeEvent } from "../../src/cluster/events.ts";
import { encode } from "../../src/codec/mod.ts";
import { MemoryLog } from "../../src/storage/memory/memory_log.ts";
import { FakeClient, goneNodePublish as publish, TestCluster } from "./support.ts";

Deno.test("cluster: a publish that reached nobody on a node still counts when a retried copy lands after a subscribe", async () => {
  const cluster = new TestCluster();
  const retrier = new MemoryLog(cluster.service, { nodeId: "retrier" });
  try {
    const b = await cluster.start("b");
    await retrier.start();
    await retrier.append(encodeEvent(cluster.clock.now(), publish(1, "first")));
    await cluster.settle(); // b has no subscriber yet: "first" reaches nobody
    const sub = new FakeClient(b, "sub");
    await sub.connect();
    sub.subscribe("t/#", 1);
    await cluster.settle();
    await retrier.append(encodeEvent(cluster.clock.now(), publish(1, "first"))); // the retried send
    await retrier.append(encodeEvent(cluster.clock.now(), publish(2, "second")));
    await cluster.settle();
    assert.deepEqual(sub.delivered().map((d) => d.payload), ["second"]);
  } finally {
    await retrier.stop();
    await cluster.stop();
  }
});

Deno.test("cluster: a subscribe and a publish in one batch of the log: the publish reaches the new subscription", async () => {
  const cluster = new TestCluster();
  const other = new MemoryLog(cluster.service, { nodeId: "other" });
  try {
    const b = await cluster.start("b");
    const device = new FakeClient(b, "device");
    const opened = await device.connect({ cleanStart: false, expiry: 3600 });
    await cluster.settle();
    await other.start();
    const subscribe = encode({
      type: "subscribe",
      packetId: 1,
      subscriptions: [{
        topicFilter: "t/#",
        qos: 1,
        noLocal: false,
        retainAsPublished: false,
        retainHandling: 0,
      }],
      properties: {},
    }, 5);
    const at = cluster.clock.now();
    const appended = [
      other.append(
        encodeEvent(at, {
          kind: "packet",
          clientId: "device",
          epoch: opened.epoch,
          version: 5,
          frame: subscribe,
        }),
      ),
      other.append(encodeEvent(at, publish(1, "right after"))),
    ];
    await Promise.all(appended);
    await cluster.settle();
    assert.deepEqual(device.delivered().map((d) => d.payload), ["right after"]);
  } finally {
    await other.stop();
    await cluster.stop();
  }
});
