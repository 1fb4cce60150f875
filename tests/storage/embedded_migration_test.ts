/** The embedded store opens files written by older versions of its schema and upgrades them in place. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { embeddedStore, STORE_FILE, withTempDir } from "./embedded_helpers.ts";
import { sample } from "../../src/storage/conformance_samples.ts";

/** Turns a current store file back into schema version 4: queue entries keyed by client and message. */
function downgradeToVersion4(dir: string): void {
  const db = new DatabaseSync(join(dir, STORE_FILE));
  try {
    db.exec(`BEGIN;
      CREATE TABLE queue_entries_v4 (client_id TEXT NOT NULL, message_id INTEGER NOT NULL, seq INTEGER NOT NULL,
        qos INTEGER NOT NULL, retain INTEGER NOT NULL, subscription_identifiers TEXT, stage INTEGER NOT NULL,
        packet_id INTEGER, bytes INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (client_id, message_id)) WITHOUT ROWID;
      INSERT INTO queue_entries_v4 SELECT client_id, message_id, seq, qos, retain, subscription_identifiers, stage,
        packet_id, bytes FROM queue_entries;
      DROP TABLE queue_entries;
      ALTER TABLE queue_entries_v4 RENAME TO queue_entries;
      CREATE INDEX queue_entries_by_message ON queue_entries (message_id);
      CREATE TRIGGER queue_entries_take_message AFTER DELETE ON queue_entries BEGIN
        DELETE FROM messages WHERE id = old.message_id
        AND NOT EXISTS (SELECT 1 FROM queue_entries WHERE message_id = old.message_id);
      END;
      PRAGMA user_version = 4;
      COMMIT;`);
  } finally {
    db.close();
  }
}

/** Turns a current store file back into schema version 3: no trigger deleting a message with its last entry. */
function downgradeToVersion3(dir: string): void {
  downgradeToVersion4(dir);
  const db = new DatabaseSync(join(dir, STORE_FILE));
  try {
    db.exec("DROP TRIGGER queue_entries_take_message; PRAGMA user_version = 3;");
  } finally {
    db.close();
  }
}

/** Turns a current store file back into schema version 2: no entry sizes, no expiry index. */
function downgradeToVersion2(dir: string): void {
  downgradeToVersion3(dir);
  const db = new DatabaseSync(join(dir, STORE_FILE));
  try {
    db.exec(`DROP INDEX messages_by_expiry; ALTER TABLE queue_entries DROP COLUMN bytes;
      PRAGMA user_version = 2;`);
  } finally {
    db.close();
  }
}

/** Turns a current store file back into schema version 1: no owner or connection columns. */
function downgradeToVersion1(dir: string): void {
  downgradeToVersion2(dir);
  const db = new DatabaseSync(join(dir, STORE_FILE));
  try {
    db.exec(`ALTER TABLE sessions DROP COLUMN owner; ALTER TABLE sessions DROP COLUMN connection;
      ALTER TABLE wills DROP COLUMN owner; PRAGMA user_version = 1;`);
  } finally {
    db.close();
  }
}

Deno.test("embedded: a version 1 store (no session owners) opens, keeps its rows and stores owners from then on", async () => {
  await withTempDir(async (dir) => {
    const old = embeddedStore(dir);
    await old.start();
    old.saveSession(sample.session("legacy"));
    old.saveWill(sample.will("legacy"));
    await old.flush();
    await old.stop();
    downgradeToVersion1(dir);

    const upgraded = embeddedStore(dir);
    const snapshot = await upgraded.start();
    assert.deepEqual(snapshot.sessions, [sample.session("legacy")], "a legacy session has no owner");
    assert.deepEqual(snapshot.wills, [sample.will("legacy")]);
    upgraded.saveSession(sample.session("legacy", { owner: "user:alice" }));
    await upgraded.flush();
    await upgraded.stop();

    const again = embeddedStore(dir);
    const reread = await again.start();
    assert.deepEqual(reread.sessions, [sample.session("legacy", { owner: "user:alice" })]);
    await again.stop();
    const db = new DatabaseSync(join(dir, STORE_FILE));
    try {
      assert.equal(db.prepare("PRAGMA user_version").get()?.user_version, 6);
    } finally {
      db.close();
    }
  });
});

Deno.test("embedded: a version 2 store (no entry sizes) opens with its queue totals and keeps them after", async () => {
  await withTempDir(async (dir) => {
    const old = embeddedStore(dir);
    await old.start();
    old.saveSession(sample.session("a"));
    const id = old.appendMessage(sample.message("t", { payload: new Uint8Array(1000) }));
    old.saveQueueEntry(sample.entry("a", id));
    await old.flush();
    await old.stop();
    downgradeToVersion2(dir);

    const upgraded = embeddedStore(dir);
    const snapshot = await upgraded.start();
    assert.deepEqual(snapshot.queueTotals, new Map([["a", { entries: 1, bytes: 1001 }]]));
    const second = upgraded.appendMessage(sample.message("tt", { payload: new Uint8Array(10) }));
    upgraded.saveQueueEntry(sample.entry("a", second));
    await upgraded.flush();
    await upgraded.stop();

    const again = embeddedStore(dir);
    const reread = await again.start();
    assert.deepEqual(reread.queueTotals, new Map([["a", { entries: 2, bytes: 1001 + 12 }]]));
    await again.stop();
  });
});

Deno.test("embedded: a version 3 store opens, and a message still goes with its last queue entry", async () => {
  await withTempDir(async (dir) => {
    const old = embeddedStore(dir);
    await old.start();
    old.saveSession(sample.session("a"));
    old.saveSession(sample.session("b"));
    const id = old.appendMessage(sample.message("t"));
    old.saveQueueEntry(sample.entry("a", id));
    old.saveQueueEntry(sample.entry("b", id));
    await old.flush();
    await old.stop();
    downgradeToVersion3(dir);

    const upgraded = embeddedStore(dir);
    assert.equal((await upgraded.start()).storedMessages, 1);
    upgraded.deleteQueueEntry("a", id);
    await upgraded.flush();
    await upgraded.stop();
    const kept = embeddedStore(dir);
    assert.equal((await kept.start()).storedMessages, 1, "b's entry keeps the message");
    kept.deleteQueueEntry("b", id);
    await kept.flush();
    await kept.stop();

    const again = embeddedStore(dir);
    const reread = await again.start();
    assert.equal(reread.storedMessages, 0, "the last entry took the message");
    assert.deepEqual(reread.queueTotals, new Map());
    await again.stop();
  });
});

Deno.test("embedded: a version 4 store opens with its queues in their order, entries updated in place and a message going with its last entry", async () => {
  await withTempDir(async (dir) => {
    const old = embeddedStore(dir);
    await old.start();
    old.saveSession(sample.session("a"));
    old.saveSession(sample.session("b"));
    const first = old.appendMessage(sample.message("first"));
    const second = old.appendMessage(sample.message("second"));
    // a's queue is not in message order: second, then first
    old.saveQueueEntry(sample.entry("a", second));
    old.saveQueueEntry(sample.entry("a", first));
    old.saveQueueEntry(sample.entry("b", first));
    await old.flush();
    await old.stop();
    downgradeToVersion4(dir);

    const upgraded = embeddedStore(dir);
    const snapshot = await upgraded.start();
    assert.deepEqual(snapshot.queueTotals.get("a")?.entries, 2);
    const topics = async (store: typeof upgraded, clientId: string) =>
      (await store.readQueue(clientId, { maxEntries: 10, maxBytes: 1 << 20 })).deliveries.map((d) =>
        `${d.message.topic}:${d.entry.stage}`
      );
    assert.deepEqual(await topics(upgraded, "a"), ["second:queued", "first:queued"]);
    // Saved again: updated where it is, not moved, and not a second entry.
    upgraded.saveQueueEntry(sample.entry("a", second, { stage: "sent", packetId: 7 }));
    upgraded.deleteQueueEntry("a", first);
    await upgraded.flush();
    assert.deepEqual(await topics(upgraded, "a"), ["second:sent"]);
    assert.deepEqual(await topics(upgraded, "b"), ["first:queued"]);
    upgraded.deleteQueueEntry("b", first);
    await upgraded.flush();
    await upgraded.stop();

    const again = embeddedStore(dir);
    const reread = await again.start();
    assert.equal(reread.storedMessages, 1, "first went with its last entry; second stays");
    assert.deepEqual(await topics(again, "a"), ["second:sent"]);
    await again.stop();
    const db = new DatabaseSync(join(dir, STORE_FILE));
    try {
      const sql = String(db.prepare("SELECT sql FROM sqlite_master WHERE name = 'queue_entries'").get()?.sql);
      assert.match(sql, /PRIMARY KEY \(client_id, seq\)/);
    } finally {
      db.close();
    }
  });
});

Deno.test("embedded: a store of a newer schema than this broker's is refused and keeps its version and rows", async () => {
  await withTempDir(async (dir) => {
    const current = embeddedStore(dir);
    await current.start();
    current.saveSession(sample.session("kept"));
    await current.flush();
    await current.stop();
    const path = join(dir, STORE_FILE);
    let db = new DatabaseSync(path);
    const newer = (db.prepare("PRAGMA user_version").get()?.user_version as number) + 1;
    db.exec(`PRAGMA user_version = ${newer}`);
    db.close();

    await assert.rejects(() => embeddedStore(dir).start(), /newer than this broker/);
    db = new DatabaseSync(path);
    try {
      assert.equal(db.prepare("PRAGMA user_version").get()?.user_version, newer);
      assert.deepEqual(db.prepare("SELECT client_id FROM sessions").all().map((row) => row.client_id), [
        "kept",
      ]);
    } finally {
      db.close();
    }
  });
});
