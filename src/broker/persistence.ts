import type { QoS, Will } from "../codec/types.ts";
import type { Session } from "../session/session.ts";
import type { Delivery, Message, SessionJournal, SessionSubscription } from "../session/types.ts";
import type { StorageAdapter, StoredMessage } from "../storage/port.ts";

/**
 * Writes the broker's durable state through the storage port: persistent sessions (expiry > 0), their
 * subscriptions and QoS 1/2 queues, inbound QoS 2 ids, retained messages and wills. Each message is
 * appended to the log once, the first time a persistent session needs it.
 */
export class Persistence {
  #lastFlush: Promise<void> | undefined;
  #lastObserved: Promise<void> | undefined;

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

  /** Starts or stops journaling for a session whose expiry makes it persistent or not. */
  track(session: Session, epoch: number, owner?: string): void {
    if (session.expiryInterval === 0) {
      session.outbound.journal = undefined;
      return;
    }
    this.storage.saveSession({
      clientId: session.clientId,
      expiryInterval: session.expiryInterval,
      epoch,
      owner,
    });
    session.outbound.journal ??= this.#journalFor(session.clientId);
  }

  disconnected(session: Session, epoch: number, at: number, owner?: string): void {
    if (session.expiryInterval === 0) return;
    this.storage.saveSession({
      clientId: session.clientId,
      expiryInterval: session.expiryInterval,
      epoch,
      disconnectedAt: at,
      owner,
    });
  }

  ended(clientId: string): void {
    this.storage.deleteSession(clientId);
  }

  subscribed(session: Session, subscription: SessionSubscription): void {
    if (session.expiryInterval === 0) return;
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
    if (session.expiryInterval === 0) return;
    this.storage.deleteSubscription(session.clientId, subscription.topicFilter);
  }

  retained(message: Message): void {
    // $SYS values are recomputed at every start; writing them to disk every interval would only cost.
    if (message.topic.startsWith("$SYS/")) return;
    if (message.payload.byteLength === 0) this.storage.deleteRetained(message.topic);
    else this.storage.saveRetained(toStored(message));
  }

  /**
   * A will is kept while its client is connected, so a node crash cannot lose it; with its owner, so that
   * it can be authorized again when it is finally published.
   */
  willArmed(clientId: string, will: Will | undefined, owner?: string, publishAt?: number): void {
    if (will) this.storage.saveWill({ clientId, will, publishAt, owner });
    else this.storage.deleteWill(clientId);
  }

  #journalFor(clientId: string): SessionJournal {
    const storage = this.storage;
    const messageId = (delivery: Delivery): number => {
      const message = delivery.message;
      message.storeId ??= storage.appendMessage(toStored(message));
      return message.storeId;
    };
    return {
      saveDelivery(delivery: Delivery, qos: QoS, stage: "queued" | "sent" | "released", packetId?: number) {
        storage.saveQueueEntry({
          clientId,
          messageId: messageId(delivery),
          qos,
          retain: delivery.retain,
          subscriptionIdentifiers: delivery.subscriptionIdentifiers,
          stage,
          packetId,
        });
      },
      deleteDelivery(delivery: Delivery) {
        if (delivery.message.storeId !== undefined) {
          storage.deleteQueueEntry(clientId, delivery.message.storeId);
        }
      },
      awaitingRelease(packetId: number, waiting: boolean) {
        if (waiting) storage.addAwaitingRelease(clientId, packetId);
        else storage.deleteAwaitingRelease(clientId, packetId);
      },
    };
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

export function fromStored(message: StoredMessage, storeId?: number): Message {
  return { ...message, storeId };
}
