/**
 * Group commit: mutations are buffered synchronously; everything issued during one event-loop turn is
 * written in one transaction, and at durability `sync` made durable by one fsync before its `flush()`
 * promises resolve. While a batch is syncing, the next one accumulates and starts as soon as it is done.
 * At durability `batch` a batch resolves once written, and one fsync every `intervalMs` covers them all.
 */
import { setImmediate } from "node:timers";
import { StorageError } from "../port.ts";
import type { Operation } from "./operations.ts";

/** What group commit drives: the engine underneath. */
export interface CommitTarget {
  /** Applies the operations as one transaction; throws (nothing or a consistent part applied) if it cannot. */
  write(operations: Operation[]): void;
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
export class GroupCommit {
  readonly stats: CommitStats = { flushes: 0, syncs: 0 };
  #pending: Operation[] = [];
  /** The batch collecting `#pending`. */
  #collecting: Batch | undefined;
  /** The batch being written or synced. */
  #committing: Batch | undefined;
  #scheduled = false;
  #unsynced = false;
  #syncTimer: ReturnType<typeof setTimeout> | undefined;
  #timedSync: Promise<void> | undefined;

  constructor(
    private readonly target: CommitTarget,
    private readonly durability: "sync" | "batch",
    private readonly intervalMs: number,
  ) {}

  /** True when operations are buffered that no transaction has taken yet. */
  get dirty(): boolean {
    return this.#pending.length > 0;
  }

  add(operation: Operation): void {
    this.#pending.push(operation);
    this.#collecting ??= createBatch();
    if (this.#scheduled || this.#committing) return;
    this.#scheduled = true;
    // setImmediate runs after this turn's I/O callbacks, so one batch takes all of them (setTimeout(0)
    // waits about 2 ms here, a microtask would commit after every single callback).
    setImmediate(() => {
      this.#scheduled = false;
      void this.#drain();
    });
  }

  /** Resolves when everything added so far is durable (written, at durability `batch`). */
  flush(): Promise<void> {
    return (this.#collecting ?? this.#committing)?.promise ?? Promise.resolve();
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

  async #drain(): Promise<void> {
    while (this.#collecting && !this.#committing) {
      const batch = this.#collecting;
      const operations = this.#pending;
      this.#collecting = undefined;
      this.#pending = [];
      this.#committing = batch;
      let failure: StorageError | undefined;
      try {
        this.target.write(operations);
        this.stats.flushes++;
        if (this.durability === "sync") {
          await this.target.sync();
          this.stats.syncs++;
        } else {
          this.#unsynced = true;
          this.#armSyncTimer();
        }
      } catch (error) {
        failure = this.target.toStorageError(error);
      }
      this.#committing = undefined;
      this.target.onOutcome(failure);
      if (failure) batch.reject(failure);
      else batch.resolve();
    }
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
