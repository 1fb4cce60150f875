/** Conformance cases of the message log and the queues: sharing, order, stages, deletion, recovery rules. */
import assert from "node:assert/strict";
import type { QueueEntry, StorageSnapshot } from "../../src/storage/mod.ts";
import type { RegisterCase } from "./conformance.ts";
import { sample } from "./samples.ts";

const HOUR = 3_600_000;

const queueOf = (snapshot: StorageSnapshot, clientId: string): QueueEntry[] =>
  snapshot.queues.filter((entry) => entry.clientId === clientId);

const idsOf = (snapshot: StorageSnapshot, clientId: string): number[] =>
  queueOf(snapshot, clientId).map((entry) => entry.messageId);

/** Registers the queue cases through the suite's `test`. */
export function registerQueueCases(test: RegisterCase): void {
  test(
    "messages round-trip with every property, byte fields, expiry, and empty or large payloads",
    async (storage, restart) => {
      const rich = sample.message("a/b", {
        qos: 2,
        retain: true,
        payload: Uint8Array.from({ length: 256 * 1024 }, (_, index) => index % 251),
        expiresAt: Date.now() + HOUR,
        properties: {
          payloadFormatIndicator: 1,
          messageExpiryInterval: 3600,
          contentType: "application/json",
          responseTopic: "replies/1",
          correlationData: new Uint8Array([0, 1, 2, 255]),
          userProperties: [["k", "v"], ["k", "second"], ["ключ", "значение"]],
        },
      });
      const empty = sample.message("empty", { payload: new Uint8Array(0), qos: 0 });
      const richId = storage.appendMessage(rich);
      const emptyId = storage.appendMessage(empty);
      assert.notEqual(richId, emptyId);
      storage.saveQueueEntry(sample.entry("a", richId));
      storage.saveQueueEntry(sample.entry("a", emptyId));
      const { snapshot } = await restart();
      assert.deepEqual(snapshot.messages, new Map([[richId, rich], [emptyId, empty]]));
    },
  );

  test("a message is stored once however many queue entries refer to it", async (storage, restart) => {
    const id = storage.appendMessage(sample.message());
    storage.saveQueueEntry(sample.entry("a", id));
    storage.saveQueueEntry(sample.entry("b", id, { qos: 0, retain: true, subscriptionIdentifiers: [3, 7] }));
    const { snapshot } = await restart();
    assert.deepEqual([...snapshot.messages.keys()], [id]);
    assert.deepEqual(queueOf(snapshot, "a"), [sample.entry("a", id)]);
    assert.deepEqual(queueOf(snapshot, "b"), [
      sample.entry("b", id, { qos: 0, retain: true, subscriptionIdentifiers: [3, 7] }),
    ]);
  });

  test("queues keep first-insertion order across replacements and restarts", async (storage, restart) => {
    const [m1, m2, m3] = ["t/1", "t/2", "t/3"].map((topic) => storage.appendMessage(sample.message(topic)));
    storage.saveQueueEntry(sample.entry("a", m3));
    storage.saveQueueEntry(sample.entry("b", m1));
    storage.saveQueueEntry(sample.entry("a", m1));
    storage.saveQueueEntry(sample.entry("b", m2));
    storage.saveQueueEntry(sample.entry("a", m2));
    storage.saveQueueEntry(sample.entry("a", m3, { stage: "sent", packetId: 9 }));
    const first = await restart();
    assert.deepEqual(idsOf(first.snapshot, "a"), [m3, m1, m2]);
    assert.deepEqual(idsOf(first.snapshot, "b"), [m1, m2]);

    const m4 = first.storage.appendMessage(sample.message("t/4"));
    first.storage.saveQueueEntry(sample.entry("a", m4));
    first.storage.saveQueueEntry(sample.entry("a", m1, { stage: "sent", packetId: 10 }));
    const second = await restart();
    assert.deepEqual(idsOf(second.snapshot, "a"), [m3, m1, m2, m4]);
    assert.deepEqual(idsOf(second.snapshot, "b"), [m1, m2]);
  });

  test("stage updates: queued, then sent with a packet id, then released", async (storage, restart) => {
    const id = storage.appendMessage(sample.message("t", { qos: 2 }));
    storage.saveQueueEntry(sample.entry("a", id, { qos: 2 }));
    let restarted = await restart();
    assert.deepEqual(restarted.snapshot.queues, [sample.entry("a", id, { qos: 2 })]);

    restarted.storage.saveQueueEntry(sample.entry("a", id, { qos: 2, stage: "sent", packetId: 42 }));
    restarted = await restart();
    assert.deepEqual(restarted.snapshot.queues, [
      sample.entry("a", id, { qos: 2, stage: "sent", packetId: 42 }),
    ]);

    restarted.storage.saveQueueEntry(sample.entry("a", id, { qos: 2, stage: "released", packetId: 42 }));
    restarted = await restart();
    assert.deepEqual(restarted.snapshot.queues, [
      sample.entry("a", id, { qos: 2, stage: "released", packetId: 42 }),
    ]);
  });

  test(
    "deleteQueueEntry keeps the message while another entry refers to it, and drops it with the last",
    async (storage, restart) => {
      const id = storage.appendMessage(sample.message());
      storage.saveQueueEntry(sample.entry("a", id));
      storage.saveQueueEntry(sample.entry("b", id));
      storage.deleteQueueEntry("a", id);
      storage.deleteQueueEntry("a", id);
      storage.deleteQueueEntry("c", 123_456);
      const first = await restart();
      assert.deepEqual(first.snapshot.queues, [sample.entry("b", id)]);
      assert.deepEqual([...first.snapshot.messages.keys()], [id]);

      first.storage.deleteQueueEntry("b", id);
      const second = await restart();
      assert.deepEqual(second.snapshot.queues, []);
      assert.equal(second.snapshot.messages.size, 0);
    },
  );

  test("mutations of one entry within one flush apply in the order issued", async (storage, restart) => {
    const [m1, m2] = ["t/1", "t/2"].map((topic) => storage.appendMessage(sample.message(topic)));
    storage.saveQueueEntry(sample.entry("a", m1));
    storage.saveQueueEntry(sample.entry("b", m1));
    storage.saveQueueEntry(sample.entry("a", m2));
    storage.saveQueueEntry(sample.entry("a", m2, { stage: "sent", packetId: 1 }));
    storage.deleteQueueEntry("a", m1);
    storage.saveQueueEntry(sample.entry("a", m1, { stage: "sent", packetId: 2 }));
    storage.deleteQueueEntry("b", m1);
    const { snapshot } = await restart();
    assert.deepEqual(snapshot.queues, [
      sample.entry("a", m2, { stage: "sent", packetId: 1 }),
      sample.entry("a", m1, { stage: "sent", packetId: 2 }),
    ]);
    assert.deepEqual([...snapshot.messages.keys()].sort(), [m1, m2].sort());
  });

  test(
    "an entry saved after its message went with the last entry is dropped at recovery",
    async (storage, restart) => {
      const id = storage.appendMessage(sample.message());
      storage.saveQueueEntry(sample.entry("a", id));
      storage.deleteQueueEntry("a", id);
      storage.saveQueueEntry(sample.entry("b", id));
      const { snapshot } = await restart();
      assert.deepEqual([snapshot.queues, snapshot.messages.size], [[], 0]);
    },
  );

  test("messages no queue entry refers to are dropped at recovery", async (storage, restart) => {
    storage.appendMessage(sample.message("nobody/subscribed"));
    const kept = storage.appendMessage(sample.message("kept"));
    storage.saveQueueEntry(sample.entry("a", kept));
    const { snapshot } = await restart();
    assert.deepEqual([...snapshot.messages.keys()], [kept]);
  });

  test(
    "messages expired at recovery are dropped with their queue entries; expired retained too",
    async (storage, restart) => {
      const expired = storage.appendMessage(sample.message("old", { expiresAt: Date.now() - 1000 }));
      const fresh = storage.appendMessage(sample.message("fresh", { expiresAt: Date.now() + HOUR }));
      const forever = storage.appendMessage(sample.message("forever"));
      for (const id of [expired, fresh, forever]) storage.saveQueueEntry(sample.entry("a", id));
      storage.saveQueueEntry(sample.entry("b", expired));
      storage.saveRetained(sample.message("retained/old", { retain: true, expiresAt: Date.now() - 1000 }));
      storage.saveRetained(sample.message("retained/fresh", { retain: true, expiresAt: Date.now() + HOUR }));
      const { snapshot } = await restart();
      assert.deepEqual(idsOf(snapshot, "a"), [fresh, forever]);
      assert.deepEqual(idsOf(snapshot, "b"), []);
      assert.deepEqual([...snapshot.messages.keys()].sort(), [fresh, forever].sort());
      assert.deepEqual(snapshot.retained.map((message) => message.topic), ["retained/fresh"]);
    },
  );

  test("message ids stay unique across restarts", async (storage, restart) => {
    const before = [storage.appendMessage(sample.message("1")), storage.appendMessage(sample.message("2"))];
    for (const id of before) storage.saveQueueEntry(sample.entry("a", id));
    const { storage: reopened, snapshot } = await restart();
    const after = reopened.appendMessage(sample.message("3"));
    assert.equal(before.includes(after), false);
    assert.equal(snapshot.messages.has(after), false);
  });
}
