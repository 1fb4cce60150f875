/**
 * Reads the log's one queue from the broker by offset, over RocketMQ's remoting protocol (the gRPC API
 * cannot pull by offset): a pull names the offset to read from and the offset this node has applied up to,
 * which the broker keeps as the group's offset. A pull that finds nothing waits in the broker (long
 * polling) until a message lands or `suspendMs` passes. One connection, reopened (and the broker found
 * again through the name server) after it fails.
 */
import { topicRoute } from "./admin.ts";
import { RemotingConnection, type RemotingResponse } from "./remoting.ts";
import { decodeStoredMessages, type StoredMessage } from "./stored_messages.ts";

const PULL_MESSAGE = 11;
const QUERY_CONSUMER_OFFSET = 14;
const UPDATE_CONSUMER_OFFSET = 15;
const SUCCESS = 0;
const PULL_NOT_FOUND = 19;
const PULL_RETRY_IMMEDIATELY = 20;
const PULL_OFFSET_MOVED = 21;
const QUERY_NOT_FOUND = 22;
/** PullSysFlag: commit `commitOffset`, wait in the broker when nothing is there, subscription in the request. */
const COMMIT_OFFSET = 0x1;
const SUSPEND = 0x2;
const SUBSCRIPTION = 0x4;

/** What one pull found: messages, nothing yet, an offset outside the queue, or "ask again". */
export interface PulledBatch {
  status: "found" | "empty" | "moved" | "retry";
  messages: StoredMessage[];
  /** Where the next pull starts, as the broker says. */
  nextOffset: number;
  minOffset: number;
  maxOffset: number;
}

/** What the pull reader needs of a broker (a fake stands in for it in unit tests). */
export interface LogPuller {
  /** The offset the group committed last: where reading resumes. */
  committedOffset(timeoutMs: number): Promise<number>;
  /** Reads from `offset`; commits `commitOffset` as the group's offset in the same request. */
  pull(offset: number, commitOffset: number, suspendMs: number, timeoutMs: number): Promise<PulledBatch>;
  commit(offset: number, timeoutMs: number): Promise<void>;
  /** Closes the connection: a pull waiting in the broker rejects at once. */
  close(): Promise<void>;
}

export interface BrokerPullerOptions {
  nameServer: string;
  /** Names as the broker stores them (with the namespace, if any). */
  topic: string;
  group: string;
  maxMessages: number;
  connectTimeoutMs: number;
}

export class BrokerPuller implements LogPuller {
  #connection: Promise<RemotingConnection> | undefined;
  #closed = false;

  constructor(private readonly options: BrokerPullerOptions) {}

  async committedOffset(timeoutMs: number): Promise<number> {
    const response = await this.#request(
      QUERY_CONSUMER_OFFSET,
      { ...this.#queue(), setZeroIfNotFound: "false" },
      timeoutMs,
    );
    if (response.code === QUERY_NOT_FOUND) {
      throw new Error(
        `group ${this.options.group} has no offset on ${this.options.topic} (start() sets one)`,
      );
    }
    return Number(expectSuccess(response, "read the group's offset").extFields.offset);
  }

  async pull(
    offset: number,
    commitOffset: number,
    suspendMs: number,
    timeoutMs: number,
  ): Promise<PulledBatch> {
    const response = await this.#request(PULL_MESSAGE, {
      ...this.#queue(),
      queueOffset: String(offset),
      maxMsgNums: String(this.options.maxMessages),
      sysFlag: String(COMMIT_OFFSET | SUSPEND | SUBSCRIPTION),
      commitOffset: String(commitOffset),
      suspendTimeoutMillis: String(suspendMs),
      subscription: "*",
      subVersion: String(Date.now()),
      expressionType: "TAG",
    }, timeoutMs);
    const numberOf = (field: string) => Number(response.extFields[field] ?? offset);
    const batch: PulledBatch = {
      status: "empty",
      messages: [],
      nextOffset: numberOf("nextBeginOffset"),
      minOffset: numberOf("minOffset"),
      maxOffset: numberOf("maxOffset"),
    };
    switch (response.code) {
      case SUCCESS:
        return { ...batch, status: "found", messages: decodeStoredMessages(response.body) };
      case PULL_NOT_FOUND:
        return batch;
      case PULL_RETRY_IMMEDIATELY:
        return { ...batch, status: "retry" };
      case PULL_OFFSET_MOVED:
        return { ...batch, status: "moved" };
      default:
        throw new Error(`RocketMQ refused to pull: code ${response.code} ${response.remark}`.trim());
    }
  }

  async commit(offset: number, timeoutMs: number): Promise<void> {
    expectSuccess(
      await this.#request(
        UPDATE_CONSUMER_OFFSET,
        { ...this.#queue(), commitOffset: String(offset) },
        timeoutMs,
      ),
      "commit the group's offset",
    );
  }

  async close(): Promise<void> {
    this.#closed = true;
    const connection = this.#connection;
    this.#connection = undefined;
    await connection?.then((conn) => conn.close(), () => {});
  }

  #queue(): Record<string, string> {
    return { consumerGroup: this.options.group, topic: this.options.topic, queueId: "0" };
  }

  async #request(code: number, fields: Record<string, string>, timeoutMs: number): Promise<RemotingResponse> {
    if (this.#closed) throw new Error("the log reader is closed");
    const connecting = this.#connection ??= this.#open();
    try {
      return await (await connecting).request(code, fields, undefined, timeoutMs);
    } catch (error) {
      // The next request opens a new connection (to the broker the name server names then).
      if (this.#connection === connecting) this.#connection = undefined;
      connecting.then((conn) => conn.close(), () => {});
      throw error;
    }
  }

  async #open(): Promise<RemotingConnection> {
    const o = this.options;
    const route = await topicRoute(o.nameServer, o.topic, o.connectTimeoutMs);
    if (!route || route.masters.length !== 1) {
      throw new Error(`the name server at ${o.nameServer} routes topic ${o.topic} to no single broker`);
    }
    return await RemotingConnection.open(route.masters[0], o.connectTimeoutMs);
  }
}

function expectSuccess(response: RemotingResponse, what: string): RemotingResponse {
  if (response.code !== SUCCESS) {
    throw new Error(`RocketMQ refused to ${what}: code ${response.code} ${response.remark}`.trim());
  }
  return response;
}
