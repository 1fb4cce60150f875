import { ReasonCode } from "../codec/reason_codes.ts";
import type { Packet, Will } from "../codec/types.ts";
import { Session } from "../session/session.ts";
import { sharedState } from "../session/outbound.ts";
import type {
  AcceptedSubscription,
  Attachment,
  Delivery,
  DropCounts,
  Effect,
  Message,
  Permissions,
  SessionEffect,
  SessionLimits,
  SessionSubscription,
} from "../session/types.ts";
import type { StorageAdapter, StorageSnapshot } from "../storage/port.ts";
import { parseSharedFilter } from "../topic/mod.ts";
import { type Clock, systemClock } from "./clock.ts";
import { fromStored, Persistence } from "./persistence.ts";
import { type SessionEntry, type SessionLink, SessionRegistry } from "./registry.ts";
import { RetainedService } from "./retained.ts";
import { EVERYONE, Router, type RouteScope } from "./router.ts";
import { WillService } from "./wills.ts";

/**
 * Where messages published on this node leave it for other nodes (a cluster implements it). With an
 * egress, a publish reaches this node's transient sessions at once and everything else when the message
 * comes back through {@link Broker.deliverRemote}, on every node in the same order.
 */
export interface Egress {
  /**
   * Sends a message published here to the cluster; resolves once the cluster holds it durably. Undefined
   * when no other node and no persistent session needs it.
   */
  forward(message: Message): Promise<void> | undefined;
}

/** Session timers, handed to a cluster so that they take effect at one place in its log on every node. */
export type SessionTimer = "expire" | "will";

export interface BrokerOptions {
  limits: SessionLimits;
  /** Upper bound on any Session Expiry Interval, seconds. */
  maxSessionExpiry: number;
  sharedSubscriptionStrategy: "round_robin" | "random";
  storage: StorageAdapter;
  /** Wraps each storage flush, e.g. to time it for metrics. */
  observeFlush?: (flush: Promise<void>) => Promise<void>;
  clock?: Clock;
  egress?: Egress;
  /**
   * Called when a session timer is due instead of acting at once: a cluster appends it to its log and
   * calls {@link Broker.fire} when every node applies it. Default: fire at once.
   */
  onTimer?: (timer: SessionTimer, clientId: string, epoch: number) => void;
  /** The ACL of a client, for sessions rebuilt from storage while their client is connected elsewhere. */
  permissionsFor?: (clientId: string, owner: string | undefined) => Permissions | undefined;
}

/** What a CONNECT asks of the session registry. */
export interface OpenRequest {
  clientId: string;
  cleanStart: boolean;
  /** Seconds; 0xFFFFFFFF never expires. */
  sessionExpiryInterval: number;
  will?: Will;
  attachment: Attachment;
  /** The connection on this node; absent when the client connected to another node of a cluster. */
  link?: SessionLink;
  /** Who connects (e.g. the verified user name); stored with a persistent session. */
  owner?: string;
  /** The claim's epoch when a cluster decided it (its place in the log); otherwise the registry picks one. */
  epoch?: number;
  /** In a cluster: the node (and run) the client is connected to. */
  holder?: string;
}

/** A connection's hold on its session: whatever it sends with an epoch that is no longer current is refused. */
export interface SessionHandle {
  readonly session: Session;
  readonly epoch: number;
}

/** What connections ask of the broker (a cluster node offers the same). */
export interface SessionService {
  open(request: OpenRequest): Promise<OpenResult>;
  /**
   * What the connection must do for one packet of its client, in order. With `out` (an empty list the
   * connection keeps and empties after running it) the effects may be appended there instead of to a new
   * list; either way the returned list is the one to run.
   */
  receive(handle: SessionHandle, packet: Packet, out?: Effect[]): Effect[];
  close(handle: SessionHandle, publishWill: boolean, sessionExpiryInterval?: number): void;
  flush(): Promise<void> | undefined;
}

/** A claimed session: the connection's handle on it, and the resume to run after CONNACK. */
export interface OpenResult extends SessionHandle {
  sessionPresent: boolean;
  /** Unacknowledged deliveries re-sent and queued ones drained, to run after the CONNACK. */
  effects: Effect[];
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
 * A registry entry with every field present from the start: fields added later would move to a separate
 * property store, one more object per client.
 */
function newEntry(session: Session, epoch: number): SessionEntry {
  return {
    session,
    epoch,
    owner: undefined,
    attached: false,
    link: undefined,
    holder: undefined,
    expiryTimer: undefined,
  };
}

function removeAt<T>(list: T[], index: number): void {
  for (let i = index + 1; i < list.length; i++) list[i - 1] = list[i];
  list.pop();
}

/**
 * Empties a list that is reused per message. `list.length = 0` would drop its storage (V8 gives the array a
 * new one at the next push, an allocation per message); popping keeps it.
 */
export function empty(list: unknown[]): void {
  while (list.length > 0) list.pop();
}

/** A publish's first pass on its own node in a cluster: its transient sessions' plain subscriptions. */
const LOCAL_TRANSIENT: RouteScope = { transient: true, persistent: false, shared: false };
/** The log pass on the node a message was published on: everything the first pass left. */
const FROM_LOG_HERE: RouteScope = { transient: false, persistent: true, shared: true };

/** The answer to a packet sent under an epoch that is no longer current: the session moved on. */
const STALE: Effect = {
  kind: "close",
  reasonCode: ReasonCode.SessionTakenOver,
  reasonString: "session taken over",
  notify: true,
  publishWill: false,
};

/**
 * The broker's services behind one small API for connection actors: the session registry (claim, take
 * over, expire), the router (subscriptions and fan-out), retained and will messages, and persistence.
 * Everything a client's packet changes goes through {@link receive}; deliveries to other clients reach
 * their connections through their {@link SessionLink}.
 */
export class Broker implements SessionService {
  readonly clock: Clock;
  readonly retained: RetainedService;
  readonly router: Router;
  readonly #registry: SessionRegistry;
  readonly #persistence: Persistence;
  readonly #wills: WillService;
  readonly #shared = sharedState();
  readonly stats: BrokerStats = {
    messagesReceived: 0,
    messagesSent: 0,
    drops: this.#shared.drops,
    connectedClients: 0,
  };
  /** The route callback, bound once: called per delivery on the hot path. */
  readonly #deliverTo = (session: Session, delivery: Delivery) => this.#deliver(session, delivery);
  /** One list for the effects of every delivery: each is run by its link before the next is made. */
  readonly #deliveryEffects: Effect[] = [];
  /** What the last {@link #publishHere} forwarded to the cluster (a side result, to return only a count). */
  #forwarded: Promise<void> | undefined;
  #now = 0;
  readonly #egress: Egress | undefined;

  constructor(private readonly options: BrokerOptions) {
    this.clock = options.clock ?? systemClock;
    this.#persistence = new Persistence(options.storage, options.observeFlush);
    this.#registry = new SessionRegistry(this.clock.now);
    this.retained = new RetainedService(this.#persistence);
    this.router = new Router(options.sharedSubscriptionStrategy, this.clock.random);
    this.#wills = new WillService(
      this.#persistence,
      this.clock,
      (message) => this.#publishWill(message),
      (clientId) => this.#timerDue("will", clientId),
    );
    this.#egress = options.egress;
  }

  /**
   * Resolves when everything changed so far is durable, or undefined when nothing is pending: a QoS 1/2
   * PUBLISH is acknowledged only after this, so an acknowledged message survives a crash.
   */
  flush(): Promise<void> | undefined {
    return this.#persistence.dirty ? this.#persistence.flush() : undefined;
  }

  get sessionCount(): number {
    return this.#registry.size;
  }

  get subscriptionCount(): number {
    return this.router.size;
  }

  /** The session of a connected or persisted client, if any. */
  session(clientId: string): Session | undefined {
    return this.#registry.get(clientId)?.session;
  }

  // --- For the admin API (src/admin/broker_view.ts is the only caller) ---------------------------------

  /** Every session, connected or not, in no particular order. */
  *sessions(): IterableIterator<Session> {
    for (const entry of this.#registry.values()) yield entry.session;
  }

  /**
   * Ends a session whose client is not connected, as if it had expired (a pending will goes out now).
   * Returns "connected" for a connected client, whose session an operator must kick first.
   */
  discardSession(clientId: string): "discarded" | "connected" | "unknown" {
    const entry = this.#registry.get(clientId);
    if (!entry) return "unknown";
    if (entry.attached) return "connected";
    this.#end(entry);
    return "discarded";
  }

  /** Deletes the retained message of `topic` without sending anything to subscribers. */
  deleteRetained(topic: string): boolean {
    if (topic.includes("+") || topic.includes("#")) return false;
    if (this.retained.match(topic, this.clock.now()).length === 0) return false;
    this.retained.set({
      topic,
      payload: new Uint8Array(0),
      qos: 0,
      retain: true,
      properties: {},
      publisherId: "",
    });
    return true;
  }

  // ------------------------------------------------------------------------------------------------------

  /** Messages queued behind inflight windows, and messages in flight, over sessions held in memory. */
  sessionTotals(): { queued: number; inflight: number } {
    let queued = 0;
    let inflight = 0;
    for (const { session } of this.#registry.values()) {
      queued += session.outbound.queueLength;
      inflight += session.outbound.inflight.size;
    }
    return { queued, inflight };
  }

  /**
   * Binds a new connection to its session: takes over a connected one [MQTT-3.1.4-3], discards it on
   * Clean Start [MQTT-3.1.2-4], or resumes it [MQTT-3.1.2-5], reading its queue back from storage.
   * Claims of one client id run one at a time.
   */
  open(request: OpenRequest): Promise<OpenResult> {
    return this.#registry.serialize(request.clientId, () => this.#open(request));
  }

  async #open(request: OpenRequest): Promise<OpenResult> {
    const { clientId } = request;
    let entry = this.#registry.get(clientId);
    if (entry) {
      this.clock.cancel(entry.expiryTimer);
      entry.expiryTimer = undefined;
      if (entry.attached) {
        const previous = entry.link;
        this.#detach(entry);
        // The old connection's will goes out now unless its delay outlives the takeover [MQTT-3.1.3-9].
        if (request.cleanStart || !this.#willDelayed(entry)) this.#wills.publishNow(clientId);
        previous?.takeOver();
      } else {
        // Reconnected before the will delay passed: the will is not sent [MQTT-3.1.3-9].
        this.#wills.cancel(clientId);
      }
      if (request.cleanStart) {
        this.#discard(entry);
        entry = undefined;
      } else if (entry.session.outbound.storedOnly) {
        await this.#pageIn(entry.session);
      }
    }
    const sessionPresent = entry !== undefined;
    if (!entry) {
      entry = newEntry(new Session(clientId, this.options.limits, this.#shared), 0);
    }
    entry.epoch = request.epoch ?? this.#registry.nextEpoch();
    entry.owner = request.owner;
    entry.link = request.link;
    entry.holder = request.holder;
    entry.attached = true;
    this.#registry.set(entry);
    const session = entry.session;
    session.expiryInterval = Math.min(request.sessionExpiryInterval, this.options.maxSessionExpiry);
    session.persistent = session.expiryInterval > 0;
    const connection = request.holder === undefined ? undefined : JSON.stringify({
      holder: request.holder,
      attachment: { ...request.attachment, permissions: undefined },
    });
    this.#persistence.saveSession(session, { epoch: entry.epoch, owner: entry.owner, connection });
    this.#wills.arm(clientId, request.will);
    this.stats.connectedClients++;
    const effects = session.attach(request.attachment, this.clock.now());
    this.#persistence.sessionChanged(session);
    return { session, sessionPresent, epoch: entry.epoch, effects };
  }

  /** Reads a paged-out session's deliveries back, keeping any that arrived while they were read. */
  async #pageIn(session: Session): Promise<void> {
    session.outbound.beginPageIn();
    const stored = await this.options.storage.readQueue(session.clientId);
    const arrived = new Set(
      session.outbound.queue.map((queued) => this.#persistence.storedRef(queued.delivery)),
    );
    const deliveries = [];
    for (const item of stored) {
      if (arrived.has(item.entry.messageId)) continue;
      const { entry } = item;
      const delivery: Delivery = {
        message: fromStored(item.message),
        grantedQos: entry.qos,
        retain: entry.retain,
        subscriptionIdentifiers: entry.subscriptionIdentifiers,
      };
      this.#persistence.restored(delivery, item);
      deliveries.push({ delivery, qos: entry.qos, stage: entry.stage, packetId: entry.packetId });
    }
    session.outbound.pageIn(deliveries);
  }

  /**
   * One packet from the client of `session`. Returns what its connection must do, in order: the
   * session's replies, with publishes routed, subscriptions applied and acknowledgements tied to storage.
   * They are appended to `out` when it is given (see {@link SessionService.receive}).
   */
  receive(handle: SessionHandle, packet: Packet, out: Effect[] = [], fromLog = false): Effect[] {
    const session = handle.session;
    if (!this.#current(handle)) {
      out.push(STALE);
      return out;
    }
    const effects = out as SessionEffect[];
    const first = effects.length;
    session.handleInto(packet, this.clock.now(), effects);
    for (let i = first; i < effects.length; i++) {
      const effect = effects[i];
      switch (effect.kind) {
        case "publish": {
          const reached = this.#publishHere(effect.message, fromLog);
          const forwarded = this.#forwarded;
          this.#forwarded = undefined;
          const ack = effect.ack;
          if (!ack) {
            removeAt(effects, i--); // no list of removed elements, unlike splice: this runs per message
            break;
          }
          if (reached === 0 && session.attachment?.protocolVersion === 5) {
            ack.reasonCode = ReasonCode.NoMatchingSubscribers;
          }
          const stored = this.flush();
          const durable = forwarded && stored
            ? Promise.all([forwarded, stored]).then(() => {})
            : forwarded ?? stored;
          effects[i] = { kind: "ack", packet: ack, durable };
          break;
        }
        case "subscribe": {
          const retained = this.#subscribe(session, effect.accepted);
          effects.splice(i, 1, { kind: "send", packet: effect.suback }, ...retained);
          i += retained.length;
          break;
        }
        case "unsubscribe":
          for (const subscription of effect.removed) this.#unsubscribe(session, subscription);
          effects[i] = { kind: "send", packet: effect.unsuback };
          break;
      }
    }
    this.#persistence.sessionChanged(session);
    return effects as Effect[]; // every broker-level effect was replaced above
  }

  /**
   * The connection of `link` ended. Publishes or schedules the will, then ends or keeps the session
   * per its expiry interval. A link that was taken over no longer owns the session and only its will matters.
   */
  close(handle: SessionHandle, publishWill: boolean, sessionExpiryInterval?: number): void {
    const session = handle.session;
    const entry = this.#registry.get(session.clientId);
    if (!entry || entry.epoch !== handle.epoch || !entry.attached) return;
    this.#detach(entry);
    if (sessionExpiryInterval !== undefined) {
      session.expiryInterval = Math.min(sessionExpiryInterval, this.options.maxSessionExpiry);
    }
    const expiry = session.expiryInterval;
    this.#persistence.saveSession(session, {
      epoch: entry.epoch,
      owner: entry.owner,
      disconnectedAt: this.clock.now(),
    });
    entry.holder = undefined;
    if (!publishWill) this.#wills.cancel(session.clientId);
    else this.#wills.trigger(session.clientId, Math.min(this.#willDelay(entry), expiry));
    if (expiry === 0) return this.#end(entry);
    // Storage holds every delivery of a persistent session: an absent client costs no memory.
    if (session.persistent) session.outbound.pageOut();
    this.#armExpiry(entry, expiry * 1000);
  }

  /**
   * Rebuilds the broker from storage at start: sessions not yet expired (subscriptions, inbound QoS 2 ids;
   * their queues stay in storage until their client returns), retained messages, and wills, which go out
   * now or at their deadline. Expiry and will delays count from the recorded disconnect, or from now for a
   * client that was connected when the node stopped.
   */
  async restore(snapshot: StorageSnapshot): Promise<void> {
    const now = this.clock.now();
    const connected: { entry: SessionEntry; holder: string; attachment: Attachment }[] = [];
    this.retained.restore(snapshot.retained);
    for (const stored of snapshot.sessions) {
      const since = stored.disconnectedAt ?? now;
      const left = stored.expiryInterval === NEVER_EXPIRES
        ? Infinity
        : since + stored.expiryInterval * 1000 - now;
      if (left <= 0) {
        this.#persistence.ended(stored.clientId);
        continue;
      }
      const session = new Session(stored.clientId, this.options.limits, this.#shared);
      session.expiryInterval = stored.expiryInterval;
      session.persistent = true;
      session.outbound.pageOut(snapshot.queueTotals.get(stored.clientId) ?? { entries: 0, bytes: 0 });
      const entry = newEntry(session, stored.epoch);
      entry.owner = stored.owner;
      this.#registry.set(entry);
      const connection = stored.connection ? JSON.parse(stored.connection) : undefined;
      if (connection) connected.push({ entry, holder: connection.holder, attachment: connection.attachment });
      else if (left !== Infinity) this.#armExpiry(entry, left);
    }
    for (const stored of snapshot.subscriptions) {
      const entry = this.#registry.get(stored.clientId);
      if (!entry) continue;
      const { clientId: _, ...fields } = stored;
      const shared = parseSharedFilter(stored.topicFilter, Number.MAX_SAFE_INTEGER);
      const subscription: SessionSubscription = { ...fields, shared };
      entry.session.subscriptions.set(stored.topicFilter, subscription);
      this.router.add(entry.session, subscription);
    }
    for (const { clientId, packetId } of snapshot.awaitingRelease) {
      this.#registry.get(clientId)?.session.awaitingRelease.add(packetId);
    }
    this.#wills.restore(snapshot.wills, (clientId, will) => {
      const entry = this.#registry.get(clientId);
      if (!entry) return undefined;
      return Math.min(will.properties.willDelayInterval ?? 0, entry.session.expiryInterval);
    });
    // Clients a cluster had connected (to another node, or to this one before it stopped): their sessions
    // stay attached until the cluster says they left, so every node keeps running them alike.
    for (const { entry, holder, attachment } of connected) {
      await this.#pageIn(entry.session);
      const permissions = this.options.permissionsFor?.(entry.session.clientId, entry.owner);
      entry.attached = true;
      entry.holder = holder;
      entry.session.attach(permissions ? { ...attachment, permissions } : attachment, now);
      this.#persistence.sessionChanged(entry.session);
    }
  }

  /** The connection on this node holding `clientId` at `epoch`, if any. */
  linkOf(clientId: string, epoch: number): SessionLink | undefined {
    const entry = this.#registry.get(clientId);
    return entry?.epoch === epoch ? entry.link : undefined;
  }

  /** Connected clients, with the epoch and holder of each (a cluster's view of who is where). */
  *connectedClients(): Generator<{ clientId: string; epoch: number; holder?: string }> {
    for (const entry of this.#registry.values()) {
      if (entry.attached) {
        yield { clientId: entry.session.clientId, epoch: entry.epoch, holder: entry.holder };
      }
    }
  }

  /** Keeps a small named value with the broker's state, in the same group commit. */
  saveMeta(key: string, value: string): void {
    this.#persistence.saveMeta(key, value);
  }

  /**
   * A message published on this node by the broker itself ($SYS, an operator): routed like a client's.
   * Returns how many clients it reached here.
   */
  publish(message: Message): number {
    const reached = this.#publishHere(message, false);
    this.#forwarded = undefined;
    return reached;
  }

  /**
   * A message published on this node: on a single node routed to everyone; with an egress, to this node's
   * transient sessions now and forwarded for the rest ($SYS stays on its node). Returns how many clients it
   * reached, counting one for a forwarded message, which some other node or persistent session wants; the
   * forward's promise is left in {@link #forwarded} (no result object per message).
   */
  #publishHere(message: Message, fromLog: boolean): number {
    if (message.publisherId !== "") this.stats.messagesReceived++;
    this.#now = this.clock.now();
    // Published by a persistent session whose packet every node applies: each routes it to all it has.
    const local = fromLog || !this.#egress || message.topic.startsWith("$SYS/");
    if (local) {
      if (message.retain) this.retained.set(message);
      this.#forwarded = undefined;
      return this.router.route(message, this.#deliverTo);
    }
    const forwarded = this.#egress!.forward(message);
    const reached = this.router.route(message, this.#deliverTo, LOCAL_TRANSIENT);
    this.#forwarded = forwarded;
    return reached + (forwarded ? 1 : 0);
  }

  /**
   * A message that came back from the cluster log (every node applies it, in the same order): it goes to
   * persistent sessions and shared groups, and to transient sessions unless it was published on this node,
   * whose transient sessions already have it. Neither stored as new nor forwarded again.
   */
  deliverRemote(message: Message, publishedHere: boolean): number {
    if (message.retain) this.retained.set(message);
    this.#now = this.clock.now();
    return this.router.route(message, this.#deliverTo, publishedHere ? FROM_LOG_HERE : EVERYONE);
  }

  /** A will going out: on every node the same way, never forwarded (each node publishes its own share). */
  #publishWill(message: Message): void {
    if (message.retain) this.retained.set(message);
    this.#now = this.clock.now();
    this.router.route(message, this.#deliverTo);
  }

  /** Stops every timer; used at shutdown. */
  stop(): void {
    for (const entry of this.#registry.values()) this.clock.cancel(entry.expiryTimer);
    this.#wills.stop();
  }

  /** Adds accepted subscriptions; returns the retained messages to send after the SUBACK. */
  #subscribe(session: Session, accepted: AcceptedSubscription[]): Effect[] {
    const now = this.clock.now();
    const effects: Effect[] = [];
    const entry = this.#registry.get(session.clientId);
    const writable = entry?.link ? entry.link.writable : entry?.attached ?? false;
    for (const { subscription, isNew } of accepted) {
      this.router.add(session, subscription);
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
          message: { ...message },
          grantedQos: subscription.qos,
          retain: true,
          subscriptionIdentifiers: ids,
        };
        for (const effect of session.deliver(delivery, writable, now)) effects.push(effect);
      }
    }
    return effects;
  }

  #unsubscribe(session: Session, subscription: SessionSubscription): void {
    this.router.remove(session, subscription);
    this.#persistence.unsubscribed(session, subscription);
  }

  #deliver(session: Session, delivery: Delivery): void {
    const entry = this.#registry.get(session.clientId)!;
    const link = entry.link;
    const effects = this.#deliveryEffects;
    // A client connected to another node: its state moves on here too, but that node does the sending.
    session.deliverInto(delivery, link ? link.writable : entry.attached, this.#now, effects);
    if (session.persistent) this.#persistence.sessionChanged(session);
    if (link && effects.length > 0) {
      this.stats.messagesSent++;
      link.run(effects);
    }
    empty(effects);
  }

  /** True while `handle` still holds its session: same epoch, client connected. */
  #current(handle: SessionHandle): boolean {
    const entry = this.#registry.get(handle.session.clientId);
    return entry !== undefined && entry.epoch === handle.epoch && entry.attached;
  }

  /** A session timer is due: act now, or let the cluster put it in its log first. */
  #timerDue(timer: SessionTimer, clientId: string): void {
    const epoch = this.#registry.get(clientId)?.epoch ?? 0;
    if (this.options.onTimer) this.options.onTimer(timer, clientId, epoch);
    else this.fire(timer, clientId, epoch);
  }

  /**
   * A session timer takes effect: the session expires, or its delayed will goes out, unless the client
   * connected again since (a newer epoch).
   */
  fire(timer: SessionTimer, clientId: string, epoch: number): void {
    const entry = this.#registry.get(clientId);
    if (!entry || entry.epoch !== epoch || entry.attached) return;
    if (timer === "will") this.#wills.publishDue(clientId);
    else this.#end(entry);
  }

  #detach(entry: SessionEntry): void {
    entry.attached = false;
    entry.link = undefined;
    entry.session.detach();
    this.stats.connectedClients--;
  }

  #willDelay(entry: SessionEntry): number {
    return this.#wills.delaySeconds(entry.session.clientId);
  }

  #willDelayed(entry: SessionEntry): boolean {
    return this.#willDelay(entry) > 0;
  }

  #armExpiry(entry: SessionEntry, ms: number): void {
    if (entry.session.expiryInterval === NEVER_EXPIRES) return;
    entry.expiryTimer = this.clock.after(ms, () => this.#timerDue("expire", entry.session.clientId));
  }

  /** The session expired (or its connection ended with expiry 0): publish a pending will, forget it all. */
  #end(entry: SessionEntry): void {
    if (this.#wills.delayed(entry.session.clientId)) this.#wills.publishNow(entry.session.clientId);
    this.#discard(entry);
  }

  #discard(entry: SessionEntry): void {
    this.clock.cancel(entry.expiryTimer);
    for (const subscription of entry.session.subscriptions.values()) {
      this.router.remove(entry.session, subscription);
    }
    this.#registry.delete(entry);
    this.#persistence.ended(entry.session.clientId);
  }
}
