/** The embedded store's SQLite settings and tables; docs/storage.md explains each choice. */
import type { DatabaseSync } from "node:sqlite";

/** A queue's entries in its order: a page is a range of the primary key. */
const QUEUE_ENTRIES_COLUMNS = `
  client_id TEXT NOT NULL,
  message_id INTEGER NOT NULL,
  seq INTEGER NOT NULL,
  qos INTEGER NOT NULL,
  retain INTEGER NOT NULL,
  subscription_identifiers TEXT,
  stage INTEGER NOT NULL,
  packet_id INTEGER,
  -- the message's topic and payload size, so that a start reads no message to total the queues
  bytes INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (client_id, seq)`;

const TAKE_MESSAGE_TRIGGER = `CREATE TRIGGER queue_entries_take_message AFTER DELETE ON queue_entries BEGIN
  DELETE FROM messages WHERE id = old.message_id
  AND NOT EXISTS (SELECT 1 FROM queue_entries WHERE message_id = old.message_id);
END;`;

/**
 * One entry per client and message (the upsert's conflict target), found by message (the trigger) or by
 * client and message (deletes); a message goes with its last entry: an entry that was never stored takes
 * nothing.
 */
const QUEUE_ENTRIES_INDEXES = `
CREATE UNIQUE INDEX queue_entries_by_message ON queue_entries (message_id, client_id);
${TAKE_MESSAGE_TRIGGER}`;

/** Stored in `PRAGMA user_version`; a newer file than this code understands is refused, never rewritten. */
const SCHEMA_VERSION = 6;

/** Steps from each older version to the next, run in one transaction at open. */
const MIGRATIONS: Record<number, string> = {
  // 2: sessions and wills remember the identity that owns them (a session belongs to its user), and a
  // session where its client is connected (a cluster node restarts into the same view)
  1: `ALTER TABLE sessions ADD COLUMN owner TEXT; ALTER TABLE sessions ADD COLUMN connection TEXT;
    ALTER TABLE wills ADD COLUMN owner TEXT;`,
  // 3: a start reads no message row: queue totals come from the entries' own sizes, expired messages and
  // the ids of all messages from an index (see recovery.ts)
  2: `CREATE INDEX messages_by_expiry ON messages (expires_at);
    ALTER TABLE queue_entries ADD COLUMN bytes INTEGER NOT NULL DEFAULT 0;
    UPDATE queue_entries SET bytes = coalesce((SELECT length(CAST(payload AS BLOB)) + length(topic)
    FROM messages WHERE id = message_id), 0);`,
  // 4: a message goes with its last queue entry inside SQLite, whatever deletes the entry (the store
  // asked SQLite which messages lost an entry, then deleted those left without one: a round trip through
  // JavaScript per acknowledgement)
  3: TAKE_MESSAGE_TRIGGER,
  // 5: a queue's entries are kept in its order (client, seq), so that reading a page of a long queue is a
  // range, not a sort of all its entries (a page of a 100,000-entry queue took about 90 ms); the index by
  // message, which the trigger and the deletes by (client, message) use, takes the client as its second key
  4: `CREATE TABLE queue_entries_by_seq (${QUEUE_ENTRIES_COLUMNS}) WITHOUT ROWID;
    INSERT INTO queue_entries_by_seq (client_id, message_id, seq, qos, retain, subscription_identifiers, stage,
      packet_id, bytes)
    SELECT client_id, message_id, seq, qos, retain, subscription_identifiers, stage, packet_id, bytes
    FROM queue_entries;
    DROP TABLE queue_entries;
    ALTER TABLE queue_entries_by_seq RENAME TO queue_entries;
    ${QUEUE_ENTRIES_INDEXES}`,
  // 6: no table changes; the operation log (store.db-log0/-log1, see operation_log.ts) may hold acknowledged
  // operations these tables do not have yet, so a broker that would not replay it must refuse the store
  5: "",
};

export const PAGE_SIZE = 4096;
const MAX_WAL_BYTES = 4 * 1024 * 1024;

const TABLES = `
CREATE TABLE sessions (
  client_id TEXT PRIMARY KEY,
  expiry_interval INTEGER NOT NULL,
  disconnected_at INTEGER,
  epoch INTEGER NOT NULL,
  owner TEXT,
  connection TEXT
) WITHOUT ROWID;
CREATE TABLE subscriptions (
  client_id TEXT NOT NULL,
  topic_filter TEXT NOT NULL,
  qos INTEGER NOT NULL,
  no_local INTEGER NOT NULL,
  retain_as_published INTEGER NOT NULL,
  retain_handling INTEGER NOT NULL,
  subscription_identifier INTEGER,
  PRIMARY KEY (client_id, topic_filter)
) WITHOUT ROWID;
CREATE TABLE messages (
  id INTEGER PRIMARY KEY,
  topic TEXT NOT NULL,
  payload BLOB NOT NULL,
  qos INTEGER NOT NULL,
  retain INTEGER NOT NULL,
  properties TEXT,
  publisher_id TEXT NOT NULL,
  expires_at INTEGER
);
CREATE INDEX messages_by_expiry ON messages (expires_at);
CREATE TABLE queue_entries (${QUEUE_ENTRIES_COLUMNS}) WITHOUT ROWID;
${QUEUE_ENTRIES_INDEXES}
CREATE TABLE awaiting_release (
  client_id TEXT NOT NULL,
  packet_id INTEGER NOT NULL,
  PRIMARY KEY (client_id, packet_id)
) WITHOUT ROWID;
CREATE TABLE retained (
  topic TEXT NOT NULL UNIQUE,
  payload BLOB NOT NULL,
  qos INTEGER NOT NULL,
  retain INTEGER NOT NULL,
  properties TEXT,
  publisher_id TEXT NOT NULL,
  expires_at INTEGER
);
CREATE TABLE wills (
  client_id TEXT NOT NULL UNIQUE,
  topic TEXT NOT NULL,
  payload BLOB NOT NULL,
  qos INTEGER NOT NULL,
  retain INTEGER NOT NULL,
  properties TEXT,
  publish_at INTEGER,
  owner TEXT
);
CREATE TABLE meta (
  key TEXT PRIMARY KEY,
  value ANY
) WITHOUT ROWID;
`;

/**
 * The most log the window holds before its older half is applied. The in-flight messages of a loaded broker
 * must fit in it for their acknowledgements to cancel them before they become rows: QoS 1 10→10 keeps about
 * 10,000 messages in flight, 11 MB of log with 1 KiB payloads and 42 MB with 4 KiB. Measured (msg/s, against
 * 443k and 160k in memory): 1 KiB 46k with a window of 8 MiB, 87k with 16, 178–235k with 32 to 128; 4 KiB
 * 23k with 32, 47k with 64, 50k with 128. It costs disk, not memory: the window keeps its records'
 * operations, and their payloads stay in the log (see store_engine.ts for the window's memory bound).
 */
const MAX_LOG_WINDOW_BYTES = 64 * 1024 * 1024;

/** Raised when `PRAGMA quick_check` finds damage the WAL checksums could not have hidden. */
export class StoreDamagedError extends Error {
  override readonly name = "StoreDamagedError";
}

/** How the store splits its disk budget; see docs/storage.md, "Disk space". */
export interface DiskBudget {
  /** WAL size that triggers a checkpoint, and the size the WAL is truncated back to. */
  walBytes: number;
  /** Size of the ballast file that keeps room for deletes on a full disk. */
  reserveBytes: number;
  /**
   * Operation-log bytes held in memory (the window) after which the older half is applied to SQLite (see
   * store_engine.ts); the log files hold about one and a half times that. Under a page cap the log's files
   * count against it as they grow (the engine writes to SQLite directly when they would not fit).
   */
  logApplyBytes: number;
  /** Cap on database pages, when `maxDiskBytes` is set. */
  maxPages?: number;
}

/**
 * Splits the space into the WAL budget, the reserve and the page cap, and sizes the operation log's window.
 * All follow the smaller of `maxDiskBytes` and the data volume: the WAL gets a sixteenth of it (32 KiB to 4
 * MiB), the reserve twice the WAL (64 KiB to 8 MiB), room for a batch of deletes and the checkpoint that
 * follows it on a full disk. A small volume (a 4 MiB tmpfs) is usable; a volume of 64 MiB and more keeps 8
 * MiB back. The log's window gets an eighth of the space, at least twice the WAL, at most
 * {@link MAX_LOG_WINDOW_BYTES}.
 */
export function diskBudget(maxDiskBytes?: number, volumeBytes?: number): DiskBudget {
  const space = Math.min(maxDiskBytes ?? Infinity, volumeBytes ?? Infinity);
  const walBytes = Math.min(MAX_WAL_BYTES, Math.max(8 * PAGE_SIZE, Math.floor(space / 16)));
  const reserveBytes = 2 * walBytes;
  const logApplyBytes = Math.max(
    2 * walBytes,
    Math.min(MAX_LOG_WINDOW_BYTES, Math.floor(space / 8)),
  );
  if (maxDiskBytes === undefined) return { walBytes, reserveBytes, logApplyBytes };
  return {
    walBytes,
    reserveBytes,
    logApplyBytes,
    maxPages: Math.max(16, Math.floor((maxDiskBytes - walBytes - reserveBytes) / PAGE_SIZE)),
  };
}

/** Applies the per-connection settings, checks integrity and creates the tables of a new file. */
export function prepareDatabase(db: DatabaseSync, budget: DiskBudget): void {
  // EXCLUSIVE first: the WAL index then lives in heap memory (no -shm file), the file lock is held for
  // the connection's life (a second broker on the same directory fails instead of interleaving), and
  // SQLite never deletes the -wal file under the descriptor the adapter fsyncs.
  db.exec(
    `PRAGMA locking_mode = EXCLUSIVE; PRAGMA page_size = ${PAGE_SIZE}; PRAGMA auto_vacuum = INCREMENTAL;`,
  );
  db.exec("PRAGMA journal_mode = WAL");
  // NORMAL: commits only write the WAL; the adapter fsyncs it off the event loop (see docs/storage.md).
  db.exec(`PRAGMA synchronous = NORMAL; PRAGMA journal_size_limit = ${budget.walBytes};
    PRAGMA wal_autocheckpoint = ${Math.floor(budget.walBytes / PAGE_SIZE)};`);
  const version = db.prepare("PRAGMA user_version").get()?.user_version as number;
  if (version > SCHEMA_VERSION) {
    throw new Error(`store schema version ${version} is newer than this broker's ${SCHEMA_VERSION}`);
  }
  if (version === 0) {
    db.exec(`BEGIN; ${TABLES} PRAGMA user_version = ${SCHEMA_VERSION}; COMMIT;`);
  } else if (version < SCHEMA_VERSION) {
    let steps = "";
    for (let from = version; from < SCHEMA_VERSION; from++) steps += MIGRATIONS[from];
    db.exec(`BEGIN; ${steps} PRAGMA user_version = ${SCHEMA_VERSION}; COMMIT;`);
  }
  checkTables(db);
  if (budget.maxPages !== undefined) db.exec(`PRAGMA max_page_count = ${budget.maxPages}`);
}

/**
 * The tables read whole at start, checked (with their indexes) at every open. `messages`, the payloads, is
 * most of a big store (1 GiB for a million queued 1 KiB messages): checking it would read every page at
 * every start, seconds that the broker is not ready. Its rows are read per client when the client comes
 * back, and a damaged page there fails that read (the client is refused, logged) rather than the start.
 */
const CHECKED_AT_OPEN = [
  "sessions",
  "subscriptions",
  "queue_entries",
  "awaiting_release",
  "retained",
  "wills",
  "meta",
];

function checkTables(db: DatabaseSync): void {
  for (const table of CHECKED_AT_OPEN) {
    const result = db.prepare(`PRAGMA quick_check(${table})`).all().map((row) => String(row.quick_check));
    if (result.join() !== "ok") {
      throw new StoreDamagedError(`quick_check(${table}): ${result.slice(0, 5).join("; ")}`);
    }
  }
}

/** Free pages returned to the file system per vacuum pass at most, to bound the event-loop stall. */
export const VACUUM_STEP_PAGES = 1024;
/** Free pages below which vacuuming is not worth a pass. */
export const VACUUM_MIN_FREE_PAGES = 64;
