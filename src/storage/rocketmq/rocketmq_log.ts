/**
 * The cluster log on Apache RocketMQ 5 (`npm:rocketmq-client-nodejs`): one FIFO topic with one queue is
 * the log; every node sends to it through the gRPC proxy on one message group (appender.ts) and reads all
 * of it under its own consumer group, its durable cursor: by offset from the broker over remoting when the
 * name server is given (pull_reader.ts), else by popping an orderly group through the proxy (reader.ts).
 */
import { Buffer } from "node:buffer";
import type { MessageView, SimpleConsumer } from "rocketmq-client-nodejs";
import {
  type ClusterLog,
  ClusterLogError,
  type ClusterLogHealth,
  type ClusterLogStats,
  type LogEntry,
} from "../cluster_log.ts";
import { prepareOrderlyReader } from "./admin.ts";
import { BatchingAppender } from "./appender.ts";
import { BrokerPuller } from "./broker_puller.ts";
import { type Clients, proxyUnreachable, shutdownClients, startClients } from "./clients.ts";
import {
  brokerName,
  describe,
  type ResolvedOptions,
  resolveOptions,
  type RocketMqLogOptions,
  withTimeout,
} from "./options.ts";
import type { ReadCounters } from "./frames.ts";
import { PullReader } from "./pull_reader.ts";
import { type LogConsumer, LogReader } from "./reader.ts";

type State = "new" | "starting" | "started" | "stopped";

export class RocketMqLog implements ClusterLog {
  readonly #options: ResolvedOptions;
  #state: State = "new";
  #clients: Clients | undefined;
  #appender: BatchingAppender | undefined;
  #reader: LogReader<MessageView> | PullReader | undefined;
  #sendError: string | undefined;
  #receiveError: string | undefined;
  readonly #readCounters: ReadCounters = { entriesApplied: 0, resendsDropped: 0 };

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
      // Reading by offset needs the broker's remoting address, which only the name server gives.
      this.#clients = await startClients(o, { consumer: !o.nameServer });
    } catch (error) {
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
      lingerMs: o.lingerMs,
      lingerBytes: o.lingerBytes,
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
    if (this.#state !== "started") {
      throw new ClusterLogError(`consume() while the cluster log is ${this.#state}`);
    }
    if (this.#reader) throw new ClusterLogError("consume() was already called");
    const o = this.#options;
    const onReceiveResult = (error: unknown) => {
      this.#receiveError = error === undefined ? undefined : describe(error);
      // The service answers again: with nothing left to send, an old send failure is no longer news.
      if (error === undefined && this.#appender?.idle) this.#sendError = undefined;
    };
    if (o.nameServer) {
      const puller = new BrokerPuller({
        nameServer: o.nameServer,
        topic: brokerName(o.namespace, o.topic),
        group: brokerName(o.namespace, o.consumerGroup),
        maxMessages: o.receiveBatch,
        connectTimeoutMs: o.requestTimeoutMs,
      });
      const reader = new PullReader(puller, {
        suspendMs: o.awaitMs,
        requestTimeoutMs: o.requestTimeoutMs,
        logger: o.logger,
        onReceiveResult,
        counters: this.#readCounters,
      });
      this.#reader = reader;
      reader.start(apply);
      return;
    }
    const consumer: LogConsumer<MessageView> = {
      receive: (max, invisibleMs) => this.#consumer().receive(max, invisibleMs),
      ack: (message) => this.#consumer().ack(message),
      changeInvisibleDuration: (message, ms) => this.#consumer().changeInvisibleDuration(message, ms),
    };
    this.#reader = new LogReader<MessageView>(consumer, {
      receiveBatch: o.receiveBatch,
      invisibleMs: o.invisibleMs,
      awaitMs: o.awaitMs,
      requestTimeoutMs: o.requestTimeoutMs,
      logger: o.logger,
      onReceiveResult,
      counters: this.#readCounters,
    });
    this.#reader.start(apply);
  }

  stats(): ClusterLogStats {
    const sent = this.#appender?.stats;
    return {
      entriesAppended: sent?.entriesSent ?? 0,
      appendsFailed: sent?.appendsFailed ?? 0,
      messagesSent: sent?.messagesSent ?? 0,
      sendFailures: sent?.sendFailures ?? 0,
      pendingBytes: this.#appender?.pendingBytes ?? 0,
      ...this.#readCounters,
    };
  }

  health(): ClusterLogHealth {
    const o = this.#options;
    if (this.#state !== "started") return { ok: false, detail: `cluster log ${this.#state}` };
    if (this.#sendError) {
      return { ok: false, detail: `appends to ${o.endpoints} failing: ${this.#sendError}` };
    }
    if (this.#receiveError) {
      const from = o.nameServer ? `the broker (name server ${o.nameServer})` : o.endpoints;
      return { ok: false, detail: `reads from ${from} failing: ${this.#receiveError}` };
    }
    // Reads go to the broker; with no send under way, nothing else tells that appends would fail.
    if (o.nameServer && this.#appender?.idle && proxyUnreachable(o.endpoints)) {
      return { ok: false, detail: `the proxy at ${o.endpoints} cannot be reached: appends would fail` };
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
    const clients = this.#clients;
    this.#clients = undefined;
    await shutdownClients(clients, this.#options);
    this.#options.logger.info("cluster_log_stopped", { group: this.#options.consumerGroup });
  }

  async #send(body: Uint8Array, timeoutMs: number): Promise<void> {
    const o = this.#options;
    await withTimeout(
      this.#current().producer.send({
        topic: o.topic,
        body: Buffer.from(body.buffer, body.byteOffset, body.byteLength),
        messageGroup: o.messageGroup,
      }),
      timeoutMs,
      `no send receipt within ${timeoutMs} ms`,
    );
  }

  #current(): Clients {
    if (!this.#clients) throw new ClusterLogError(`cluster log ${this.#state}`);
    return this.#clients;
  }

  #consumer(): SimpleConsumer {
    const consumer = this.#current().consumer;
    if (!consumer) throw new ClusterLogError("the cluster log reads from the broker, not through a consumer");
    return consumer;
  }
}
