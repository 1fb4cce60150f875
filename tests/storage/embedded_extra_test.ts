/** Embedded-store behaviour beyond the port: durability levels, group commit, quota, bounded disk, locking. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { writeHeapSnapshot } from "node:v8";
import { type EmbeddedStorage, type MessageRef, StorageError } from "../../src/storage/mod.ts";
import {
  capturingLogger,
  embeddedStore,
  fileSize,
  listDir,
  STORE_FILE,
  storeBytes,
  withTempDir,
} from "./embedded_helpers.ts";
import { sample } from "../../src/storage/conformance_samples.ts";
import { readWholeQueue } from "../../src/storage/conformance.ts";
import { allocatedBytes } from "../helpers/allocation.ts";
import { runFixtureOnTmpfs, tmpfsAvailable, tmpfsIgnoredNote } from "../helpers/tmpfs.ts";

const KIB = 1024;

Deno.test("embedded: 1000 mutations and one flush make one transaction and one fsync", async () => {
  await withTempDir(async (dir) => {
    const storage = embeddedStore(dir);
    await storage.start();
    try {
      for (let index = 0; index < 500; index++) {
        const id = storage.appendMessage(sample.message(`t/${index}`));
        storage.saveQueueEntry(sample.entry("a", id));
      }
      assert.deepEqual(
        storage.stats(),
        { flushes: 0, syncs: 0, operations: 0 },
        "mutations only buffer",
      );
      assert.equal(storage.dirty, true);
      await storage.flush();
      assert.equal(storage.dirty, false);
      assert.deepEqual(storage.stats(), { flushes: 1, syncs: 1, operations: 1000 });
    } finally {
      await storage.stop();
    }
  });
});

Deno.test("embedded: deferred changes that issue nothing (all acknowledged meanwhile) cost no transaction and no fsync", async () => {
  await withTempDir(async (dir) => {
    const storage = embeddedStore(dir);
    await storage.start();
    try {
      storage.saveSession(sample.session("before"));
      await storage.flush();
      const nothingLeft = { awaited: 0, write() {} };
      storage.defer(nothingLeft);
      assert.equal(storage.dirty, true, "deferred changes count as issued until written");
      await storage.flush();
      assert.equal(storage.dirty, false);
      assert.deepEqual(storage.stats(), { flushes: 1, syncs: 1, operations: 1 });
    } finally {
      await storage.stop();
    }
  });
});

/**
 * Starts `storage` (durability sync), saves and flushes 20 sessions one at a time, asserting after each that
 * its flush was fsynced, and stops it.
 */
async function flushTwentyOneByOne(storage: EmbeddedStorage): Promise<void> {
  await storage.start();
  try {
    for (let index = 1; index <= 20; index++) {
      storage.saveSession(sample.session(`client-${index}`));
      await storage.flush();
      assert.deepEqual(storage.stats(), { flushes: index, syncs: index, operations: index });
    }
  } finally {
    await storage.stop();
  }
}

Deno.test("embedded durability sync: every resolved flush has its transaction fsynced", async () => {
  await withTempDir((dir) => flushTwentyOneByOne(embeddedStore(dir)));
});

/**
 * Counts, by type, the messages the store's worker sends to this thread while `body` runs (a Worker that
 * listens to its own messages besides the adapter's handler).
 */
async function workerMessagesDuring(body: () => Promise<void>): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  const Original = globalThis.Worker;
  globalThis.Worker = class extends Original {
    constructor(...args: ConstructorParameters<typeof Worker>) {
      super(...args);
      this.addEventListener("message", (event) => {
        const type = String((event as MessageEvent<{ type: string }>).data.type);
        counts.set(type, (counts.get(type) ?? 0) + 1);
      });
    }
  };
  try {
    await body();
  } finally {
    globalThis.Worker = Original;
  }
  return counts;
}

Deno.test("embedded: a batch that went well costs this thread one message from the worker, its answer", async () => {
  // A message of its own with the stats after every batch was as many messages again for the broker's thread
  // to take (a third more of its wake-ups per message, 20 publishers with one QoS 1 message in flight each).
  await withTempDir(async (dir) => {
    const storage = embeddedStore(dir);
    const counts = await workerMessagesDuring(() => flushTwentyOneByOne(storage));
    assert.equal(counts.get("committed"), 20);
    assert.equal(counts.get("outcome") ?? 0, 0, "nothing changed that an answer does not say");
  });
});

Deno.test("embedded durability batch: flush resolves after the write, without waiting for an fsync", async () => {
  await withTempDir(async (dir) => {
    // An interval no test run reaches: any sync seen here would have been waited for by a flush.
    const storage = embeddedStore(dir, { durability: "batch", batchIntervalMs: 60_000 });
    await storage.start();
    try {
      for (let index = 0; index < 5; index++) {
        storage.saveSession(sample.session(`client-${index}`));
        await storage.flush();
      }
      assert.deepEqual(storage.stats(), { flushes: 5, syncs: 0, operations: 5 });
    } finally {
      await storage.stop();
    }
  });
});

Deno.test("embedded durability batch: an fsync follows the writes at the interval", async () => {
  await withTempDir(async (dir) => {
    const storage = embeddedStore(dir, { durability: "batch", batchIntervalMs: 20 });
    await storage.start();
    try {
      for (let index = 0; index < 5; index++) {
        storage.saveSession(sample.session(`client-${index}`));
        await storage.flush();
      }
      // However loaded the machine, the timed sync comes; how soon is the benchmark's business.
      while (storage.stats().syncs === 0) await new Promise((resolve) => setTimeout(resolve, 20));
      const { flushes, syncs, operations } = storage.stats();
      assert.deepEqual({ flushes, operations }, { flushes: 5, operations: 5 });
      assert.ok(syncs >= 1 && syncs <= flushes, `syncs ${syncs} for ${flushes} flushes`);
    } finally {
      await storage.stop();
    }
  });
});

Deno.test("embedded: a second adapter on a directory in use fails to start and moves nothing", async () => {
  await withTempDir(async (dir) => {
    const logger = capturingLogger();
    const first = embeddedStore(dir);
    await first.start();
    try {
      const second = embeddedStore(dir, { logger });
      // Refused by the directory lock, naming the owner, before SQLite could say "database is locked".
      await assert.rejects(second.start(), new RegExp(`data directory .* is in use by pid ${Deno.pid}`));
      await second.stop();
      assert.deepEqual(await listDir(dir), [
        "mqtt-proxy.lock",
        "reserve",
        STORE_FILE,
        `${STORE_FILE}-log0`,
        `${STORE_FILE}-log1`,
        `${STORE_FILE}-wal`,
      ]);
      assert.deepEqual(logger.events.filter((event) => event.level === "error"), []);
      first.saveSession(sample.session());
      await first.flush();
    } finally {
      await first.stop();
    }
  });
});

Deno.test("embedded maxDiskBytes: a full store rejects flush with 0x97, stores nothing of it, and recovers", async () => {
  await withTempDir(async (dir) => {
    const logger = capturingLogger();
    const options = { maxDiskBytes: 256 * KIB, logger };
    let storage = embeddedStore(dir, options);
    await storage.start();
    const stored: MessageRef[] = [];
    let rejection: unknown;
    let rejected: MessageRef[] = [];
    while (!rejection && stored.length < 1000) {
      const round = Array.from({ length: 8 }, (_, index) => {
        const id = storage.appendMessage(sample.message(`t/${index}`, { payload: new Uint8Array(4 * KIB) }));
        storage.saveQueueEntry(sample.entry("a", id));
        return id;
      });
      try {
        await storage.flush();
        stored.push(...round);
      } catch (error) {
        rejection = error;
        rejected = round;
      }
    }
    assert.ok(rejection instanceof StorageError, `rejected with ${rejection}`);
    assert.equal(rejection.reasonCode, 0x97);
    assert.ok(stored.length > 0 && stored.length < 64, `${stored.length} messages fit in 256 KiB`);
    assert.equal(storage.health().ok, false);
    assert.match(storage.health().detail, /full/);
    assert.deepEqual(logger.events.filter((event) => event.level === "error").map((event) => event.event), [
      "storage.write_failed",
    ]);

    // One batch that both acknowledges everything and appends more than fits: it fails, but its deletes
    // land, or a full store could never drain.
    for (const id of stored) storage.deleteQueueEntry("a", id);
    storage.appendMessage(sample.message("too/big", { payload: new Uint8Array(512 * KIB) }));
    await assert.rejects(
      storage.flush(),
      (error) => error instanceof StorageError && error.reasonCode === 0x97,
    );

    const afterDrain = storage.appendMessage(sample.message("fits", { payload: new Uint8Array(4 * KIB) }));
    storage.saveQueueEntry(sample.entry("a", afterDrain));
    await storage.flush();
    assert.equal(storage.health().ok, true);
    assert.deepEqual(
      logger.events.filter((event) => event.event.startsWith("storage.write_")).map((event) => event.event),
      ["storage.write_failed", "storage.write_recovered"],
      "the worker reports each change of state, once",
    );
    await storage.stop();

    storage = embeddedStore(dir, options);
    const snapshot = await storage.start();
    const queue = await readWholeQueue(storage, "a");
    await storage.stop();
    assert.equal(snapshot.storedMessages, 1, "neither rejected nor acknowledged messages remain");
    assert.deepEqual(queue.map((delivery) => delivery.entry), [sample.entry("a", afterDrain)]);
    assert.equal(rejected.length > 0, true);
  });
});

Deno.test("embedded: appending and deleting the same volume over and over keeps the files bounded", async () => {
  await withTempDir(async (dir) => {
    let storage = embeddedStore(dir);
    await storage.start();
    const payload = new Uint8Array(KIB);
    let peak = 0;
    for (let round = 0; round < 40; round++) {
      const ids = Array.from({ length: 500 }, (_, index) => {
        const id = storage.appendMessage(sample.message(`t/${index}`, { payload }));
        storage.saveQueueEntry(sample.entry("a", id));
        return id;
      });
      await storage.flush();
      peak = Math.max(peak, storeBytes(dir));
      for (const id of ids) storage.deleteQueueEntry("a", id);
      await storage.flush();
    }
    await storage.stop();
    // 40 rounds wrote 20 MiB of payload; the WAL is capped near 4 MiB and the database holds one round.
    assert.ok(peak < 6 * 1024 * KIB, `peak ${peak} bytes`);
    storage = embeddedStore(dir);
    const snapshot = await storage.start();
    await storage.stop();
    assert.equal(snapshot.storedMessages, 0);
    assert.ok(
      fileSize(join(dir, STORE_FILE)) < 256 * KIB,
      `database ${fileSize(join(dir, STORE_FILE))} bytes`,
    );
  });
});

Deno.test({
  name: "embedded on a really full disk (4 MiB tmpfs): rejects with 0x97, still stores acks, recovers" +
    tmpfsIgnoredNote,
  ignore: !tmpfsAvailable,
  fn: async () => {
    await withTempDir(async (dir) => {
      // maxDiskBytes above the tmpfs size: the file system fills first, as a real disk would.
      const script = new URL("./fixtures/fill_disk.ts", import.meta.url).pathname;
      const [full, drained] = await runFixtureOnTmpfs(dir, script, [`${dir}/store`, "8388608"]) as [
        { reasonCode: number; healthy: boolean; stored: number },
        unknown,
      ];
      assert.equal(full.reasonCode, 0x97);
      assert.equal(full.healthy, false);
      assert.ok(full.stored > 0);
      assert.deepEqual(drained, { step: "drained", drained: "ok", written: "ok", healthy: true });
    });
  },
});

Deno.test("embedded: queue reads give payloads of the caller's own (readsOwnPayloads): freeing one leaves the store whole", async () => {
  await withTempDir(async (dir) => {
    const storage = embeddedStore(dir);
    await storage.start();
    try {
      assert.equal(storage.readsOwnPayloads, true, "the broker frees them once acknowledged");
      const payload = Uint8Array.from({ length: 1024 }, (_, index) => index % 251);
      const id = storage.appendMessage(sample.message("own", { payload }));
      storage.saveQueueEntry(sample.entry("a", id));
      storage.saveQueueEntry(sample.entry("b", id));
      const [first] = await readWholeQueue(storage, "a");
      const [other] = await readWholeQueue(storage, "b");
      assert.notEqual(first.message.payload.buffer, other.message.payload.buffer);
      // What the broker does once the delivery is acknowledged (Delivery.ownsPayload).
      (first.message.payload.buffer as ArrayBuffer).transfer(0);
      assert.deepEqual(other.message.payload, payload);
      const [again] = await readWholeQueue(storage, "a");
      assert.deepEqual(again.message.payload, payload);
    } finally {
      await storage.stop();
    }
  });
});

/** Stores a session under the client id spelled backwards by `reversed`; keeps no reference to the id. */
async function storeSessionOf(dir: string, reversed: string): Promise<void> {
  const storage = embeddedStore(dir);
  await storage.start();
  storage.saveSession(sample.session([...reversed].reverse().join("")));
  await storage.flush();
  await storage.stop();
}

/** Starts `storage`; returns the ids of the sessions it read, spelled backwards, and keeps nothing else. */
async function startedSessions(storage: EmbeddedStorage): Promise<string[]> {
  const snapshot = await storage.start();
  return snapshot.sessions.map(({ clientId }) => [...clientId].reverse().join(""));
}

Deno.test("embedded: a started store keeps nothing of the snapshot it started with (the broker has it)", async () => {
  await withTempDir(async (dir) => {
    // The test holds only the id spelled backwards: the id itself is in the heap only where something of
    // the snapshot still is.
    const reversed = [...`session-${crypto.randomUUID()}-held`].reverse().join("");
    await storeSessionOf(dir, reversed);
    const storage = embeddedStore(dir);
    const restored = await startedSessions(storage);
    try {
      assert.deepEqual(restored, [reversed]);
      const path = writeHeapSnapshot(join(dir, "heap.heapsnapshot"));
      const heap = await Deno.readTextFile(path);
      const id = [...reversed].reverse().join("");
      assert.equal(heap.includes(id), false, "the snapshot's session is still held after start");
    } finally {
      await storage.stop();
    }
  });
});

Deno.test("embedded: a payload with a source is copied from it, never read as a view", async () => {
  // A view per durable message was a sixth of what the broker's thread allocated for it (see Persistence).
  await withTempDir(async (dir) => {
    const storage = embeddedStore(dir);
    await storage.start();
    try {
      const frame = Uint8Array.from({ length: 100 }, (_, index) => 100 + index);
      const id = storage.appendMessage({
        ...sample.message("t"),
        get payload(): Uint8Array {
          throw new Error("payload read as a view");
        },
        payloadSource: {
          payloadSize: 40,
          copyPayloadTo: (target, at) =>
            new Uint8Array(target.buffer, target.byteOffset + at).set(frame.subarray(5, 45)),
        },
      });
      storage.saveQueueEntry(sample.entry("a", id));
      await storage.flush();
      const [read] = await readWholeQueue(storage, "a");
      assert.deepEqual(read.message.payload, frame.slice(5, 45));
    } finally {
      await storage.stop();
    }
  });
});

Deno.test("embedded: an operation added to the turn's batch allocates nothing on the broker's thread", async () => {
  // A closure in the method that finds the turn's batch made every call allocate its scope: about 36 B per
  // operation, three operations per durable message.
  await withTempDir(async (dir) => {
    const storage = embeddedStore(dir);
    await storage.start();
    try {
      const message = sample.message("t");
      const entry = sample.entry("client", 0 as MessageRef);
      const operations = 20_000;
      const run = () => {
        for (let index = 0; index < operations / 2; index++) {
          entry.messageId = storage.appendMessage(message);
          storage.saveQueueEntry(entry);
        }
      };
      for (let round = 0; round < 3; round++) {
        run(); // the batch's buffers grown, the code optimized
        await storage.flush();
      }
      const bytes = await allocatedBytes(run);
      await storage.flush();
      assert.ok(bytes / operations < 8, `${(bytes / operations).toFixed(1)} B per operation`);
    } finally {
      await storage.stop();
    }
  });
});
