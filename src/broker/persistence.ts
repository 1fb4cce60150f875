import type { QoS, Will } from "../codec/types.ts";
import { copyPayload, payloadSize } from "../session/message.ts";
import type { Session } from "../session/session.ts";
import type { Delivery, DeliveryStage, Message, RecordSink, SessionSubscription } from "../session/types.ts";
import type {
  DeferredWrites,
  MessageRef,
  PayloadSource,
  QueueEntry,
  StorageAdapter,
  StoredDelivery,
  StoredMessage,
} from "../storage/port.ts";

/** The kinds of change kept until storage writes (see Persistence's #record). */
const SAVE = 0, DELETE = 1, REQUEUE = 2, DROP_OLDEST = 3, AWAITING = 4, RELEASED = 5;
/** Slots per kept change: its kind, client id, delivery, QoS, stage, and a packet id or stored ref. */
const STRIDE = 6;
/** Delivery.storedRef of a delivery with kept changes and nothing stored yet. */
const KEPT = -1;
/** Delivery.storedRef of a delivery finished before anything of it was stored: its kept changes are not written. */
const CANCELLED = -2;
/**
 * Delivery.storedRef of a kept delivery whose message other kept deliveries share (a fan-out): it is written
 * even if acknowledged first. Left out one by one, a fan-out's deliveries cost the store's worker more than
 * writing them all: fan-out 1→100, durable, pinned, three alternating pairs, 297–412k msg/s with the worker at
 * 221–316 ticks per run against 400–425k at 168–174.
 */
const KEPT_SHARED = -3;

/** The kept changes as storage sees them (see StorageAdapter.defer). */
class KeptChanges implements DeferredWrites {
  /** Deliveries kept as sent, not stored and not yet acknowledged (a hint: see DeferredWrites). */
  awaited = 0;
  constructor(readonly write: () => void) {}
}

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
  /** The changes kept until storage writes its group (see #record), {@link STRIDE} slots each. */
  readonly #records: unknown[] = [];
  #recordsLength = 0;
  readonly #kept = new KeptChanges(() => this.#writeRecords());
  /** The delivery kept last (see #keep), until the kept changes are written. */
  #lastKept: Delivery | undefined;

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
    this.#inOrder().saveSession({
      clientId: session.clientId,
      expiryInterval: session.expiryInterval,
      ...meta,
    });
  }

  ended(clientId: string): void {
    this.#inOrder().deleteSession(clientId);
  }

  subscribed(session: Session, subscription: SessionSubscription): void {
    if (!session.persistent) return;
    this.#inOrder().saveSubscription({
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
    this.#inOrder().deleteSubscription(session.clientId, subscription.topicFilter);
  }

  /** Writes what a persistent session changed since it was last asked (see Session.takeRecords). */
  sessionChanged(session: Session): void {
    session.takeRecords(this);
  }

  /** Remembers which stored message a delivery read back from storage refers to. */
  restored(delivery: Delivery, stored: StoredDelivery): void {
    delivery.storedRef = stored.entry.messageId;
  }

  retained(message: Message): void {
    // $SYS values are recomputed at every start; writing them to disk every interval would only cost.
    if (message.topic.startsWith("$SYS/")) return;
    if (message.payload.byteLength === 0) this.#inOrder().deleteRetained(message.topic);
    else this.#inOrder().saveRetained(toStored(message));
  }

  /**
   * Appends a message to the log before it is routed, so that a store with no room refuses it before anyone
   * receives it; routing then refers to the same stored message.
   */
  stageMessage(message: Message): void {
    if (!this.#staged.has(message)) {
      this.#staged.set(message, this.#inOrder().appendMessage(toStored(message)));
    }
  }

  /** A staged message leaves the log unless a queue kept it (routing refused, or no queue took it). */
  unstageMessage(message: Message): void {
    const ref = this.#staged.get(message);
    if (ref === undefined) return;
    // Its deliveries' changes first, while they still find it staged.
    const storage = this.#inOrder();
    this.#staged.delete(message);
    // A later delivery of it (none is expected) appends it again rather than refer to a deleted row.
    if (this.#lastAppended === message) this.#lastAppended = this.#lastAppendedRef = undefined;
    storage.deleteUnreferencedMessage(ref);
  }

  /**
   * A will is kept while its client is connected, so a node crash cannot lose it; with its owner, so that
   * it can be authorized again when it is finally published.
   */
  willArmed(clientId: string, will: Will | undefined, owner?: string, publishAt?: number): void {
    if (will) this.#inOrder().saveWill({ clientId, will, publishAt, owner });
    else this.#inOrder().deleteWill(clientId);
  }

  saveMeta(key: string, value: string): void {
    this.#inOrder().saveMeta(key, value);
  }

  // The RecordSink: one change of a persistent session per call (see sessionChanged), kept until storage
  // writes its group (see #record).

  saveDelivery(
    clientId: string,
    delivery: Delivery,
    qos: QoS,
    stage: DeliveryStage,
    packetId: number | undefined,
  ): void {
    this.#record(SAVE, clientId, delivery, qos, stage, packetId);
  }

  requeueDelivery(clientId: string, delivery: Delivery, qos: QoS): void {
    this.#record(REQUEUE, clientId, delivery, qos, "queued", undefined);
  }

  deleteDelivery(clientId: string, delivery: Delivery): void {
    const ref = delivery.storedRef;
    if (ref === KEPT_SHARED) {
      // Its delete needs its stored ref: the list is written up to here (in order, so other kept deliveries
      // are written with it, and can no longer be left out).
      this.#writeRecords();
      this.#record(DELETE, clientId, delivery, 0, "queued", delivery.storedRef);
    } else if (ref === KEPT) {
      // Nothing of it stored yet: its kept changes need no writing now.
      delivery.storedRef = CANCELLED;
      const kept = this.#kept;
      if (kept.awaited > 0) kept.awaited--;
      this.storage.defer(kept);
    } else if (ref !== undefined && ref !== CANCELLED) {
      this.#record(DELETE, clientId, delivery, 0, "queued", ref);
    }
  }

  dropOldestStored(clientId: string): void {
    this.#record(DROP_OLDEST, clientId, undefined, 0, "queued", undefined);
  }

  awaitingRelease(clientId: string, packetId: number, waiting: boolean): void {
    this.#record(waiting ? AWAITING : RELEASED, clientId, undefined, 0, "queued", packetId);
  }

  /**
   * Keeps a change until storage writes its group (StorageAdapter.defer): a delivery acknowledged before
   * then is written neither as sent nor as deleted, and its message not at all if no other delivery needs
   * it. Under load most are: durable QoS 1 wrote three operations per message, each encoded here and
   * logged and cancelled in the store's worker.
   */
  #record(
    kind: number,
    clientId: string,
    delivery: Delivery | undefined,
    qos: QoS,
    stage: DeliveryStage,
    value: number | undefined,
  ): void {
    const records = this.#records;
    const at = this.#recordsLength;
    records[at] = kind;
    records[at + 1] = clientId;
    records[at + 2] = delivery;
    records[at + 3] = qos;
    records[at + 4] = stage;
    records[at + 5] = value;
    this.#recordsLength = at + STRIDE;
    if (delivery !== undefined && kind !== DELETE && delivery.storedRef === undefined) {
      this.#keep(delivery, stage);
    }
    this.storage.defer(this.#kept);
  }

  /** Marks a delivery's first kept change: KEPT, or KEPT_SHARED with the one before when both have one message. */
  #keep(delivery: Delivery, stage: DeliveryStage): void {
    const before = this.#lastKept;
    this.#lastKept = delivery;
    if (before?.message !== delivery.message) {
      delivery.storedRef = KEPT;
      if (stage === "sent") this.#kept.awaited++;
      return;
    }
    delivery.storedRef = KEPT_SHARED;
    if (before.storedRef === KEPT) {
      before.storedRef = KEPT_SHARED;
      if (this.#kept.awaited > 0) this.#kept.awaited--;
    }
  }

  /** Writes the changes kept so far, in order: before any other write, so that order holds across both. */
  #writeRecords(): void {
    const records = this.#records;
    const length = this.#recordsLength;
    if (length === 0) return;
    this.#recordsLength = 0;
    this.#kept.awaited = 0;
    this.#lastKept = undefined;
    const storage = this.storage;
    for (let at = 0; at < length; at += STRIDE) {
      const kind = records[at] as number;
      const clientId = records[at + 1] as string;
      const delivery = records[at + 2] as Delivery;
      const qos = records[at + 3] as QoS;
      const value = records[at + 5] as number | undefined;
      switch (kind) {
        case SAVE:
          if (delivery.storedRef === CANCELLED) break;
          storage.saveQueueEntry(
            this.#entryOf(
              clientId,
              this.#refOf(delivery),
              delivery,
              qos,
              records[at + 4] as DeliveryStage,
              value,
            ),
          );
          break;
        case DELETE:
          storage.deleteQueueEntry(clientId, value as MessageRef);
          break;
        case REQUEUE:
          if (delivery.storedRef !== CANCELLED) this.#requeue(clientId, delivery, qos);
          break;
        case DROP_OLDEST:
          storage.deleteOldestQueued(clientId);
          break;
        case AWAITING:
          storage.addAwaitingRelease(clientId, value!);
          break;
        default:
          storage.deleteAwaitingRelease(clientId, value!);
      }
    }
    records.fill(undefined, 0, length);
  }

  #requeue(clientId: string, delivery: Delivery, qos: QoS): void {
    // A new message row, not #refOf's: the first entry may be its message's last reference.
    const storage = this.storage;
    const kept = delivery.storedRef;
    const first = kept !== undefined && kept < 0 ? undefined : kept as MessageRef | undefined;
    const ref = storage.appendMessage(this.#storedOf(delivery.message));
    delivery.storedRef = ref;
    storage.saveQueueEntry(this.#entryOf(clientId, ref, delivery, qos, "queued", undefined));
    if (first !== undefined) storage.deleteQueueEntry(clientId, first);
  }

  /** The storage, once the changes kept so far are written: no other write may overtake them. */
  #inOrder(): StorageAdapter {
    this.#writeRecords();
    return this.storage;
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
    if (ref === undefined || ref < 0) {
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
