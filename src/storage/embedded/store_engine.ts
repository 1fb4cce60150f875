/**
 * The part of the embedded store that touches the disk, run by the store's worker: the SQLite file in WAL
 * mode (opened and recovered), batches of operations taken with group commit, the disk reserve and page
 * reclaiming, and queue reads. A group is appended to the operation log, at durability `sync` made durable
 * by its fdatasync (on Deno's blocking-I/O pool, so that the next group is written while it runs), at
 * `batch` by the fdatasync every batch interval; the log's records are applied to SQLite in bulk (a window:
 * by size, by time, before a read that needs it), where operations cancel out across batches. Near a full
 * disk, groups are written to SQLite directly and the WAL is fdatasynced. Commits only write the WAL
 * (`synchronous=NORMAL`). docs/storage.md has the format, the durability levels and the measurements behind
 * these choices.
 */
import type { DatabaseSync, StatementSync } from "node:sqlite";
import {
  type QueuePage,
  type QueuePosition,
  type QueueRead,
  StorageError,
  type StoredMessage,
} from "../port.ts";
import { cancelAcross } from "./apply_window.ts";
import { DiskReserve, volumeBytes } from "./disk_reserve.ts";
import { type CommitStats, GroupCommit } from "./group_commit.ts";
import { openStore, type StorageLogger } from "./open_store.ts";
import { OperationLog, type PayloadsAt } from "./operation_log.ts";
import { countQueueClients, type FlatBatch, liveCount, type WireBatch } from "./operations.ts";
import { indexBatch } from "./batch_codec.ts";
import { messageFromRow, queueEntryFromRow, type Row, type WireSnapshot } from "./records.ts";
import { dropOrphans } from "./recovery.ts";
import { type DiskBudget, diskBudget } from "./schema.ts";
import { QUOTA_EXCEEDED, SqliteWriter, toStorageError } from "./sqlite_writer.ts";

/** The longest an operation-log record waits to be applied to SQLite, unless the options say otherwise. */
const APPLY_INTERVAL_MS = 1000;

/**
 * The most memory the window's records hold (see {@link heldBytes}; payloads stay in the log) before its
 * older half is applied, and at most a sixty-fourth of the machine's: it is the store worker's memory,
 * outside limits.memory_bytes. With small payloads the operations are most of the log, and this bound comes
 * first: 64 B messages need a few MiB of window for their acknowledgements to cancel them, and a window of
 * 32 MiB of log cost the broker 30–40 MB of resident memory more than one of 8 for the same throughput.
 */
const MAX_WINDOW_MEMORY_BYTES = 8 * 1024 * 1024;

/** The bound on what the window holds in memory on this machine (see {@link MAX_WINDOW_MEMORY_BYTES}). */
export function windowMemoryBound(): number {
  return Math.min(MAX_WINDOW_MEMORY_BYTES, Math.floor(Deno.systemMemoryInfo().total / 64));
}

/**
 * How far past its bounds the window may grow while the apply they call for waits for the newest record's
 * fdatasync (see StoreEngine's #applyBySize): past this, it is applied at once.
 */
const WINDOW_OVERSHOOT = 2;

/**
 * What a batch in the window holds in memory: its encoded operations, their index (IndexedBatch's four
 * columns, 17 B an operation) and what was decoded from them on arrival (its strings, its single operations'
 * values). Uncounted, the strings of the big-queue benchmark's publishing (a topic and a client per
 * message) were half as much again as the window counted.
 */
const heldBytes = (batch: FlatBatch): number =>
  batch.bytes.byteLength + 17 * batch.kinds.length + batch.decodedBytes;

/** What the engine is opened with (the adapter's options that concern the disk). */
export interface EngineOptions {
  dir: string;
  durability: "sync" | "batch";
  batchIntervalMs: number;
  maxDiskBytes?: number;
  applyIntervalMs?: number;
}

/** An opened engine, with what the adapter continues from. */
export interface OpenedEngine {
  engine: StoreEngine;
  snapshot: WireSnapshot;
  nextMessageId: number;
  nextSequence: number;
}

/**
 * Frees the buffers of batches that are in SQLite, or were refused (an idle worker would keep a burst's
 * payloads).
 */
function release(batches: readonly FlatBatch[]): void {
  for (const batch of batches) {
    batch.payloads.buffer.transfer(0);
    batch.bytes.buffer.transfer(0);
  }
}

export class StoreEngine {
  readonly #sqlite: SqliteWriter;
  /**
   * The log records not yet applied to SQLite (the window), their bytes in the log, and where their batches'
   * payloads are in it: the window keeps the operations only; an apply reads back the payloads of a batch
   * whose appends did not all cancel out, one batch at a time.
   */
  #window: { seq: number; batches: FlatBatch[]; bytes: number; held: number; payloadsAt: PayloadsAt[] }[] =
    [];
  #windowBytes = 0;
  /**
   * The clients whose queues the window's records change, with the number of its batches that do (see
   * countQueueClients). A read of another client's queue needs no apply. Applying the whole window before
   * every read wrote, on the big-queue benchmark's drain (a read per reconnecting session), the "sent" stage
   * of most deliveries in flight as a row, its acknowledgement a moment later then deleting it.
   */
  readonly #windowQueues = new Map<string, number>();
  /** What the window's records hold in memory (see {@link heldBytes}), and its bound. */
  #windowHeld = 0;
  readonly #maxWindowHeld: number;
  /** The last log record known to be durable (its fdatasync returned). */
  #durableSeq = 0;
  /** The window reached its bounds: its older half is applied once the newest record is durable. */
  #applyWhenDurable = false;
  readonly #applyIntervalMs: number;
  #applyTimer: ReturnType<typeof setTimeout> | undefined;
  /** A group was written to SQLite directly since the WAL's last fdatasync. */
  #walUnsynced = false;
  readonly #commits: GroupCommit<FlatBatch>;
  readonly #queuePositions: StatementSync;
  readonly #readQueue: StatementSync;
  readonly #readRetained: StatementSync;

  private constructor(
    private readonly db: DatabaseSync,
    private readonly wal: Deno.FsFile,
    private readonly reserve: DiskReserve,
    private readonly log: OperationLog,
    private readonly budget: DiskBudget,
    options: EngineOptions,
    private readonly onOutcome: (error: StorageError | undefined) => void,
  ) {
    this.#sqlite = new SqliteWriter(db, reserve, budget);
    this.#applyIntervalMs = options.applyIntervalMs ?? APPLY_INTERVAL_MS;
    this.#maxWindowHeld = windowMemoryBound();
    this.#commits = new GroupCommit(
      {
        write: (items) => this.#write(items),
        count: (batch) => liveCount(batch.kinds),
        sync: () => this.#sync(),
        toStorageError,
        onOutcome,
      },
      options.durability,
      options.batchIntervalMs,
    );
    // A page is read in two steps: the entries' positions and sizes (no message row), to find where the
    // page ends, then the messages of that range only; reading one row too many would load its payload.
    this.#queuePositions = db.prepare(
      "SELECT seq, bytes FROM queue_entries WHERE client_id = ? AND seq > ? ORDER BY seq LIMIT ?",
    );
    this.#readQueue = db.prepare(`SELECT q.*, m.topic, m.payload, m.qos AS message_qos,
      m.retain AS message_retain, m.properties, m.publisher_id, m.expires_at FROM queue_entries q
      JOIN messages m ON m.id = q.message_id
      WHERE q.client_id = ? AND q.seq > ? AND q.seq <= ?
      AND (q.stage <> 0 OR m.expires_at IS NULL OR m.expires_at > ?) ORDER BY q.seq`);
    this.#readRetained = db.prepare("SELECT * FROM retained WHERE topic = ?");
  }

  /** Opens and recovers the store in `options.dir` (the caller holds the directory lock). */
  static async open(
    options: EngineOptions,
    logger: StorageLogger,
    onOutcome: (error: StorageError | undefined) => void,
  ): Promise<OpenedEngine> {
    const started = performance.now();
    const { dir, maxDiskBytes, durability } = options;
    const budget = diskBudget(maxDiskBytes, volumeBytes(dir));
    const store = openStore(dir, budget, logger, Date.now());
    const reserve = new DiskReserve(dir, budget.reserveBytes, logger);
    let wal: Deno.FsFile | undefined;
    let log: OperationLog | undefined;
    try {
      await reserve.create();
      wal = await Deno.open(`${store.path}-wal`, { read: true });
      // The replayed log and the recovery transaction; only then is the log emptied.
      await wal.syncData();
      log = OperationLog.open(store.path, store.appliedSeq + 1);
      // The directory entries of files this start may have created.
      await syncDirectory(dir);
    } catch (error) {
      log?.close();
      wal?.close();
      store.db.close();
      throw error;
    }
    const { snapshot } = store;
    logger.info("storage.started", {
      path: store.path,
      durability,
      sessions: snapshot.sessions.rows,
      queues: snapshot.queueTotals.rows,
      retained: snapshot.retained.length,
      expiredMessages: store.expiredMessages,
      ms: Math.round(performance.now() - started),
    });
    return {
      engine: new StoreEngine(store.db, wal, reserve, log, budget, options, onOutcome),
      snapshot,
      nextMessageId: store.nextMessageId,
      nextSequence: store.nextSequence,
    };
  }

  get stats(): CommitStats {
    return { ...this.#commits.stats };
  }

  /** True while the disk reserve is freed: only deletes and updates are stored. */
  get lowDisk(): boolean {
    return this.reserve.lowDisk;
  }

  /** Finishes recovery (see recovery.ts): called once the snapshot is sent, before any batch or read. */
  dropOrphans(logger: StorageLogger): void {
    const started = performance.now();
    const dropped = dropOrphans(this.db);
    logger.info("storage.orphans_dropped", { ...dropped, ms: Math.round(performance.now() - started) });
  }

  /**
   * Adds one batch of the adapter's operations (the engine owns it now, and frees its payloads once they are
   * in SQLite); they share the next log record or transaction with every batch that arrives in this turn.
   * Resolves when they are durable (written, at durability `batch`).
   */
  add({ operations, payloads }: WireBatch): Promise<void> {
    let batch: FlatBatch;
    try {
      batch = indexBatch(operations, payloads);
    } catch (error) {
      // Bytes the adapter did not encode: this batch fails, the worker goes on.
      return Promise.reject(toStorageError(error));
    }
    this.#commits.add(batch);
    return this.#commits.flush();
  }

  /**
   * The next page of one client's queue in delivery order, after writing everything added before (no fsync
   * needed). The byte bound counts expired entries too (their sizes are known without reading them).
   */
  readQueue(clientId: string, { after, maxEntries, maxBytes }: QueueRead, now: number): QueuePage {
    this.#commits.writePending();
    if (this.#windowQueues.has(clientId)) this.#applyWindow();
    const from = after ?? 0;
    const positions = this.#queuePositions.all(clientId, from, maxEntries + 1) as {
      seq: number;
      bytes: number;
    }[];
    let end = 0;
    let bytes = 0;
    while (
      end < positions.length && end < maxEntries && (end === 0 || bytes + positions[end].bytes <= maxBytes)
    ) {
      bytes += positions[end++].bytes;
    }
    if (end === 0) return { deliveries: [], more: false };
    const last = positions[end - 1].seq;
    const rows = this.#readQueue.all(clientId, from, last, now) as Row[];
    return {
      deliveries: rows.map((row) => ({
        entry: queueEntryFromRow(row),
        message: messageFromRow(row, row.message_qos, row.message_retain),
      })),
      last: last as QueuePosition,
      more: end < positions.length,
    };
  }

  /** The retained messages of `topics`, in that order, after writing everything added before. */
  readRetained(topics: string[]): (StoredMessage | undefined)[] {
    this.#commits.writePending();
    this.#applyWindow();
    return topics.map((topic) => {
      const row = this.#readRetained.get(topic) as Row | undefined;
      return row && messageFromRow(row);
    });
  }

  /** Writes and syncs what is left, applies the log and empties it, then closes the files. */
  async close(): Promise<void> {
    try {
      // A last group that failed fails the close, after the log is applied.
      const failure = await this.#commits.close().then(() => undefined, (error) => error);
      this.#applyWindow();
      await this.log.settled();
      await this.wal.syncData();
      this.log.clear();
      if (failure) throw failure;
    } finally {
      clearTimeout(this.#applyTimer);
      this.log.close();
      this.wal.close();
      this.db.close();
    }
  }

  /** Makes every group taken so far durable: the log's new records, the WAL if a group went there. */
  async #sync(): Promise<void> {
    const wal = this.#walUnsynced;
    const logged = this.log.nextSeq - 1;
    this.#walUnsynced = false;
    await Promise.all([this.log.sync(), wal ? this.wal.syncData() : undefined]);
    this.#durableSeq = Math.max(this.#durableSeq, logged);
    if (this.#applyWhenDurable) {
      // The groups synced here are durable whatever the apply does: its failure is the store's, not theirs.
      this.#applyCatching(true);
    }
  }

  /**
   * Takes a group of batches: appends it to the log and keeps it in the window, or, near a full disk
   * (low-disk mode, or the page cap close), writes it to SQLite after the window.
   */
  #write(batches: FlatBatch[]): void {
    const log = this.log;
    let kept = false;
    try {
      if (this.reserve.lowDisk || this.#sqlite.nearPageCap(this.#windowBytes + log.bytes / 2, batches)) {
        this.#applyWindow();
        this.#walUnsynced = true;
        this.#sqlite.write(batches);
        return;
      }
      let appended: { bytes: number; payloadsAt: PayloadsAt[] };
      try {
        appended = log.append(batches.map(({ bytes, payloads }) => ({ operations: bytes, payloads })));
      } catch (error) {
        this.#refuseOnFullLog(error, batches);
        return;
      }
      kept = true;
      const { bytes, payloadsAt } = appended;
      let held = 0;
      for (const batch of batches) {
        held += heldBytes(batch);
        if (batch.payloads.byteLength === 0) continue;
        batch.payloads.buffer.transfer(0);
        batch.payloads = new Uint8Array(0);
      }
      this.#window.push({ seq: log.nextSeq - 1, batches, bytes, held, payloadsAt });
      for (const batch of batches) countQueueClients(batch, this.#windowQueues, 1);
      this.#windowBytes += bytes;
      this.#windowHeld += held;
      this.#applyBySize();
    } finally {
      if (!kept) release(batches);
    }
  }

  /**
   * A log append failed and wrote nothing (the log was cut back). On a full disk the window is applied and
   * the batches' deletes and updates still go to SQLite; the group fails with 0x97 when it carried new
   * messages.
   */
  #refuseOnFullLog(error: unknown, batches: FlatBatch[]): void {
    const failure = toStorageError(error);
    if (failure.reasonCode !== QUOTA_EXCEEDED) throw failure;
    this.#applyWindow();
    this.#walUnsynced = true;
    this.#sqlite.writeShrinking(batches, failure);
  }

  /**
   * Applies the window's older half once it reaches its bounds, after the record just appended is durable:
   * only durable records may cancel what a partial apply writes, and the acknowledgements of the older
   * records' deliveries are often in that newest one. Applied before its fdatasync, a window of few large
   * records (a durable fan-out to 100 persistent subscribers: some 100,000 operations a record) wrote nearly
   * every delivery as a row and deleted it one record later.
   */
  #applyBySize(): void {
    const bytes = this.#windowBytes, held = this.#windowHeld;
    const bytesBound = this.budget.logApplyBytes, heldBound = this.#maxWindowHeld;
    if (bytes < bytesBound && held < heldBound) {
      this.#armApplyTimer();
    } else if (bytes >= WINDOW_OVERSHOOT * bytesBound || held >= WINDOW_OVERSHOOT * heldBound) {
      this.#applyWindow(true);
    } else {
      this.#applyWhenDurable = true;
    }
  }

  #applyOnTimer(): void {
    this.#applyTimer = undefined;
    this.#applyCatching(false);
  }

  #applyCatching(oldestHalf: boolean): void {
    try {
      this.#applyWindow(oldestHalf);
    } catch (error) {
      this.onOutcome(toStorageError(error));
    }
  }

  /**
   * Applies log records to SQLite in one transaction, with the log sequence they reach: every record in the
   * window, or (`oldestHalf`, when the window has grown to its size in log or in memory) the oldest records
   * up to half of either, the newer ones staying for what comes next to cancel out with (see
   * apply_window.ts). Then the log turns (a file is emptied once its records are applied and the WAL is
   * fdatasynced).
   */
  #applyWindow(oldestHalf = false): void {
    clearTimeout(this.#applyTimer);
    this.#applyTimer = undefined;
    this.#applyWhenDurable = false;
    const window = this.#window;
    const log = this.log;
    if (window.length === 0) return;
    let count = window.length;
    let bytes = this.#windowBytes;
    let held = this.#windowHeld;
    if (oldestHalf) {
      for (
        count = 0, bytes = 0, held = 0;
        count < window.length && 2 * bytes < this.#windowBytes && 2 * held < this.#windowHeld;
        count++
      ) {
        bytes += window[count].bytes;
        held += window[count].held;
      }
    }
    // Applying part of the window, only durable records may cancel what it writes: after a power loss the
    // log must still hold the operation an omitted row stands for. Applied together, any records may.
    const durable = oldestHalf ? window.filter((record) => record.seq <= this.#durableSeq) : window;
    let keptFrom = 0;
    for (let r = 0; r < count && r < durable.length; r++) keptFrom += durable[r].batches.length;
    cancelAcross(durable.flatMap((record) => record.batches), keptFrom);
    const applied: FlatBatch[] = [];
    const payloadsAt = new Map<FlatBatch, PayloadsAt>();
    for (let r = 0; r < count; r++) {
      const record = window[r];
      for (let b = 0; b < record.batches.length; b++) {
        applied.push(record.batches[b]);
        payloadsAt.set(record.batches[b], record.payloadsAt[b]);
      }
    }
    const seq = window[count - 1].seq;
    this.#sqlite.applyRecords(applied, seq, (batch) => this.log.readPayloads(payloadsAt.get(batch)!));
    this.#window = window.slice(count);
    this.#windowBytes -= bytes;
    this.#windowHeld -= held;
    for (const batch of applied) countQueueClients(batch, this.#windowQueues, -1);
    release(applied);
    log.applied(seq, () => this.wal.syncData(), (error) => this.onOutcome(toStorageError(error)));
    if (this.#window.length > 0) this.#armApplyTimer();
  }

  #armApplyTimer(): void {
    this.#applyTimer ??= setTimeout(() => this.#applyOnTimer(), this.#applyIntervalMs);
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
