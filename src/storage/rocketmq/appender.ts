/**
 * The append side of the RocketMQ log: one send in flight at a time; whatever is appended meanwhile is
 * packed into the next message. One sender per process on one FIFO message group is what keeps a
 * process's entries in the order `append` was called; packing is what gives throughput (the client does
 * ~3–4k sends/s per process, so a send must carry many entries). Entries are copied into the message
 * being built as they are appended, so the caller may reuse its buffer at once.
 */
import { ClusterLogError } from "../cluster_log.ts";
import {
  EMPTY_MESSAGE_BYTES,
  frameBytes,
  MAX_ENTRIES_PER_MESSAGE,
  MessageBuilder,
  newWriter,
} from "./frames.ts";
import { describe } from "./options.ts";

interface Waiter {
  resolve(): void;
  reject(error: Error): void;
}

/** One message being built or waiting to be sent, and the appends waiting on it. */
interface Batch {
  builder: MessageBuilder;
  waiters: Waiter[];
  /** The deadline of its first entry: the batch is retried until then. */
  deadline: number;
  /** When its first entry was appended (ms, monotonic). */
  startedAt: number;
}

export interface AppenderOptions {
  maxBatchBytes: number;
  maxMessageBytes: number;
  maxPendingBytes: number;
  appendTimeoutMs: number;
  /** A lone batch smaller than `lingerBytes` waits up to `lingerMs` (since its first entry) for more. */
  lingerMs: number;
  lingerBytes: number;
  /** Sends one packed message; rejects when the service did not take it within `timeoutMs`. */
  send(body: Uint8Array, timeoutMs: number): Promise<void>;
  /** Called after every send attempt: undefined on success, else why it failed. */
  onSendResult(error: unknown): void;
}

const FIRST_RETRY_MS = 100;
const MAX_RETRY_MS = 2000;
/** The least time one send attempt is given, even close to a deadline. */
const MIN_ATTEMPT_MS = 1000;

/** Counters since the appender was made. */
export interface AppendStats {
  /** RocketMQ messages sent (each carries many entries). */
  messagesSent: number;
  entriesSent: number;
  /** Send attempts that failed (each is retried until the entries' deadline). */
  sendFailures: number;
  /** Entries rejected to their caller: their deadline passed, or the appender closed first. */
  appendsFailed: number;
}

export class BatchingAppender {
  readonly #options: AppenderOptions;
  readonly stats: AppendStats = { messagesSent: 0, entriesSent: 0, sendFailures: 0, appendsFailed: 0 };
  /** Batches not yet taken into a send, oldest first; only the last one still takes entries. */
  #batches: Batch[] = [];
  #queuedBytes = 0;
  /** Bytes of the message being sent. */
  #sendingBytes = 0;
  #running: Promise<void> | undefined;
  #closed = false;
  /** Stamped on every message, so a reader can drop one the service stored twice (frames.ts). */
  readonly #writer = newWriter();
  #sequence = 0;

  constructor(options: AppenderOptions) {
    this.#options = options;
  }

  /** Bytes of entries appended and not yet acknowledged by the service. */
  get pendingBytes(): number {
    return this.#queuedBytes + this.#sendingBytes;
  }

  /** True when nothing waits to be sent and no send is in flight. */
  get idle(): boolean {
    return this.#running === undefined && this.#batches.length === 0;
  }

  append(body: Uint8Array): Promise<void> {
    if (this.#closed) return this.#refuse("cluster log is stopped");
    const size = frameBytes(body.length);
    if (EMPTY_MESSAGE_BYTES + size > this.#options.maxMessageBytes) {
      return this.#refuse(
        `entry of ${body.length} bytes exceeds the ${this.#options.maxMessageBytes}-byte message limit`,
      );
    }
    if (this.#queuedBytes + size > this.#options.maxPendingBytes) {
      return this.#refuse(`append backlog is full (${this.#queuedBytes} bytes waiting for the log service)`);
    }
    let batch = this.#batches.at(-1);
    if (
      !batch || batch.builder.count >= MAX_ENTRIES_PER_MESSAGE ||
      batch.builder.bytes + size > this.#options.maxBatchBytes
    ) {
      batch = {
        builder: new MessageBuilder(this.#writer, ++this.#sequence),
        waiters: [],
        deadline: Date.now() + this.#options.appendTimeoutMs,
        startedAt: performance.now(),
      };
      this.#batches.push(batch);
    }
    batch.builder.add(body);
    this.#queuedBytes += size;
    const waiters = batch.waiters;
    const settled = new Promise<void>((resolve, reject) => waiters.push({ resolve, reject }));
    this.#running ??= this.#run();
    return settled;
  }

  #refuse(reason: string): Promise<void> {
    this.stats.appendsFailed++;
    return Promise.reject(new ClusterLogError(reason));
  }

  /** Refuses new appends and waits up to `timeoutMs` for the queued ones; then rejects what is left. */
  async close(timeoutMs: number): Promise<void> {
    this.#closed = true;
    if (this.#running) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([this.#running, new Promise((resolve) => timer = setTimeout(resolve, timeoutMs))]);
      clearTimeout(timer);
    }
    this.#rejectQueued(() => true, "cluster log stopped before the entry was sent");
  }

  async #run(): Promise<void> {
    try {
      for (;;) {
        this.#rejectQueued(
          (batch) => batch.deadline <= Date.now(),
          "append timed out waiting for the log service",
        );
        await this.#linger();
        const batch = this.#batches.shift();
        if (!batch) return;
        this.#queuedBytes -= batch.builder.bytes - EMPTY_MESSAGE_BYTES;
        this.#sendingBytes = batch.builder.bytes - EMPTY_MESSAGE_BYTES;
        try {
          await this.#sendUntil(batch.builder.finish(), batch.deadline);
          this.stats.messagesSent++;
          this.stats.entriesSent += batch.waiters.length;
          for (const waiter of batch.waiters) waiter.resolve();
        } catch (error) {
          const failure = error instanceof ClusterLogError ? error : new ClusterLogError(describe(error));
          this.stats.appendsFailed += batch.waiters.length;
          for (const waiter of batch.waiters) waiter.reject(failure);
        } finally {
          this.#sendingBytes = 0;
        }
      }
    } finally {
      this.#running = undefined;
    }
  }

  /**
   * Lets a small lone batch gather more entries for up to `lingerMs` since its first one: each RocketMQ
   * message costs about 1.35 ms of client CPU and 3.5 ms of JVM CPU whatever it carries, so at moderate
   * rates a short wait saves most of that (under load, batches fill while a send is in flight anyway).
   */
  async #linger(): Promise<void> {
    const batch = this.#batches[0];
    if (!batch || this.#batches.length > 1 || this.#closed) return;
    if (batch.builder.bytes >= this.#options.lingerBytes) return;
    const wait = this.#options.lingerMs - (performance.now() - batch.startedAt);
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
  }

  /** Retries one message with backoff until it is sent or its deadline passes. */
  async #sendUntil(body: Uint8Array, deadline: number): Promise<void> {
    let delay = FIRST_RETRY_MS;
    for (let attempt = 1;; attempt++) {
      const timeoutMs = Math.max(MIN_ATTEMPT_MS, deadline - Date.now());
      try {
        await this.#options.send(body, timeoutMs);
        this.#options.onSendResult(undefined);
        return;
      } catch (error) {
        this.stats.sendFailures++;
        this.#options.onSendResult(error);
        if (Date.now() + delay >= deadline) {
          throw new ClusterLogError(`append failed after ${attempt} attempt(s): ${describe(error)}`);
        }
      }
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, MAX_RETRY_MS);
    }
  }

  /** Rejects queued (not yet sent) batches that `select` picks; they are oldest-first, so it stops early. */
  #rejectQueued(select: (batch: Batch) => boolean, reason: string): void {
    while (this.#batches.length > 0 && select(this.#batches[0])) {
      const batch = this.#batches.shift()!;
      this.#queuedBytes -= batch.builder.bytes - EMPTY_MESSAGE_BYTES;
      this.stats.appendsFailed += batch.waiters.length;
      const error = new ClusterLogError(reason);
      for (const waiter of batch.waiters) waiter.reject(error);
    }
  }
}
