/**
 * Operations on one queue entry that cancel out before they reach the database: the store's window
 * (apply_window.ts) cancels them across its batches, each batch included, at either durability. What is
 * written shrinks (SQLite's triggers count the rows inserted), and what a restart finds is what writing every
 * operation would have left. At durability `batch`, which goes through the operation log and its window
 * too (embedded_log_test.ts has the window across batches at both durabilities).
 */
import assert from "node:assert/strict";
import { setImmediate } from "node:timers";
import { sample } from "../../src/storage/conformance_samples.ts";
import { readWholeQueue } from "../../src/storage/conformance.ts";
import type { EmbeddedStorage } from "../../src/storage/mod.ts";
import { auditInserts, embeddedStore, insertedRows, withTempDir } from "./embedded_helpers.ts";

const nextTurn = () => new Promise((resolve) => setImmediate(resolve));
/** An apply interval no test reaches: only size, reads and stop apply the window. */
const NEVER = 3_600_000;

/**
 * Runs `body` against a started store at durability `batch`, then restarts it and hands the restarted one to
 * `check`, with the rows the first one inserted into messages and queue_entries.
 */
async function withRestart(
  body: (storage: EmbeddedStorage) => Promise<void>,
  check: (
    storage: EmbeddedStorage,
    storedMessages: number,
    inserted: { what: string; rows: number }[],
  ) => Promise<void>,
): Promise<void> {
  await withTempDir(async (dir) => {
    await auditInserts(dir);
    const storage = embeddedStore(dir, { durability: "batch", applyIntervalMs: NEVER });
    await storage.start();
    try {
      await body(storage);
    } finally {
      await storage.stop();
    }
    const inserted = insertedRows(dir);
    const restarted = embeddedStore(dir);
    const snapshot = await restarted.start();
    try {
      await check(restarted, snapshot.storedMessages, inserted);
    } finally {
      await restarted.stop();
    }
  });
}

const topics = async (storage: EmbeddedStorage, clientId: string) =>
  (await readWholeQueue(storage, clientId)).map(({ message, entry }) => `${message.topic}:${entry.stage}`);

Deno.test("cancellations: a message queued, sent and acknowledged in one batch writes nothing", async () => {
  await withRestart(async (storage) => {
    const id = storage.appendMessage(sample.message("t/1"));
    storage.saveQueueEntry(sample.entry("a", id));
    storage.saveQueueEntry(sample.entry("a", id, { stage: "sent", packetId: 7 }));
    storage.deleteQueueEntry("a", id);
    await storage.flush();
  }, async (restarted, storedMessages, inserted) => {
    assert.deepEqual(inserted, []);
    assert.equal(storedMessages, 0);
    assert.deepEqual(await topics(restarted, "a"), []);
  });
});

Deno.test("cancellations: one subscriber's acknowledgement leaves the message for the other", async () => {
  await withRestart(async (storage) => {
    const id = storage.appendMessage(sample.message("t/1"));
    storage.saveQueueEntry(sample.entry("a", id));
    storage.saveQueueEntry(sample.entry("b", id));
    storage.deleteQueueEntry("a", id);
    // A delete for a client that never had the entry takes nothing with it.
    storage.deleteQueueEntry("c", id);
    await storage.flush();
  }, async (restarted, storedMessages, inserted) => {
    assert.deepEqual(
      inserted,
      [{ what: "entry", rows: 1 }, { what: "message", rows: 1 }],
      "b's entry and the message",
    );
    assert.equal(storedMessages, 1);
    assert.deepEqual(await topics(restarted, "a"), []);
    assert.deepEqual(await topics(restarted, "b"), ["t/1:queued"]);
  });
});

Deno.test("cancellations: an entry already in the database loses its new stage but is still deleted", async () => {
  await withRestart(async (storage) => {
    const kept = storage.appendMessage(sample.message("t/kept"));
    const acked = storage.appendMessage(sample.message("t/acked"));
    storage.saveQueueEntry(sample.entry("a", kept));
    storage.saveQueueEntry(sample.entry("a", acked));
    await storage.flush();
    // A read applies the window: both entries are rows now.
    assert.deepEqual(await topics(storage, "a"), ["t/kept:queued", "t/acked:queued"]);
    storage.saveQueueEntry(sample.entry("a", acked, { stage: "sent", packetId: 1 }));
    storage.deleteQueueEntry("a", acked);
    storage.saveQueueEntry(sample.entry("a", kept, { stage: "sent", packetId: 2 }));
    await storage.flush();
  }, async (restarted, storedMessages, inserted) => {
    assert.deepEqual(inserted, [{ what: "entry", rows: 2 }, { what: "message", rows: 2 }]);
    assert.equal(storedMessages, 1);
    assert.deepEqual(await topics(restarted, "a"), ["t/kept:sent"]);
  });
});

Deno.test("cancellations: after deleteOldestQueued a client's stages are written, so the oldest is chosen as written", async () => {
  await withRestart(async (storage) => {
    const first = storage.appendMessage(sample.message("t/first"));
    storage.saveQueueEntry(sample.entry("a", first));
    await storage.flush();
    // The first entry is sent (no longer "queued"), so dropping the oldest queued drops the second; then the
    // first is acknowledged. Had its "sent" stage been cancelled, the drop would have taken the first entry
    // and the second would remain.
    const second = storage.appendMessage(sample.message("t/second"));
    storage.saveQueueEntry(sample.entry("a", second));
    storage.saveQueueEntry(sample.entry("a", first, { stage: "sent", packetId: 1 }));
    storage.deleteOldestQueued("a");
    storage.deleteQueueEntry("a", first);
    await storage.flush();
  }, async (restarted, storedMessages) => {
    assert.deepEqual(await topics(restarted, "a"), []);
    assert.equal(storedMessages, 0);
  });
});

Deno.test("cancellations: a staged message no queue kept is never written", async () => {
  await withRestart(async (storage) => {
    const unrouted = storage.appendMessage(sample.message("t/unrouted"));
    const routed = storage.appendMessage(sample.message("t/routed"));
    storage.saveQueueEntry(sample.entry("a", routed));
    storage.deleteUnreferencedMessage(unrouted);
    storage.deleteUnreferencedMessage(routed);
    await storage.flush();
  }, async (restarted, storedMessages, inserted) => {
    assert.deepEqual(
      inserted,
      [{ what: "entry", rows: 1 }, { what: "message", rows: 1 }],
      "the routed message and its entry",
    );
    assert.equal(storedMessages, 1);
    assert.deepEqual(await topics(restarted, "a"), ["t/routed:queued"]);
  });
});

Deno.test("cancellations: a message queued, sent and acknowledged in turns of their own, while the worker writes a large batch, writes nothing", async () => {
  await withRestart(async (storage) => {
    // A batch big enough to keep the worker busy for many turns of this loop.
    for (let index = 0; index < 20_000; index++) {
      storage.saveQueueEntry(sample.entry("bulk", storage.appendMessage(sample.message(`bulk/${index}`))));
    }
    await nextTurn();
    const id = storage.appendMessage(sample.message("t/1"));
    storage.saveQueueEntry(sample.entry("a", id));
    await nextTurn();
    storage.saveQueueEntry(sample.entry("a", id, { stage: "sent", packetId: 1 }));
    await nextTurn();
    storage.deleteQueueEntry("a", id);
    await storage.flush();
    assert.equal(storage.stats().operations, 40_004, "every operation went to the worker");
  }, async (restarted, storedMessages, inserted) => {
    assert.deepEqual(inserted, [{ what: "entry", rows: 20_000 }, { what: "message", rows: 20_000 }]);
    assert.equal(storedMessages, 20_000);
    assert.deepEqual(await topics(restarted, "a"), []);
  });
});
