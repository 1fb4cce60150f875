/**
 * The append side of the RocketMQ log: one send in flight at a time; whatever is appended meanwhile is
 * packed into the next message. One sender per process on one FIFO message group is what keeps a
 * process's entries in the order `append` was called; packing is what gives throughput (the client does
 * ~3–4k sends/s per process, so a send must carry many entries).
 */
import { ClusterLogError } from "../cluster_log.ts";
import { EMPTY_MESSAGE_BYTES, frameBytes, MAX_ENTRIES_PER_MESSAGE, packEntries } from "./frames.ts";
import { describe } from "./options.ts";

interface Waiting {
  body: Uint8Array;
  deadline: number;
  resolve(): void;
  reject(error: Error): void;
}

export interface AppenderOptions {
  maxBatchBytes: number;
  maxMessageBytes: number;
  maxPendingBytes: number;
  appendTimeoutMs: number;
  /** Sends one packed message; rejects when the service did not take it within `timeoutMs`. */
  send(body: Uint8Array, timeoutMs: number): Promise<void>;
  /** Called after every send attempt: undefined on success, else why it failed. */
  onSendResult(error: unknown): void;
}

const FIRST_RETRY_MS = 100;
const MAX_RETRY_MS = 2000;
/** The least time one send attempt is given, even close to a deadline. */
const MIN_ATTEMPT_MS = 1000;

export class BatchingAppender {
  readonly #options: AppenderOptions;
  /** Entries not yet taken into a send, oldest first; `#head` is the first live index. */
  #queue: Waiting[] = [];
  #head = 0;
  #queuedBytes = 0;
  #running: Promise<void> | undefined;
  #closed = false;

  constructor(options: AppenderOptions) {
    this.#options = options;
  }

  /** True when nothing waits to be sent and no send is in flight. */
  get idle(): boolean {
    return this.#running === undefined && this.#head === this.#queue.length;
  }

  append(body: Uint8Array): Promise<void> {
    if (this.#closed) return Promise.reject(new ClusterLogError("cluster log is stopped"));
    if (EMPTY_MESSAGE_BYTES + frameBytes(body.length) > this.#options.maxMessageBytes) {
      return Promise.reject(
        new ClusterLogError(
          `entry of ${body.length} bytes exceeds the ${this.#options.maxMessageBytes}-byte message limit`,
        ),
      );
    }
    if (this.#queuedBytes + body.length > this.#options.maxPendingBytes) {
      return Promise.reject(
        new ClusterLogError(
          `append backlog is full (${this.#queuedBytes} bytes waiting for the log service)`,
        ),
      );
    }
    return new Promise<void>((resolve, reject) => {
      // A copy: the caller may reuse its buffer once append returns, before the entry is packed.
      this.#queue.push({
        body: body.slice(),
        deadline: Date.now() + this.#options.appendTimeoutMs,
        resolve,
        reject,
      });
      this.#queuedBytes += body.length;
      this.#running ??= this.#run();
    });
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
          (entry) => entry.deadline <= Date.now(),
          "append timed out waiting for the log service",
        );
        const batch = this.#takeBatch();
        if (batch.length === 0) return;
        try {
          await this.#sendUntil(packEntries(batch.map((entry) => entry.body)), batch[0].deadline);
          for (const entry of batch) entry.resolve();
        } catch (error) {
          const failure = error instanceof ClusterLogError ? error : new ClusterLogError(describe(error));
          for (const entry of batch) entry.reject(failure);
        }
      }
    } finally {
      this.#running = undefined;
    }
  }

  /** The oldest entries that fit one message (at least one). */
  #takeBatch(): Waiting[] {
    const batch: Waiting[] = [];
    let bytes = EMPTY_MESSAGE_BYTES;
    while (this.#head < this.#queue.length && batch.length < MAX_ENTRIES_PER_MESSAGE) {
      const next = this.#queue[this.#head];
      const size = frameBytes(next.body.length);
      if (batch.length > 0 && bytes + size > this.#options.maxBatchBytes) break;
      batch.push(next);
      bytes += size;
      this.#queuedBytes -= next.body.length;
      this.#head++;
    }
    this.#compact();
    return batch;
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
        this.#options.onSendResult(error);
        if (Date.now() + delay >= deadline) {
          throw new ClusterLogError(`append failed after ${attempt} attempt(s): ${describe(error)}`);
        }
      }
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, MAX_RETRY_MS);
    }
  }

  /** Rejects queued (not yet sent) entries that `select` picks; they are oldest-first, so it stops early. */
  #rejectQueued(select: (entry: Waiting) => boolean, reason: string): void {
    while (this.#head < this.#queue.length && select(this.#queue[this.#head])) {
      const entry = this.#queue[this.#head++];
      this.#queuedBytes -= entry.body.length;
      entry.reject(new ClusterLogError(reason));
    }
    this.#compact();
  }

  #compact(): void {
    if (this.#head === this.#queue.length) {
      this.#queue = [];
      this.#head = 0;
    } else if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
      this.#queue = this.#queue.slice(this.#head);
      this.#head = 0;
    }
  }
}
