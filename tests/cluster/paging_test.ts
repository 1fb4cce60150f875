/**
 * A persistent session's queue read back page by page in a cluster: every node runs the session and reads
 * its pages from its own store, at its own pace, yet all of them send the same messages under the same
 * packet ids (the client's acknowledgements reach every node through the log).
 */
import assert from "node:assert/strict";
import type { ClusterNode } from "../../src/cluster/mod.ts";
import { FakeClient, TestCluster } from "./support.ts";

const MESSAGES = 40;
/** 40 × 256 KiB: more than two pages of 4 MiB. */
const BODY = "x".repeat(256 * 1024);

/** The in-flight messages of `clientId`'s session on `node`: packet id and topic, in send order. */
function inflight(node: ClusterNode, clientId: string): [number, string][] {
  const session = node.broker.session(clientId)!;
  return [...session.outbound.inflight].map(([packetId, entry]) => [packetId, entry.message.topic]);
}

Deno.test("cluster: a long queue resumed on another node comes back page by page, the same on every node", async () => {
  const cluster = new TestCluster();
  try {
    const [a, b] = [await cluster.start("a"), await cluster.start("b")];
    const onA = new FakeClient(a, "device");
    await onA.connect({ cleanStart: false, expiry: 3600 });
    onA.subscribe("q/#", 1);
    await cluster.settle();
    onA.disconnect();
    await cluster.settle();
    const pub = new FakeClient(b, "pub");
    await pub.connect();
    const topics = Array.from({ length: MESSAGES }, (_, index) => `q/${index}`);
    for (const [index, topic] of topics.entries()) pub.publish(topic, BODY, 1, index + 1);
    await cluster.settle();

    const onB = new FakeClient(b, "device");
    assert.equal(
      (await onB.connect({ cleanStart: false, expiry: 3600, receiveMaximum: 3 })).sessionPresent,
      true,
    );
    await cluster.settle();
    assert.ok(b.broker.session("device")!.storedOnly, "the queue's tail stays in storage");
    let acknowledged = 0;
    while (acknowledged < MESSAGES) {
      const delivered = onB.delivered();
      assert.ok(delivered.length > acknowledged, `stalled after ${acknowledged}`);
      assert.deepEqual(inflight(a, "device"), inflight(b, "device"), "both nodes hold the same window");
      onB.ack(delivered[acknowledged++].packetId!);
      await cluster.settle();
    }
    const delivered = onB.delivered();
    assert.deepEqual(delivered.map((publish) => publish.topic), topics, "in order, once each");
    assert.ok(delivered.every((publish) => !publish.dup));
    for (const node of [a, b]) {
      assert.equal(node.broker.session("device")!.storedOnly, false);
      assert.equal(node.broker.session("device")!.inflightCount, 0);
    }
  } finally {
    await cluster.stop();
  }
});
