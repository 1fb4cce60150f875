/**
 * The embedded durable store: one SQLite file in WAL mode in the data directory, written with group
 * commit by a worker that owns the database (store_worker.ts). On the broker's event loop a mutation only
 * becomes data in the batch being collected; at the end of a turn the batch goes to the worker unless the
 * worker has not answered the previous one yet (then it goes with that answer), or deliveries deferred into
 * it are still awaited (then it waits for their acknowledgements, 1 ms at most). The worker writes the
 * batches of one of its turns in one transaction, fdatasyncs the WAL while it writes the next, and answers
 * each batch when it is durable. docs/storage.md has the format and the durability levels.
 */
import { setImmediate } from "node:timers";
import {
  type DeferredWrites,
  type MessageRef,
  type QueueEntry,
  type QueuePage,
  type QueueRead,
  type StorageAdapter,
  StorageError,
  type StorageHealth,
  type StorageSnapshot,
  type StoredMessage,
  type StoredSession,
  type StoredSubscription,
  type StoredWill,
} from "../port.ts";
import type { CommitStats } from "./group_commit.ts";
import { OperationBatch } from "./operations.ts";
import { snapshotFromWire } from "./records.ts";
import { type DirLock, lockDataDir } from "./dir_lock.ts";
import type { StorageLogger } from "./open_store.ts";
import { UNSPECIFIED_ERROR } from "./sqlite_writer.ts";
import type { FromWorker, ToWorker, WireError } from "./worker_protocol.ts";

/**
 * The worker's module, beside this one: store_worker.ts in the source tree (and in the compiled binary, which
 * `--include`s it), store_worker.js beside a bundle of the broker (a bundler does not follow a Worker's URL,
 * so the worker is bundled on its own next to it; see tests/ops/systemd_support.ts).
 */
const WORKER_MODULE = new URL(
  import.meta.url.endsWith(".js") ? "./store_worker.js" : "./store_worker.ts",
  import.meta.url,
).href;

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
  /**
   * The longest a logged operation waits to be applied to SQLite (default 1000 ms;
   * see operation_log.ts). Not a config key: tests lengthen it to catch operations in the log.
   */
  applyIntervalMs?: number;
}

/**
 * The longest a batch the worker could take waits for the acknowledgements of deliveries deferred into it
 * (see #sendWhenDue). Durable QoS 1 10→10, broker pinned with its worker: sent at the end of the turn, 4 % of
 * the subscribers' acknowledgements came before their delivery's batch went; after 2 ms, 87 %. A fixed wait of
 * 1 ms (two alternating runs each) took 267–272k to 352–354k msg/s and the worker's CPU down by half; 2 ms
 * only to 286–300k, the core idle meanwhile.
 */
const HOLD_MS = 1;

/** What the embedded adapter counts, for tests and metrics: its worker's group commit's counts. */
export type EmbeddedStats = CommitStats;

/** The embedded adapter, with counters for tests and metrics. */
export interface EmbeddedStorage extends StorageAdapter {
  /** Groups and operations written, and fsyncs done, since start. */
  stats(): EmbeddedStats;
}

const SILENT_LOGGER: StorageLogger = { info() {}, warn() {}, error() {} };

/** Creates the embedded adapter; see {@link EmbeddedStorageOptions}. */
export function createEmbeddedStorage(options: EmbeddedStorageOptions): EmbeddedStorage {
  return new EmbeddedStore(options);
}

function fromWire(error: WireError): Error {
  return error.reasonCode === undefined
    ? new Error(error.message)
    : new StorageError(error.message, error.reasonCode);
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

class EmbeddedStore implements EmbeddedStorage {
  /** Each queue read is a fresh copy from the worker (structured clone): its payloads are the caller's. */
  readonly readsOwnPayloads = true;
  #phase: "new" | "starting" | "started" | "stopped" = "new";
  #worker: Worker | undefined;
  #dirLock: DirLock | undefined;
  #failure: StorageError | undefined;
  #lowDisk = false;
  #stats: CommitStats = { flushes: 0, syncs: 0, operations: 0 };
  #nextMessageId = 1;
  #nextSequence = 1;
  /**
   * The operations collected since the last batch was sent (one OperationBatch, emptied after each
   * send), and while any are, the batch they will be answered with. Operations do not cancel out here: the
   * worker's window cancels across all of its batches (see apply_window.ts), this one's included, and the
   * bookkeeping on this thread cost more than the worker saved (durable QoS 1 10→10, pinned: broker thread
   * 2.4–2.5 → 2.0–2.2 µs CPU per message, worker 0.85–0.94 → 0.97–1.01 µs). Deliveries acknowledged
   * before their batch goes never become operations (see `defer`).
   */
  readonly #operations: OperationBatch;
  #collecting: Batch | undefined;
  /** Mutations deferred into the collecting batch (see `defer`), issued just before it is sent. */
  #deferred: DeferredWrites | undefined;
  /** Whether the collecting batch is held (see {@link #sendWhenDue}), and the timer that ends it at the latest. */
  #holding = false;
  #holdTimer: ReturnType<typeof setTimeout> | undefined;
  /** Whether {@link #endHold} is to run at the end of this turn. */
  #endingHold = false;
  /** The batch sent last: `flush()` with nothing collecting waits for it. */
  #lastSent: Batch | undefined;
  #nextId = 1;
  /** Batches and reads the worker has not answered yet, by id. */
  readonly #waiting = new Map<number, Batch>();
  /** Queue and retained reads the worker has not answered yet, by id. */
  readonly #reads = new Map<number, PromiseWithResolvers<QueuePage>>();
  readonly #retainedReads = new Map<number, PromiseWithResolvers<(StoredMessage | undefined)[]>>();
  #opened: PromiseWithResolvers<StorageSnapshot> | undefined;
  #closed: PromiseWithResolvers<void> | undefined;
  readonly #logger: StorageLogger;

  constructor(private readonly options: EmbeddedStorageOptions) {
    this.#logger = options.logger ?? SILENT_LOGGER;
    this.#operations = new OperationBatch();
  }

  get dirty(): boolean {
    return this.#collecting !== undefined;
  }

  async start(): Promise<StorageSnapshot> {
    if (this.#phase !== "new") throw new Error(`embedded storage cannot start when ${this.#phase}`);
    this.#phase = "starting";
    const { dir, durability, batchIntervalMs, maxDiskBytes, applyIntervalMs } = this.options;
    await Deno.mkdir(dir, { recursive: true });
    this.#dirLock = await lockDataDir(dir);
    const worker = new Worker(WORKER_MODULE, { type: "module" });
    this.#worker = worker;
    worker.onmessage = (event: MessageEvent<FromWorker>) => this.#receive(event.data);
    worker.onerror = (event) => {
      event.preventDefault();
      this.#workerDied(event.message);
    };
    this.#opened = Promise.withResolvers();
    this.#send({
      type: "open",
      options: { dir, durability, batchIntervalMs, maxDiskBytes, applyIntervalMs },
    });
    try {
      const snapshot = await this.#opened.promise;
      this.#phase = "started";
      return snapshot;
    } catch (error) {
      worker.terminate();
      this.#worker = undefined;
      this.#dirLock.release();
      throw error;
    } finally {
      // Its promise holds the snapshot (every session, subscription and retained message as read), which
      // the broker has made its own by now: 16 MB of garbage kept for good at 100,000 sessions.
      this.#opened = undefined;
    }
  }

  async stop(): Promise<void> {
    const worker = this.#worker;
    const wasStarted = this.#phase === "started";
    // While mutations are still taken: the deferred ones are issued as the last batch's.
    if (wasStarted) this.#issueDeferred();
    this.#phase = "stopped";
    clearTimeout(this.#holdTimer);
    if (!worker || !wasStarted) {
      this.#dirLock?.release();
      return;
    }
    try {
      this.#sendPending();
      this.#closed = Promise.withResolvers();
      this.#send({ type: "close" });
      await this.#closed.promise;
    } finally {
      worker.terminate();
      this.#worker = undefined;
      this.#dirLock?.release();
      this.#logger.info("storage.stopped", { path: this.options.dir });
    }
  }

  health(): StorageHealth {
    if (this.#phase !== "started") {
      return { ok: false, detail: this.#phase === "stopped" ? "stopped" : "not started" };
    }
    if (this.#lowDisk) return { ok: false, detail: "disk full: storing only deletes and updates" };
    if (this.#failure) return { ok: false, detail: this.#failure.message };
    return {
      ok: true,
      detail: `embedded store in ${this.options.dir}, durability ${this.options.durability}`,
    };
  }

  flush(): Promise<void> {
    return (this.#collecting ?? this.#lastSent)?.promise ?? Promise.resolve();
  }

  stats(): EmbeddedStats {
    return { ...this.#stats };
  }

  defer(writes: DeferredWrites): void {
    if (this.#deferred !== writes) {
      this.#issueDeferred();
      this.#started();
      // Before the batch is begun: its wait to be sent looks at what is awaited (see #sendWhenDue).
      this.#deferred = writes;
      this.#batch();
    }
    if (this.#holding && writes.awaited === 0) this.#endHoldAtTurnEnd();
  }

  saveSession(session: StoredSession): void {
    this.#batch().saveSession(session);
  }

  deleteSession(clientId: string): void {
    this.#batch().deleteSession(clientId);
  }

  saveSubscription(subscription: StoredSubscription): void {
    this.#batch().saveSubscription(subscription);
  }

  deleteSubscription(clientId: string, topicFilter: string): void {
    this.#batch().deleteSubscription(clientId, topicFilter);
  }

  appendMessage(message: StoredMessage): MessageRef {
    const batch = this.#batch();
    const id = this.#nextMessageId++ as MessageRef;
    batch.appendMessage(id, message);
    return id;
  }

  saveQueueEntry(entry: QueueEntry): void {
    this.#batch().saveQueueEntry(entry, this.#nextSequence++);
  }

  deleteQueueEntry(clientId: string, messageId: MessageRef): void {
    this.#batch().deleteQueueEntry(clientId, messageId);
  }

  deleteUnreferencedMessage(messageId: MessageRef): void {
    this.#batch().deleteUnreferencedMessage(messageId);
  }

  deleteOldestQueued(clientId: string): void {
    this.#batch().deleteOldestQueued(clientId);
  }

  async readQueue(clientId: string, queueRead: QueueRead): Promise<QueuePage> {
    this.#started();
    // The buffered mutations first: the worker writes them before the read (no fsync needed for it).
    this.#sendPending();
    const id = this.#nextId++;
    const read = Promise.withResolvers<QueuePage>();
    this.#reads.set(id, read);
    this.#send({ type: "read", id, clientId, read: queueRead, now: Date.now() });
    return await read.promise;
  }

  async readRetained(topics: string[]): Promise<(StoredMessage | undefined)[]> {
    this.#started();
    this.#sendPending();
    const id = this.#nextId++;
    const read = Promise.withResolvers<(StoredMessage | undefined)[]>();
    this.#retainedReads.set(id, read);
    this.#send({ type: "readRetained", id, topics });
    return await read.promise;
  }

  saveMeta(key: string, value: string): void {
    this.#batch().saveMeta(key, value);
  }

  addAwaitingRelease(clientId: string, packetId: number): void {
    this.#batch().addAwaitingRelease(clientId, packetId);
  }

  deleteAwaitingRelease(clientId: string, packetId: number): void {
    this.#batch().deleteAwaitingRelease(clientId, packetId);
  }

  saveRetained(message: StoredMessage): void {
    this.#batch().saveRetained(message);
  }

  deleteRetained(topic: string): void {
    this.#batch().deleteRetained(topic);
  }

  saveWill(will: StoredWill): void {
    this.#batch().saveWill(will);
  }

  deleteWill(clientId: string): void {
    this.#batch().deleteWill(clientId);
  }

  #started(): void {
    if (this.#phase !== "started") {
      throw new Error(`embedded storage is ${this.#phase}: start it before writing`);
    }
  }

  /** The collecting batch, to add an operation to; the first operation of a batch starts its wait to be sent. */
  #batch(): OperationBatch {
    this.#started();
    if (this.#collecting) return this.#operations;
    this.#collecting = createBatch();
    if (this.#waiting.size === 0) this.#sendWhenDue();
    return this.#operations;
  }

  /**
   * Sends the collecting batch, the worker having nothing of ours to write: at the end of this turn
   * (setImmediate runs after a turn's I/O callbacks, so the batch takes all of them; setTimeout(0) waited
   * about 2 ms here), or, while deliveries it keeps are awaited (DeferredWrites.awaited), when none are any
   * more or {@link HOLD_MS} later: those acknowledged meanwhile are never written.
   */
  #sendWhenDue(): void {
    if (this.#holding) return;
    this.#holding = true;
    if ((this.#deferred?.awaited ?? 0) > 0) this.#holdTimer = setTimeout(this.#endHold, HOLD_MS);
    else this.#endHoldAtTurnEnd();
  }

  #endHoldAtTurnEnd(): void {
    if (this.#endingHold) return;
    this.#endingHold = true;
    setImmediate(this.#endHold);
  }

  readonly #endHold = (): void => {
    this.#endingHold = false;
    if (!this.#holding) return;
    this.#holding = false;
    clearTimeout(this.#holdTimer);
    this.#holdTimer = undefined;
    if (this.#phase === "started" && this.#waiting.size === 0) this.#sendPending();
  };

  /**
   * Hands the collected operations, the deferred ones issued first, to the worker (see #sendWhenDue for
   * when): many turns share one message to the worker while it writes the previous one.
   */
  #sendPending(): void {
    this.#issueDeferred();
    const batch = this.#collecting;
    if (!batch) return;
    const operations = this.#operations;
    this.#collecting = undefined;
    this.#lastSent = batch;
    if (operations.empty && this.#waiting.size === 0) {
      // Everything kept for it cancelled out (deliveries acknowledged meanwhile), and everything before it
      // is durable: nothing to wait for.
      batch.resolve();
      return;
    }
    const id = this.#nextId++;
    this.#waiting.set(id, batch);
    // Both buffers are the batch's own: they move to the worker instead of being copied (see OperationBatch).
    const encoded = operations.encode();
    operations.reset();
    this.#send({ type: "batch", id, batch: encoded }, [encoded.operations.buffer, encoded.payloads.buffer]);
  }

  #issueDeferred(): void {
    const writes = this.#deferred;
    if (writes === undefined) return;
    this.#deferred = undefined;
    writes.write();
  }

  /** After the worker answered a batch: what was collected meanwhile goes now. */
  #answered(id: number): void {
    this.#waiting.delete(id);
    if (this.#waiting.size === 0 && this.#collecting !== undefined) this.#sendWhenDue();
  }

  #send(message: ToWorker, transfer: Transferable[] = []): void {
    this.#worker?.postMessage(message, transfer);
  }

  #receive(message: FromWorker): void {
    switch (message.type) {
      case "opened":
        this.#nextMessageId = message.nextMessageId;
        this.#nextSequence = message.nextSequence;
        this.#opened?.resolve(snapshotFromWire(message.snapshot));
        return;
      case "openFailed":
        this.#opened?.reject(fromWire(message.error));
        return;
      case "committed":
        this.#stats = message.stats;
        this.#waiting.get(message.id)?.resolve();
        return this.#answered(message.id);
      case "failed":
        this.#stats = message.stats;
        this.#waiting.get(message.id)?.reject(asStorageError(fromWire(message.error)));
        return this.#answered(message.id);
      case "queue": {
        const read = this.#reads.get(message.id);
        this.#reads.delete(message.id);
        if (message.error) read?.reject(fromWire(message.error));
        else read?.resolve(message.page!);
        return;
      }
      case "retained": {
        const read = this.#retainedReads.get(message.id);
        this.#retainedReads.delete(message.id);
        if (message.error) read?.reject(fromWire(message.error));
        else read?.resolve(message.messages!);
        return;
      }
      case "outcome":
        this.#stats = message.stats;
        this.#lowDisk = message.lowDisk;
        return this.#onOutcome(message.error ? asStorageError(fromWire(message.error)) : undefined);
      case "log":
        this.#logger[message.level](message.event, message.fields);
        return;
      case "closed":
        if (message.error) this.#closed?.reject(fromWire(message.error));
        else this.#closed?.resolve();
        return;
    }
  }

  /** The worker is gone (a crash in the engine): nothing it had will be answered any more. */
  #workerDied(reason: string): void {
    const failure = new StorageError(`storage worker failed: ${reason}`, UNSPECIFIED_ERROR);
    this.#onOutcome(failure);
    this.#opened?.reject(failure);
    this.#closed?.reject(failure);
    for (const batch of this.#waiting.values()) batch.reject(failure);
    for (const read of this.#reads.values()) read.reject(failure);
    for (const read of this.#retainedReads.values()) read.reject(failure);
    this.#waiting.clear();
    this.#reads.clear();
    this.#retainedReads.clear();
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

function asStorageError(error: Error): StorageError {
  return error instanceof StorageError ? error : new StorageError(error.message, UNSPECIFIED_ERROR);
}
