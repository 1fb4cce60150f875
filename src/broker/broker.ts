import { publishPayloadLength } from "../codec/decode_publish.ts";
import { ReasonCode } from "../codec/reason_codes.ts";
import type { Packet, PublishPacket } from "../codec/types.ts";
import { EffectList } from "../session/effect_list.ts";
import { payloadSize } from "../session/message.ts";
import { publishAck, type Session } from "../session/session.ts";
import { estimatedSize, type SharedSessionState, sharedState } from "../session/outbound.ts";
import type {
  AcceptedSubscription,
  AckEffect,
  Delivery,
  Effect,
  EffectSink,
  Message,
  SessionEffect,
  SessionSubscription,
} from "../session/types.ts";
import { StorageError, type StorageSnapshot } from "../storage/port.ts";
import { isSharedFilter } from "../topic/mod.ts";
import { type Clock, systemClock } from "./clock.ts";
import { Persistence } from "./persistence.ts";
import { PAGE_RETRY_MS, SessionRegistry } from "./registry.ts";
import type { SessionEntry } from "./session_entry.ts";
import { messageOf, type RetainedEntry, RetainedService } from "./retained.ts";
import { type PendingRetained, RETAINED_PAGE, RetainedReader } from "./retained_reader.ts";
import { EVERYONE, Router, type RouteScope } from "./router.ts";
import { type BrokerParts, type BrokerStatePart, clearState, exportState, importPart } from "./snapshot.ts";
import type {
  BrokerOptions,
  BrokerStats,
  Egress,
  OpenRequest,
  OpenResult,
  SessionHandle,
  SessionLink,
  SessionService,
  SessionTimer,
} from "./types.ts";
import { WillService } from "./wills.ts";

/**
 * Empties a list that is reused per message. `list.length = 0` would drop its storage (V8 gives the array a
 * new one at the next push, an allocation per message); popping keeps it.
 */
export function empty(list: unknown[]): void {
  while (list.length > 0) list.pop();
}

/** Where the effects for a client connected to another node go: that node sends them. */
const NOWHERE: EffectSink = { push() {}, deliver() {} };

/** The list of {@link Broker}'s list sink between uses: always empty, never added to. */
const NO_EFFECTS: never[] = [];

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
  readonly router: Router<SessionEntry>;
  readonly registry: SessionRegistry;
  readonly #persistence: Persistence;
  readonly #wills: WillService;
  readonly #shared: SharedSessionState;
  readonly stats: BrokerStats;
  /** Per publishing session: its routing, while a QoS 2 PUBLISH of it is staged (see `#stage`). */
  readonly #routing = new WeakMap<Session, Promise<void>>();
  /** The route callback, bound once: called per delivery on the hot path. */
  readonly #deliverTo = (entry: SessionEntry, delivery: Delivery) => this.#deliver(entry, delivery);
  /** The sink for a client not connected here, whose effects are returned as a list (see {@link receive}). */
  readonly #listSink = new EffectList(NO_EFFECTS);
  /** What the last {@link #publishHere} forwarded to the cluster (a side result, to return only a count). */
  #forwarded: Promise<void> | undefined;
  #now = 0;
  readonly #egress: Egress | undefined;

  constructor(private readonly options: BrokerOptions) {
    this.#shared = sharedState(options.limits, options.queuesInStore ?? true);
    this.stats = {
      messagesReceived: 0,
      messagesSent: 0,
      drops: this.#shared.drops,
      connectedClients: 0,
      connectsAccepted: 0,
      retainedRefused: 0,
    };
    const clock = this.clock = options.clock ?? systemClock;
    if (options.queuesInStore === false && options.egress) {
      throw new Error(
        "queuesInStore = false is for a single node: a cluster's nodes keep queues in their stores",
      );
    }
    const persistence = this.#persistence = new Persistence(options.storage, options.observeFlush);
    this.retained = new RetainedService(
      persistence,
      options.storage,
      options.retainedLimits,
      options.retainedPayloadsInStore,
    );
    const router = this.router = new Router<SessionEntry>(options.sharedSubscriptionStrategy, clock.random);
    const wills = this.#wills = new WillService(
      persistence,
      clock,
      (message) => this.#publishWill(message),
      (clientId) => this.#timerDue("will", clientId),
      options.authorizeWill,
    );
    this.registry = new SessionRegistry({
      options,
      clock,
      storage: options.storage,
      persistence,
      wills,
      router,
      shared: this.#shared,
      stats: this.stats,
      timerDue: (timer, clientId) => this.#timerDue(timer, clientId),
    });
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
    return this.registry.size;
  }

  get subscriptionCount(): number {
    return this.router.size;
  }

  /** The session of a connected or persisted client, if any. */
  session(clientId: string): Session | undefined {
    return this.registry.get(clientId)?.session;
  }

  needsAddress(sessionExpiryInterval: number): boolean {
    return this.registry.needsAddress(sessionExpiryInterval);
  }

  /** Who owns the client id's session and whether it is connected now; undefined when there is none. */
  owner(clientId: string): { owner?: string; connected: boolean } | undefined {
    const entry = this.registry.get(clientId);
    return entry && { owner: entry.owner, connected: entry.attached };
  }

  // --- For the admin API (src/admin/broker_view.ts is the only caller) ---------------------------------

  /** Every session, connected or not, in no particular order. */
  *sessions(): IterableIterator<Session> {
    for (const entry of this.registry.values()) yield entry.session;
  }

  /**
   * Ends a session whose client is not connected, as if it had expired (a pending will goes out now).
   * Returns "connected" for a connected client, whose session an operator must kick first.
   */
  discardSession(clientId: string): "discarded" | "connected" | "unknown" {
    const entry = this.registry.get(clientId);
    if (!entry) return "unknown";
    if (entry.attached) return "connected";
    this.registry.end(entry);
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
    for (const { session } of this.registry.values()) {
      queued += session.queueLength;
      inflight += session.inflightCount;
    }
    return { queued, inflight };
  }

  now(): number {
    return this.clock.now();
  }

  /** See {@link SessionRegistry.open}. */
  open(request: OpenRequest): OpenResult | Promise<OpenResult> {
    return this.registry.open(request);
  }

  /**
   * Every message of the first pages read back can be dropped when the client attaches (over its Maximum
   * Packet Size, no longer authorized), leaving nothing to send while the rest waits in storage; the next
   * page is read now rather than at the client's next packet, which a subscriber with keep alive 0 may
   * never send. Not from open(): a page read that completes at once (the memory store) would send its
   * PUBLISHes before the CONNACK.
   */
  connected(handle: SessionHandle): void {
    if (handle.session.storedOnly) this.registry.pageOn(handle.session.clientId);
    this.#sendRetained(handle.session.clientId);
  }

  /** See {@link SessionRegistry.close}. */
  close(handle: SessionHandle, publishWill: boolean, sessionExpiryInterval?: number): void {
    this.registry.close(handle, publishWill, sessionExpiryInterval);
    // Retained messages still waiting for a slow client's socket go to its session's queue instead.
    this.#sendRetained(handle.session.clientId);
  }

  /**
   * One packet from the client of `session`. Returns what its connection must do, in order: the
   * session's replies, with publishes routed, subscriptions applied and acknowledgements tied to storage.
   * `fromLog`: a cluster applies a persistent session's packet on every node; its publishes are then
   * routed here to everyone, never forwarded. The effects are appended to `out` when it is given (see
   * {@link SessionService.receive}).
   */
  receive(
    handle: SessionHandle,
    packet: Packet,
    out: Effect[] = [],
    now = this.clock.now(),
    fromLog = false,
  ): Effect[] {
    const session = handle.session;
    // The handle's own entry when it has one: no lookup by client id per packet. (Not registry.held(): as
    // a call it allocated about 35 bytes per packet, in V8's sampling heap profile.)
    const entry = handle.entry ?? this.registry.get(session.clientId);
    if (entry === undefined || !SessionRegistry.holds(entry, handle)) {
      out.push(STALE);
      return out;
    }
    const effects = out as SessionEffect[];
    const first = effects.length;
    // What the client's acknowledgements let out of its queue goes straight to its connection, if here.
    const link = entry.link;
    let sink: EffectSink | undefined = link;
    if (sink === undefined) {
      sink = this.#listSink;
      this.#listSink.effects = out;
    }
    if (packet.type === "publish") {
      // No publish effect per message: the session hands the message over, the broker routes it and runs
      // its acknowledgement in the effect's place.
      const message = session.acceptPublishInto(packet, now, effects);
      if (message !== undefined) {
        const ack = publishAck(packet);
        const durable = this.#publishFrom(session, message, ack, fromLog, now);
        if (ack) {
          ack.durable = durable;
          effects.push(ack);
        }
      }
    } else {
      session.handleInto(packet, now, effects, sink);
    }
    this.#listSink.effects = NO_EFFECTS;
    for (let i = first; i < effects.length; i++) {
      const effect = effects[i];
      switch (effect.kind) {
        case "subscribe": {
          const retained = this.#subscribe(session, effect.accepted);
          effects.splice(i, 1, { kind: "send", packet: effect.suback }, ...retained);
          i += retained.length;
          break;
        }
        case "unsubscribe":
          for (const subscription of effect.removed) this.#unsubscribe(entry, subscription);
          effects[i] = { kind: "send", packet: effect.unsuback };
          break;
      }
    }
    this.#persistence.sessionChanged(session);
    // Acknowledgements free the window: the next page of a queue read back from storage may be due.
    if (session.storedOnly) this.registry.pageOn(session.clientId);
    if (entry.retainedReader) this.#sendRetained(session.clientId);
    return effects as Effect[]; // every broker-level effect was replaced above
  }

  /**
   * Rebuilds the broker from storage at start: sessions, retained messages, and wills, which go out now or
   * at their deadline; then the sessions whose client a cluster had connected, attached again.
   */
  async restore(snapshot: StorageSnapshot): Promise<void> {
    this.stats.retainedRefused += await this.retained.restore(snapshot.retained);
    const connected = this.registry.restore(snapshot);
    this.#wills.restore(snapshot.wills, (clientId, will) => this.registry.willDelayOf(clientId, will));
    // Clients a cluster had connected (to another node, or to this one before it stopped): their sessions
    // stay attached until the cluster says they left, so every node keeps running them alike.
    for (const { entry, holder, attachment } of connected) {
      await this.registry.pageIn(entry);
      const permissions = this.options.permissionsFor?.(entry.session.clientId, entry.owner);
      this.registry.attach(entry, permissions ? { ...attachment, permissions } : attachment, holder);
      this.#persistence.sessionChanged(entry.session);
    }
  }

  /** The connection on this node holding `clientId` at `epoch`, if any. */
  linkOf(clientId: string, epoch: number): SessionLink | undefined {
    const entry = this.registry.get(clientId);
    return entry?.epoch === epoch ? entry.link : undefined;
  }

  /** Connected clients, with the epoch and holder of each (a cluster's view of who is where). */
  *connectedClients(): Generator<{ clientId: string; epoch: number; holder?: string }> {
    for (const entry of this.registry.values()) {
      if (entry.attached) {
        yield { clientId: entry.session.clientId, epoch: entry.epoch, holder: entry.holder };
      }
    }
  }

  /** This broker's whole state a part at a time, for a node joining the cluster (see snapshot.ts). */
  exportState(): AsyncGenerator<BrokerStatePart> {
    return exportState(this.#parts());
  }

  /** Installs and stores one part of another node's state (its parts in order, into an empty broker). */
  importPart(part: BrokerStatePart): void {
    importPart(this.#parts(), part);
  }

  /** Forgets every session, retained message and will, in memory and in storage, publishing nothing. */
  clearState(): void {
    clearState(this.#parts());
  }

  #parts(): BrokerParts {
    return {
      registry: this.registry,
      router: this.router,
      retained: this.retained,
      wills: this.#wills,
      persistence: this.#persistence,
      shared: this.#shared,
      clock: this.clock,
      permissionsFor: (clientId, owner) => this.options.permissionsFor?.(clientId, owner),
    };
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
    const reached = this.#publishHere(message, false, false, this.clock.now());
    this.#forwarded = undefined;
    return reached;
  }

  /**
   * A message published on this node: on a single node routed to everyone; with an egress, to this node's
   * transient sessions now and forwarded for the rest ($SYS stays on its node). Returns how many clients it
   * reached, counting one for a forwarded message, which some other node or persistent session wants; the
   * forward's promise is left in {@link #forwarded} (no result object per message).
   */
  #publishHere(message: Message, fromLog: boolean, staged: boolean, now: number): number {
    if (message.publisherId !== "") this.stats.messagesReceived++;
    this.#now = now;
    const local = fromLog || !this.#egress || message.topic.startsWith("$SYS/");
    if (local) {
      // No room in the retained store: a QoS 0 message still reaches its subscribers (QoS 1/2 are refused).
      if (message.retain && !this.retained.set(message, staged)) this.stats.retainedRefused++;
      const reached = this.router.route(message, this.#deliverTo);
      if (staged) this.#persistence.unstageMessage(message); // kept where a queue took it
      this.#forwarded = undefined;
      return reached;
    }
    const forwarded = this.#egress!.forward(message);
    // QoS 2 waits for the log like everyone else: if the cluster refuses it, nobody may have it yet.
    const reached = message.qos === 2 ? 0 : this.router.route(message, this.#deliverTo, LOCAL_TRANSIENT);
    this.#forwarded = forwarded;
    return reached + (forwarded ? 1 : 0);
  }

  /**
   * A message that came back from the cluster log (every node applies it, in the same order): it goes to
   * persistent sessions and shared groups, and to transient sessions unless it was published on this node
   * at QoS 0 or 1, whose transient sessions already have it. Neither stored as new nor forwarded again.
   */
  deliverRemote(message: Message, publishedHere: boolean): number {
    if (message.retain) this.retained.set(message);
    this.#now = this.clock.now();
    const servedHere = publishedHere && message.qos < 2;
    return this.router.route(message, this.#deliverTo, servedHere ? FROM_LOG_HERE : EVERYONE);
  }

  /** A will going out: on every node the same way, never forwarded (each node publishes its own share). */
  #publishWill(message: Message): void {
    if (message.retain) this.retained.set(message);
    this.#now = this.clock.now();
    this.router.route(message, this.#deliverTo);
  }

  /** Stops every timer; used at shutdown. */
  stop(): void {
    this.registry.stop();
    this.#wills.stop();
  }

  /**
   * A session timer takes effect (see {@link SessionRegistry.fire}); a cluster calls it where the timer
   * landed in its log.
   */
  fire(timer: SessionTimer, clientId: string, epoch: number): void {
    this.registry.fire(timer, clientId, epoch);
  }

  /** A session timer is due: act now, or let the cluster put it in its log first. */
  #timerDue(timer: SessionTimer, clientId: string): void {
    const epoch = this.registry.get(clientId)?.epoch ?? 0;
    if (this.options.onTimer) this.options.onTimer(timer, clientId, epoch);
    else this.fire(timer, clientId, epoch);
  }

  /**
   * Routes a client's PUBLISH and returns what its acknowledgement waits for. Refused (0x97, delivered to
   * nobody) when it is retained and the retained store is full. On a single node, a QoS 2 message whose
   * routing stores something is staged first, so that a full store refuses it before anyone has it and
   * its packet id is free again [MQTT-4.3.3]; the publisher's later PUBLISHes wait for it, keeping its order.
   */
  #publishFrom(
    session: Session,
    message: Message,
    ack: AckEffect | undefined,
    fromLog: boolean,
    now: number,
  ): Promise<void> | undefined {
    // Over the memory budget nothing new is taken (a retained delete frees memory: it is); a packet from the
    // cluster log was taken by its holder.
    if (!fromLog && this.#overBudget(message)) {
      this.options.memoryBudget!.refused++;
      if (!ack) return undefined; // QoS 0: dropped
      return this.#refused(session, ack, overBudget());
    }
    if (ack && message.retain && !this.retained.admits(message)) {
      return this.#refused(session, ack, new StorageError("retained store full", ReasonCode.QuotaExceeded));
    }
    const stages = message.qos === 2 && !this.#egress && !fromLog;
    const before = this.#routing.get(session);
    const stagedNow = !before && stages ? this.#stage(message) : undefined;
    if (!before && !stagedNow) return this.#route(session, message, ack, fromLog, false, now);
    return this.#routeInTurn(session, message, ack, fromLog, stages, before, stagedNow);
  }

  /**
   * {@link #publishFrom} for a PUBLISH that waits: for its staging, or for the publisher's earlier PUBLISH.
   * A method of its own: its closures in #publishFrom would make every PUBLISH allocate what they capture.
   */
  #routeInTurn(
    session: Session,
    message: Message,
    ack: AckEffect | undefined,
    fromLog: boolean,
    stages: boolean,
    before: Promise<void> | undefined,
    stagedNow: Promise<void> | undefined,
  ): Promise<void> | undefined {
    let durable: Promise<void> | undefined;
    const routed = (async () => {
      let staged = stagedNow;
      if (before) {
        await before;
        staged = stages ? this.#stage(message) : undefined;
      }
      if (staged) {
        try {
          await staged;
        } catch (error) {
          this.#persistence.unstageMessage(message);
          durable = this.#refused(session, ack!, error);
          return;
        }
      }
      durable = this.#route(session, message, ack, fromLog, staged !== undefined, this.clock.now());
    })();
    this.#routing.set(session, routed);
    const done = routed.then(() => {
      if (this.#routing.get(session) === routed) this.#routing.delete(session);
      return durable;
    });
    done.catch(() => {}); // the connection handles it when the ack's turn comes
    return done;
  }

  #route(
    session: Session,
    message: Message,
    ack: AckEffect | undefined,
    fromLog: boolean,
    staged: boolean,
    now: number,
  ): Promise<void> | undefined {
    const reached = this.#publishHere(message, fromLog, staged, now);
    const forwarded = this.#forwarded;
    this.#forwarded = undefined;
    if (!ack) return undefined;
    if (reached === 0 && session.attachment?.protocolVersion === 5) {
      ack.reasonCode = ReasonCode.NoMatchingSubscribers;
    }
    const stored = this.flush();
    const durable = forwarded && stored
      ? Promise.all([forwarded, stored]).then(() => {})
      : forwarded ?? stored;
    if (!durable || ack.type !== "pubrec") return durable;
    return this.#freeIdIfRefused(session, ack, durable);
  }

  /**
   * A QoS 2 PUBLISH not acknowledged after all: a resend of its id must be taken as a new message. A method
   * of its own: its closure in #route would make every PUBLISH allocate what it captures.
   */
  #freeIdIfRefused(
    session: Session,
    ack: AckEffect,
    durable: Promise<void>,
  ): Promise<void> {
    const refusing = durable.catch((error) => {
      session.refuseInbound(ack.packetId);
      this.#persistence.sessionChanged(session);
      throw error;
    });
    refusing.catch(() => {});
    return refusing;
  }

  /** Over the memory budget nothing new is taken, but a retained delete, which frees memory. */
  #overBudget(publish: Message | PublishPacket): boolean {
    if (this.options.memoryBudget?.over !== true) return false;
    if (!publish.retain) return true;
    return ("type" in publish ? publishPayloadLength(publish) : payloadSize(publish)) > 0;
  }

  /**
   * For a cluster node, before it sends a persistent session's PUBLISH to the log (which every node applies
   * whatever its memory): the refusal its client gets over the memory budget, as on a single node (QoS 0
   * dropped, QoS 1/2 0x97, 3.1.1 disconnected), or undefined to go on. A resent QoS 2 PUBLISH already taken
   * goes on: it adds nothing.
   */
  refusalOverBudget(session: Session, packet: PublishPacket): Effect[] | undefined {
    if (!this.#overBudget(packet)) return undefined;
    if (packet.qos === 2 && session.awaitingRelease.has(packet.packetId!)) return undefined;
    this.options.memoryBudget!.refused++;
    if (packet.qos === 0) return [];
    const durable = Promise.reject(overBudget());
    durable.catch(() => {}); // handled by the connection when the ack's turn comes
    const type = packet.qos === 1 ? "puback" as const : "pubrec" as const;
    return [{ kind: "ack", type, packetId: packet.packetId!, reasonCode: 0, durable }];
  }

  /** A rejected acknowledgement (the connection answers with the error's reason); a QoS 2 id is freed. */
  #refused(session: Session, ack: AckEffect, error: unknown): Promise<void> {
    if (ack.type === "pubrec") {
      session.refuseInbound(ack.packetId);
      this.#persistence.sessionChanged(session);
    }
    const refused = Promise.reject(error);
    refused.catch(() => {}); // handled by the connection when the ack's turn comes
    return refused;
  }

  /**
   * Before a QoS 2 message is routed: writes to storage what routing it will write and a full store could
   * refuse (its payload, when a persistent session will queue it in the store; its retained copy). Returns
   * the flush to wait for, or undefined when routing stores nothing that can be refused.
   */
  #stage(message: Message): Promise<void> | undefined {
    // Sessions that keep their queues themselves (queuesInStore false) store no payload to stage.
    const queued = this.#shared.recordsDeliveries && this.router.reaches(
      message,
      (session, grantedQos) => session.persistent && grantedQos > 0,
    );
    const retained = message.retain && !message.topic.startsWith("$SYS/");
    if (!queued && !retained) return undefined;
    if (queued) this.#persistence.stageMessage(message);
    if (retained) this.#persistence.retained(message);
    return this.#persistence.flush();
  }

  /**
   * Adds accepted subscriptions; returns the retained messages to send after the SUBACK. Only as many as
   * the client's socket has room for (mqtt.max_outbound_bytes) go at once: QoS 0 ones beyond are dropped
   * as for any slow consumer; QoS 1/2 ones wait in the session queue beyond the inflight window. Where
   * retained payloads live in the store, a subscription's matches are returned only when memory keeps all
   * their payloads (RETAINED_CACHE) and the socket has room for them all; otherwise they are read and sent
   * after the SUBACK, a page at a time as the client takes them (see {@link #sendRetained}).
   */
  #subscribe(session: Session, accepted: AcceptedSubscription[]): Effect[] {
    const now = this.clock.now();
    const effects: Effect[] = [];
    const entry = this.registry.get(session.clientId)!;
    const writable = entry.link ? entry.link.writable : entry.attached;
    let room = entry.link?.room ?? Infinity;
    const inStore = this.retained.payloadsInStore;
    const pendingLimit = this.#pendingRetainedLimit();
    for (const { subscription, isNew } of accepted) {
      const shared = isSharedFilter(subscription.topicFilter);
      if (shared && this.#egress && !session.persistent) {
        this.#egress.share(session.clientId, entry.epoch, subscription, true);
        continue;
      }
      this.router.add(entry, subscription);
      this.#persistence.subscribed(session, subscription);
      if (shared) continue; // Retained messages are not sent to shared subscriptions (spec §4.8.2).
      const handling = subscription.retainHandling;
      if (handling === 2 || (handling === 1 && !isNew)) continue; // [MQTT-3.3.1-9/10]
      const matched = this.retained.match(subscription.topicFilter, now);
      const paged = inStore && (entry.retainedReader !== undefined || !(writable && allKept(matched, room)));
      for (const retained of matched) {
        const ids = subscription.subscriptionIdentifier === undefined
          ? undefined
          : [subscription.subscriptionIdentifier];
        if (paged) {
          const reader = entry.retainedReader ??= new RetainedReader();
          if (pendingLimit > 0 && reader.pendingCount >= pendingLimit) {
            this.#shared.drops.queueFull++;
            continue;
          }
          const pending: PendingRetained = { entry: retained, grantedQos: subscription.qos };
          if (ids) pending.subscriptionIdentifiers = ids;
          reader.add(pending);
          continue;
        }
        // A message per delivery: the same retained message may be queued for this client more than once.
        const delivery = {
          message: messageOf(retained, retained.payload!),
          grantedQos: subscription.qos,
          retain: true,
          subscriptionIdentifiers: ids,
        };
        for (const effect of session.deliver(delivery, writable && room > 0, now)) {
          if (effect.kind === "deliver") room -= estimatedSize(effect.message);
          effects.push(effect);
        }
      }
    }
    if (entry.retainedReader) this.#sendRetained(session.clientId);
    return effects;
  }

  /**
   * How many retained matches may wait to be read for one client (0: no limit). Bounded like a queue, yet
   * one SUBSCRIBE of every retained message fits, up to RETAINED_PAGE.maxPending (about 50 B each): a client
   * that stops reading and repeats its SUBSCRIBE must not multiply them. Over the memory budget, only the
   * queue's bound (mqtt.max_queued_messages), as a full queue would take.
   */
  #pendingRetainedLimit(): number {
    const { maxQueuedMessages } = this.options.limits;
    if (maxQueuedMessages <= 0) return 0;
    if (this.options.memoryBudget?.over) return maxQueuedMessages;
    return Math.max(maxQueuedMessages, Math.min(this.retained.size, RETAINED_PAGE.maxPending));
  }

  readonly #retryRetained = (clientId: string): void => this.#sendRetained(clientId);

  /**
   * Reads the next page of the retained messages SUBSCRIBEs matched for the client and sends it, if the
   * client has taken the page before: its socket has room (else it is asked to say when it drains: QoS 0
   * messages have no acknowledgement to wait for) and its session queue is empty (what the inflight window
   * did not take; so a page never meets a queue it would overflow, whatever mqtt.max_queued_messages). Each
   * message goes out unless it was replaced or deleted meanwhile (the live message that did it went to
   * the client); live messages held behind it follow. Pages follow one another until none is left.
   * Without a connection here (the client left) the pages go to its session like live messages do.
   */
  #sendRetained(clientId: string): void {
    const entry = this.registry.get(clientId);
    const reader = entry?.retainedReader;
    if (!entry || !reader || reader.reading) return;
    this.#readRetained(entry, reader, clientId);
  }

  /**
   * {@link #sendRetained} for a client with retained messages to read. A method of its own: its closures
   * would make every call allocate the variables they capture, also for the clients (most) with none.
   */
  #readRetained(entry: SessionEntry, reader: RetainedReader, clientId: string): void {
    const { session, link } = entry;
    let maxBytes: number = RETAINED_PAGE.maxBytes;
    if (link) {
      // The room is below 0 after a frame larger than it: no room either.
      const room = link.room ?? maxBytes;
      if (!link.writable || room <= 0) return link.whenDrained(() => this.#sendRetained(clientId));
      if (session.queueLength > 0) return; // the client's acknowledgements bring it back here
      maxBytes = Math.min(maxBytes, room);
    }
    const page = reader.nextPage(RETAINED_PAGE.maxEntries, maxBytes);
    if (page.length === 0) return this.#retainedSent(entry);
    reader.reading = true;
    this.retained.read(page.map((pending) => pending.entry)).then(
      (messages) => {
        reader.reading = false;
        if (this.registry.get(clientId) !== entry || entry.retainedReader !== reader) return;
        this.#sendRetainedPage(entry, reader, page, messages);
        if (reader.done) this.#retainedSent(entry);
        else this.#sendRetained(clientId);
      },
      () => {
        // Tried again a while later, or at the client's next packet if sooner (keep alive 0 sends none);
        // the store's health reports the failure.
        reader.reading = false;
        reader.putBack(page);
        this.clock.after(PAGE_RETRY_MS, this.#retryRetained, clientId);
      },
    );
  }

  /** No retained message waits for the client any more: a persistent session whose client left pages out now. */
  #retainedSent(entry: SessionEntry): void {
    entry.retainedReader = undefined;
    if (!entry.attached) this.registry.pageOutAbsent(entry);
  }

  #sendRetainedPage(
    entry: SessionEntry,
    reader: RetainedReader,
    page: PendingRetained[],
    messages: (Message | undefined)[],
  ): void {
    const { session, link } = entry;
    const now = this.#now = this.clock.now();
    const writable = link ? link.writable : entry.attached;
    let room = link?.room ?? Infinity;
    const ownsPayload = this.options.storage.readsOwnPayloads === true;
    for (let i = 0; i < page.length; i++) {
      if (link && !(writable && room > 0)) {
        // The room shrank since the page was asked for (live messages went out meanwhile): the rest waits
        // for room again, as the page would have, rather than be dropped (QoS 0) or queued; if the client
        // leaves meanwhile, its session gets it (see close).
        reader.putBack(page.slice(i));
        break;
      }
      const pending = page[i];
      const message = messages[i];
      if (message && this.retained.isCurrent(pending.entry)) {
        const delivery: Delivery = {
          message,
          grantedQos: pending.grantedQos,
          retain: true,
          subscriptionIdentifiers: pending.subscriptionIdentifiers,
          // Freed once acknowledged, as a queue page's are; a payload memory keeps ($SYS) is not its own.
          ownsPayload: ownsPayload && pending.entry.payload === undefined,
        };
        if (session.deliverInto(delivery, writable && room > 0, now, link ?? NOWHERE)) {
          room -= estimatedSize(message);
        }
      }
      const held = reader.settle(pending);
      if (held) {
        for (const delivery of held) {
          if (session.persistent) session.releaseHeld(delivery);
          this.#deliver(entry, delivery);
        }
      }
    }
    if (session.persistent) this.#persistence.sessionChanged(session);
  }

  #unsubscribe(entry: SessionEntry, subscription: SessionSubscription): void {
    const session = entry.session;
    if (isSharedFilter(subscription.topicFilter) && this.#egress && !session.persistent) {
      const epoch = this.registry.get(session.clientId)?.epoch ?? 0;
      return this.#egress.share(session.clientId, epoch, subscription, false);
    }
    this.router.remove(entry, subscription);
    this.#persistence.unsubscribed(session, subscription);
  }

  /**
   * A transient session's `$share` membership, as the cluster log has it: every node adds it to (or
   * removes it from) its router at the same place, so every node picks the same member for a message;
   * only the member's own node sends it.
   */
  applyShare(clientId: string, epoch: number, subscription: SessionSubscription, added: boolean): void {
    const entry = this.registry.get(clientId);
    if (!entry || entry.epoch !== epoch || !entry.attached) return;
    if (added) {
      entry.session.setSubscription(subscription);
      this.router.add(entry, subscription);
    } else {
      if (!entry.link) entry.session.deleteSubscription(subscription.topicFilter);
      this.router.remove(entry, subscription);
    }
  }

  #deliver(entry: SessionEntry, delivery: Delivery): void {
    const session = entry.session;
    const message = delivery.message;
    const reader = entry.retainedReader;
    // A session whose queue's tail is in storage (a resumed one still reading its backlog) stores the
    // message in order at once instead: held and stored, it would be read back with the backlog and sent
    // again when released. It may then arrive before its topic's older retained message.
    if (reader !== undefined && reader.waits(message.topic) && !session.storedOnly) {
      // Held messages wait as a queue's would, so they are bounded like one: a client that stops reading
      // while a busy topic's retained message waits must not hold the broker's memory without end.
      const { maxQueuedMessages } = this.options.limits;
      if (maxQueuedMessages > 0 && reader.heldCount >= maxQueuedMessages) {
        this.#shared.drops.queueFull++;
        return;
      }
      const held = reader.hold(delivery, this.#shared.compact);
      if (session.persistent) {
        session.storeHeld(held);
        this.#persistence.sessionChanged(session);
      }
      return;
    }
    const link = entry.link;
    // Another node's transient client: that node alone keeps its state and sends.
    if (!link && !session.persistent && entry.attached) return;
    // A client connected to another node: its state moves on here too, but that node does the sending.
    const sent = session.deliverInto(
      delivery,
      link ? link.writable : entry.attached,
      this.#now,
      link ?? NOWHERE,
    );
    if (session.persistent) this.#persistence.sessionChanged(session);
    if (link && sent) this.stats.messagesSent++;
  }
}

/** Whether memory keeps the payloads of all `entries` and they fit in `room` bytes of output. */
function allKept(entries: RetainedEntry[], room: number): boolean {
  let bytes = 0;
  for (const { topic, payload } of entries) {
    if (payload === undefined) return false;
    bytes += estimatedSize({ topic, payload });
  }
  return bytes <= room;
}

const overBudget = () => new StorageError("memory budget exceeded", ReasonCode.QuotaExceeded);
