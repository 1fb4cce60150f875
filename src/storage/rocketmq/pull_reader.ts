/**
 * The read side of the RocketMQ log when the broker can be reached over remoting: this node reads the one
 * queue by offset (broker_puller.ts) instead of popping it through the proxy. Nothing is acknowledged per
 * message; the group's offset is the offset this node has applied up to, carried by the next pull (and
 * committed once more on stop), so a restarted node resumes after its last applied batch and sees a batch
 * it had not finished again. The next pull is sent as soon as a batch arrives, while it is applied: the
 * broker hands it what landed meanwhile, or holds it until something lands. With an orderly pop group the
 * next batch was handed out only once the previous one's ack had landed, a round trip through the proxy
 * and the broker on every batch's way, and every batch cost each node a receive and an ack there.
 */
import type { LogEntry } from "../cluster_log.ts";
import type { LogPuller, PulledBatch } from "./broker_puller.ts";
import { type ReadCounters, ResendFilter, type Stamp, unpackMessage } from "./frames.ts";
import { applyUntilDone, FIRST_RETRY_MS, MAX_RETRY_MS, ReaderStop } from "./retry.ts";
import { type ClusterLogLogger, describe } from "./options.ts";

export interface PullReaderOptions {
  /** What it applied and dropped, for the log\'s stats. */
  counters: ReadCounters;
  /** How long a pull waits in the broker for a message when there is none. */
  suspendMs: number;
  requestTimeoutMs: number;
  logger: ClusterLogLogger;
  /** Called after every pull: undefined on success, else why it failed. */
  onReceiveResult(error: unknown): void;
}

/**
 * The broker answers a pull it holds when a message lands, else at its next check after the pull's
 * suspend time: it checks every 5 s (PullRequestHoldService), so an idle pull with a 1 s suspend was
 * answered after 1.9–5.0 s and one with 5 s after 10.0 s (measured).
 */
const BROKER_HOLD_CHECK_MS = 5000;
/** How many messages before its committed offset a starting reader reads to know recent writers. */
const LOOK_BACK_MESSAGES = 1024;
/** Entry index bits within a message: position = offset << 16 | index (as the pop reader, reader.ts). */
const INDEX_BITS = 16n;

export class PullReader {
  readonly #stop = new ReaderStop();
  /** Drops the second copy of a message sent twice (frames.ts). */
  readonly #resends = new ResendFilter();
  #loop: Promise<void> | undefined;

  constructor(private readonly puller: LogPuller, private readonly options: PullReaderOptions) {}

  start(apply: (entries: LogEntry[]) => Promise<void>): void {
    if (this.#loop) throw new Error("consume() was already called");
    this.#loop = this.#run(apply);
  }

  /**
   * Stops after the apply under way (at most `timeoutMs`), commits the offset applied up to, and closes
   * the connection (a pull waiting in the broker is dropped).
   */
  async stop(timeoutMs: number): Promise<void> {
    this.#stop.stop();
    if (this.#loop) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([this.#loop, new Promise((resolve) => timer = setTimeout(resolve, timeoutMs))]);
      clearTimeout(timer);
    }
    await this.puller.close();
  }

  async #run(apply: (entries: LogEntry[]) => Promise<void>): Promise<void> {
    let delay = FIRST_RETRY_MS;
    /** The next offset to read, and the offset everything before which has been applied. */
    let offset: number | undefined;
    let applied: number | undefined;
    let next: Promise<PulledBatch> | undefined;
    while (!this.#stop.stopping) {
      let batch: PulledBatch | undefined;
      try {
        if (offset === undefined || applied === undefined) {
          const committed = await this.puller.committedOffset(this.options.requestTimeoutMs);
          await this.#lookBack(committed);
          offset = applied = committed;
        }
        const pulling = next ?? this.#pull(offset, applied);
        next = undefined;
        batch = await this.#stop.orStopped(pulling);
        if (batch === undefined) break;
        this.options.onReceiveResult(undefined);
        delay = FIRST_RETRY_MS;
      } catch (error) {
        if (this.#stop.stopping) break;
        this.options.onReceiveResult(error);
        await this.#stop.sleep(delay);
        delay = Math.min(delay * 2, MAX_RETRY_MS);
        continue;
      }
      if (batch.status !== "found") {
        if (batch.status === "moved" || batch.nextOffset !== offset) {
          // Only when RocketMQ no longer has what this node has not read (deleted by age, or a broker
          // whose store was lost): nothing can bring it back; a node in that state needs a snapshot.
          this.options.logger.error("cluster_log_offset_moved", {
            from: offset,
            to: batch.nextOffset,
            minOffset: batch.minOffset,
            maxOffset: batch.maxOffset,
          });
          offset = batch.nextOffset;
        }
        continue;
      }
      let entries: LogEntry[];
      try {
        entries = this.#entriesOf(batch, offset);
      } catch (error) {
        this.options.onReceiveResult(error);
        await this.#stop.sleep(delay);
        delay = Math.min(delay * 2, MAX_RETRY_MS);
        continue; // read again from the same offset
      }
      offset = batch.nextOffset;
      // Sent now, so it is waiting in the broker (or answered) by the time this batch is applied; it
      // commits only what was applied before this batch.
      next = this.#pull(offset, applied);
      next.catch(() => {}); // a failure is handled where it is awaited
      if (entries.length > 0 && !await applyUntilDone(apply, entries, this.#stop, this.options)) break;
      applied = offset;
    }
    if (applied !== undefined) {
      try {
        await this.puller.commit(applied, this.options.requestTimeoutMs);
      } catch (error) {
        // The broker keeps the offset of the last pull; a restart sees some batches again (same positions).
        this.options.logger.warn("cluster_log_commit_failed", { offset: applied, error: describe(error) });
      }
    }
  }

  /**
   * Shows the resend filter the messages just before where this node resumes, so that the second copy
   * of a message it applied before it stopped is still dropped. A copy lands within its writer's append
   * timeout of the first; LOOK_BACK_MESSAGES covers what lands meanwhile unless the log is very busy.
   */
  async #lookBack(committed: number): Promise<void> {
    let from = Math.max(0, committed - LOOK_BACK_MESSAGES);
    while (from < committed && !this.#stop.stopping) {
      const batch = await this.puller.pull(from, committed, 0, this.options.requestTimeoutMs);
      if (batch.status === "moved") {
        if (batch.nextOffset <= from) return;
        from = batch.nextOffset;
        continue;
      }
      if (batch.status !== "found") return;
      for (const message of batch.messages) {
        if (message.queueOffset >= committed) return;
        try {
          this.#resends.fresh(unpackMessage(message.body).stamp, message.queueOffset);
        } catch {
          // A foreign message: the reader reports it where it applies, not here.
        }
      }
      if (batch.nextOffset <= from) return;
      from = batch.nextOffset;
    }
  }

  #pull(offset: number, applied: number): Promise<PulledBatch> {
    const { suspendMs, requestTimeoutMs } = this.options;
    return this.puller.pull(offset, applied, suspendMs, suspendMs + BROKER_HOLD_CHECK_MS + requestTimeoutMs);
  }

  #entriesOf(batch: PulledBatch, from: number): LogEntry[] {
    const entries: LogEntry[] = [];
    let expected = from;
    for (const message of batch.messages) {
      if (message.queueOffset < expected) {
        throw new Error(`pulled offset ${message.queueOffset} where ${expected} or later was expected`);
      }
      if (message.queueOffset > expected) {
        this.options.logger.error("cluster_log_offset_moved", { from: expected, to: message.queueOffset });
      }
      expected = message.queueOffset + 1;
      let bodies: Uint8Array[];
      let stamp: Stamp;
      try {
        ({ stamp, entries: bodies } = unpackMessage(message.body));
      } catch (error) {
        // Not written by a cluster log: it can never be applied, and holding it would stop every node.
        this.options.logger.error("cluster_log_foreign_message", {
          offset: message.queueOffset,
          error: describe(error),
        });
        continue;
      }
      if (!this.#resends.fresh(stamp, message.queueOffset)) {
        this.options.counters.resendsDropped++;
        this.options.logger.info("cluster_log_resend_dropped", {
          offset: message.queueOffset,
          writer: stamp.writer,
          sequence: stamp.sequence,
        });
        continue;
      }
      const base = BigInt(message.queueOffset) << INDEX_BITS;
      bodies.forEach((body, index) => entries.push({ position: base | BigInt(index), body }));
    }
    return entries;
  }
}
