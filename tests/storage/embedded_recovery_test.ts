/**
 * Recovery of the embedded store from damaged files: a torn or bit-flipped WAL tail loses only the last
 * transaction, and an unreadable database is moved aside so the broker starts empty instead of crashing.
 * The WAL's tests apply each group to SQLite before the next and leave the operation log empty, so that the
 * WAL alone holds them (the log's own recovery: embedded_log_test.ts).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  capturingLogger,
  crashAfterTwoFlushes,
  embeddedStore,
  type LoggedEvent,
  STORE_FILE,
  withTempDir,
} from "./embedded_helpers.ts";
import { sample } from "../../src/storage/conformance_samples.ts";

const WAL = `${STORE_FILE}-wal`;

/** Writes one session and stops cleanly, so everything is checkpointed into the database file. */
async function cleanStoreWithOneSession(dir: string): Promise<void> {
  const storage = embeddedStore(dir);
  await storage.start();
  for (let index = 0; index < 50; index++) {
    storage.saveSubscription(sample.subscription("a", `topic/${index}/#`));
  }
  storage.saveSession(sample.session("a"));
  await storage.stop();
}

async function startAndStop(dir: string, logger = capturingLogger()) {
  const storage = embeddedStore(dir, { logger });
  const snapshot = await storage.start();
  await storage.stop();
  return { snapshot, events: logger.events };
}

const errors = (events: LoggedEvent[]): string[] =>
  events.filter((event) => event.level === "error").map((event) => event.event);

function flipByte(path: string, offset: number): void {
  const bytes = Deno.readFileSync(path);
  bytes[offset] ^= 0x5A;
  Deno.writeFileSync(path, bytes);
}

Deno.test("embedded recovery: after a kill every flushed transaction is there", async () => {
  await withTempDir(async (dir) => {
    const crashed = await crashAfterTwoFlushes(dir);
    const { snapshot, events } = await startAndStop(crashed);
    assert.deepEqual(snapshot.sessions.map((session) => session.clientId).sort(), ["a", "b"]);
    assert.equal(snapshot.storedMessages, 2);
    assert.deepEqual([...snapshot.queueTotals.keys()].sort(), ["a", "b"]);
    assert.deepEqual(errors(events), []);
  });
});

Deno.test("embedded recovery: a torn WAL tail drops only the last transaction", async () => {
  await withTempDir(async (dir) => {
    const crashed = await crashAfterTwoFlushes(dir, {}, { inWal: true });
    const wal = join(crashed, WAL);
    await Deno.truncate(wal, Deno.statSync(wal).size - 100);
    const { snapshot, events } = await startAndStop(crashed);
    assert.deepEqual(snapshot.sessions, [sample.session("a")]);
    assert.deepEqual([...snapshot.queueTotals.keys()], ["a"]);
    assert.equal(snapshot.storedMessages, 1);
    assert.deepEqual(errors(events), []);
  });
});

Deno.test("embedded recovery: a bit flip in the WAL tail drops only the last transaction", async () => {
  await withTempDir(async (dir) => {
    const crashed = await crashAfterTwoFlushes(dir, {}, { inWal: true });
    const wal = join(crashed, WAL);
    flipByte(wal, Deno.statSync(wal).size - 2000);
    const { snapshot, events } = await startAndStop(crashed);
    assert.deepEqual(snapshot.sessions, [sample.session("a")]);
    assert.deepEqual([...snapshot.queueTotals.keys()], ["a"]);
    assert.deepEqual(errors(events), []);
  });
});

Deno.test("embedded recovery: a WAL with a garbage header is ignored, the rest still opens", async () => {
  await withTempDir(async (dir) => {
    const crashed = await crashAfterTwoFlushes(dir, {}, { inWal: true });
    const wal = join(crashed, WAL);
    for (let offset = 0; offset < 32; offset++) flipByte(wal, offset);
    const { snapshot, events } = await startAndStop(crashed);
    assert.deepEqual(snapshot.sessions, [], "nothing had been checkpointed into the database yet");
    assert.deepEqual(errors(events), []);
  });
});

/** Damages the database file in `damage`, then checks the store is moved aside and starts empty and usable. */
async function assertMovedAsideAndStartsEmpty(damage: (path: string) => void | Promise<void>): Promise<void> {
  await withTempDir(async (dir) => {
    await cleanStoreWithOneSession(dir);
    await damage(join(dir, STORE_FILE));
    const logger = capturingLogger();
    const storage = embeddedStore(dir, { logger });
    const snapshot = await storage.start();
    try {
      assert.deepEqual([snapshot.sessions, snapshot.subscriptions], [[], []]);
      assert.deepEqual(errors(logger.events), ["storage.corrupt"]);
      const movedTo = logger.events[0].fields?.movedTo as string;
      assert.match(movedTo, /corrupt-\d{8}T\d{9}Z$/);
      assert.ok(Deno.statSync(join(movedTo, STORE_FILE)).size > 0, "the damaged file is kept for inspection");
      assert.equal(storage.health().ok, true);
      storage.saveSession(sample.session("after"));
      await storage.flush();
    } finally {
      await storage.stop();
    }
    const { snapshot: reopened } = await startAndStop(dir);
    assert.deepEqual(reopened.sessions, [sample.session("after")]);
  });
}

Deno.test("embedded recovery: a database with a garbage header is moved aside and the store starts empty", async () => {
  await assertMovedAsideAndStartsEmpty((path) => {
    for (let offset = 0; offset < 16; offset++) flipByte(path, offset);
  });
});

Deno.test("embedded recovery: a database with garbage pages is moved aside and the store starts empty", async () => {
  await assertMovedAsideAndStartsEmpty((path) => {
    const bytes = Deno.readFileSync(path);
    bytes.fill(0xA5, 4096);
    Deno.writeFileSync(path, bytes);
  });
});

Deno.test("embedded recovery: a truncated database is moved aside and the store starts empty", async () => {
  await assertMovedAsideAndStartsEmpty((path) => Deno.truncate(path, 2 * 4096));
});
