/**
 * The cluster log on Apache RocketMQ 5 through its gRPC proxy (`npm:rocketmq-client-nodejs`): one FIFO
 * topic with one queue is the log; every node sends to it on one message group (appender.ts) and reads
 * all of it through its own orderly consumer group, its durable cursor (reader.ts).
 */
import { Buffer } from "node:buffer";
import { type MessageView, Producer, SimpleConsumer } from "rocketmq-client-nodejs";
import { type ClusterLog, ClusterLogError, type ClusterLogHealth, type LogEntry } from "../cluster_log.ts";
import { prepareOrderlyReader } from "./admin.ts";
import { BatchingAppender } from "./appender.ts";
import {
  brokerName,
  clientLogger,
  describe,
  type ResolvedOptions,
  resolveOptions,
  type RocketMqLogOptions,
  withTimeout,
} from "./options.ts";
import { LogReader } from "./reader.ts";

type State = "new" | "starting" | "started" | "stopped";

export class RocketMqLog implements ClusterLog {
  readonly #options: ResolvedOptions;
  #state: State = "new";
  #producer: Producer | undefined;
  #consumer: SimpleConsumer | undefined;
  #appender: BatchingAppender | undefined;
  #reader: LogReader<MessageView> | undefined;
  #sendError: string | undefined;
  #receiveError: string | undefined;

  constructor(options: RocketMqLogOptions) {
    this.#options = resolveOptions(options);
  }

  /** This node's consumer group (its cursor in the log). */
  get consumerGroup(): string {
    return this.#options.consumerGroup;
  }

  async start(): Promise<void> {
    if (this.#state !== "new") throw new ClusterLogError(`start() called while ${this.#state}`);
    this.#state = "starting";
    const o = this.#options;
    try {
      if (o.nameServer) {
        await withTimeout(
          prepareOrderlyReader(
            o.nameServer,
            brokerName(o.namespace, o.topic),
            brokerName(o.namespace, o.consumerGroup),
            o.requestTimeoutMs,
          ),
          o.startTimeoutMs,
          `no answer from the name server at ${o.nameServer} within ${o.startTimeoutMs} ms`,
        );
      }
      const base = {
        endpoints: o.endpoints,
        namespace: o.namespace,
        sessionCredentials: o.credentials,
        requestTimeout: o.requestTimeoutMs,
        logger: clientLogger(o.logger),
      };
      // maxAttempts 1: the appender retries with backoff and a deadline of its own.
      this.#producer = new Producer({ ...base, topics: [o.topic], maxAttempts: 1 });
      await this.#startClient(this.#producer, "producer");
      this.#consumer = new SimpleConsumer({
        ...base,
        consumerGroup: o.consumerGroup,
        subscriptions: new Map([[o.topic, "*"]]),
        awaitDuration: o.awaitMs,
        maxRetryAttempts: 1,
      });
      await this.#startClient(this.#consumer, "consumer");
    } catch (error) {
      await this.#shutdownClients();
      this.#state = "new"; // start() may be tried again
      throw new ClusterLogError(
        `cannot start the cluster log (topic ${o.topic}, group ${o.consumerGroup}) on ${o.endpoints}: ${
          describe(error)
        }`,
      );
    }
    this.#appender = new BatchingAppender({
      maxBatchBytes: o.maxBatchBytes,
      maxMessageBytes: o.maxMessageBytes,
      maxPendingBytes: o.maxPendingBytes,
      appendTimeoutMs: o.appendTimeoutMs,
      send: (body, timeoutMs) => this.#send(body, timeoutMs),
      onSendResult: (error) => {
        this.#sendError = error === undefined ? undefined : describe(error);
      },
    });
    this.#state = "started";
    o.logger.info("cluster_log_started", { endpoints: o.endpoints, topic: o.topic, group: o.consumerGroup });
  }

  append(body: Uint8Array): Promise<void> {
    if (this.#state !== "started" || !this.#appender) {
      return Promise.reject(new ClusterLogError(`append() while the cluster log is ${this.#state}`));
    }
    return this.#appender.append(body);
  }

  consume(apply: (entries: LogEntry[]) => Promise<void>): void {
    if (this.#state !== "started" || !this.#consumer) {
      throw new ClusterLogError(`consume() while the cluster log is ${this.#state}`);
    }
    if (this.#reader) throw new ClusterLogError("consume() was already called");
    const o = this.#options;
    this.#reader = new LogReader<MessageView>(this.#consumer, {
      receiveBatch: o.receiveBatch,
      invisibleMs: o.invisibleMs,
      awaitMs: o.awaitMs,
      requestTimeoutMs: o.requestTimeoutMs,
      logger: o.logger,
      onReceiveResult: (error) => {
        this.#receiveError = error === undefined ? undefined : describe(error);
        // The service answers again: with nothing left to send, an old send failure is no longer news.
        if (error === undefined && this.#appender?.idle) this.#sendError = undefined;
      },
    });
    this.#reader.start(apply);
  }

  health(): ClusterLogHealth {
    const o = this.#options;
    if (this.#state !== "started") return { ok: false, detail: `cluster log ${this.#state}` };
    if (this.#sendError) {
      return { ok: false, detail: `appends to ${o.endpoints} failing: ${this.#sendError}` };
    }
    if (this.#receiveError) {
      return { ok: false, detail: `reads from ${o.endpoints} failing: ${this.#receiveError}` };
    }
    return { ok: true, detail: `RocketMQ ${o.endpoints}, topic ${o.topic}, group ${o.consumerGroup}` };
  }

  async stop(): Promise<void> {
    if (this.#state !== "started") {
      this.#state = "stopped";
      return;
    }
    this.#state = "stopped";
    const timeoutMs = this.#options.stopTimeoutMs;
    await Promise.all([this.#appender?.close(timeoutMs), this.#reader?.stop(timeoutMs)]);
    await this.#shutdownClients();
    this.#options.logger.info("cluster_log_stopped", { group: this.#options.consumerGroup });
  }

  async #send(body: Uint8Array, timeoutMs: number): Promise<void> {
    const producer = this.#producer;
    if (!producer) throw new ClusterLogError("no producer");
    const o = this.#options;
    await withTimeout(
      producer.send({
        topic: o.topic,
        body: Buffer.from(body.buffer, body.byteOffset, body.byteLength),
        messageGroup: o.messageGroup,
      }),
      timeoutMs,
      `no send receipt within ${timeoutMs} ms`,
    );
  }

  /** The client's startup() waits for the proxy's first settings with no timeout of its own. */
  async #startClient(client: Producer | SimpleConsumer, what: string): Promise<void> {
    const ms = this.#options.startTimeoutMs;
    await withTimeout(client.startup(), ms, `the ${what} did not start within ${ms} ms`);
  }

  async #shutdownClients(): Promise<void> {
    const clients = [this.#producer, this.#consumer].filter((client) => client !== undefined);
    this.#producer = this.#consumer = undefined;
    // shutdown() tells the proxy first, which waits out a request timeout when the proxy is gone.
    const ms = this.#options.requestTimeoutMs + 1000;
    await Promise.allSettled(
      clients.map((client) => withTimeout(client.shutdown(), ms, "shutdown timed out")),
    );
  }
}
