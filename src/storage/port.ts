/**
 * The storage port: what the broker needs to keep across restarts, split by concern. Adapters live in
 * `embedded/` (the default, one data directory), `memory/` (no persistence) and later `rocketmq/`.
 *
 * Mutations are synchronous and only buffer; `flush()` resolves once every mutation issued before it is
 * durable at the adapter's durability level. Many mutations share one flush (group commit), so the broker
 * acknowledges a QoS 1/2 PUBLISH after `flush()` without paying one sync per message.
 *
 * Messages are stored once in a log and referenced from each session's queue (no copy per subscriber); a
 * message is deleted when the last queue entry referring to it is removed. Queues are not part of the
 * snapshot `start()` returns: a session's queue is read when its client comes back, a bounded page at a time
 * ({@link MessageLog.readQueue}), so neither a restart nor a returning client loads every queued message.
 * Retained messages are in the snapshot without their payloads, which are read when a SUBSCRIBE matches
 * them ({@link RetainedStore.readRetained}).
 */
import type { Properties, QoS, Will } from "../codec/types.ts";

/** An adapter's reference to a message in its log; opaque to everything else. */
export type MessageRef = number & { readonly __messageRef: unique symbol };

/** A persistent session (Session Expiry Interval > 0). */
export interface StoredSession {
  clientId: string;
  /** Seconds; 0xFFFFFFFF never expires. */
  expiryInterval: number;
  /** ms since the epoch when the client disconnected; absent while connected (and at a crash). */
  disconnectedAt?: number;
  /** Grows at every (re)connect of the client id, so a stale writer can be recognised and refused. */
  epoch: number;
  /** Who owns the session (see the broker's identities); absent for sessions stored before owners were kept. */
  owner?: string;
  /**
   * While the client is connected: where and how (the broker's own text; a cluster node needs it to keep
   * serving a session whose client is connected to another node after a restart).
   */
  connection?: string;
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
  /**
   * Set where reading `payload` makes a view of a larger buffer (the broker's messages keep their PUBLISH
   * frame, see FramedMessage): an adapter that copies the payload into a buffer of its own copies it from
   * here, with no view made. A view per appended message was a sixth of what a durable message allocated.
   */
  payloadSource?: PayloadSource;
  qos: QoS;
  retain: boolean;
  /** v5 publish properties (no topic alias, no subscription identifiers). */
  properties: Properties;
  publisherId: string;
  /** ms since the epoch, from Message Expiry Interval. */
  expiresAt?: number;
}

/** A payload copied out where it is, without a view of it (see StoredMessage.payloadSource). */
export interface PayloadSource {
  readonly payloadSize: number;
  /** Copies the payload into `target` at `at` (room for {@link payloadSize} bytes there). */
  copyPayloadTo(target: DataView, at: number): void;
}

/**
 * A retained message as the snapshot gives it: everything but the payload, which stays in the store until
 * {@link RetainedStore.readRetained} reads it, so that a start does not load every retained payload.
 */
export interface StoredRetained extends Omit<StoredMessage, "payload"> {
  payloadBytes: number;
}

/** One message waiting in, or in flight from, one session's queue. */
export interface QueueEntry {
  clientId: string;
  messageId: MessageRef;
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

/** How many entries wait in a session's queue in storage (stage "queued"), and their topic and payload bytes. */
export interface QueueTotals {
  entries: number;
  bytes: number;
}

/** A queue entry read back with the message it refers to. */
export interface StoredDelivery {
  entry: QueueEntry;
  message: StoredMessage;
}

/** Where an entry stands in its queue, for reading on after it; opaque to everything but its adapter. */
export type QueuePosition = number & { readonly __queuePosition: unique symbol };

/** Which part of a queue {@link MessageLog.readQueue} reads. */
export interface QueueRead {
  /** Read the entries after this one ({@link QueuePage.last} of the page before); from the start when absent. */
  after?: QueuePosition;
  /** At most this many entries (at least 1). */
  maxEntries: number;
  /**
   * At most this many topic and payload bytes (as {@link QueueTotals} counts them), except that a page holds
   * at least one entry, however large, whenever one follows `after`.
   */
  maxBytes: number;
}

/** A page of a queue, in delivery order. */
export interface QueuePage {
  deliveries: StoredDelivery[];
  /**
   * Where the page ends, to pass as the next read's `after`: the last entry it looked at, which may be an
   * expired one it left out. Absent when it looked at none (then `after` still holds).
   */
  last?: QueuePosition;
  /** False once nothing follows `last` (or `after`): the queue has been read to its end. */
  more: boolean;
}

/** What an adapter holds, read once at start to rebuild the broker; queues are read per client later. */
export interface StorageSnapshot {
  sessions: StoredSession[];
  subscriptions: StoredSubscription[];
  /** Per client with a non-empty queue: what its queue holds. */
  queueTotals: Map<string, QueueTotals>;
  /**
   * Messages in the log (each stored once, however many queues refer to it), counted when the snapshot was
   * read: an adapter may drop messages no queue refers to after that, before it takes any write.
   */
  storedMessages: number;
  /** Inbound QoS 2 packet ids received and not yet released, per client. */
  awaitingRelease: { clientId: string; packetId: number }[];
  /** Retained messages without their payloads (see {@link RetainedStore.readRetained}). */
  retained: StoredRetained[];
  wills: StoredWill[];
  /** Small named values other parts keep with the state (e.g. how far a cluster node has applied its log). */
  meta: Map<string, string>;
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
  /**
   * True when every payload {@link readQueue} returns is a buffer of the caller's own that nothing else
   * refers to (the embedded store: each read is a fresh copy from disk): the broker then frees it as soon as
   * the delivery is acknowledged instead of leaving it to V8's next full collection. An adapter that hands
   * out payloads it keeps (the memory store) leaves it unset.
   */
  readonly readsOwnPayloads?: boolean;
  /**
   * Appends a message once; returns the reference queue entries use. The object is the caller's to reuse
   * (the broker fills one object for every append): an adapter that keeps it in memory keeps a copy. The
   * payload's bytes do not change after the call (the broker's are regions of the codec's slabs, written
   * once), but the buffer under them is the caller's: an adapter may keep a view for a short while (the
   * memory store, see its PAYLOAD_NURSERY_MS), never across a restart nor for long, so that a stored
   * message does not keep the caller's buffer alive.
   */
  appendMessage(message: StoredMessage): MessageRef;
  /**
   * Adds or replaces (same client and message) a queue entry; entries keep the order they were first added
   * in. The object is the caller's to reuse, as with {@link appendMessage}.
   */
  saveQueueEntry(entry: QueueEntry): void;
  /** Removes a queue entry; the message goes when no entry refers to it. */
  deleteQueueEntry(clientId: string, messageId: MessageRef): void;
  /**
   * Deletes the message if no queue entry refers to it, else does nothing: for a message appended before it
   * was routed (so that a full store refuses it before anyone receives it) that no queue then kept.
   */
  deleteUnreferencedMessage(messageId: MessageRef): void;
  /** Removes the client's oldest entry that was not sent yet (stage "queued"), if any. */
  deleteOldestQueued(clientId: string): void;
  /**
   * The next page of one client's queue in delivery order (the order entries were first added), with its
   * messages: bounded, so that a long queue of large messages is never in memory at once. It reflects every
   * mutation issued before the call: an entry added since the page before is in a later page, a deleted one
   * in none. Expired messages not yet sent are left out; one already sent is not expired [MQTT-4.3.3-7].
   * See {@link readsOwnPayloads} for whether its payloads are the caller's own.
   */
  readQueue(clientId: string, read: QueueRead): Promise<QueuePage>;
}

export interface InflightStore {
  addAwaitingRelease(clientId: string, packetId: number): void;
  deleteAwaitingRelease(clientId: string, packetId: number): void;
}

export interface RetainedStore {
  /** Stores the retained message of `message.topic`, replacing the previous one. */
  saveRetained(message: StoredMessage): void;
  deleteRetained(topic: string): void;
  /**
   * The retained messages of `topics`, payloads included, in the order asked: undefined for a topic that
   * has none. It reflects every mutation issued before the call, as {@link MessageLog.readQueue} does.
   * Payloads are the caller's own when {@link MessageLog.readsOwnPayloads} says so.
   */
  readRetained(topics: string[]): Promise<(StoredMessage | undefined)[]>;
}

export interface WillStore {
  saveWill(will: StoredWill): void;
  deleteWill(clientId: string): void;
}

/** Small named values, written in the same group commit as the state they describe. */
export interface MetaStore {
  saveMeta(key: string, value: string): void;
}

export interface StorageHealth {
  ok: boolean;
  detail: string;
}

/**
 * Changes the broker keeps for storage to write later (see StorageAdapter.defer): a delivery acknowledged
 * before they are written is then written neither as sent nor as deleted (see Persistence).
 */
export interface DeferredWrites {
  /** Issues the changes kept so far as mutations, in order. */
  write(): void;
  /**
   * How many of the kept changes may yet cancel out (deliveries sent and not acknowledged yet): while there
   * are some, an adapter may hold its next write a moment for their acknowledgements.
   */
  readonly awaited: number;
}

/** A storage adapter: all concerns, a lifecycle, group commit. */
export interface StorageAdapter
  extends SessionStore, SubscriptionStore, MessageLog, InflightStore, RetainedStore, WillStore, MetaStore {
  /** Opens the store and recovers (torn tails dropped and logged); resolves what it holds. */
  start(): Promise<StorageSnapshot>;
  /** Flushes and closes. */
  stop(): Promise<void>;
  health(): StorageHealth;
  /** True when mutations were issued (or deferred) since the last flush began. */
  readonly dirty: boolean;
  /**
   * Mutations to issue later: the adapter calls `writes.write()`, which issues them, before it next writes
   * what it holds, reads, or stops, and until then counts them as issued (`dirty`, `flush()`). Called again
   * whenever the kept changes change. An adapter that writes nothing in the background writes at once.
   */
  defer(writes: DeferredWrites): void;
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
