import { MqttError } from "../codec/errors.ts";
import { ReasonCode } from "../codec/reason_codes.ts";
import type { Will } from "../codec/types.ts";
import { QUEUE_PAGE, type SharedSessionState, type StoredDeliveryState } from "../session/outbound.ts";
import { EffectList } from "../session/effect_list.ts";
import type { Attachment, Delivery, SessionSubscription } from "../session/types.ts";
import type { QueuePage, StorageAdapter, StorageSnapshot } from "../storage/port.ts";
import type { Clock, TimerHandle } from "./clock.ts";
import { IndexedHeap } from "./indexed_heap.ts";
import { ownerUsername } from "./owner.ts";
import { fromStored, type Persistence } from "./persistence.ts";
import type { Router } from "./router.ts";
import { SessionEntry } from "./session_entry.ts";
import { type SessionOwner, SessionQuota } from "./session_quota.ts";
import type {
  BrokerOptions,
  BrokerStats,
  OpenRequest,
  OpenResult,
  SessionHandle,
  SessionLink,
  SessionTimer,
} from "./types.ts";
import type { WillService } from "./wills.ts";

/** How long after a failed page read of a connected client's queue it is tried again. */
export const PAGE_RETRY_MS = 1000;

/** What the registry works with: the broker's other services and settings. */
export interface RegistryServices {
  options: BrokerOptions;
  clock: Clock;
  storage: StorageAdapter;
  persistence: Persistence;
  wills: WillService;
  router: Router<SessionEntry>;
  shared: SharedSessionState;
  stats: BrokerStats;
  /** A session timer came due (expiry or a delayed will). */
  timerDue(timer: SessionTimer, clientId: string): void;
}

const NEVER_EXPIRES = 0xffffffff;

/**
 * Sessions by client id and their life: claims (take over, clean start, resume), disconnects, expiry, and
 * the rebuild from storage. One claim at a time per client id: a CONNECT that waits (for storage, or for a
 * cluster) cannot interleave with another CONNECT for the same id.
 */
export class SessionRegistry {
  readonly #entries = new Map<string, SessionEntry>();
  readonly #claims = new Map<string, Promise<unknown>>();
  #lastEpoch = 0;
  readonly #quota: SessionQuota;
  /** Offline sessions that expire, soonest first (ties: the older claim first, alike on every node). */
  readonly #expiries = new IndexedHeap<SessionEntry>((a, b) => {
    const due = expiresAt(a), other = expiresAt(b);
    return due < other || (due === other && a.epoch < b.epoch);
  });
  /** The one timer behind {@link #expiries}, set for its first session. */
  #expiryTimer: TimerHandle | undefined;
  #expiryTimerAt = Infinity;

  constructor(private readonly services: RegistryServices) {
    this.#quota = new SessionQuota(
      services.options.sessionQuota ??
        { maxSessions: 0, maxPersistentPerUser: 0, maxPersistentPerAddress: 0 },
    );
  }

  get size(): number {
    return this.#entries.size;
  }

  /** See {@link SessionService.needsAddress}: the quota counts persistent sessions only. */
  needsAddress(sessionExpiryInterval: number): boolean {
    return this.#quota.countsAddresses &&
      Math.min(sessionExpiryInterval, this.services.options.maxSessionExpiry) > 0;
  }

  get(clientId: string): SessionEntry | undefined {
    return this.#entries.get(clientId);
  }

  values(): IterableIterator<SessionEntry> {
    return this.#entries.values();
  }

  /** Adds an entry built elsewhere (a cluster's snapshot). */
  add(entry: SessionEntry): void {
    const replaced = this.#entries.get(entry.session.clientId);
    if (replaced !== undefined && replaced !== entry) replaced.discarded = true;
    this.#entries.set(entry.session.clientId, entry);
    if (entry.epoch > this.#lastEpoch) this.#lastEpoch = entry.epoch;
  }

  /**
   * The entry `handle` still holds, or undefined when the handle is stale (another claim since, the
   * client gone, or the session ended). The handle's own entry when it has one: no lookup by client id.
   */
  held(handle: SessionHandle): SessionEntry | undefined {
    const entry = handle.entry ?? this.#entries.get(handle.session.clientId);
    return entry !== undefined && SessionRegistry.holds(entry, handle) ? entry : undefined;
  }

  /** Whether `handle` holds `entry`: its epoch, the client connected, the entry still in the registry. */
  static holds(entry: SessionEntry, handle: SessionHandle): boolean {
    return entry.epoch === handle.epoch && entry.attached && !entry.discarded;
  }

  /**
   * Binds a new connection to its session: takes over a connected one [MQTT-3.1.4-3], discards it on
   * Clean Start [MQTT-3.1.2-4], or resumes it [MQTT-3.1.2-5], reading its queue back from storage.
   * Refuses with MqttError 0x97 Quota exceeded, touching nothing, past mqtt.max_sessions or an owner's
   * cap on persistent sessions. Claims of one client id run one after the other. The result comes as it
   * is, not in a promise, when nothing has to wait (no earlier claim of the id under way, no queue to read
   * back from storage): the common CONNECT then costs no promise; a refusal is then thrown at once.
   */
  open(request: OpenRequest): OpenResult | Promise<OpenResult> {
    const { clientId } = request;
    const previous = this.#claims.get(clientId);
    const claimed = previous === undefined ? this.#open(request) : this.#openAfter(previous, request);
    if (claimed instanceof Promise) this.#track(clientId, claimed);
    return claimed;
  }

  /** {@link #open} once the claim before it has settled (a method of its own: no closure in open()). */
  #openAfter(previous: Promise<unknown>, request: OpenRequest): Promise<OpenResult> {
    const claim = () => this.#open(request);
    return previous.then(claim, claim);
  }

  #open(request: OpenRequest): OpenResult | Promise<OpenResult> {
    const { clientId } = request;
    const { wills, options } = this.services;
    let entry = this.#entries.get(clientId);
    const persistent = Math.min(request.sessionExpiryInterval, options.maxSessionExpiry) > 0;
    const owner = { username: ownerUsername(request.owner), address: request.address };
    const refusal = this.#quota.refusal(
      entry?.quotaOwner,
      entry !== undefined,
      persistent,
      owner,
      this.#entries.size,
    );
    if (refusal) throw new MqttError(ReasonCode.QuotaExceeded, refusal);
    if (entry) {
      this.#cancelExpiry(entry);
      // A session that lasts only as long as its connection (3.1.1 CleanSession 1, 5.0 Session Expiry 0)
      // ends when that connection is taken over: in 3.1.1 its state is not reused [MQTT-3.1.2-6]; in 5.0
      // no session is left, so a new one is created [MQTT-3.1.2-6]. Either way Session Present is 0.
      // A session belongs to its identity: another one gets a fresh session, never the owner's state. (A
      // session stored before owners were recorded is claimed by whoever resumes it first.)
      const otherOwner = entry.owner !== undefined && entry.owner !== request.owner;
      const sessionEnds = request.cleanStart || otherOwner ||
        (entry.attached && entry.session.expiryInterval === 0);
      if (entry.attached) {
        const previous = entry.link;
        this.#detach(entry);
        // The old connection's will goes out now unless its delay outlives the takeover and the session
        // lives on [MQTT-3.1.3-9] [MQTT-3.1.2-8].
        if (sessionEnds || wills.delaySeconds(clientId) === 0) wills.publishNow(clientId);
        previous?.takeOver();
      } else if (otherOwner && wills.delayed(clientId)) {
        // Someone else's connection does not stand in for the owner's: the owner's delayed will goes out.
        wills.publishNow(clientId);
      } else {
        // Reconnected before the will delay passed: the will is not sent [MQTT-3.1.3-9].
        wills.cancel(clientId);
      }
      if (sessionEnds) {
        this.#discard(entry);
        entry = undefined;
      } else if (entry.session.pagedOut) {
        const resumed = entry;
        return this.pageIn(resumed).then(() => this.#bind(request, resumed, owner));
      }
    }
    return this.#bind(request, entry, owner);
  }

  /** The end of a claim: `entry` (undefined for a new session) is the client's, attached to its connection. */
  #bind(request: OpenRequest, entry: SessionEntry | undefined, owner: SessionOwner): OpenResult {
    const { clientId } = request;
    const { wills, persistence, options } = this.services;
    const sessionPresent = entry !== undefined;
    entry ??= new SessionEntry(clientId, this.services.shared, 0);
    entry.epoch = request.epoch ?? this.#nextEpoch();
    if (entry.epoch > this.#lastEpoch) this.#lastEpoch = entry.epoch;
    entry.owner = request.owner;
    this.#entries.set(clientId, entry);
    const session = entry.session;
    session.expiryInterval = Math.min(request.sessionExpiryInterval, options.maxSessionExpiry);
    // A session resumed with Session Expiry 0 whose queue is still in storage stays stored for the rest of
    // its connection, so that its queue comes back a page at a time like any other (read whole, one client
    // could make the broker hold its whole queue); it still ends with its connection, and a restart finds
    // it expired.
    session.persistent = session.expiryInterval > 0 || session.storedOnly;
    this.#countFor(entry, session.persistent ? this.#quota.countedOwner(owner) : undefined);
    const effects = this.attach(entry, request.attachment, request.holder, request.link);
    wills.arm(clientId, request.will, entry.owner);
    persistence.sessionChanged(session);
    return { session, sessionPresent, epoch: entry.epoch, entry, effects };
  }

  /** Marks the entry's client connected (here, or on `holder` in a cluster) and resumes its session. */
  attach(entry: SessionEntry, attachment: Attachment, holder?: string, link?: SessionLink) {
    entry.attached = true;
    entry.link = link;
    entry.holder = holder;
    entry.disconnectedAt = undefined;
    this.services.stats.connectedClients++;
    this.services.stats.connectsAccepted++;
    const connection = holder === undefined
      ? undefined
      : JSON.stringify({ holder, attachment: { ...attachment, permissions: undefined } });
    this.services.persistence.saveSession(entry.session, {
      epoch: entry.epoch,
      owner: entry.owner,
      connection,
    });
    return entry.session.attach(attachment, this.services.clock.now());
  }

  /**
   * Reads the first pages of a paged-out session's queue back, before its client is attached: every page
   * that holds in-flight messages (they come first: they were sent in queue order), then until half a page
   * or more waits in memory. The rest stays in storage and is read as the client works through the queue
   * ({@link pageOn}), so a returning client costs about a page, whatever its queue holds.
   */
  async pageIn(entry: SessionEntry): Promise<void> {
    const outbound = entry.session.outbound;
    while (outbound.storedOnly && this.#entries.get(entry.session.clientId) === entry) {
      const page = await this.#readPage(entry);
      const inFlight = page?.deliveries.some((item) => item.entry.stage !== "queued") ?? false;
      if (!inFlight && !outbound.wantsPage) return;
    }
  }

  /**
   * Reads all of a session's queue that is in storage back into memory (a snapshot; a session no longer
   * stored), unless the session ends meanwhile.
   */
  async pageInAll(entry: SessionEntry): Promise<void> {
    while (entry.session.storedOnly && this.#entries.get(entry.session.clientId) === entry) {
      // One read at a time: a page already being read comes first.
      if (entry.pageRead) await entry.pageRead;
      else await this.#readPage(entry);
    }
  }

  /**
   * Reads the next page of the client's queue if its session wants one (its client acknowledged its way
   * down to half a page), and again after it while it still does. A failed read is tried again
   * PAGE_RETRY_MS later, or at the client's next packet if that comes first: a client with nothing left in
   * flight may send none (keep alive 0). Storage's own health reports the failure.
   */
  pageOn(clientId: string): void {
    const entry = this.#entries.get(clientId);
    if (!entry?.attached || !entry.session.outbound.wantsPage) return;
    // A failure does not end the client: the read is not its fault, and the store's health says it.
    this.#readPage(entry).then(
      (page) => page && this.pageOn(clientId),
      () => this.services.clock.after(PAGE_RETRY_MS, this.#retryPage, clientId),
    );
  }

  readonly #retryPage = (clientId: string): void => this.pageOn(clientId);

  /**
   * Pages out a persistent session whose client left, where the store keeps queues (see
   * BrokerOptions.queuesInStore): its deliveries then cost no memory until the client returns.
   */
  pageOutAbsent(entry: SessionEntry): void {
    const session = entry.session;
    if (!session.persistent || session.expiryInterval === 0) return;
    if (this.services.options.queuesInStore !== false) this.pageOut(entry);
  }

  /** Pages a session out (see OutboundFlow.pageOut): a page still being read for it will be dropped. */
  pageOut(entry: SessionEntry): void {
    entry.session.pageOut();
    entry.pageRead = undefined;
    entry.pageAfter = undefined;
  }

  /**
   * Reads the session's next page from storage into it and sends what its window has room for. Resolves
   * undefined when the read is no longer the session's (paged out, or the session ended, meanwhile).
   */
  #readPage(entry: SessionEntry): Promise<QueuePage | undefined> {
    const { storage, persistence, clock } = this.services;
    const { session } = entry;
    const outbound = session.outbound;
    const after = outbound.pagedOut ? undefined : entry.pageAfter;
    outbound.beginPageRead();
    const read: Promise<QueuePage | undefined> = storage.readQueue(session.clientId, { after, ...QUEUE_PAGE })
      .then(
        (page) => {
          if (entry.pageRead !== read || this.#entries.get(session.clientId) !== entry) return undefined;
          entry.pageRead = undefined;
          entry.pageAfter = page.last ?? after;
          const deliveries: StoredDeliveryState[] = page.deliveries.map((item) => {
            const { entry: stored } = item;
            const delivery: Delivery = {
              message: fromStored(item.message),
              grantedQos: stored.qos,
              retain: stored.retain,
              subscriptionIdentifiers: stored.subscriptionIdentifiers,
              // Freed once acknowledged where a read's payloads are ours alone (MessageLog.readsOwnPayloads).
              ownsPayload: storage.readsOwnPayloads === true,
            };
            persistence.restored(delivery, item);
            return { delivery, qos: stored.qos, stage: stored.stage, packetId: stored.packetId };
          });
          const out = new EffectList();
          outbound.pageIn(deliveries, page.more, clock.now(), out);
          if (out.effects.length > 0) entry.link?.run(out.effects);
          persistence.sessionChanged(session);
          return page;
        },
        (error) => {
          if (entry.pageRead === read) {
            entry.pageRead = undefined;
            outbound.pageReadFailed();
          }
          throw error;
        },
      );
    entry.pageRead = read;
    return read;
  }

  /**
   * The connection holding `handle` ended. Publishes or schedules the will, then ends or keeps the session
   * per its expiry interval. A handle whose epoch is no longer current changes nothing.
   */
  close(handle: SessionHandle, publishWill: boolean, sessionExpiryInterval?: number): void {
    const { clock, wills, persistence, options } = this.services;
    const session = handle.session;
    const entry = this.held(handle);
    if (!entry) return;
    if (sessionExpiryInterval !== undefined) {
      session.expiryInterval = Math.min(sessionExpiryInterval, options.maxSessionExpiry);
    }
    const expiry = session.expiryInterval;
    // Where the store keeps queues it holds every delivery of a persistent session: an absent client costs
    // no memory. Paged out before the detach, whose compact copies of what the session holds would be thrown
    // away at once. Not while retained messages are read for it: live messages held behind them are stored
    // already, and a page read back from storage would send them before those retained messages, and again
    // when released (the broker pages it out once the reads are done).
    if (!entry.retainedReader) this.pageOutAbsent(entry);
    this.#detach(entry);
    entry.disconnectedAt = clock.now();
    persistence.saveSession(session, {
      epoch: entry.epoch,
      owner: entry.owner,
      disconnectedAt: entry.disconnectedAt,
    });
    if (!publishWill) wills.cancel(session.clientId);
    else wills.trigger(session.clientId, Math.min(wills.delaySeconds(session.clientId), expiry));
    if (expiry === 0) return this.end(entry);
    this.armExpiry(entry);
  }

  /**
   * Sessions from storage at start (subscriptions and inbound QoS 2 ids; queues stay in storage until their
   * client returns). Expiry counts from the recorded disconnect, or from now for a client that was connected
   * when the node stopped. Returns the entries a cluster had connected, to attach once wills are restored.
   */
  restore(snapshot: StorageSnapshot): { entry: SessionEntry; holder: string; attachment: Attachment }[] {
    const { clock, persistence, router, options } = this.services;
    const now = clock.now();
    const connected: { entry: SessionEntry; holder: string; attachment: Attachment }[] = [];
    // Restored sessions have no address yet: one owner object per user name serves all of that user's.
    const owners = new RestoredOwners();
    for (const stored of snapshot.sessions) {
      // A limit lowered since the session was stored applies to it too.
      stored.expiryInterval = Math.min(stored.expiryInterval, options.maxSessionExpiry);
      const since = stored.disconnectedAt ?? now;
      const left = stored.expiryInterval === NEVER_EXPIRES
        ? Infinity
        : since + stored.expiryInterval * 1000 - now;
      if (left <= 0) {
        persistence.ended(stored.clientId);
        continue;
      }
      const entry = new SessionEntry(
        stored.clientId,
        this.services.shared,
        stored.epoch,
        stored.owner,
        since,
      );
      const session = entry.session;
      session.expiryInterval = stored.expiryInterval;
      session.persistent = true;
      session.pageOut(snapshot.queueTotals.get(stored.clientId) ?? { entries: 0, bytes: 0 });
      this.add(entry);
      this.#countFor(entry, this.#quota.countedOwner(owners.of(ownerUsername(stored.owner))));
      const connection = stored.connection ? JSON.parse(stored.connection) : undefined;
      if (connection) connected.push({ entry, holder: connection.holder, attachment: connection.attachment });
      else this.armExpiry(entry);
    }
    for (const stored of snapshot.subscriptions) {
      const entry = this.#entries.get(stored.clientId);
      if (!entry) continue;
      const { topicFilter, qos, noLocal, retainAsPublished, retainHandling, subscriptionIdentifier } = stored;
      // The fields in the order a SUBSCRIBE makes them: one object shape for every subscription.
      const subscription: SessionSubscription = {
        topicFilter,
        qos,
        noLocal,
        retainAsPublished,
        retainHandling,
        subscriptionIdentifier,
      };
      entry.session.setSubscription(subscription);
      router.add(entry, subscription);
    }
    for (const { clientId, packetId } of snapshot.awaitingRelease) {
      this.#entries.get(clientId)?.session.awaitingRelease.add(packetId);
    }
    return connected;
  }

  /** The delay (capped by the session's expiry) of a stored will, or undefined when its session is gone. */
  willDelayOf(clientId: string, will: Will): number | undefined {
    const entry = this.#entries.get(clientId);
    if (!entry) return undefined;
    return Math.min(will.properties.willDelayInterval ?? 0, entry.session.expiryInterval);
  }

  /**
   * A session timer takes effect: the session expires, or its delayed will goes out, unless the client
   * connected again since (a newer epoch).
   */
  fire(timer: SessionTimer, clientId: string, epoch: number): void {
    const entry = this.#entries.get(clientId);
    if (!entry || entry.epoch !== epoch || entry.attached) return;
    if (timer === "will") this.services.wills.publishDue(clientId);
    else this.end(entry);
  }

  /**
   * Queues an offline session for expiry, its expiry interval after its client left (`disconnectedAt`, which
   * must be set); a session that never expires is not queued.
   */
  armExpiry(entry: SessionEntry): void {
    if (entry.session.expiryInterval === NEVER_EXPIRES) return;
    this.#expiries.push(entry);
    if (this.#expiries.peek() === entry) this.#setExpiryTimer();
  }

  #cancelExpiry(entry: SessionEntry): void {
    // The timer stays set for a session no longer first: it finds nothing due, and is set again.
    this.#expiries.remove(entry);
  }

  #setExpiryTimer(): void {
    const first = this.#expiries.peek();
    if (!first) return;
    const at = expiresAt(first);
    if (this.#expiryTimer !== undefined && at >= this.#expiryTimerAt) return;
    const { clock } = this.services;
    clock.cancel(this.#expiryTimer);
    this.#expiryTimerAt = at;
    this.#expiryTimer = clock.after(Math.max(0, at - clock.now()), this.#expireDue);
  }

  /** The sessions whose time is up expire (or, in a cluster, go to its log to expire on every node). */
  readonly #expireDue = (): void => {
    this.#expiryTimer = undefined;
    this.#expiryTimerAt = Infinity;
    const now = this.services.clock.now();
    try {
      for (let first = this.#expiries.peek(); first && expiresAt(first) <= now;) {
        this.#expiries.remove(first);
        this.services.timerDue("expire", first.session.clientId);
        first = this.#expiries.peek();
      }
    } finally {
      this.#setExpiryTimer();
    }
  };

  /** The session expired (or its connection ended with expiry 0): publish a pending will, forget it all. */
  end(entry: SessionEntry): void {
    const { wills } = this.services;
    if (wills.delayed(entry.session.clientId)) wills.publishNow(entry.session.clientId);
    this.#discard(entry);
  }

  /** Ends every session without a will or anything else going out (see Broker.clearState). */
  forgetAll(): void {
    for (const entry of [...this.#entries.values()]) {
      if (entry.attached) this.#detach(entry);
      this.#discard(entry);
    }
  }

  /** Stops every timer; used at shutdown. */
  stop(): void {
    this.services.clock.cancel(this.#expiryTimer);
    this.#expiryTimer = undefined;
    this.#expiryTimerAt = Infinity;
  }

  #detach(entry: SessionEntry): void {
    entry.attached = false;
    entry.link = undefined;
    entry.holder = undefined;
    entry.session.detach();
    this.services.stats.connectedClients--;
  }

  #discard(entry: SessionEntry): void {
    const { router, persistence } = this.services;
    this.#cancelExpiry(entry);
    for (const subscription of entry.session.subscriptions()) {
      router.remove(entry, subscription);
    }
    if (this.#entries.get(entry.session.clientId) === entry) {
      this.#entries.delete(entry.session.clientId);
      this.#countFor(entry, undefined);
    }
    entry.discarded = true;
    persistence.ended(entry.session.clientId);
  }

  /** The entry's session is counted for `owner` against the caps on persistent sessions, or not at all. */
  #countFor(entry: SessionEntry, owner: SessionOwner | undefined): void {
    this.#quota.reassign(entry.quotaOwner, owner);
    entry.quotaOwner = owner;
  }

  /**
   * A new epoch, larger than any before it in this process and, through the clock, than any before a
   * restart (epochs are microsecond-scale timestamps, bumped when claims come faster than that).
   */
  #nextEpoch(): number {
    return Math.max(this.#lastEpoch + 1, this.services.clock.now() * 1000);
  }

  /** Makes the later claims of `clientId` wait for `claim`, until it settles. */
  #track(clientId: string, claim: Promise<OpenResult>): void {
    this.#claims.set(clientId, claim);
    const forget = () => {
      if (this.#claims.get(clientId) === claim) this.#claims.delete(clientId);
    };
    claim.then(forget, forget);
  }
}

/** When an offline session expires (ms since the epoch). */
function expiresAt(entry: SessionEntry): number {
  return entry.disconnectedAt! + entry.session.expiryInterval * 1000;
}

/** Shared, read-only owners of restored sessions, one per user name. */
class RestoredOwners {
  readonly #byUsername = new Map<string | undefined, SessionOwner>();

  of(username: string | undefined): SessionOwner {
    let owner = this.#byUsername.get(username);
    if (!owner) this.#byUsername.set(username, owner = Object.freeze({ username }));
    return owner;
  }
}
