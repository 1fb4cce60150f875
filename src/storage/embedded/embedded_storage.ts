/**
 * The embedded durable store: one SQLite file in WAL mode in the data directory, written with group
 * commit. Commits only write the WAL (`synchronous=NORMAL`); durability comes from an fdatasync of the
 * WAL file that runs on Deno's blocking-I/O thread pool, so the event loop never waits for the disk.
 * docs/storage.md has the format, the durability levels and the measurements behind these choices.
 */
import type { DatabaseSync, StatementSync } from "node:sqlite";
import {
  type MessageRef,
  type QueueEntry,
  type StorageAdapter,
  StorageError,
  type StorageHealth,
  type StorageSnapshot,
  type StoredDelivery,
  type StoredMessage,
  type StoredSession,
  type StoredSubscription,
  type StoredWill,
} from "../port.ts";
import { type CommitStats, GroupCommit } from "./group_commit.ts";
import { grows, type Operation, OperationBuilder } from "./operations.ts";
import { BatchWriter } from "./batch_writer.ts";
import { type DirLock, lockDataDir } from "./dir_lock.ts";
import { openStore, type StorageLogger } from "./open_store.ts";
import { diskBudget, VACUUM_MIN_FREE_PAGES, VACUUM_STEP_PAGES } from "./schema.ts";
import { messageFromRow, queueEntryFromRow, type Row } from "./records.ts";
import { DiskReserve, volumeBytes } from "./disk_reserve.ts";

/** How the embedded store is set up (the `storage.*` keys of the config file). */
export interface EmbeddedStorageOptions {
  /** Data directory; created if missing. */
  dir: string;
  /**
   * `sync`: `flush()` resolves after fsync. `batch`: after the write, fsync every `batchIntervalMs`.
   * (The config's `memory` durability is the memory adapter, which main.ts picks instead.)
   */
  durability: "sync" | "batch";
  batchIntervalMs: number;
  logger?: StorageLogger;
  /** Cap on the store's size on disk; past it `flush()` rejects with reason 0x97 (Quota exceeded). */
  maxDiskBytes?: number;
}

/** The embedded adapter, with counters for tests and metrics. */
export interface EmbeddedStorage extends StorageAdapter {
  /** Transactions written and fsyncs done since start. */
  stats(): CommitStats;
}

/** MQTT reason codes a failed flush carries. */
const QUOTA_EXCEEDED = 0x97;
const UNSPECIFIED_ERROR = 0x80;

const SILENT_LOGGER: StorageLogger = { info() {}, warn() {}, error() {} };

/** Creates the embedded adapter; see {@link EmbeddedStorageOptions}. */
export function createEmbeddedStorage(options: EmbeddedStorageOptions): EmbeddedStorage {
  return new EmbeddedStore(options);
}

/** Maps an engine failure to the reason code the broker answers with; a full disk is a quota problem. */
function toStorageError(error: unknown): StorageError {
  if (error instanceof StorageError) return error;
  const message = error instanceof Error ? error.message : String(error);
  const full = /database or disk is full|no space left|os error 28|quota/i.test(message);
  return new StorageError(`storage write failed: ${message}`, full ? QUOTA_EXCEEDED : UNSPECIFIED_ERROR, {
    cause: error,
  });
}

/** Runs the operations as one transaction, rolling back whatever part ran if one throws. */
function runTransaction(db: DatabaseSync, writer: BatchWriter, operations: Operation[]): void {
  db.exec("BEGIN");
  try {
    writer.write(operations);
    db.exec("COMMIT");
  } finally {
    // SQLite rolls back by itself on SQLITE_FULL; any other failure leaves the transaction open.
    if (db.isTransaction) db.exec("ROLLBACK");
  }
}

interface Opened {
  db: DatabaseSync;
  wal: Deno.FsFile;
  reserve: DiskReserve;
  operations: OperationBuilder;
  writer: BatchWriter;
  commits: GroupCommit;
  freePages: StatementSync;
  pageCount: StatementSync;
  vacuumStep: StatementSync;
  readQueue: StatementSync;
}

class EmbeddedStore implements EmbeddedStorage {
  #phase: "new" | "starting" | "started" | "stopped" = "new";
  #opened: Opened | undefined;
  #dirLock: DirLock | undefined;
  #failure: StorageError | undefined;
  #nextMessageId = 1;
  #nextSequence = 1;
  readonly #logger: StorageLogger;

  constructor(private readonly options: EmbeddedStorageOptions) {
    this.#logger = options.logger ?? SILENT_LOGGER;
  }

  get dirty(): boolean {
    return this.#opened?.commits.dirty ?? false;
  }

  async start(): Promise<StorageSnapshot> {
    if (this.#phase !== "new") throw new Error(`embedded storage cannot start when ${this.#phase}`);
    this.#phase = "starting";
    const started = performance.now();
    const { dir } = this.options;
    await Deno.mkdir(dir, { recursive: true });
    this.#dirLock = await lockDataDir(dir);
    try {
      return await this.#open(started);
    } catch (error) {
      this.#dirLock.release();
      throw error;
    }
  }

  async #open(started: number): Promise<StorageSnapshot> {
    const { dir, maxDiskBytes, durability, batchIntervalMs } = this.options;
    const budget = diskBudget(maxDiskBytes, volumeBytes(dir));
    const store = openStore(dir, budget, this.#logger, Date.now());
    const reserve = new DiskReserve(dir, budget.reserveBytes, this.#logger);
    let wal: Deno.FsFile | undefined;
    try {
      await reserve.create();
      wal = await Deno.open(`${store.path}-wal`, { read: true });
      // The recovery transaction, and the directory entries of files this start may have created.
      await wal.syncData();
      await syncDirectory(dir);
    } catch (error) {
      wal?.close();
      store.db.close();
      throw error;
    }
    this.#nextMessageId = store.nextMessageId;
    this.#nextSequence = store.nextSequence;
    const { db } = store;
    this.#opened = {
      db,
      wal,
      reserve,
      operations: new OperationBuilder(db),
      writer: new BatchWriter(db),
      commits: new GroupCommit(
        {
          write: (operations) => this.#write(operations),
          sync: () => wal.syncData(),
          toStorageError,
          onOutcome: (error) => this.#onOutcome(error),
        },
        durability,
        batchIntervalMs,
      ),
      freePages: db.prepare("PRAGMA freelist_count"),
      pageCount: db.prepare("PRAGMA page_count"),
      vacuumStep: db.prepare(`PRAGMA incremental_vacuum(${VACUUM_STEP_PAGES})`),
      readQueue: db.prepare(`SELECT q.*, m.topic, m.payload, m.qos AS message_qos, m.retain AS message_retain,
        m.properties, m.publisher_id, m.expires_at FROM queue_entries q JOIN messages m ON m.id = q.message_id
        WHERE q.client_id = ? AND (q.stage <> 0 OR m.expires_at IS NULL OR m.expires_at > ?) ORDER BY q.seq`),
    };
    this.#phase = "started";
    const { snapshot } = store;
    this.#logger.info("storage.started", {
      path: store.path,
      durability,
      sessions: snapshot.sessions.length,
      queues: snapshot.queueTotals.size,
      retained: snapshot.retained.length,
      ...store.dropped,
      ms: Math.round(performance.now() - started),
    });
    return snapshot;
  }

  async stop(): Promise<void> {
    const opened = this.#opened;
    this.#phase = "stopped";
    if (!opened) {
      this.#dirLock?.release();
      return;
    }
    try {
      await opened.commits.close();
    } finally {
      this.#opened = undefined;
      opened.wal.close();
      opened.db.close();
      this.#dirLock?.release();
      this.#logger.info("storage.stopped", { path: this.options.dir });
    }
  }

  health(): StorageHealth {
    if (this.#phase !== "started") {
      return { ok: false, detail: this.#phase === "stopped" ? "stopped" : "not started" };
    }
    if (this.#opened?.reserve.lowDisk) {
      return { ok: false, detail: "disk full: storing only deletes and updates" };
    }
    if (this.#failure) return { ok: false, detail: this.#failure.message };
    return {
      ok: true,
      detail: `embedded store in ${this.options.dir}, durability ${this.options.durability}`,
    };
  }

  flush(): Promise<void> {
    return this.#opened?.commits.flush() ?? Promise.resolve();
  }

  stats(): CommitStats {
    return { ...(this.#opened?.commits.stats ?? { flushes: 0, syncs: 0 }) };
  }

  saveSession(session: StoredSession): void {
    const { commits, operations } = this.#started();
    commits.add(operations.saveSession(session));
  }

  deleteSession(clientId: string): void {
    const { commits, operations } = this.#started();
    commits.add(operations.deleteSession(clientId));
  }

  saveSubscription(subscription: StoredSubscription): void {
    const { commits, operations } = this.#started();
    commits.add(operations.saveSubscription(subscription));
  }

  deleteSubscription(clientId: string, topicFilter: string): void {
    const { commits, operations } = this.#started();
    commits.add(operations.deleteSubscription(clientId, topicFilter));
  }

  appendMessage(message: StoredMessage): MessageRef {
    const { commits, operations } = this.#started();
    const id = this.#nextMessageId++ as MessageRef;
    commits.add(operations.appendMessage(id, message));
    return id;
  }

  saveQueueEntry(entry: QueueEntry): void {
    const { commits, operations } = this.#started();
    commits.add(operations.saveQueueEntry(entry, this.#nextSequence++));
  }

  deleteQueueEntry(clientId: string, messageId: MessageRef): void {
    const { commits, operations } = this.#started();
    commits.add(operations.deleteQueueEntry(clientId, messageId));
  }

  deleteUnreferencedMessage(messageId: MessageRef): void {
    const { commits, operations } = this.#started();
    commits.add(operations.deleteUnreferencedMessage(messageId));
  }

  deleteOldestQueued(clientId: string): void {
    const { commits, operations } = this.#started();
    commits.add(operations.deleteOldestQueued(clientId));
  }

  async readQueue(clientId: string): Promise<StoredDelivery[]> {
    // The buffered mutations first: the read must see every change issued before it. A batch refused for
    // a full disk still wrote its deletes and updates, which is all a queue read needs.
    await this.flush().catch(() => {});
    const rows = this.#started().readQueue.all(clientId, Date.now()) as Row[];
    return rows.map((row) => ({
      entry: queueEntryFromRow(row),
      message: messageFromRow({ ...row, qos: row.message_qos, retain: row.message_retain }),
    }));
  }

  saveMeta(key: string, value: string): void {
    const { commits, operations } = this.#started();
    commits.add(operations.saveMeta(key, value));
  }

  addAwaitingRelease(clientId: string, packetId: number): void {
    const { commits, operations } = this.#started();
    commits.add(operations.addAwaitingRelease(clientId, packetId));
  }

  deleteAwaitingRelease(clientId: string, packetId: number): void {
    const { commits, operations } = this.#started();
    commits.add(operations.deleteAwaitingRelease(clientId, packetId));
  }

  saveRetained(message: StoredMessage): void {
    const { commits, operations } = this.#started();
    commits.add(operations.saveRetained(message));
  }

  deleteRetained(topic: string): void {
    const { commits, operations } = this.#started();
    commits.add(operations.deleteRetained(topic));
  }

  saveWill(will: StoredWill): void {
    const { commits, operations } = this.#started();
    commits.add(operations.saveWill(will));
  }

  deleteWill(clientId: string): void {
    const { commits, operations } = this.#started();
    commits.add(operations.deleteWill(clientId));
  }

  #started(): Opened {
    if (!this.#opened || this.#phase !== "started") {
      throw new Error(`embedded storage is ${this.#phase}: start it before writing`);
    }
    return this.#opened;
  }

  #write(operations: Operation[]): void {
    const { db, reserve, writer } = this.#opened!;
    if (!reserve.restore()) {
      runTransaction(db, writer, operations.filter((operation) => !grows(operation)));
      // Hand freed pages back to the file system now rather than at the next checkpoint, so the
      // reserve can come back and the store can leave low-disk mode.
      this.#reclaimOnFullDisk();
      if (operations.some(grows)) {
        throw new StorageError("disk full: new messages are refused until space is freed", QUOTA_EXCEEDED);
      }
      return;
    }
    try {
      runTransaction(db, writer, operations);
    } catch (error) {
      if (toStorageError(error).reasonCode !== QUOTA_EXCEEDED) throw error;
      reserve.releaseIfDiskFull();
      // Keep the batch's deletes and updates: if acknowledgements could not land while the store is
      // full, it would never drain. The batch still fails when it carried new messages.
      const kept = operations.filter((operation) => !grows(operation));
      runTransaction(db, writer, kept);
      if (kept.length < operations.length) throw error;
    }
    this.#reclaimFreePages(false);
  }

  /**
   * Returns free pages to the file system, so deleted messages shrink the file. Unless `always`, only
   * when a quarter of the file is free: each pass moves pages and stalls the event loop a little.
   */
  #reclaimFreePages(always: boolean): void {
    const { freePages, pageCount, vacuumStep } = this.#opened!;
    const free = freePages.get()?.freelist_count as number;
    if (free === 0) return;
    if (!always && (free < VACUUM_MIN_FREE_PAGES || free * 4 < (pageCount.get()?.page_count as number))) {
      return;
    }
    // The pragma frees one page per step: exec() would take one step, all() takes them all.
    vacuumStep.all();
  }

  /**
   * Low-disk mode: the freed pages go back to the file system in steps small enough for the WAL frames of
   * each to fit in the room the reserve left, with a checkpoint after each (the WAL holds the moved pages
   * until then). A step that finds no room is rolled back; the next batch tries again.
   */
  #reclaimOnFullDisk(): void {
    const { db, freePages, reserve } = this.#opened!;
    db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
    const step = db.prepare(
      `PRAGMA incremental_vacuum(${Math.max(8, Math.floor(reserve.bytes / 4 / 4096))})`,
    );
    for (let free = freePages.get()?.freelist_count as number; free > 0;) {
      try {
        step.all();
      } catch (error) {
        if (toStorageError(error).reasonCode !== QUOTA_EXCEEDED) throw error;
        break;
      }
      db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
      const left = freePages.get()?.freelist_count as number;
      if (left >= free) break;
      free = left;
    }
    db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
  }

  #onOutcome(error: StorageError | undefined): void {
    if (error && !this.#failure) {
      this.#logger.error("storage.write_failed", { error: error.message, reasonCode: error.reasonCode });
    } else if (!error && this.#failure) {
      this.#logger.info("storage.write_recovered", { after: this.#failure.message });
    }
    this.#failure = error;
  }
}

/** fsyncs a directory, so files created in it survive a power loss. */
async function syncDirectory(dir: string): Promise<void> {
  const handle = await Deno.open(dir, { read: true });
  try {
    await handle.sync();
  } finally {
    handle.close();
  }
}
