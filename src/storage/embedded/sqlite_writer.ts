/**
 * Writing to the store's SQLite file, for the engine: a group of batches as a transaction of its own (near a
 * full disk), or operation-log records in bulk; and what a full disk or the
 * page cap does to either (the disk reserve, low-disk mode, giving free pages back).
 */
import type { DatabaseSync, StatementSync } from "node:sqlite";
import { StorageError } from "../port.ts";
import { applyRecords } from "./apply_window.ts";
import { BatchWriter } from "./batch_writer.ts";
import type { DiskReserve } from "./disk_reserve.ts";
import { type FlatBatch, grows, type PayloadSource } from "./operations.ts";
import { type DiskBudget, PAGE_SIZE, VACUUM_MIN_FREE_PAGES, VACUUM_STEP_PAGES } from "./schema.ts";

/** MQTT reason codes a failed flush carries. */
export const QUOTA_EXCEEDED = 0x97;
export const UNSPECIFIED_ERROR = 0x80;

/** Maps an engine failure to the reason code the broker answers with; a full disk is a quota problem. */
export function toStorageError(error: unknown): StorageError {
  if (error instanceof StorageError) return error;
  const message = error instanceof Error ? error.message : String(error);
  const full = /database or disk is full|no space left|os error 28|quota/i.test(message);
  return new StorageError(`storage write failed: ${message}`, full ? QUOTA_EXCEEDED : UNSPECIFIED_ERROR, {
    cause: error,
  });
}

/**
 * Runs the batches as one transaction, rolling back whatever part ran if one throws; unless `growing`,
 * without the operations that add payload bytes.
 */
function runTransaction(
  db: DatabaseSync,
  writer: BatchWriter,
  batches: FlatBatch[],
  growing: boolean,
): void {
  db.exec("BEGIN");
  try {
    writer.write(batches, growing);
    db.exec("COMMIT");
  } finally {
    // SQLite rolls back by itself on SQLITE_FULL; any other failure leaves the transaction open.
    if (db.isTransaction) db.exec("ROLLBACK");
  }
}

/** See the module comment. */
export class SqliteWriter {
  readonly #writer: BatchWriter;
  readonly #freePages: StatementSync;
  readonly #pageCount: StatementSync;
  readonly #vacuumStep: StatementSync;

  constructor(
    private readonly db: DatabaseSync,
    private readonly reserve: DiskReserve,
    private readonly budget: DiskBudget,
  ) {
    this.#writer = new BatchWriter(db);
    this.#freePages = db.prepare("PRAGMA freelist_count");
    this.#pageCount = db.prepare("PRAGMA page_count");
    this.#vacuumStep = db.prepare(`PRAGMA incremental_vacuum(${VACUUM_STEP_PAGES})`);
  }

  /**
   * Whether `pendingBytes` (the log's files and window) and `batches` might not fit under the page cap
   * once applied (at twice their size, for indexes and half-filled pages): then the group goes to SQLite
   * directly, where the cap refuses it.
   */
  nearPageCap(pendingBytes: number, batches: readonly FlatBatch[]): boolean {
    const { maxPages } = this.budget;
    if (maxPages === undefined) return false;
    let bytes = pendingBytes;
    for (const batch of batches) bytes += batch.payloads.byteLength + 64 * batch.kinds.length;
    const used = (this.#pageCount.get()?.page_count as number) -
      (this.#freePages.get()?.freelist_count as number);
    return used + (2 * bytes) / PAGE_SIZE > maxPages;
  }

  /**
   * Applies operation-log records up to `seq` (see apply_window.ts). They were acknowledged: on a full disk
   * the reserve is given up for them, and past the page cap the cap is lifted for this transaction.
   */
  applyRecords(batches: readonly FlatBatch[], seq: number, source?: PayloadSource): void {
    const { db } = this;
    try {
      applyRecords(db, this.#writer, batches, seq, source);
    } catch (error) {
      if (toStorageError(error).reasonCode !== QUOTA_EXCEEDED) throw error;
      this.reserve.releaseIfDiskFull();
      db.exec("PRAGMA max_page_count = 2147483646");
      try {
        applyRecords(db, this.#writer, batches, seq, source);
      } finally {
        if (this.budget.maxPages !== undefined) db.exec(`PRAGMA max_page_count = ${this.budget.maxPages}`);
      }
    }
    this.#reclaimFreePages(false);
  }

  /**
   * After a log append found no space: gives up the reserve if the file system is full and writes the
   * batches' deletes and updates; throws `failure` if they carried new messages.
   */
  writeShrinking(batches: FlatBatch[], failure: StorageError): void {
    this.reserve.releaseIfDiskFull();
    runTransaction(this.db, this.#writer, batches, false);
    if (batches.some(grows)) throw failure;
  }

  /** Writes the batches to SQLite as one transaction; on a full disk, their deletes and updates only. */
  write(batches: FlatBatch[]): void {
    const { db, reserve } = this;
    const writer = this.#writer;
    if (!reserve.restore()) {
      runTransaction(db, writer, batches, false);
      // Hand freed pages back to the file system now rather than at the next checkpoint, so the
      // reserve can come back and the store can leave low-disk mode.
      this.#reclaimOnFullDisk();
      if (batches.some(grows)) {
        throw new StorageError("disk full: new messages are refused until space is freed", QUOTA_EXCEEDED);
      }
      return;
    }
    try {
      runTransaction(db, writer, batches, true);
    } catch (error) {
      if (toStorageError(error).reasonCode !== QUOTA_EXCEEDED) throw error;
      reserve.releaseIfDiskFull();
      // Keep the batch's deletes and updates: if acknowledgements could not land while the store is
      // full, it would never drain. The batch still fails when it carried new messages.
      runTransaction(db, writer, batches, false);
      if (batches.some(grows)) throw error;
    }
    this.#reclaimFreePages(false);
  }

  /**
   * Low-disk mode: the freed pages go back to the file system in steps small enough for the WAL frames of
   * each to fit in the room the reserve left, with a checkpoint after each (the WAL holds the moved pages
   * until then). A step that finds no room is rolled back; the next batch tries again.
   */
  #reclaimOnFullDisk(): void {
    const { db, reserve } = this;
    db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
    const step = db.prepare(
      `PRAGMA incremental_vacuum(${Math.max(8, Math.floor(reserve.bytes / 4 / 4096))})`,
    );
    for (let free = this.#freePages.get()?.freelist_count as number; free > 0;) {
      try {
        step.all();
      } catch (error) {
        if (toStorageError(error).reasonCode !== QUOTA_EXCEEDED) throw error;
        break;
      }
      db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
      const left = this.#freePages.get()?.freelist_count as number;
      if (left >= free) break;
      free = left;
    }
    db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
  }

  /**
   * Returns free pages to the file system, so deleted messages shrink the file. Unless `always`, only
   * when a quarter of the file is free: each pass moves pages.
   */
  #reclaimFreePages(always: boolean): void {
    const free = this.#freePages.get()?.freelist_count as number;
    if (free === 0) return;
    if (
      !always && (free < VACUUM_MIN_FREE_PAGES || free * 4 < (this.#pageCount.get()?.page_count as number))
    ) {
      return;
    }
    // The pragma frees one page per step: exec() would take one step, all() takes them all.
    this.#vacuumStep.all();
  }
}
