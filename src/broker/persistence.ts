import type { QoS, Will } from "../codec/types.ts";
import { copyPayload, payloadSize } from "../session/message.ts";
import type { Session } from "../session/session.ts";
import type { Delivery, DeliveryStage, Message, RecordSink, SessionSubscription } from "../session/types.ts";
import type {
  MessageRef,
  PayloadSource,
  QueueEntry,
  StorageAdapter,
  StoredDelivery,
  StoredMessage,
} from "../storage/port.ts";

/** What the registry stores about a session besides its contents. */
export interface SessionMeta {
  epoch: number;
  owner?: string;
  disconnectedAt?: number;
  /** Where the client is connected, while it is (see StoredSession.connection). */
  connection?: string;
}

/**
 * Writes the broker's durable state through the storage port: persistent sessions (expiry > 0), their
 * subscriptions and QoS 1/2 queues (from the records the sessions hand back), inbound QoS 2 ids, retained
 * messages and wills. Each message is appended to the log once, the first time a persistent session needs
 * it; the stored message a delivery refers to is kept on the delivery (one per client; its message may be
 * swapped for a compact copy), so no shared Message is ever written to.
 */
export class Persistence implements RecordSink {
  #lastFlush: Promise<void> | undefined;
  #lastObserved: Promise<void> | undefined;
  /**
   * The message appended last: a routing pass hands every subscriber's delivery of one message over in a
   * row, so one remembered message finds them all (no weak map per message for the GC to trace).
   */
  #lastAppended: Message | undefined;
  #lastAppendedRef: MessageRef | undefined;
  /**
   * Messages appended before routing (see {@link stageMessage}) until they are routed: other messages may
   * be appended while a staged one waits for its flush.
   */
  readonly #staged = new Map<Message, MessageRef>();
  /**
   * The one entry and the one message handed to storage for every queue save and every append of the
   * delivery path, filled anew each time (adapters copy what they keep, see the port): an object for each
   * was a fifth of what a durable message allocated on the broker's thread.
   */
  readonly #entry: QueueEntry = {
    clientId: "",
    messageId: 0 as MessageRef,
    qos: 0,
    retain: false,
    subscriptionIdentifiers: undefined,
    stage: "queued",
    packetId: undefined,
  };
  readonly #appending = new AppendedPayload();
  readonly #message: StoredMessage = storedMessageOf(this.#appending);

  constructor(
    private readonly storage: StorageAdapter,
    private readonly observeFlush: (flush: Promise<void>) => Promise<void> = (flush) => flush,
  ) {}

  get dirty(): boolean {
    return this.storage.dirty;
  }

  /** The adapter shares one flush among everything issued before it; observe each shared flush once. */
  flush(): Promise<void> {
    const flush = this.storage.flush();
    if (flush !== this.#lastFlush) {
      this.#lastFlush = flush;
      this.#lastObserved = this.observeFlush(flush);
    }
    return this.#lastObserved!;
  }

  /** Records the session itself (persistent ones only), with who owns it and since when it is offline. */
  saveSession(session: Session, meta: SessionMeta): void {
    if (!session.persistent) return;
    this.storage.saveSession({ clientId: session.clientId, expiryInterval: session.expiryInterval, ...meta });
  }

  ended(clientId: string): void {
    this.storage.deleteSession(clientId);
  }

  subscribed(session: Session, subscription: SessionSubscription): void {
    if (!session.persistent) return;
    this.storage.saveSubscription({
      clientId: session.clientId,
      topicFilter: subscription.topicFilter,
      qos: subscription.qos,
      noLocal: subscription.noLocal,
      retainAsPublished: subscription.retainAsPublished,
      retainHandling: subscription.retainHandling,
      subscriptionIdentifier: subscription.subscriptionIdentifier,
    });
  }

  unsubscribed(session: Session, subscription: SessionSubscription): void {
    if (!session.persistent) return;
    this.storage.deleteSubscription(session.clientId, subscription.topicFilter);
  }

  /** Writes what a persistent session changed since it was last asked (see Session.takeRecords). */
  sessionChanged(session: Session): void {
    session.takeRecords(this);
  }

  /** The stored message a delivery refers to, if it was stored. */
  storedRef(delivery: Delivery): MessageRef | undefined {
    return delivery.storedRef as MessageRef | undefined;
  }

  /** Remembers which stored message a delivery read back from storage refers to. */
  restored(delivery: Delivery, stored: StoredDelivery): void {
    delivery.storedRef = stored.entry.messageId;
  }

  retained(message: Message): void {
    // $SYS values are recomputed at every start; writing them to disk every interval would only cost.
    if (message.topic.startsWith("$SYS/")) return;
    if (message.payload.byteLength === 0) this.storage.deleteRetained(message.topic);
    else this.storage.saveRetained(toStored(message));
  }

  /**
   * Appends a message to the log before it is routed, so that a store with no room refuses it before anyone
   * receives it; routing then refers to the same stored message.
   */
  stageMessage(message: Message): void {
    if (!this.#staged.has(message)) {
      this.#staged.set(message, this.storage.appendMessage(toStored(message)));
    }
  }

  /** A staged message leaves the log unless a queue kept it (routing refused, or no queue took it). */
  unstageMessage(message: Message): void {
    const ref = this.#staged.get(message);
    if (ref === undefined) return;
    this.#staged.delete(message);
    // A later delivery of it (none is expected) appends it again rather than refer to a deleted row.
    if (this.#lastAppended === message) this.#lastAppended = this.#lastAppendedRef = undefined;
    this.storage.deleteUnreferencedMessage(ref);
  }

  /**
   * A will is kept while its client is connected, so a node crash cannot lose it; with its owner, so that
   * it can be authorized again when it is finally published.
   */
  willArmed(clientId: string, will: Will | undefined, owner?: string, publishAt?: number): void {
    if (will) this.storage.saveWill({ clientId, will, publishAt, owner });
    else this.storage.deleteWill(clientId);
  }

  saveMeta(key: string, value: string): void {
    this.storage.saveMeta(key, value);
  }

  // The RecordSink: one change of a persistent session per call (see sessionChanged).

  saveDelivery(
    clientId: string,
    delivery: Delivery,
    qos: QoS,
    stage: DeliveryStage,
    packetId: number | undefined,
  ): void {
    this.storage.saveQueueEntry(
      this.#entryOf(clientId, this.#refOf(delivery), delivery, qos, stage, packetId),
    );
  }

  requeueDelivery(clientId: string, delivery: Delivery, qos: QoS): void {
    // A new message row, not #refOf's: the first entry may be its message's last reference.
    const storage = this.storage;
    const first = delivery.storedRef as MessageRef | undefined;
    const ref = storage.appendMessage(this.#storedOf(delivery.message));
    delivery.storedRef = ref;
    storage.saveQueueEntry(this.#entryOf(clientId, ref, delivery, qos, "queued", undefined));
    if (first !== undefined) storage.deleteQueueEntry(clientId, first);
  }

  deleteDelivery(clientId: string, delivery: Delivery): void {
    const ref = delivery.storedRef as MessageRef | undefined;
    if (ref !== undefined) this.storage.deleteQueueEntry(clientId, ref);
  }

  dropOldestStored(clientId: string): void {
    this.storage.deleteOldestQueued(clientId);
  }

  awaitingRelease(clientId: string, packetId: number, waiting: boolean): void {
    if (waiting) this.storage.addAwaitingRelease(clientId, packetId);
    else this.storage.deleteAwaitingRelease(clientId, packetId);
  }

  /** {@link #entry}, filled for this save. */
  #entryOf(
    clientId: string,
    messageId: MessageRef,
    delivery: Delivery,
    qos: QoS,
    stage: DeliveryStage,
    packetId: number | undefined,
  ): QueueEntry {
    const entry = this.#entry;
    entry.clientId = clientId;
    entry.messageId = messageId;
    entry.qos = qos;
    entry.retain = delivery.retain;
    entry.subscriptionIdentifiers = delivery.subscriptionIdentifiers;
    entry.stage = stage;
    entry.packetId = packetId;
    return entry;
  }

  /** {@link #message}, filled for this append. */
  #storedOf(message: Message): StoredMessage {
    const stored = this.#message;
    this.#appending.hold(message);
    stored.topic = message.topic;
    stored.qos = message.qos;
    stored.retain = message.retain;
    stored.properties = message.properties;
    stored.publisherId = message.publisherId;
    stored.expiresAt = message.expiresAt;
    return stored;
  }

  #refOf(delivery: Delivery): MessageRef {
    let ref = delivery.storedRef as MessageRef | undefined;
    if (ref === undefined) {
      const message = delivery.message;
      if (message === this.#lastAppended) {
        ref = this.#lastAppendedRef!;
      } else if (this.#staged.size > 0 && this.#staged.has(message)) {
        ref = this.#staged.get(message)!;
        this.#lastAppended = message;
        this.#lastAppendedRef = ref;
      } else {
        ref = this.storage.appendMessage(this.#storedOf(message));
        this.#lastAppended = message;
        this.#lastAppendedRef = ref;
      }
      delivery.storedRef = ref;
    }
    return ref;
  }
}

export function toStored(message: Message): StoredMessage {
  return {
    topic: message.topic,
    payload: message.payload,
    qos: message.qos,
    retain: message.retain,
    properties: message.properties,
    publisherId: message.publisherId,
    expiresAt: message.expiresAt,
  };
}

export function fromStored(message: StoredMessage): Message {
  return { ...message };
}

/**
 * The payload of the message being appended through Persistence's one StoredMessage: copied from its frame by
 * an adapter that copies payloads (StoredMessage.payloadSource), made as a view only for one that reads
 * `payload`.
 */
class AppendedPayload implements PayloadSource {
  message: Message | undefined;
  payloadSize = 0;

  /** Holds `message` for its append, its payload's size read once (from its frame). */
  hold(message: Message): void {
    this.message = message;
    this.payloadSize = payloadSize(message);
  }

  copyPayloadTo(target: DataView, at: number): void {
    copyPayload(this.message!, this.payloadSize, target, at);
  }
}

/** A StoredMessage whose `payload` is `appended`'s, read when asked (a spread of it reads it too). */
function storedMessageOf(appended: AppendedPayload): StoredMessage {
  return {
    topic: "",
    get payload(): Uint8Array {
      return appended.message!.payload;
    },
    payloadSource: appended,
    qos: 0,
    retain: false,
    properties: {},
    publisherId: "",
    expiresAt: undefined,
  };
}
