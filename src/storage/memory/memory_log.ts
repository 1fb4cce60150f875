/**
 * An in-process cluster log: many "nodes" in one process share one `MemoryLogService` (the log and every
 * node's durable cursor, as a RocketMQ topic and its consumer groups would be). Appends land
 * asynchronously, in call order per handle; readers get batches in log order and move their cursor only
 * after apply resolves. `setReachable(false)` simulates an unreachable service for tests: appends wait
 * (then time out), reads pause, health says so; `setReachable(true)` resumes everything.
 */
import {
  type ClusterLog,
  ClusterLogError,
  type ClusterLogHealth,
  type ClusterLogStats,
  type LogEntry,
} from "../cluster_log.ts";

/** The shared log and the cursors of its readers. */
export class MemoryLogService {
  readonly #entries: LogEntry[] = [];
  readonly #cursors = new Map<string, number>();
  #reachable = true;
  #changed = Promise.withResolvers<void>();

  get reachable(): boolean {
    return this.#reachable;
  }

  /** Entries in the log so far. */
  get length(): number {
    return this.#entries.length;
  }

  /** Simulates an outage (false) and its end (true). */
  setReachable(reachable: boolean): void {
    this.#reachable = reachable;
    this.#notify();
  }

  /** Resolves at the next append or reachability change. */
  changed(): Promise<void> {
    return this.#changed.promise;
  }

  add(body: Uint8Array): void {
    // Positions are spaced like the RocketMQ adapter's (offset << 16): readers must not assume +1 steps.
    this.#entries.push({ position: BigInt(this.#entries.length) << 16n, body });
    this.#notify();
  }

  /** This node's cursor; a node new to the log starts at its tail. */
  cursor(nodeId: string): number {
    let cursor = this.#cursors.get(nodeId);
    if (cursor === undefined) this.#cursors.set(nodeId, cursor = this.#entries.length);
    return cursor;
  }

  setCursor(nodeId: string, cursor: number): void {
    this.#cursors.set(nodeId, cursor);
  }

  /** Copies of entries [from, from + max), so readers cannot change each other's view. */
  read(from: number, max: number): LogEntry[] {
    return this.#entries.slice(from, from + max).map((entry) => ({ ...entry, body: entry.body.slice() }));
  }

  #notify(): void {
    this.#changed.resolve();
    this.#changed = Promise.withResolvers<void>();
  }
}

export interface MemoryLogOptions {
  nodeId: string;
  /** An append rejects when the service stays unreachable this long. Default 5000. */
  appendTimeoutMs?: number;
  /** Entries per apply call at most. Default 1000. */
  maxBatchEntries?: number;
}

interface Outgoing {
  body: Uint8Array;
  deadline: number;
  resolve(): void;
  reject(error: Error): void;
}

const RETRY_MS = 20;
const MAX_RETRY_MS = 1000;

export class MemoryLog implements ClusterLog {
  readonly #service: MemoryLogService;
  readonly #nodeId: string;
  readonly #appendTimeoutMs: number;
  readonly #maxBatchEntries: number;
  #state: "new" | "started" | "stopped" = "new";
  #outbox: Outgoing[] = [];
  #sending: Promise<void> | undefined;
  #reading: Promise<void> | undefined;
  #wake = Promise.withResolvers<void>();
  readonly #stats: ClusterLogStats = {
    entriesAppended: 0,
    appendsFailed: 0,
    messagesSent: 0,
    sendFailures: 0,
    pendingBytes: 0,
    entriesApplied: 0,
    resendsDropped: 0,
  };

  constructor(service: MemoryLogService, options: MemoryLogOptions) {
    this.#service = service;
    this.#nodeId = options.nodeId;
    this.#appendTimeoutMs = options.appendTimeoutMs ?? 5000;
    this.#maxBatchEntries = options.maxBatchEntries ?? 1000;
  }

  start(): Promise<void> {
    if (this.#state !== "new") {
      return Promise.reject(new ClusterLogError(`start() called while ${this.#state}`));
    }
    if (!this.#service.reachable) {
      return Promise.reject(new ClusterLogError("memory log service unreachable"));
    }
    this.#service.cursor(this.#nodeId);
    this.#state = "started";
    return Promise.resolve();
  }

  append(body: Uint8Array): Promise<void> {
    if (this.#state !== "started") {
      return Promise.reject(new ClusterLogError(`append() while the cluster log is ${this.#state}`));
    }
    this.#stats.pendingBytes += body.length;
    return new Promise<void>((resolve, reject) => {
      this.#outbox.push({
        body: body.slice(),
        deadline: Date.now() + this.#appendTimeoutMs,
        resolve,
        reject,
      });
      this.#sending ??= this.#send();
    });
  }

  consume(apply: (entries: LogEntry[]) => Promise<void>): void {
    if (this.#state !== "started") {
      throw new ClusterLogError(`consume() while the cluster log is ${this.#state}`);
    }
    if (this.#reading) throw new ClusterLogError("consume() was already called");
    this.#reading = this.#read(apply);
  }

  health(): ClusterLogHealth {
    if (this.#state !== "started") return { ok: false, detail: `cluster log ${this.#state}` };
    if (!this.#service.reachable) return { ok: false, detail: "memory log service unreachable (simulated)" };
    return { ok: true, detail: `memory log, node ${this.#nodeId}` };
  }

  /** One message per entry; the service never stores one twice. */
  stats(): ClusterLogStats {
    return { ...this.#stats };
  }

  async stop(): Promise<void> {
    if (this.#state === "stopped") return;
    this.#state = "stopped";
    this.#wake.resolve();
    await Promise.all([this.#sending, this.#reading]);
  }

  /** Lands queued entries in call order, asynchronously; waits out an outage until each one's deadline. */
  async #send(): Promise<void> {
    try {
      while (this.#outbox.length > 0) {
        await new Promise((resolve) => setTimeout(resolve, 0));
        const now = Date.now();
        if (!this.#service.reachable) {
          const expired = this.#outbox.findIndex((entry) => entry.deadline > now);
          for (const entry of this.#outbox.splice(0, expired < 0 ? this.#outbox.length : expired)) {
            this.#stats.pendingBytes -= entry.body.length;
            this.#stats.appendsFailed++;
            entry.reject(new ClusterLogError("append timed out: memory log service unreachable"));
          }
          if (this.#outbox.length > 0) await this.#untilChangeOr(this.#outbox[0].deadline - now);
          continue;
        }
        for (const entry of this.#outbox.splice(0)) {
          this.#service.add(entry.body);
          this.#stats.pendingBytes -= entry.body.length;
          this.#stats.entriesAppended++;
          this.#stats.messagesSent++;
          entry.resolve();
        }
      }
    } finally {
      this.#sending = undefined;
    }
  }

  async #read(apply: (entries: LogEntry[]) => Promise<void>): Promise<void> {
    let delay = RETRY_MS;
    while (this.#state === "started") {
      const cursor = this.#service.cursor(this.#nodeId);
      if (!this.#service.reachable || cursor >= this.#service.length) {
        await this.#untilChangeOr(MAX_RETRY_MS);
        continue;
      }
      const batch = this.#service.read(cursor, this.#maxBatchEntries);
      try {
        await apply(batch);
        this.#stats.entriesApplied += batch.length;
        this.#service.setCursor(this.#nodeId, cursor + batch.length);
        delay = RETRY_MS;
      } catch {
        // Redelivered from the same cursor, same positions.
        await this.#untilChangeOr(delay, false);
        delay = Math.min(delay * 2, MAX_RETRY_MS);
      }
    }
  }

  /** Waits for `ms`, for stop(), and (unless `onChange` is false) for the service to change. */
  async #untilChangeOr(ms: number, onChange = true): Promise<void> {
    if (this.#state !== "started" && this.#outbox.length === 0) return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const waits: Promise<unknown>[] = [new Promise((resolve) => timer = setTimeout(resolve, ms))];
    if (onChange) waits.push(this.#service.changed());
    if (this.#state === "started") waits.push(this.#wake.promise);
    await Promise.race(waits);
    clearTimeout(timer);
  }
}
