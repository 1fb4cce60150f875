/**
 * Operations on one queue entry that cancel out before their batch reaches the database (Cancellations):
 * what is written shrinks, and what a restart finds is what writing every operation would have left. At
 * durability `batch`: at `sync` the broker's batches carry every operation and the operation log's window
 * cancels them (embedded_log_test.ts).
 */
import assert from "node:assert/strict";
import { setImmediate } from "node:timers";
import { sample } from "../../src/storage/conformance_samples.ts";
import { readWholeQueue } from "../../src/storage/conformance.ts";
import type { EmbeddedStorage } from "../../src/storage/mod.ts";
import { embeddedStore, withTempDir } from "./embedded_helpers.ts";

const nextTurn = () => new Promise((resolve) => setImmediate(resolve));
/** The store's counts of row operations written and cancelled before they were. */
const written = (storage: EmbeddedStorage) => {
  const { operations, cancelled } = storage.stats();
  return { operations, cancelled };
};

/** Runs `body` against a started store, then restarts it and hands the restarted one to `check`. */
async function withRestart(
  body: (storage: EmbeddedStorage) => Promise<void>,
  check: (storage: EmbeddedStorage, storedMessages: number) => Promise<void>,
  durability: "sync" | "batch" = "batch",
): Promise<void> {
  await withTempDir(async (dir) => {
    const storage = embeddedStore(dir, { durability });
    await storage.start();
    try {
      await body(storage);
    } finally {
      await storage.stop();
    }
    const restarted = embeddedStore(dir);
    const snapshot = await restarted.start();
    try {
      await check(restarted, snapshot.storedMessages);
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
    assert.deepEqual(
      written(storage),
      { operations: 0, cancelled: 4 },
    );
  }, async (restarted, storedMessages) => {
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
    assert.equal(storage.stats().operations, 2, "the append and b's entry");
  }, async (restarted, storedMessages) => {
    assert.equal(storedMessages, 1);
    assert.deepEqual(await topics(restarted, "a"), []);
    assert.deepEqual(await topics(restarted, "b"), ["t/1:queued"]);
  });
});

Deno.test("cancellations: an entry stored earlier loses its new stage but is still deleted", async () => {
  await withRestart(async (storage) => {
    const kept = storage.appendMessage(sample.message("t/kept"));
    const acked = storage.appendMessage(sample.message("t/acked"));
    storage.saveQueueEntry(sample.entry("a", kept));
    storage.saveQueueEntry(sample.entry("a", acked));
    await storage.flush();
    const before = storage.stats().operations;
    storage.saveQueueEntry(sample.entry("a", acked, { stage: "sent", packetId: 1 }));
    storage.deleteQueueEntry("a", acked);
    storage.saveQueueEntry(sample.entry("a", kept, { stage: "sent", packetId: 2 }));
    await storage.flush();
    assert.equal(storage.stats().operations - before, 2, "the delete and the kept entry's stage");
  }, async (restarted, storedMessages) => {
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
    assert.deepEqual(
      written(storage),
      { operations: 3, cancelled: 2 },
      "the routed message, its entry and its (no-op) delete-if-unreferenced",
    );
  }, async (restarted, storedMessages) => {
    assert.equal(storedMessages, 1);
    assert.deepEqual(await topics(restarted, "a"), ["t/routed:queued"]);
  });
});

Deno.test("cancellations: turns issued while the worker writes an earlier batch wait for it, and cancel out across turns", async () => {
  // The worker writes each batch to SQLite before it answers: at `sync` it would answer once the batch is in
  // the operation log, too soon for this test's turns.
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
    assert.deepEqual(
      written(storage),
      { operations: 40_000, cancelled: 4 },
    );
  }, async (restarted, storedMessages) => {
    assert.equal(storedMessages, 20_000);
    assert.deepEqual(await topics(restarted, "a"), []);
  });
});
