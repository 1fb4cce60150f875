/** Recovery at start: drop what can never be delivered, then read everything the broker rebuilds from. */
import type { DatabaseSync } from "node:sqlite";
import { retainedFromRow, type Row, willFromRow, type WireSnapshot, type WireTable } from "./records.ts";

/** The snapshot plus the counters the adapter continues from. */
export interface RecoveredStore {
  snapshot: WireSnapshot;
  nextMessageId: number;
  nextSequence: number;
  /** Expired messages removed, for the start log line. */
  expiredMessages: number;
}

/**
 * Applies the recovery rules that decide what the broker sees, in one transaction (made durable by the
 * caller), and loads the snapshot. {@link dropOrphans} finishes recovery once the snapshot is sent.
 */
export function recover(db: DatabaseSync, now: number): RecoveredStore {
  db.exec("BEGIN");
  try {
    // Expired messages go with their entries. None of this reads a message row (a big store is mostly
    // payloads): expiry comes from the `messages_by_expiry` index.
    // An expired message already sent stays in flight [MQTT-4.3.3-7]; only its waiting entries go, and
    // with the last of them the message (the schema's trigger). Expired messages no entry referred to
    // go as well.
    const expired = db.prepare(
      "SELECT count(*) AS value FROM messages INDEXED BY messages_by_expiry WHERE expires_at <= ?",
    );
    const expiredBefore = expired.get(now)?.value as number;
    db.prepare(`DELETE FROM queue_entries WHERE stage = 0 AND message_id IN
      (SELECT id FROM messages INDEXED BY messages_by_expiry WHERE expires_at <= ?)`).run(now);
    db.prepare(
      `DELETE FROM messages WHERE id IN (SELECT id FROM messages INDEXED BY messages_by_expiry
      WHERE expires_at <= ? AND NOT EXISTS (SELECT 1 FROM queue_entries WHERE message_id = messages.id))`,
    ).run(now);
    const expiredMessages = expiredBefore - (expired.get(now)?.value as number);
    db.prepare("DELETE FROM retained WHERE expires_at IS NOT NULL AND expires_at <= ?").run(now);
    // Guarantees a write, so the -wal file exists for the adapter to open and fsync from now on.
    db.prepare("INSERT OR REPLACE INTO meta (key, value) VALUES ('store.last_start', ?)").run(now);
    db.exec("COMMIT");
    return {
      snapshot: loadSnapshot(db),
      nextMessageId: maxOf(db, "SELECT max(id) AS value FROM messages") + 1,
      nextSequence: maxOf(db, "SELECT max(seq) AS value FROM queue_entries") + 1,
      expiredMessages,
    };
  } finally {
    if (db.isTransaction) db.exec("ROLLBACK");
  }
}

/**
 * The rest of recovery: entries whose message is gone (a batch that hit a full disk keeps its deletes and
 * drops its appends) and messages no entry refers to (one appended before it was routed, at a crash).
 * Neither is ever delivered (a queue is read joined with its messages), but both take space. Comparing
 * every message id with every entry takes ~0.7 s for a million queued messages, so it runs after the
 * broker has its snapshot, before the store takes any write.
 */
export function dropOrphans(db: DatabaseSync): { danglingEntries: number; unreferencedMessages: number } {
  db.exec("BEGIN");
  try {
    const danglingEntries = db.prepare(
      `DELETE FROM queue_entries WHERE message_id IN (SELECT message_id FROM queue_entries
      EXCEPT SELECT id FROM messages INDEXED BY messages_by_expiry)`,
    ).run().changes as number;
    const unreferencedMessages = db.prepare(
      `DELETE FROM messages WHERE id IN (SELECT id FROM messages INDEXED BY messages_by_expiry
      EXCEPT SELECT message_id FROM queue_entries)`,
    ).run().changes as number;
    db.exec("COMMIT");
    return { danglingEntries, unreferencedMessages };
  } finally {
    if (db.isTransaction) db.exec("ROLLBACK");
  }
}

/**
 * Everything but the queues, which are read per client when the client comes back. The per-client tables
 * come as JSON columns that SQLite builds: reading 100,000 rows one object at a time, then cloning the
 * objects to the broker's thread, was most of a start (about 1.5 s of 4).
 */
function loadSnapshot(db: DatabaseSync): WireSnapshot {
  const rows = <T>(sql: string, convert: (row: Row) => T): T[] =>
    Array.from(db.prepare(sql).iterate() as Iterable<Row>, convert);
  const columns = (sql: string): WireTable => {
    const row = db.prepare(sql).get()!;
    return { rows: row.rows as number, columns: row.columns as string };
  };
  return {
    sessions: columns(`SELECT json_array(json_group_array(client_id), json_group_array(expiry_interval),
      json_group_array(disconnected_at), json_group_array(epoch), json_group_array(owner),
      json_group_array(connection)) AS columns, count(*) AS rows FROM sessions`),
    subscriptions: columns(`SELECT json_array(json_group_array(client_id), json_group_array(topic_filter),
      json_group_array(qos), json_group_array(no_local), json_group_array(retain_as_published),
      json_group_array(retain_handling), json_group_array(subscription_identifier)) AS columns,
      count(*) AS rows FROM subscriptions`),
    queueTotals: columns(`SELECT json_array(json_group_array(client_id), json_group_array(entries),
      json_group_array(bytes)) AS columns, count(*) AS rows FROM (SELECT client_id, count(*) AS entries, sum(bytes) AS bytes
      FROM queue_entries WHERE stage = 0 GROUP BY client_id)`),
    storedMessages: maxOf(db, "SELECT count(*) AS value FROM messages"),
    awaitingRelease: rows("SELECT client_id, packet_id FROM awaiting_release", (row) => ({
      clientId: row.client_id as string,
      packetId: row.packet_id as number,
    })),
    // length() of a blob reads its size from the record header, not the payload's pages.
    retained: rows(
      "SELECT topic, length(payload) AS payload_bytes, qos, retain, properties, publisher_id, expires_at FROM retained",
      retainedFromRow,
    ),
    wills: rows("SELECT * FROM wills", willFromRow),
    meta: new Map(rows("SELECT key, value FROM meta", (row) => [row.key as string, String(row.value)])),
  };
}

function maxOf(db: DatabaseSync, sql: string): number {
  return (db.prepare(sql).get()?.value as number | null) ?? 0;
}
