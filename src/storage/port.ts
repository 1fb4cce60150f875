/**
 * The storage port: what the broker needs to keep across restarts, split by concern. Adapters live in
 * `embedded/` (the default, one data directory), `memory/` (no persistence) and later `rocketmq/`.
 *
 * Mutations are synchronous and only buffer; `flush()` resolves once every mutation issued before it is
 * durable at the adapter's durability level. Many mutations share one flush (group commit), so the broker
 * acknowledges a QoS 1/2 PUBLISH after `flush()` without paying one sync per message.
 *
 * Messages are stored once in a log and referenced by id from each session's queue (no copy per
 * subscriber); a message is deleted when the last queue entry referring to it is removed.
 */
import type { Properties, QoS, Will } from "../codec/types.ts";

/** A persistent session (Session Expiry Interval > 0). */
export interface StoredSession {
  clientId: string;
  /** Seconds; 0xFFFFFFFF never expires. */
  expiryInterval: number;
  /** ms since the epoch when the client disconnected; absent while connected (and at a crash). */
  disconnectedAt?: number;
  /** Incremented at every (re)connect, so an adapter shared by several nodes can detect a stale writer. */
  epoch: number;
  /** The identity that owns the session (an opaque key); absent for sessions stored before owners were. */
  owner?: string;
}

export interface StoredSubscription {
  clientId: string;
  /** The full filter, `$share/<group>/` prefix included. */
  topicFilter: string;
  qos: QoS;
  noLocal: boolean;
  retainAsPublished: boolean;
  retainHandling: 0 | 1 | 2;
  subscriptionIdentifier?: number;
}

/** An application message in the log (or the retained store). */
export interface StoredMessage {
  topic: string;
  payload: Uint8Array;
  qos: QoS;
  retain: boolean;
  /** v5 publish properties (no topic alias, no subscription identifiers). */
  properties: Properties;
  publisherId: string;
  /** ms since the epoch, from Message Expiry Interval. */
  expiresAt?: number;
}

/** One message waiting in, or in flight from, one session's queue. */
export interface QueueEntry {
  clientId: string;
  messageId: number;
  /** The QoS it is delivered at (already downgraded to the subscription's). */
  qos: QoS;
  /** RETAIN flag to send. */
  retain: boolean;
  subscriptionIdentifiers?: number[];
  /** "queued": not sent yet; "sent": PUBLISH sent with `packetId`; "released": PUBREL sent (QoS 2). */
  stage: "queued" | "sent" | "released";
  packetId?: number;
}

/** A will to publish later: when its client is gone for its delay, or at the next start if the node died. */
export interface StoredWill {
  clientId: string;
  will: Will;
  /** ms since the epoch at which to publish; absent while the client is connected. */
  publishAt?: number;
  /** The identity of the client that set it, to authorize it again when it is published. */
  owner?: string;
}

/** Everything an adapter holds, read once at start to rebuild the broker. Queues are in delivery order. */
export interface StorageSnapshot {
  sessions: StoredSession[];
  subscriptions: StoredSubscription[];
  /** Queue entries of all sessions, each session's in order, with the messages they refer to. */
  queues: QueueEntry[];
  messages: Map<number, StoredMessage>;
  /** Inbound QoS 2 packet ids received and not yet released, per client. */
  awaitingRelease: { clientId: string; packetId: number }[];
  retained: StoredMessage[];
  wills: StoredWill[];
}

export interface SessionStore {
  saveSession(session: StoredSession): void;
  /** Deletes the session with its subscriptions, queue entries and awaiting-release ids. */
  deleteSession(clientId: string): void;
}

export interface SubscriptionStore {
  saveSubscription(subscription: StoredSubscription): void;
  deleteSubscription(clientId: string, topicFilter: string): void;
}

export interface MessageLog {
  /** Appends a message once; returns its id, which queue entries refer to. */
  appendMessage(message: StoredMessage): number;
  /** Adds or replaces (same client and message) a queue entry; entries keep the order they were first added in. */
  saveQueueEntry(entry: QueueEntry): void;
  /** Removes a queue entry; the message goes when no entry refers to it. */
  deleteQueueEntry(clientId: string, messageId: number): void;
}

export interface InflightStore {
  addAwaitingRelease(clientId: string, packetId: number): void;
  deleteAwaitingRelease(clientId: string, packetId: number): void;
}

export interface RetainedStore {
  /** Stores the retained message of `message.topic`, replacing the previous one. */
  saveRetained(message: StoredMessage): void;
  deleteRetained(topic: string): void;
}

export interface WillStore {
  saveWill(will: StoredWill): void;
  deleteWill(clientId: string): void;
}

export interface StorageHealth {
  ok: boolean;
  detail: string;
}

/** A storage adapter: all concerns, a lifecycle, group commit. */
export interface StorageAdapter
  extends SessionStore, SubscriptionStore, MessageLog, InflightStore, RetainedStore, WillStore {
  /** Opens the store and recovers (torn tails dropped and logged); resolves what it holds. */
  start(): Promise<StorageSnapshot>;
  /** Flushes and closes. */
  stop(): Promise<void>;
  health(): StorageHealth;
  /** True when mutations were issued since the last flush began. */
  readonly dirty: boolean;
  /**
   * Resolves when every mutation issued so far is durable. Rejects with StorageError (reason 0x97 Quota
   * exceeded when the disk is full) if it cannot be; the broker then refuses instead of acknowledging.
   */
  flush(): Promise<void>;
}

/** A storage failure; carries the MQTT reason code to answer a publisher with. */
export class StorageError extends Error {
  override readonly name = "StorageError";
  constructor(message: string, readonly reasonCode: number, options?: ErrorOptions) {
    super(message, options);
  }
}
