/**
 * The read side of the RocketMQ log: a receive loop on this node's orderly consumer group. Each received
 * batch is unpacked and handed to `apply` with positions every node computes alike (queue offset << 16 |
 * index within the message); it is acknowledged only after apply resolves, and applied again (same
 * positions) while apply throws. An orderly group hands out nothing after an unacknowledged batch, so the
 * order holds across failures and restarts. Receive failures (the service is gone) are retried with
 * backoff forever; the loop never ends by itself.
 */
import type { LogEntry } from "../cluster_log.ts";
import { type ReadCounters, ResendFilter, type Stamp, unpackMessage } from "./frames.ts";
import { applyUntilDone, FIRST_RETRY_MS, MAX_RETRY_MS, ReaderStop } from "./retry.ts";
import { type ClusterLogLogger, describe, withTimeout } from "./options.ts";

/** What the reader needs of a received message (the client's MessageView has it). */
export interface ReceivedMessage {
  messageId: string;
  body: Uint8Array;
  offset?: number;
  corrupted: boolean;
}

/** What the reader needs of a consumer (the client's SimpleConsumer has it). */
export interface LogConsumer<M extends ReceivedMessage> {
  receive(maxMessages: number, invisibleMs: number): Promise<M[]>;
  ack(message: M): Promise<void>;
  /** Also replaces the message's receipt handle, which a later ack must use. */
  changeInvisibleDuration(message: M, invisibleMs: number): Promise<void>;
}

export interface ReaderOptions {
  /** What it applied and dropped, for the log\'s stats. */
  counters: ReadCounters;
  receiveBatch: number;
  invisibleMs: number;
  awaitMs: number;
  requestTimeoutMs: number;
  logger: ClusterLogLogger;
  /** Called after every receive: undefined on success, else why it failed. */
  onReceiveResult(error: unknown): void;
}

/** Messages received together, and until when they stay invisible to redelivery. */
interface HeldBatch<M> {
  messages: M[];
  visibleUntil: number;
}

/** Entry index bits within a message: position = offset << 16 | index. */
const INDEX_BITS = 16n;

export class LogReader<M extends ReceivedMessage> {
  readonly #stop = new ReaderStop();
  /** Drops the second copy of a message sent twice (frames.ts). */
  readonly #resends = new ResendFilter();
  #loop: Promise<void> | undefined;

  constructor(private readonly consumer: LogConsumer<M>, private readonly options: ReaderOptions) {}

  start(apply: (entries: LogEntry[]) => Promise<void>): void {
    if (this.#loop) throw new Error("consume() was already called");
    this.#loop = this.#run(apply);
  }

  /**
   * Stops after the receive or apply under way (at most `timeoutMs`). A batch received but not applied is
   * made visible again at once, so a restarted reader gets it without waiting out its invisibility.
   */
  async stop(timeoutMs: number): Promise<void> {
    this.#stop.stop();
    if (!this.#loop) return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([this.#loop, new Promise((resolve) => timer = setTimeout(resolve, timeoutMs))]);
    clearTimeout(timer);
  }

  /**
   * Receive, apply, ack — with the next receive sent together with the ack, so it is already waiting in
   * the service when the ack lets the orderly group hand out the next batch (the service wakes a waiting
   * receive on an ack): one round trip per batch instead of two. Nothing is applied before the previous
   * batch's ack settled.
   */
  async #run(apply: (entries: LogEntry[]) => Promise<void>): Promise<void> {
    let delay = FIRST_RETRY_MS;
    let next: Promise<M[]> | undefined;
    while (!this.#stop.stopping) {
      let messages: M[];
      try {
        const receiving = next ?? this.#receive();
        next = undefined;
        messages = await receiving;
        const bad = messages.find((message) => message.corrupted || message.offset === undefined);
        if (bad) {
          await this.#release(messages);
          throw new Error(
            `message ${bad.messageId} came ${bad.corrupted ? "corrupted (CRC)" : "without an offset"}`,
          );
        }
        this.options.onReceiveResult(undefined);
        delay = FIRST_RETRY_MS;
      } catch (error) {
        if (this.#stop.stopping) break;
        this.options.onReceiveResult(error);
        await this.#stop.sleep(delay);
        delay = Math.min(delay * 2, MAX_RETRY_MS);
        continue;
      }
      if (messages.length === 0) continue;
      if (this.#stop.stopping) {
        await this.#release(messages);
        break;
      }
      messages.sort((a, b) => (a.offset ?? 0) - (b.offset ?? 0));
      const batch: HeldBatch<M> = { messages, visibleUntil: Date.now() + this.options.invisibleMs };
      const entries = this.#entriesOf(messages);
      if (entries.length > 0 && !await this.#applyUntilDone(apply, entries, batch)) {
        await this.#release(messages);
        break;
      }
      const acked = this.#ackAll(batch);
      if (!this.#stop.stopping) {
        next = this.#receive();
        next.catch(() => {}); // a failure is handled where it is awaited, after the ack
      }
      await acked;
    }
    // A receive sent with the last ack may still bring a batch: it goes back at once, unapplied.
    if (next) await next.then((messages) => this.#release(messages), () => {});
  }

  #receive(): Promise<M[]> {
    return withTimeout(
      this.consumer.receive(this.options.receiveBatch, this.options.invisibleMs),
      this.options.awaitMs + this.options.requestTimeoutMs + 2000,
      "receive timed out",
    );
  }

  #entriesOf(messages: M[]): LogEntry[] {
    const entries: LogEntry[] = [];
    for (const message of messages) {
      let bodies: Uint8Array[];
      let stamp: Stamp;
      try {
        ({ stamp, entries: bodies } = unpackMessage(message.body));
      } catch (error) {
        // Not written by a cluster log: it can never be applied, and holding it would stop every node.
        this.options.logger.error("cluster_log_foreign_message", {
          messageId: message.messageId,
          offset: message.offset,
          error: describe(error),
        });
        continue;
      }
      if (!this.#resends.fresh(stamp, message.offset ?? 0)) {
        this.options.counters.resendsDropped++;
        this.options.logger.info("cluster_log_resend_dropped", {
          messageId: message.messageId,
          offset: message.offset ?? 0,
          writer: stamp.writer,
          sequence: stamp.sequence,
        });
        continue;
      }
      const base = BigInt(message.offset ?? 0) << INDEX_BITS;
      bodies.forEach((body, index) => entries.push({ position: base | BigInt(index), body }));
    }
    return entries;
  }

  /** Applies until apply resolves (true) or the reader stops (false); keeps the batch invisible meanwhile. */
  async #applyUntilDone(
    apply: (entries: LogEntry[]) => Promise<void>,
    entries: LogEntry[],
    batch: HeldBatch<M>,
  ) {
    let renewing: Promise<void> = Promise.resolve();
    const renew = setInterval(() => {
      renewing = renewing.then(() => this.#renew(batch));
    }, this.options.invisibleMs / 2);
    try {
      return await applyUntilDone(apply, entries, this.#stop, this.options);
    } finally {
      clearInterval(renew);
      await renewing; // an ack must carry the receipt handle the last renewal returned
    }
  }

  async #renew(batch: HeldBatch<M>): Promise<void> {
    const renewedAt = Date.now();
    const results = await Promise.allSettled(
      batch.messages.map((message) =>
        this.consumer.changeInvisibleDuration(message, this.options.invisibleMs)
      ),
    );
    if (results.every((result) => result.status === "fulfilled")) {
      batch.visibleUntil = renewedAt + this.options.invisibleMs;
    }
    this.#warnFailures("cluster_log_renew_failed", results);
  }

  /**
   * Acknowledges an applied batch, retrying while its receipt handles are valid: they are the broker's,
   * so an ack that failed because the proxy died succeeds once a proxy is back. Until then the orderly
   * group hands out nothing after this batch; an ack given up on means a redelivery once the batch turns
   * visible again, with the same positions: a duplicate the applier skips.
   */
  async #ackAll(batch: HeldBatch<M>): Promise<void> {
    let pending = batch.messages;
    let delay = FIRST_RETRY_MS;
    for (;;) {
      const results = await Promise.allSettled(pending.map((message) => this.consumer.ack(message)));
      pending = pending.filter((_, i) => results[i].status === "rejected");
      if (pending.length === 0) return;
      const failure = results.find((result): result is PromiseRejectedResult =>
        result.status === "rejected"
      )!;
      this.options.onReceiveResult(failure.reason);
      if (this.#stop.stopping || Date.now() + delay >= batch.visibleUntil) {
        this.options.logger.warn("cluster_log_ack_failed", { error: describe(failure.reason) });
        return;
      }
      await this.#stop.sleep(delay);
      delay = Math.min(delay * 2, MAX_RETRY_MS);
    }
  }

  async #release(messages: M[]): Promise<void> {
    const results = await Promise.allSettled(
      messages.map((m) => this.consumer.changeInvisibleDuration(m, 0)),
    );
    this.#warnFailures("cluster_log_release_failed", results);
  }

  #warnFailures(event: string, results: PromiseSettledResult<void>[]): void {
    const failed = results.find((result): result is PromiseRejectedResult => result.status === "rejected");
    if (failed) this.options.logger.warn(event, { error: describe(failed.reason) });
  }
}
