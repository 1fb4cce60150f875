/**
 * Group commit: mutations are buffered synchronously; everything issued during one event-loop turn is
 * written in one transaction, and at durability `sync` made durable by an fsync before its `flush()`
 * promises resolve. While an fsync runs, later batches are written and share the next fsync.
 * At durability `batch` a batch resolves once written, and one fsync every `intervalMs` covers them all.
 */
import { setImmediate } from "node:timers";
import { StorageError } from "../port.ts";

/** What group commit drives: the engine underneath, writing items (batches of operations) of type `T`. */
export interface CommitTarget<T> {
  /** Applies the items as one transaction; throws (nothing or a consistent part applied) if it cannot. */
  write(items: T[]): void;
  /** The operations in an item, for {@link CommitStats}. */
  count(item: T): number;
  /** Makes every written transaction durable. */
  sync(): Promise<void>;
  /** Converts a failure of `write` or `sync` into the error `flush()` rejects with. */
  toStorageError(error: unknown): StorageError;
  /** Called after each batch (and each timed sync) with its outcome, for health and logs. */
  onOutcome(error: StorageError | undefined): void;
}

/** Counters exposed for tests and metrics. */
export interface CommitStats {
  /** Transactions written, one per batch. */
  flushes: number;
  /** fsyncs completed. */
  syncs: number;
  /** Operations in the transactions written. */
  operations: number;
}

/** A batch's shared promise. */
interface Batch {
  promise: Promise<void>;
  resolve(): void;
  reject(error: StorageError): void;
}

function createBatch(): Batch {
  const { promise, resolve, reject } = Promise.withResolvers<void>();
  // A batch nobody awaits may still fail; its outcome reaches health() and the log, not an unhandled rejection.
  promise.catch(() => {});
  return { promise, resolve, reject };
}

/** Batches operations into transactions; see the module comment. */
export class GroupCommit<T> {
  readonly stats: CommitStats = { flushes: 0, syncs: 0, operations: 0 };
  #pending: T[] = [];
  /** The batch collecting `#pending`. */
  #collecting: Batch | undefined;
  /** The batch written last: `flush()` with nothing collecting waits for it. */
  #lastWritten: Batch | undefined;
  /** An fsync is in flight; batches written meanwhile wait in `#nextSync` for the next one. */
  #syncing = false;
  #nextSync: Batch[] | undefined;
  #scheduled = false;
  #unsynced = false;
  #syncTimer: ReturnType<typeof setTimeout> | undefined;
  #timedSync: Promise<void> | undefined;

  constructor(
    private readonly target: CommitTarget<T>,
    private readonly durability: "sync" | "batch",
    private readonly intervalMs: number,
  ) {}

  /** True when operations are buffered that no transaction has taken yet. */
  get dirty(): boolean {
    return this.#pending.length > 0;
  }

  add(item: T): void {
    this.#pending.push(item);
    this.#collecting ??= createBatch();
    if (this.#scheduled) return;
    this.#scheduled = true;
    // setImmediate runs after this turn's I/O callbacks, so one batch takes all of them (setTimeout(0)
    // waits about 2 ms here, a microtask would commit after every single callback).
    setImmediate(() => {
      this.#scheduled = false;
      this.#drain();
    });
  }

  /** Writes what is buffered now instead of at the end of the turn (a read must see it); no fsync. */
  writePending(): void {
    this.#drain();
  }

  /** Resolves when everything added so far is durable (written, at durability `batch`). */
  flush(): Promise<void> {
    return (this.#collecting ?? this.#lastWritten)?.promise ?? Promise.resolve();
  }

  /** Flushes, then makes the last written batches durable and stops the sync timer. */
  async close(): Promise<void> {
    try {
      await this.flush();
    } finally {
      clearTimeout(this.#syncTimer);
      this.#syncTimer = undefined;
      await this.#timedSync;
      if (this.#unsynced) await this.#syncUnsynced();
    }
  }

  /**
   * Writes batches as they come. At durability `sync` the write of the next batch does not wait for the
   * fsync of the previous one (it runs on the blocking-I/O pool): one fsync is in flight at a time, and
   * every batch written meanwhile shares the next one, which starts when it returns.
   */
  #drain(): void {
    while (this.#collecting) {
      const batch = this.#collecting;
      const items = this.#pending;
      this.#collecting = undefined;
      this.#pending = [];
      this.#lastWritten = batch;
      try {
        this.target.write(items);
        this.stats.flushes++;
        for (const item of items) this.stats.operations += this.target.count(item);
      } catch (error) {
        const failure = this.target.toStorageError(error);
        this.target.onOutcome(failure);
        batch.reject(failure);
        continue;
      }
      if (this.durability === "batch") {
        this.#unsynced = true;
        this.#armSyncTimer();
        this.target.onOutcome(undefined);
        batch.resolve();
      } else {
        this.#awaitSync(batch);
      }
    }
  }

  /** Resolves `batch` after an fsync that starts after its write. */
  #awaitSync(batch: Batch): void {
    if (this.#nextSync) this.#nextSync.push(batch);
    else if (this.#syncing) this.#nextSync = [batch];
    else this.#startSync([batch]);
  }

  #startSync(covered: Batch[]): void {
    this.#syncing = true;
    this.target.sync().then(
      () => {
        this.stats.syncs++;
        this.target.onOutcome(undefined);
        for (const batch of covered) batch.resolve();
      },
      (error) => {
        const failure = this.target.toStorageError(error);
        this.target.onOutcome(failure);
        for (const batch of covered) batch.reject(failure);
      },
    ).finally(() => {
      this.#syncing = false;
      const waiting = this.#nextSync;
      this.#nextSync = undefined;
      if (waiting) this.#startSync(waiting);
    });
  }

  #armSyncTimer(): void {
    this.#syncTimer ??= setTimeout(() => {
      this.#syncTimer = undefined;
      if (this.#timedSync) this.#armSyncTimer();
      else this.#timedSync = this.#syncUnsynced().finally(() => this.#timedSync = undefined);
    }, this.intervalMs);
  }

  async #syncUnsynced(): Promise<void> {
    this.#unsynced = false;
    try {
      await this.target.sync();
      this.stats.syncs++;
      this.target.onOutcome(undefined);
    } catch (error) {
      this.#unsynced = true;
      this.target.onOutcome(this.target.toStorageError(error));
    }
  }
}
