import type { QoS, Will } from "../codec/types.ts";
import { emptyDropCounts } from "../session/outbound.ts";
import { Session } from "../session/session.ts";
import type {
  AcceptedSubscription,
  Attachment,
  Delivery,
  DropCounts,
  Effect,
  Message,
  SessionLimits,
  SessionSubscription,
} from "../session/types.ts";
import { parseSharedFilter, type SharedGroup, SubscriptionTrie } from "../topic/mod.ts";
import type { StorageAdapter, StorageSnapshot } from "../storage/port.ts";
import { fromStored, Persistence } from "./persistence.ts";
import { RetainedStore } from "./retained.ts";
import { type Scheduler, type TimerHandle, timerScheduler } from "./scheduler.ts";

/** The broker's handle on a connected client's actor. */
export interface SessionLink {
  /** Runs effects produced for this client by someone else's packet (routed deliveries, retained messages). */
  run(effects: Effect[]): void;
  /** False while the socket is backed up; QoS 0 deliveries are then dropped instead of buffered. */
  readonly writable: boolean;
  /** Ends the connection because a new one took its session [MQTT-3.1.4-3]. */
  takeOver(): void;
}

export interface BrokerOptions {
  limits: SessionLimits;
  /** Upper bound on any Session Expiry Interval, seconds. */
  maxSessionExpiry: number;
  sharedSubscriptionStrategy: "round_robin" | "random";
  storage: StorageAdapter;
  /** Wraps each storage flush, e.g. to time it for metrics. */
  observeFlush?: (flush: Promise<void>) => Promise<void>;
  /**
   * Asked when a will is about to be published, with the owner of the session that set it (undefined for a
   * session stored before owners were recorded): the rules may have changed since its CONNECT. Absent = allowed.
   */
  authorizeWill?: (clientId: string, owner: string | undefined, will: Will) => boolean;
  now?: () => number;
  scheduler?: Scheduler;
}

/** What a CONNECT asks of the session registry. */
export interface OpenRequest {
  clientId: string;
  cleanStart: boolean;
  /** Seconds; 0xFFFFFFFF never expires. */
  sessionExpiryInterval: number;
  will?: Will;
  attachment: Attachment;
  link: SessionLink;
  /**
   * Who authenticated (an opaque key, the same for the same user). A session owned by someone else is
   * not resumed: this CONNECT gets a fresh one, as with Clean Start.
   */
  owner?: string;
}

interface Subscriber {
  session: Session;
  subscription: SessionSubscription;
}

interface SessionEntry {
  session: Session;
  /** Connections so far; a storage shared by nodes uses it to spot a stale writer. */
  epoch: number;
  /** The identity the session belongs to; undefined only for sessions stored before owners were. */
  owner?: string;
  link?: SessionLink;
  will?: Will;
  expiryTimer?: TimerHandle;
  willTimer?: TimerHandle;
}

/** Broker-wide counters, read by $SYS and /metrics. */
export interface BrokerStats {
  messagesReceived: number;
  messagesSent: number;
  /** Messages not delivered, by reason, over all sessions. */
  drops: DropCounts;
  connectedClients: number;
}

const NEVER_EXPIRES = 0xffffffff;

/**
 * Shared broker state behind a small API: the session registry (open, take over, expire), the router
 * (subscription tree and fan-out), retained messages and will messages. Only connection actors call it.
 */
export class Broker {
  readonly retained = new RetainedStore();
  readonly stats: BrokerStats = {
    messagesReceived: 0,
    messagesSent: 0,
    drops: emptyDropCounts(),
    connectedClients: 0,
  };
  readonly #sessions = new Map<string, SessionEntry>();
  readonly #trie = new SubscriptionTrie<Subscriber>();
  readonly #now: () => number;
  readonly #scheduler: Scheduler;
  readonly #persistence: Persistence;
  /** Reused per publish: one delivery per client, at the highest QoS of its matching subscriptions. */
  readonly #matches = new Map<Session, Delivery>();
  #message: Message | undefined;

  constructor(private readonly options: BrokerOptions) {
    this.#now = options.now ?? Date.now;
    this.#scheduler = options.scheduler ?? timerScheduler;
    this.#persistence = new Persistence(options.storage, options.observeFlush);
  }

  /**
   * Resolves when everything changed so far is durable, or undefined when nothing is pending: a QoS 1/2
   * PUBLISH is acknowledged only after this, so an acknowledged message survives a crash.
   */
  flush(): Promise<void> | undefined {
    return this.#persistence.dirty ? this.#persistence.flush() : undefined;
  }

  get sessionCount(): number {
    return this.#sessions.size;
  }

  get subscriptionCount(): number {
    return this.#trie.size;
  }

  /** The session of a connected or persisted client, if any. */
  session(clientId: string): Session | undefined {
    return this.#sessions.get(clientId)?.session;
  }

  /** Who owns the client id's session and whether it is connected now; undefined when there is none. */
  owner(clientId: string): { owner?: string; connected: boolean } | undefined {
    const entry = this.#sessions.get(clientId);
    return entry && { owner: entry.owner, connected: entry.link !== undefined };
  }

  /** Messages queued behind inflight windows, and messages in flight, over all sessions. */
  sessionTotals(): { queued: number; inflight: number } {
    let queued = 0;
    let inflight = 0;
    for (const { session } of this.#sessions.values()) {
      queued += session.outbound.queue.length;
      inflight += session.outbound.inflight.size;
    }
    return { queued, inflight };
  }

  /**
   * Binds a new connection to its session: takes over a connected one [MQTT-3.1.4-3], discards it on
   * Clean Start [MQTT-3.1.2-4] or when another identity owns it, or resumes it [MQTT-3.1.2-5]. Returns the
   * effects of the resume.
   */
  open(request: OpenRequest): { session: Session; sessionPresent: boolean; effects: Effect[] } {
    const now = this.#now();
    let entry = this.#sessions.get(request.clientId);
    // a session stored before owners were recorded is claimed by whoever resumes it first
    const fresh = request.cleanStart || (entry?.owner !== undefined && entry.owner !== request.owner);
    if (entry) {
      this.#scheduler.cancel(entry.expiryTimer);
      entry.expiryTimer = undefined;
      const previous = entry.link;
      if (previous) {
        entry.link = undefined;
        entry.session.detach();
        this.stats.connectedClients--;
        const will = entry.will;
        entry.will = undefined;
        // The old connection's will goes out now unless its delay outlives the takeover [MQTT-3.1.3-9].
        if (will && (fresh || !will.properties.willDelayInterval)) {
          this.#publishWill(request.clientId, will, entry.owner);
        }
        previous.takeOver();
      } else if (entry.willTimer !== undefined) {
        this.#scheduler.cancel(entry.willTimer);
        entry.willTimer = undefined;
        // Reconnected before the will delay passed: the will is not sent [MQTT-3.1.3-9]; but someone
        // else's connection does not stand in for the owner's, so the owner's will goes out.
        if (fresh && entry.owner !== request.owner) {
          this.#publishWill(request.clientId, entry.will!, entry.owner);
        }
        entry.will = undefined;
      }
      if (fresh) {
        this.#discard(entry);
        entry = undefined;
      }
    }
    const sessionPresent = entry !== undefined;
    if (!entry) {
      entry = { session: new Session(request.clientId, this.options.limits, this.stats.drops), epoch: 0 };
      this.#sessions.set(request.clientId, entry);
    }
    entry.link = request.link;
    entry.will = request.will;
    entry.owner = request.owner;
    entry.epoch++;
    entry.session.expiryInterval = Math.min(request.sessionExpiryInterval, this.options.maxSessionExpiry);
    this.#persistence.track(entry.session, entry.epoch, entry.owner);
    this.#persistence.willArmed(request.clientId, request.will, entry.owner);
    this.stats.connectedClients++;
    const effects = entry.session.attach(request.attachment, now);
    return { session: entry.session, sessionPresent, effects };
  }

  /**
   * The connection of `link` ended. Publishes or schedules the will, then ends or keeps the session
   * per its expiry interval. A link that was taken over no longer owns the session and only its will matters.
   */
  close(session: Session, link: SessionLink, publishWill: boolean, sessionExpiryInterval?: number): void {
    const entry = this.#sessions.get(session.clientId);
    if (!entry || entry.link !== link) return;
    entry.link = undefined;
    session.detach();
    this.stats.connectedClients--;
    if (sessionExpiryInterval !== undefined) {
      session.expiryInterval = Math.min(sessionExpiryInterval, this.options.maxSessionExpiry);
    }
    const will = publishWill ? entry.will : undefined;
    entry.will = undefined;
    const expiry = session.expiryInterval;
    const now = this.#now();
    this.#persistence.disconnected(session, entry.epoch, now, entry.owner);
    if (!will) this.#persistence.willArmed(session.clientId, undefined);
    else {
      const delay = Math.min(will.properties.willDelayInterval ?? 0, expiry);
      if (delay === 0) this.#publishWill(session.clientId, will, entry.owner);
      else this.#delayWill(entry, will, now + delay * 1000);
    }
    if (expiry === 0) this.#end(entry);
    else this.#armExpiry(entry, expiry * 1000);
  }

  /**
   * Rebuilds the broker from storage at start: sessions not yet expired (with their subscriptions, queues,
   * inflight messages and inbound QoS 2 ids), retained messages, and wills, which go out now or at their
   * deadline. Expiry and will delays count from the recorded disconnect, or from now for a client that was
   * connected when the node stopped.
   */
  restore(snapshot: StorageSnapshot): void {
    const now = this.#now();
    for (const message of snapshot.retained) this.retained.set(fromStored(message));
    for (const stored of snapshot.sessions) {
      const since = stored.disconnectedAt ?? now;
      const left = stored.expiryInterval === NEVER_EXPIRES
        ? Infinity
        : since + stored.expiryInterval * 1000 - now;
      if (left <= 0) {
        this.#persistence.ended(stored.clientId);
        continue;
      }
      const entry: SessionEntry = {
        session: new Session(stored.clientId, this.options.limits, this.stats.drops),
        epoch: stored.epoch,
        owner: stored.owner,
      };
      entry.session.expiryInterval = stored.expiryInterval;
      this.#sessions.set(stored.clientId, entry);
      this.#persistence.track(entry.session, entry.epoch, entry.owner);
      if (left !== Infinity) this.#armExpiry(entry, left);
    }
    for (const stored of snapshot.subscriptions) {
      const entry = this.#sessions.get(stored.clientId);
      if (!entry) continue;
      const { clientId: _, ...fields } = stored;
      const shared = parseSharedFilter(stored.topicFilter, Number.MAX_SAFE_INTEGER);
      const subscription: SessionSubscription = { ...fields, shared };
      entry.session.subscriptions.set(stored.topicFilter, subscription);
      this.#addToRouter(entry.session, subscription);
    }
    const messages = new Map<number, Message>();
    for (const queued of snapshot.queues) {
      const entry = this.#sessions.get(queued.clientId);
      const stored = snapshot.messages.get(queued.messageId);
      if (!entry || !stored) continue;
      let message = messages.get(queued.messageId);
      if (!message) messages.set(queued.messageId, message = fromStored(stored, queued.messageId));
      const delivery = {
        message,
        grantedQos: queued.qos,
        retain: queued.retain,
        subscriptionIdentifiers: queued.subscriptionIdentifiers,
      };
      entry.session.outbound.restore(delivery, queued.qos, queued.stage, queued.packetId);
    }
    for (const { clientId, packetId } of snapshot.awaitingRelease) {
      this.#sessions.get(clientId)?.session.awaitingRelease.add(packetId);
    }
    for (const stored of snapshot.wills) {
      const entry = this.#sessions.get(stored.clientId);
      const expiry = entry?.session.expiryInterval ?? 0;
      const delay = Math.min(stored.will.properties.willDelayInterval ?? 0, expiry) * 1000;
      const publishAt = stored.publishAt ?? now + delay;
      if (!entry || publishAt <= now) {
        this.#publishWill(stored.clientId, stored.will, stored.owner ?? entry?.owner);
      } else this.#delayWill(entry, stored.will, publishAt);
    }
  }

  #delayWill(entry: SessionEntry, will: Will, publishAt: number): void {
    entry.will = will;
    this.#persistence.willArmed(entry.session.clientId, will, entry.owner, publishAt);
    entry.willTimer = this.#scheduler.after(Math.max(0, publishAt - this.#now()), () => {
      entry.willTimer = undefined;
      entry.will = undefined;
      this.#publishWill(entry.session.clientId, will, entry.owner);
    });
  }

  #armExpiry(entry: SessionEntry, ms: number): void {
    if (entry.session.expiryInterval === NEVER_EXPIRES) return;
    entry.expiryTimer = this.#scheduler.after(ms, () => this.#end(entry));
  }

  /** Routes one message to every matching subscriber; returns how many clients it reached. */
  publish(message: Message): number {
    const now = this.#now();
    if (message.publisherId !== "") this.stats.messagesReceived++;
    if (message.retain) {
      this.retained.set(message);
      this.#persistence.retained(message);
    }
    this.#message = message;
    this.#trie.match(message.topic, this.#visitor);
    this.#message = undefined;
    const matches = this.#matches;
    const count = matches.size;
    matches.forEach((delivery, session) => this.#deliver(session, delivery, now));
    matches.clear();
    return count;
  }

  /** Adds accepted subscriptions; returns the retained messages to send after the SUBACK. */
  subscribe(session: Session, accepted: AcceptedSubscription[]): Effect[] {
    const now = this.#now();
    const effects: Effect[] = [];
    const writable = this.#sessions.get(session.clientId)?.link?.writable ?? false;
    for (const { subscription, isNew } of accepted) {
      this.#addToRouter(session, subscription);
      this.#persistence.subscribed(session, subscription);
      if (subscription.shared) continue; // Retained messages are not sent to shared subscriptions (spec §4.8.2).
      const handling = subscription.retainHandling;
      if (handling === 2 || (handling === 1 && !isNew)) continue; // [MQTT-3.3.1-9/10]
      for (const message of this.retained.match(subscription.topicFilter, now)) {
        const ids = subscription.subscriptionIdentifier === undefined
          ? undefined
          : [subscription.subscriptionIdentifier];
        // A copy per delivery: the same retained message may be queued for this client more than once.
        const delivery = {
          message: { ...message, storeId: undefined },
          grantedQos: subscription.qos,
          retain: true,
          subscriptionIdentifiers: ids,
        };
        effects.push(...session.deliver(delivery, writable, now));
      }
    }
    return effects;
  }

  unsubscribe(session: Session, removed: SessionSubscription[]): void {
    for (const subscription of removed) {
      this.#removeFromRouter(session, subscription);
      this.#persistence.unsubscribed(session, subscription);
    }
  }

  /** Stops every timer; used at shutdown. */
  stop(): void {
    for (const entry of this.#sessions.values()) {
      this.#scheduler.cancel(entry.expiryTimer);
      this.#scheduler.cancel(entry.willTimer);
    }
  }

  readonly #visitor = {
    subscriber: (_clientId: string, subscriber: Subscriber) => this.#collect(subscriber),
    sharedGroup: (group: SharedGroup<Subscriber>) => {
      const chosen = this.#pickMember(group);
      if (chosen) this.#collect(chosen, true);
    },
  };

  #collect({ session, subscription }: Subscriber, shared = false): void {
    const message = this.#message!;
    if (!shared && subscription.noLocal && session.clientId === message.publisherId) return; // [MQTT-3.8.3-3]
    const retain = subscription.retainAsPublished && message.retain;
    const id = subscription.subscriptionIdentifier;
    const existing = this.#matches.get(session);
    if (!existing) {
      this.#matches.set(session, {
        message,
        grantedQos: subscription.qos,
        retain,
        subscriptionIdentifiers: id === undefined ? undefined : [id],
      });
      return;
    }
    if (subscription.qos > existing.grantedQos) existing.grantedQos = subscription.qos as QoS;
    existing.retain ||= retain;
    if (id !== undefined) (existing.subscriptionIdentifiers ??= []).push(id);
  }

  /** One member per message: the next online member in turn, or any member when none is online. */
  #pickMember(group: SharedGroup<Subscriber>): Subscriber | undefined {
    const ids = group.memberIds;
    if (ids.length === 0) return undefined;
    const start = this.options.sharedSubscriptionStrategy === "random"
      ? Math.floor(Math.random() * ids.length)
      : group.cursor % ids.length;
    for (let i = 0; i < ids.length; i++) {
      const index = (start + i) % ids.length;
      const member = group.members.get(ids[index])!;
      if (member.session.attachment) {
        group.cursor = index + 1;
        return member;
      }
    }
    group.cursor = start + 1;
    return group.members.get(ids[start]);
  }

  #deliver(session: Session, delivery: Delivery, now: number): void {
    const link = this.#sessions.get(session.clientId)?.link;
    const effects = session.deliver(delivery, link?.writable ?? false, now);
    if (effects.length > 0) {
      this.stats.messagesSent++;
      link?.run(effects);
    }
  }

  #publishWill(clientId: string, will: Will, owner: string | undefined): void {
    this.#persistence.willArmed(clientId, undefined);
    if (this.options.authorizeWill?.(clientId, owner, will) === false) return;
    const expiry = will.properties.messageExpiryInterval;
    const properties = { ...will.properties };
    delete properties.willDelayInterval;
    this.publish({
      topic: will.topic,
      payload: will.payload,
      qos: will.qos,
      retain: will.retain,
      properties,
      publisherId: "",
      expiresAt: expiry === undefined ? undefined : this.#now() + expiry * 1000,
    });
  }

  /** The session expired (or its connection ended with expiry 0): publish a pending will, forget it all. */
  #end(entry: SessionEntry): void {
    if (entry.willTimer !== undefined && entry.will) {
      this.#scheduler.cancel(entry.willTimer);
      entry.willTimer = undefined;
      const will = entry.will;
      entry.will = undefined;
      this.#publishWill(entry.session.clientId, will, entry.owner);
    }
    this.#discard(entry);
  }

  #discard(entry: SessionEntry): void {
    this.#scheduler.cancel(entry.expiryTimer);
    for (const subscription of entry.session.subscriptions.values()) {
      this.#removeFromRouter(entry.session, subscription);
    }
    if (this.#sessions.get(entry.session.clientId) === entry) this.#sessions.delete(entry.session.clientId);
    this.#persistence.ended(entry.session.clientId);
  }

  #addToRouter(session: Session, subscription: SessionSubscription): void {
    const subscriber = { session, subscription };
    if (subscription.shared) {
      this.#trie.add(subscription.shared.filter, session.clientId, subscriber, subscription.shared.group);
    } else {
      this.#trie.add(subscription.topicFilter, session.clientId, subscriber);
    }
  }

  #removeFromRouter(session: Session, subscription: SessionSubscription): void {
    if (subscription.shared) {
      this.#trie.remove(subscription.shared.filter, session.clientId, subscription.shared.group);
    } else {
      this.#trie.remove(subscription.topicFilter, session.clientId);
    }
  }
}
