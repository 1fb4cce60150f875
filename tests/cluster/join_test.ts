/**
 * A node with no state joining from another node's state streamed in pieces (in-memory log, fake clock):
 * installed as the pieces arrive, however long that takes, and asked for again when the node answering
 * dies half-way, with nothing of its first answer left behind.
 */
import assert from "node:assert/strict";
import type { ClusterNode } from "../../src/cluster/mod.ts";
import { FakeClient, HEARTBEAT_MS, NODE_TIMEOUT_MS, PieceGate, TestCluster } from "./support.ts";

const DEVICES = 30;
/** Fewer than the in-flight window (10): a message queued later is delivered at the resume too. */
const QUEUED = 9;
/** 30 devices × 9 queued messages of 10,000 B: about 3.6 MB of state in base64, 7 pieces of 512 KiB. */
const PAYLOAD_BYTES = 10_000;

const payload = (index: number) => `m${index}`.padEnd(PAYLOAD_BYTES, ".");
/** A payload as an assertion shows it: its start and its length. */
const shown = (payload: string) => `${payload.split(".")[0]} (${payload.length} B)`;

/**
 * Persistent sessions `first` then device-0…29, offline, each with the same QUEUED messages queued
 * (published on `publisherNode`).
 */
async function offlineFleet(
  cluster: TestCluster,
  node: ClusterNode,
  publisherNode: ClusterNode,
  first: string,
) {
  for (const clientId of [first, ...Array.from({ length: DEVICES }, (_, i) => `device-${i}`)]) {
    const device = new FakeClient(node, clientId);
    await device.connect({ cleanStart: false, expiry: 3600 });
    device.subscribe("fleet/#", 1);
    device.disconnect();
  }
  await cluster.settle();
  const publisher = new FakeClient(publisherNode, "publisher");
  await publisher.connect();
  for (let i = 0; i < QUEUED; i++) publisher.publish(`fleet/${i}`, payload(i), 1, i + 1);
  await publisher.acks();
  publisher.disconnect();
  await cluster.settle();
}

/** Waits, a bounded number of event-loop turns, for `condition`. */
async function until(condition: () => boolean, what: string): Promise<void> {
  for (let turn = 0; turn < 10_000; turn++) {
    if (condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
  throw new Error(`never happened: ${what}`);
}

/** Lets the oldest held piece into the log, and waits until `nodeId` has taken everything in it. */
async function release(cluster: TestCluster, gate: PieceGate, nodeId: string): Promise<void> {
  const length = cluster.service.length;
  gate.release();
  await until(() => cluster.service.length > length, "the piece in the log");
  await until(() => cluster.service.cursor(nodeId) >= cluster.service.length, `${nodeId} read the log`);
}

/**
 * Lets the held pieces into the log one per heartbeat until `node` has joined; returns the session counts
 * `node` had after each piece while still joining.
 */
async function joinPieceByPiece(cluster: TestCluster, gate: PieceGate, node: ClusterNode): Promise<number[]> {
  const counts: number[] = [];
  for (let beat = 0; node.joining && beat < 200; beat++) {
    cluster.clock.advance(HEARTBEAT_MS);
    await until(() => gate.held > 0 || !node.joining, "a piece to release");
    if (!node.joining) break;
    await release(cluster, gate, node.nodeId);
    if (node.joining) counts.push(node.broker.sessionCount);
  }
  assert.equal(node.joining, false, `${node.nodeId} never finished joining`);
  await cluster.settle();
  return counts;
}

/** Starts `nodeId` and lets the first two pieces of its answer in: it holds part of the state. */
async function launchHalfJoined(cluster: TestCluster, gate: PieceGate, nodeId: string): Promise<ClusterNode> {
  const node = await cluster.launch(nodeId);
  await until(() => gate.held >= 2, "an answer");
  await release(cluster, gate, nodeId);
  await release(cluster, gate, nodeId);
  assert.ok(node.joining && node.broker.sessionCount > 0, `${nodeId} installed the answer's first pieces`);
  return node;
}

/** Each device resumes on `node` with its session and every queued message once, in order. */
async function assertFleetOn(node: ClusterNode, extra: string[] = []): Promise<void> {
  const expected = [...Array.from({ length: QUEUED }, (_, i) => payload(i)), ...extra];
  for (let i = 0; i < DEVICES; i++) {
    const device = new FakeClient(node, `device-${i}`);
    assert.equal(
      (await device.connect({ cleanStart: false, expiry: 3600 })).sessionPresent,
      true,
      `device-${i}`,
    );
    assert.deepEqual(
      device.delivered().map((d) => shown(d.payload)),
      expected.map(shown),
      `device-${i}'s queue`,
    );
  }
}

Deno.test("cluster join: a state of many pieces is installed as they arrive, however long past the node timeout the answer takes", async () => {
  const cluster = new TestCluster();
  try {
    const a = await cluster.start("a");
    await offlineFleet(cluster, a, a, "first");
    const gate = new PieceGate(cluster.logs.get("a")!);

    const c = await cluster.launch("c");
    const counts = await joinPieceByPiece(cluster, gate, c);
    assert.ok(
      (counts.length + 1) * HEARTBEAT_MS > NODE_TIMEOUT_MS,
      `c joined after ${
        counts.length + 1
      } pieces, one a heartbeat: an answer slower than the node timeout must be waited for`,
    );
    assert.ok(
      counts.some((count) => count > 0 && count < DEVICES + 1),
      `sessions were installed piece by piece while joining: ${counts.join(", ")}`,
    );
    await assertFleetOn(c);
  } finally {
    await cluster.stop();
  }
});

Deno.test("cluster join: the node answering dies half-way; the joining node asks again and keeps nothing of the first answer", async () => {
  const cluster = new TestCluster();
  try {
    const [a, b] = [await cluster.start("a"), await cluster.start("b")];
    await offlineFleet(cluster, a, b, "ended-meanwhile"); // exported first: in a's first piece
    const gate = new PieceGate(cluster.logs.get("a")!);

    const c = await launchHalfJoined(cluster, gate, "c");
    await cluster.kill(a);

    // Changes after a's state was taken, before c asks again: a session ends, a message is queued.
    const replacing = new FakeClient(b, "ended-meanwhile");
    await replacing.connect({ cleanStart: true });
    replacing.disconnect();
    const publisher = new FakeClient(b, "publisher");
    await publisher.connect();
    publisher.publish("fleet/late", "late", 1, 1);
    await publisher.acks();

    for (let beat = 0; c.joining && beat < 30; beat++) await cluster.advance(HEARTBEAT_MS);
    assert.equal(c.joining, false, "c joined from b");
    await cluster.settle();
    const ended = new FakeClient(c, "ended-meanwhile");
    assert.equal((await ended.connect({ cleanStart: false, expiry: 3600 })).sessionPresent, false);
    await assertFleetOn(c, ["late"]);
  } finally {
    await cluster.stop();
  }
});

Deno.test("cluster join: a node stopped half-way through installing a state clears it and joins again", async () => {
  const cluster = new TestCluster();
  try {
    const a = await cluster.start("a");
    await offlineFleet(cluster, a, a, "ended-meanwhile");
    const gate = new PieceGate(cluster.logs.get("a")!);

    const c = await launchHalfJoined(cluster, gate, "c");
    await cluster.kill(c);
    while (a.appliedPosition < BigInt(cluster.service.length - 1) << 16n) { // a ends its answer to c's first run
      await until(() => gate.held > 0 || a.appliedPosition >= BigInt(cluster.service.length - 1) << 16n, "a");
      if (gate.held > 0) gate.release();
    }
    await cluster.settle();
    const replacing = new FakeClient(a, "ended-meanwhile");
    await replacing.connect({ cleanStart: true });
    replacing.disconnect();
    await cluster.settle();

    const restarted = await cluster.launch("c");
    await joinPieceByPiece(cluster, gate, restarted);
    const ended = new FakeClient(restarted, "ended-meanwhile");
    assert.equal((await ended.connect({ cleanStart: false, expiry: 3600 })).sessionPresent, false);
    await assertFleetOn(restarted);
  } finally {
    await cluster.stop();
  }
});

Deno.test("cluster join: the node to answer dies before its first piece; the joining node asks again rather than start empty", async () => {
  const cluster = new TestCluster();
  try {
    const [a, b] = [await cluster.start("a"), await cluster.start("b")];
    await offlineFleet(cluster, a, b, "first");
    const gate = new PieceGate(cluster.logs.get("a")!);

    const c = await cluster.launch("c");
    await until(() => gate.held > 0, "a answering");
    await cluster.kill(a); // none of its pieces reached the log

    for (let beat = 0; c.joining && beat < 60; beat++) await cluster.advance(HEARTBEAT_MS);
    assert.equal(c.joining, false, "c joined");
    await cluster.settle();
    assert.equal(c.broker.sessionCount, DEVICES + 1, "c has the cluster's sessions, from b");
    await assertFleetOn(c);
  } finally {
    await cluster.stop();
  }
});

Deno.test("cluster join: a piece the joining node fails to store makes it ask again a little later, and join", async () => {
  const cluster = new TestCluster();
  try {
    const a = await cluster.start("a");
    await offlineFleet(cluster, a, a, "first");
    const gate = new PieceGate(cluster.logs.get("a")!);

    const c = await cluster.launch("c");
    const storage = cluster.storages.get("c")!;
    const flush = storage.flush.bind(storage);
    let flushes = 0; // the third fails: a piece after the first, so the log's redelivery of it does not help
    storage.flush = () => ++flushes === 3 ? Promise.reject(new Error("disk I/O error")) : flush();
    await joinPieceByPiece(cluster, gate, c);
    assert.ok(flushes > 3, `the third of ${flushes} flushes while joining failed`);
    assert.equal(c.broker.sessionCount, DEVICES + 1);
    await assertFleetOn(c);
  } finally {
    await cluster.stop();
  }
});
