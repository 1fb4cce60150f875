/**
 * The embedded store's operation log (durability `sync`, src/storage/embedded/operation_log.ts and
 * apply_window.ts): what a flush made durable survives a kill -9 before it reached SQLite, a torn tail is
 * dropped, a record is never applied twice, a full disk refuses the append and applies nothing of it, and
 * operations that cancel out across batches of one window never become rows.
 */
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { join } from "node:path";
import { readWholeQueue } from "../../src/storage/conformance.ts";
import { sample } from "../../src/storage/conformance_samples.ts";
import { LOG_SUFFIXES } from "../../src/storage/embedded/operation_log.ts";
import { diskBudget } from "../../src/storage/embedded/schema.ts";
import { windowMemoryBound } from "../../src/storage/embedded/store_engine.ts";
import { volumeBytes } from "../../src/storage/embedded/disk_reserve.ts";
import {
  auditInserts,
  capturingLogger,
  copyStoreFiles,
  crashAfterTwoFlushes,
  embeddedStore,
  fileSize,
  insertedRows,
  type LoggedEvent,
  STORE_FILE,
  withTempDir,
} from "./embedded_helpers.ts";
import { runFixtureOnTmpfs, tmpfsAvailable, tmpfsIgnoredNote } from "../helpers/tmpfs.ts";

const KIB = 1024;
/** A log record's header: body length, checksum, sequence (operation_log.ts). */
const HEADER_BYTES = 16;
/** An apply interval no test reaches: only size, reads and stop apply the log. */
const NEVER = 3_600_000;

const logBytes = (dir: string): number =>
  LOG_SUFFIXES.reduce((sum, suffix) => sum + fileSize(join(dir, STORE_FILE + suffix)), 0);

const notInfo = (events: LoggedEvent[]): string[] =>
  events.filter((event) => event.level !== "info").map((event) => event.event);

/** Runs `sql` on a copy of the store's SQLite files (the store holds its file locked while it runs). */
async function queryCopy(dir: string, sql: string): Promise<Record<string, unknown> | undefined> {
  const copy = await Deno.makeTempDir({ prefix: "mqtt-storage-copy-" });
  try {
    for (const suffix of ["", "-wal"]) {
      await Deno.copyFile(join(dir, STORE_FILE + suffix), join(copy, STORE_FILE + suffix));
    }
    const db = new DatabaseSync(join(copy, STORE_FILE));
    try {
      return db.prepare(sql).get();
    } finally {
      db.close();
    }
  } finally {
    await Deno.remove(copy, { recursive: true });
  }
}

/** Counts rows of a copy of the store's SQLite files. */
async function countRows(dir: string, table: string): Promise<number> {
  return (await queryCopy(dir, `SELECT count(*) AS rows FROM ${table}`))!.rows as number;
}

Deno.test("embedded log: after a kill -9 between the log append and the apply, a start replays every flushed group once", async () => {
  await withTempDir(async (dir) => {
    const script = new URL("./fixtures/log_then_kill.ts", import.meta.url).pathname;
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", script, dir],
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const reader = child.stdout.getReader();
    const { value } = await reader.read();
    assert.equal(new TextDecoder().decode(value).trim(), "flushed");
    child.kill("SIGKILL");
    await child.status;
    await reader.cancel();

    assert.ok(logBytes(dir) > 0, "the flushed groups are in the log");
    assert.equal(await countRows(dir, "messages"), 0, "and not yet in SQLite");

    const logger = capturingLogger();
    let storage = embeddedStore(dir, { logger });
    const snapshot = await storage.start();
    const topics = (await readWholeQueue(storage, "a")).map((delivery) => delivery.message.topic);
    await storage.stop();
    assert.deepEqual(snapshot.sessions, [sample.session("a")]);
    assert.deepEqual(topics, ["t/2", "t/3", "t/4", "t/5"], "the oldest deleted, once");
    const replayed = logger.events.find((event) => event.event === "storage.log_replayed");
    assert.equal(replayed?.fields?.records, 2);
    assert.deepEqual(notInfo(logger.events), []);

    storage = embeddedStore(dir);
    await storage.start();
    const again = (await readWholeQueue(storage, "a")).map((delivery) => delivery.message.topic);
    await storage.stop();
    assert.deepEqual(again, ["t/2", "t/3", "t/4", "t/5"], "a second start applies nothing again");
  });
});

/**
 * Two flushed groups (client "a", then client "b") left in the log by a crash: the files of a running store
 * copied, as a kill -9 would leave them. Returns the copy's directory and the log file holding the records.
 */
async function crashWithTwoLoggedGroups(dir: string): Promise<{ crashed: string; log: string }> {
  const crashed = await crashAfterTwoFlushes(dir, { applyIntervalMs: NEVER });
  const log = join(crashed, STORE_FILE + LOG_SUFFIXES[0]);
  assert.ok(fileSize(log) > 6000, "both groups are in the first log file");
  return { crashed, log };
}

async function startAndStop(dir: string) {
  const logger = capturingLogger();
  const storage = embeddedStore(dir, { logger });
  const snapshot = await storage.start();
  await storage.stop();
  return { snapshot, events: logger.events };
}

Deno.test("embedded log: a torn tail drops only the last group, and says so", async () => {
  await withTempDir(async (dir) => {
    const { crashed, log } = await crashWithTwoLoggedGroups(dir);
    await Deno.truncate(log, fileSize(log) - 100);
    const { snapshot, events } = await startAndStop(crashed);
    assert.deepEqual(snapshot.sessions, [sample.session("a")]);
    assert.deepEqual([...snapshot.queueTotals.keys()], ["a"]);
    assert.equal(snapshot.storedMessages, 1);
    assert.deepEqual(notInfo(events), ["storage.log_tail_dropped"]);
  });
});

Deno.test("embedded log: a bit flip in the last record fails its checksum and drops only that group", async () => {
  await withTempDir(async (dir) => {
    const { crashed, log } = await crashWithTwoLoggedGroups(dir);
    const bytes = Deno.readFileSync(log);
    bytes[bytes.byteLength - 1000] ^= 0x5A;
    Deno.writeFileSync(log, bytes);
    const { snapshot, events } = await startAndStop(crashed);
    assert.deepEqual(snapshot.sessions, [sample.session("a")]);
    assert.deepEqual(notInfo(events), ["storage.log_tail_dropped"]);
  });
});

Deno.test("embedded log: a record already applied before a crash is not applied again (deleteOldestQueued is relative)", async () => {
  await withTempDir(async (dir) => {
    const saved = join(dir, "saved");
    const live = join(dir, "live");
    await Deno.mkdir(saved);
    let storage = embeddedStore(live, { applyIntervalMs: NEVER });
    await storage.start();
    for (let index = 1; index <= 3; index++) {
      storage.saveQueueEntry(sample.entry("a", storage.appendMessage(sample.message(`t/${index}`))));
    }
    await storage.flush();
    await readWholeQueue(storage, "a");
    storage.deleteOldestQueued("a");
    await storage.flush();
    // The log as a crash right after the next apply, before the log is emptied, would leave it.
    for (const suffix of LOG_SUFFIXES) {
      await Deno.copyFile(join(live, STORE_FILE + suffix), join(saved, STORE_FILE + suffix));
    }
    assert.ok(logBytes(saved) > 0);
    const before = (await readWholeQueue(storage, "a")).map((delivery) => delivery.message.topic);
    assert.deepEqual(before, ["t/2", "t/3"]);
    await storage.stop();
    for (const suffix of LOG_SUFFIXES) {
      await Deno.copyFile(join(saved, STORE_FILE + suffix), join(live, STORE_FILE + suffix));
    }

    const logger = capturingLogger();
    storage = embeddedStore(live, { logger });
    await storage.start();
    const after = (await readWholeQueue(storage, "a")).map((delivery) => delivery.message.topic);
    await storage.stop();
    assert.deepEqual(after, ["t/2", "t/3"]);
    assert.equal(logger.events.some((event) => event.event === "storage.log_replayed"), false);
  });
});

// At durability batch too: until it went through the log, it wrote every group to SQLite as it came.
for (const durability of ["sync", "batch"] as const) {
  Deno.test(`embedded log (durability ${durability}): a message queued and acknowledged in later batches of one window never becomes a row`, async () => {
    await withTempDir(async (dir) => {
      await auditInserts(dir);
      const storage = embeddedStore(dir, { durability, applyIntervalMs: NEVER });
      await storage.start();
      const acknowledged = storage.appendMessage(sample.message("acknowledged"));
      storage.saveQueueEntry(sample.entry("a", acknowledged));
      const kept = storage.appendMessage(sample.message("kept"));
      storage.saveQueueEntry(sample.entry("a", kept));
      await storage.flush();
      storage.saveQueueEntry(sample.entry("a", acknowledged, { stage: "sent", packetId: 1 }));
      await storage.flush();
      storage.deleteQueueEntry("a", acknowledged);
      await storage.flush();
      const topics = (await readWholeQueue(storage, "a")).map((delivery) => delivery.message.topic);
      await storage.stop();
      assert.deepEqual(topics, ["kept"]);

      assert.deepEqual(insertedRows(dir), [{ what: "entry", rows: 1 }, { what: "message", rows: 1 }]);
    });
  });
}

Deno.test("embedded log: a message queued, sent and acknowledged in one batch goes to the log whole, and never becomes a row", async () => {
  await withTempDir(async (dir) => {
    await auditInserts(dir);
    const storage = embeddedStore(dir, { applyIntervalMs: NEVER });
    await storage.start();
    const id = storage.appendMessage(sample.message("acknowledged"));
    storage.saveQueueEntry(sample.entry("a", id));
    storage.saveQueueEntry(sample.entry("a", id, { stage: "sent", packetId: 7 }));
    storage.deleteQueueEntry("a", id);
    await storage.flush();
    // The broker's thread does not cancel them (the window does, with whatever else it holds).
    assert.equal(storage.stats().operations, 4);
    await storage.stop();

    assert.deepEqual(insertedRows(dir), []);
  });
});

Deno.test("embedded log: reading one client's queue applies nothing of the window, where another client's delivery then cancels out", async () => {
  await withTempDir(async (dir) => {
    await auditInserts(dir);
    const storage = embeddedStore(dir, { applyIntervalMs: NEVER });
    await storage.start();
    storage.saveQueueEntry(sample.entry("b", storage.appendMessage(sample.message("for b"))));
    await storage.flush();
    // b's queue is in SQLite now (its read applied the window that held it).
    assert.deepEqual((await readWholeQueue(storage, "b")).map((delivery) => delivery.message.topic), [
      "for b",
    ]);
    // A delivery to a: sent, then acknowledged, while b's client comes back and reads its queue in between
    // (a drain after an outage: a read per reconnecting client). Before, b's read applied the window, and
    // a's delivery became a row its acknowledgement then deleted.
    const id = storage.appendMessage(sample.message("for a"));
    storage.saveQueueEntry(sample.entry("a", id, { stage: "sent", packetId: 1 }));
    await storage.flush();
    assert.deepEqual((await readWholeQueue(storage, "b")).map((delivery) => delivery.message.topic), [
      "for b",
    ]);
    storage.deleteQueueEntry("a", id);
    await storage.flush();
    assert.deepEqual(await readWholeQueue(storage, "a"), []);
    await storage.stop();

    assert.deepEqual(insertedRows(dir), [{ what: "entry", rows: 1 }, { what: "message", rows: 1 }]);
  });
});

Deno.test("embedded log: a read finds what the window changed in that client's queue, whatever the operation", async () => {
  await withTempDir(async (dir) => {
    const storage = embeddedStore(dir, { applyIntervalMs: NEVER });
    await storage.start();
    const topicsOf = async (clientId: string) =>
      (await readWholeQueue(storage, clientId)).map((delivery) => delivery.message.topic);
    for (const clientId of ["a", "b"]) {
      for (const topic of ["t/1", "t/2", "t/3"]) {
        storage.saveQueueEntry(sample.entry(clientId, storage.appendMessage(sample.message(topic))));
      }
    }
    await storage.flush();
    assert.deepEqual(await topicsOf("a"), ["t/1", "t/2", "t/3"]); // the window is in SQLite now

    // Each change, in a window that holds nothing else about that client, then a read of its queue.
    storage.deleteOldestQueued("a");
    await storage.flush();
    assert.deepEqual(await topicsOf("a"), ["t/2", "t/3"]);
    storage.deleteSession("b");
    await storage.flush();
    assert.deepEqual(await topicsOf("b"), []);
    const id = storage.appendMessage(sample.message("t/4"));
    storage.saveQueueEntry(sample.entry("a", id));
    await storage.flush();
    assert.deepEqual(await topicsOf("a"), ["t/2", "t/3", "t/4"]);
    storage.deleteQueueEntry("a", id);
    await storage.flush();
    assert.deepEqual(await topicsOf("a"), ["t/2", "t/3"]);
    await storage.stop();
  });
});

Deno.test("embedded log: a window of few large records applied by size still cancels what the newest one acknowledges", async () => {
  await withTempDir(async (dir) => {
    await auditInserts(dir);
    // A durable fan-out: every group saves the entries of its messages for 100 persistent subscribers and
    // deletes those of the group before it (their acknowledgements), about 110 B of window per delivery;
    // groups of about half the window's memory bound fill it in two or three.
    const clients = Array.from({ length: 100 }, (_, index) => `subscriber-${index}`);
    const perGroup = Math.ceil((0.55 * windowMemoryBound()) / (clients.length * 110));
    const storage = embeddedStore(dir, { applyIntervalMs: NEVER });
    await storage.start();
    let appliedBeforeStop = 0;
    try {
      let previous: ReturnType<typeof storage.appendMessage>[] = [];
      for (let group = 0; group < 6; group++) {
        const ids = Array.from({ length: perGroup }, () => storage.appendMessage(sample.message("fan/out")));
        for (const id of ids) {
          for (const client of clients) {
            storage.saveQueueEntry(sample.entry(client, id, { stage: "sent", packetId: 1 }));
          }
        }
        for (const id of previous) for (const client of clients) storage.deleteQueueEntry(client, id);
        await storage.flush();
        previous = ids;
      }
      for (const id of previous) for (const client of clients) storage.deleteQueueEntry(client, id);
      await storage.flush();
      const applied = await queryCopy(dir, "SELECT value FROM meta WHERE key = 'store.log_applied'");
      appliedBeforeStop = Number(applied?.value ?? 0);
    } finally {
      await storage.stop();
    }
    // Applied by size before the stop; every delivery acknowledged within the window, so none became a row.
    // (Applied as each group was appended, before its fdatasync, the groups' deletes could not cancel the
    // saves of the group before: 100 rows a message.)
    assert.ok(appliedBeforeStop > 0, "the window was never applied by size");
    assert.deepEqual(insertedRows(dir), []);
  });
});

Deno.test("embedded log: the window's memory bound counts the strings the worker decoded", async () => {
  await withTempDir(async (dir) => {
    // Offline sessions' queues, as the big-queue benchmark fills them: every message to a topic of its own,
    // for a client of its own. With 200-character names, each message's window is about 500 B of encoded
    // operations and index, and as much again of decoded strings: 0.65 of the memory bound's worth of the
    // former is over the bound with the latter.
    const name = (kind: string, index: number) => `${kind}-${index}-`.padEnd(200, "x");
    const messages = Math.ceil((0.65 * windowMemoryBound()) / 500);
    const groups = 4;
    const storage = embeddedStore(dir, { applyIntervalMs: NEVER });
    await storage.start();
    let applied = 0, logged = 0;
    try {
      for (let group = 0; group < groups; group++) {
        for (let index = group; index < messages; index += groups) {
          const id = storage.appendMessage(sample.message(name("topic", index)));
          storage.saveQueueEntry(sample.entry(name("client", index), id));
        }
        await storage.flush();
      }
      const row = await queryCopy(dir, "SELECT value FROM meta WHERE key = 'store.log_applied'");
      applied = Number(row?.value ?? 0);
      logged = logBytes(dir);
    } finally {
      await storage.stop();
    }
    const budget = diskBudget(undefined, volumeBytes(dir));
    assert.ok(logged < budget.logApplyBytes, `the log (${logged} B) reached its own bound`);
    assert.ok(applied > 0, "the window was never applied by its memory bound");
  });
});

Deno.test("embedded log: without reads the log is applied by size, so it stays bounded", async () => {
  await withTempDir(async (dir) => {
    const window = diskBudget(undefined, volumeBytes(dir)).logApplyBytes;
    const storage = embeddedStore(dir, { applyIntervalMs: NEVER });
    await storage.start();
    let peak = 0;
    try {
      const payload = new Uint8Array(16 * KIB);
      // Three windows' worth, in groups of 256 KiB.
      for (let round = 0; round < (3 * window) / (256 * KIB); round++) {
        for (let index = 0; index < 16; index++) {
          storage.saveQueueEntry(sample.entry("a", storage.appendMessage(sample.message("t", { payload }))));
        }
        await storage.flush();
        peak = Math.max(peak, logBytes(dir));
      }
    } finally {
      await storage.stop();
    }
    // The older half of the window is applied when it is full; a file is emptied once all its records are
    // applied: one and a half windows and a group at most.
    assert.ok(peak > window && peak < 1.5 * window + 512 * KIB, `peak ${peak} log bytes, window ${window}`);
  });
});

Deno.test("embedded log: payloads read back from the log when the window is applied by size, across turns of its files, are the ones stored", async () => {
  await withTempDir(async (dir) => {
    // A 16 MiB page cap makes the window 2 MiB: 6 MiB through it apply it by size and turn its files.
    const storage = embeddedStore(dir, { applyIntervalMs: NEVER, maxDiskBytes: 16 * 1024 * KIB });
    await storage.start();
    try {
      const messages = 384;
      for (let index = 0; index < messages; index++) {
        const payload = new Uint8Array(16 * KIB + (index % 7)).fill(index % 251);
        storage.saveQueueEntry(
          sample.entry("a", storage.appendMessage(sample.message(`t/${index}`, { payload }))),
        );
        if (index % 4 === 3) await storage.flush();
      }
      const queue = await readWholeQueue(storage, "a");
      assert.equal(queue.length, messages);
      queue.forEach(({ message }, index) => {
        assert.equal(message.topic, `t/${index}`);
        assert.equal(message.payload.byteLength, 16 * KIB + (index % 7));
        assert.ok(message.payload.every((byte) => byte === index % 251), `t/${index}: wrong payload`);
      });
    } finally {
      await storage.stop();
    }
  });
});

/** Runs the store memory fixture (see fixtures/store_memory.ts). */
async function measureInChild(
  ...args: string[]
): Promise<{ before: number; after: number; messages: number }> {
  const script = new URL("./fixtures/store_memory.ts", import.meta.url).pathname;
  const { code, stdout } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", script, ...args],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  assert.equal(code, 0);
  return JSON.parse(new TextDecoder().decode(stdout));
}

const growth = ({ before, after }: { before: number; after: number }) => after - before;

Deno.test("embedded log: the window keeps its records' operations, not their payloads (they stay in the log until applied)", async () => {
  await withTempDir(async (dir) => {
    const messages = 120;
    const idle = await measureInChild("write", join(dir, "idle"), "0");
    const written = await measureInChild("write", join(dir, "written"), String(messages));
    assert.equal(written.messages, messages);
    const held = growth(written) - growth(idle);
    // 30 MiB went into the window; holding the payloads grew the process by that much.
    assert.ok(
      held < (messages * 256 * KIB) / 2,
      `peak resident memory grew ${held} bytes more than an idle store's`,
    );
  });
});

Deno.test("embedded log: a start replays a large log a chunk at a time, its memory growing by much less than the log", async () => {
  await withTempDir(async (dir) => {
    const live = join(dir, "live"), crashed = join(dir, "crashed"), empty = join(dir, "empty");
    const messages = 120;
    const storage = embeddedStore(live, { applyIntervalMs: NEVER });
    await storage.start();
    try {
      const payload = new Uint8Array(256 * KIB);
      for (let index = 0; index < messages; index++) {
        const id = storage.appendMessage(sample.message(`t/${index}`, { payload: payload.fill(index) }));
        storage.saveQueueEntry(sample.entry("a", id));
        await storage.flush();
      }
      // The files as a kill -9 would leave them: 30 MiB acknowledged in the log, none of it applied.
      await Deno.mkdir(crashed);
      await copyStoreFiles(live, crashed);
    } finally {
      await storage.stop();
    }
    const log = logBytes(crashed);
    assert.ok(log > messages * 256 * KIB, `${log} log bytes`);
    assert.equal(await countRows(crashed, "messages"), 0, "nothing applied before the crash");
    const fresh = embeddedStore(empty);
    await fresh.start();
    await fresh.stop();

    const idle = await measureInChild("start", empty);
    const replayed = await measureInChild("start", crashed);
    assert.equal(replayed.messages, messages);
    const grew = growth(replayed) - growth(idle);
    // Reading the whole log at once grew it by twice the log (the files read, and the values copied out).
    assert.ok(grew < 0.75 * log, `peak resident memory grew ${grew} bytes more than an empty start's`);
  });
});

Deno.test("embedded log: records are replayed in sequence order across the two files", async () => {
  await withTempDir(async (dir) => {
    const { crashed, log } = await crashWithTwoLoggedGroups(dir);
    // The second record (client "b") moved to the other file, ahead of nothing: the order comes from the
    // sequence numbers, not the files.
    const bytes = Deno.readFileSync(log);
    const first = HEADER_BYTES + new DataView(bytes.buffer).getUint32(0, true);
    Deno.writeFileSync(join(crashed, STORE_FILE + LOG_SUFFIXES[1]), bytes.subarray(first));
    Deno.writeFileSync(log, bytes.subarray(0, first));
    const { snapshot, events } = await startAndStop(crashed);
    assert.deepEqual(snapshot.sessions, [sample.session("a"), sample.session("b")]);
    assert.equal(snapshot.storedMessages, 2);
    assert.deepEqual(notInfo(events), []);
    assert.equal(events.find((event) => event.event === "storage.log_replayed")?.fields?.records, 2);
  });
});

Deno.test("embedded log: a gap in the sequence ends the replay there, and says so", async () => {
  await withTempDir(async (dir) => {
    const { crashed, log } = await crashWithTwoLoggedGroups(dir);
    // The first record lost (a power loss can lose it while the later one, in the other file, was kept):
    // the second may refer to what the first held, so neither is applied.
    const bytes = Deno.readFileSync(log);
    const first = HEADER_BYTES + new DataView(bytes.buffer).getUint32(0, true);
    Deno.writeFileSync(log, new Uint8Array(0));
    Deno.writeFileSync(join(crashed, STORE_FILE + LOG_SUFFIXES[1]), bytes.subarray(first));
    const { snapshot, events } = await startAndStop(crashed);
    assert.deepEqual(snapshot.sessions, []);
    assert.equal(snapshot.storedMessages, 0);
    assert.deepEqual(notInfo(events), ["storage.log_gap"]);
  });
});

Deno.test({
  name:
    "embedded log on a full disk (4 MiB tmpfs): the append is refused with 0x97 and nothing of it is applied" +
    tmpfsIgnoredNote,
  ignore: !tmpfsAvailable,
  fn: async () => {
    await withTempDir(async (dir) => {
      const script = new URL("./fixtures/full_log.ts", import.meta.url).pathname;
      const [full, restarted] = await runFixtureOnTmpfs(dir, script, [`${dir}/store`, `${dir}/filler`]) as [
        { reasonCode: number; healthy: boolean },
        unknown,
      ];
      assert.equal(full.reasonCode, 0x97);
      assert.equal(full.healthy, false);
      assert.deepEqual(restarted, {
        step: "restarted",
        afterwards: "ok",
        storedMessages: 1,
        queue: ["kept"],
        warnings: [],
      });
    });
  },
});
