import { publishEncodedLength } from "../codec/encode_publish.ts";
import type { Properties, QoS } from "../codec/types.ts";
import { Fifo } from "./fifo.ts";
import { InflightTable } from "./inflight_table.ts";
import { payloadSize, withoutFrame } from "./message.ts";
import { SessionRecords } from "./records.ts";
import type {
  Attachment,
  Delivery,
  DeliveryStage,
  DropCounts,
  EffectSink,
  Message,
  SessionLimits,
  SessionState,
} from "./types.ts";

/**
 * How much of a session's queue is read back from storage at once; the next page is read when half a page
 * is left, so at most 1.5 pages wait in memory behind the inflight window. 4 MiB fills a default outbound
 * buffer (mqtt.max_outbound_bytes, 1 MiB) four times over, and 1000 small messages keep a fast client busy
 * while the next page is read (a few ms); 1000 clients coming back at once then hold 6 GiB at most, not
 * 1000 whole queues (up to 1 GiB each at the default limits).
 */
export const QUEUE_PAGE = { maxEntries: 1000, maxBytes: 4 * 1024 * 1024 } as const;

/** How many of a session's deliveries only storage holds, and their size, for the queue limits. */
export interface StoredCounts {
  entries: number;
  bytes: number;
}

/**
 * What a persistent session keeps of its outbound flow while storage holds all of its deliveries and nothing
 * waits to be stored (see Session.pageOut): the flow is made again from it when it is needed. A delivery
 * while the client is away does not need it: {@link storePagedOut} stores it from this alone.
 */
export interface PagedOutFlow extends StoredCounts {
  nextPacketId: number;
  /** The changes {@link storePagedOut} made, not yet taken (see OutboundFlow.records). */
  records: SessionRecords | undefined;
}

/** A delivery read back from storage, at the stage storage had it in. */
export interface StoredDeliveryState {
  delivery: Delivery;
  qos: QoS;
  stage: DeliveryStage;
  packetId?: number;
}

/**
 * The mark an in-flight delivery's slot keeps beside it (InflightTable.markOf): the QoS it was sent at, plus
 * {@link RELEASED} once its PUBREL was sent (QoS 2). The queue and the window hold the deliveries themselves,
 * which a session never changes (the router gives one delivery to all the transient subscribers a message
 * reaches the same way): what the session knows of one (its QoS, its size, its stage) is computed from it
 * or kept in the window's slot. A fan-out then costs no object per subscriber, and an acknowledgement reads
 * no object of its own: a busy subscriber's thousand waiting deliveries were as many cache misses.
 */
const RELEASED = 4;
const QOS_BITS = 3;
/**
 * Mark of an in-flight PUBLISH from an earlier connection not yet sent again on this one: the client's
 * Receive Maximum had no room for it (see {@link OutboundFlow.attach}).
 */
const UNSENT = 8;

/** A connection's in-flight PUBLISHes waiting to be sent again (marked {@link UNSENT}), in send order. */
class Unsent {
  readonly packetIds: number[] = [];
  /** The next of {@link packetIds} to look at. */
  at = 0;
  /** How many of them are still marked. */
  count = 0;
}

/**
 * The server-to-client half of a session: packet ids, the inflight window (min of our limit and the
 * client's Receive Maximum), the bounded queue behind it, outbound topic aliases and message expiry.
 */
export class OutboundFlow {
  // Created with their first entry: most sessions (idle clients, QoS 0 only) never need them.
  #inflight: InflightTable<Delivery> | undefined;
  #queue: Fifo<Delivery> | undefined;
  queuedBytes = 0;
  /**
   * How many QoS 0 entries the queue holds (queued while the client was away): only then may the queue's
   * head go out past a full window, and only then does {@link #drain} look at the head it cannot send yet,
   * an object a busy subscriber's queue otherwise brings back into the cache for nothing.
   */
  #queuedQos0 = 0;
  /**
   * While some of the session's deliveries live only in storage (all of them while its client is away, the
   * tail of its queue while it is read back page by page): how many wait there, and their size, for the
   * queue limits. New deliveries then go to storage only, behind them. Undefined while memory holds all.
   */
  #stored: StoredCounts | undefined;
  /** True while storage holds everything, in-flight messages included: the next read starts at the top. */
  #pagedOut = false;
  /** True while a page is being read (one at a time). */
  #reading = false;
  /**
   * Oldest stored entries to drop (a full queue, drop_oldest) that a page being read may already hold:
   * dropped from that page when it comes, so that storage and the page agree on what was dropped.
   */
  #pendingDrops = 0;
  /**
   * Deliveries stored while a page was being read: the read does not see them, so a page that says nothing
   * follows it is not the end of the queue when this is not 0.
   */
  #storedWhileReading = 0;
  #nextPacketId = 1;
  /** In-flight PUBLISHes this connection has not had again yet; undefined when there are none (most often). */
  #unsent: Unsent | undefined;
  /** Outbound topic aliases of this connection; created when the client allows aliases. */
  #aliases: Map<string, number> | undefined;
  #attachment: Attachment | undefined;
  #persistent = false;
  /** The durable changes not yet taken (see {@link recordsToWrite}). */
  records: SessionRecords | undefined;

  /**
   * `shared` may serve many sessions, so the broker counts drops and shares compact copies for all.
   * `attachment`: the client's connection when the flow is made while it is connected.
   */
  constructor(readonly shared: SharedSessionState, attachment?: Attachment) {
    this.#attachment = attachment;
  }

  /** The session limits (the shared state's: a field of the flow's own would cost 8 B per flow). */
  private get limits(): SessionLimits {
    return this.shared.limits;
  }

  /** QoS 1/2 messages sent and not yet fully acknowledged, by packet id. */
  get inflight(): ReadonlyMap<number, Delivery> {
    return this.#inflight ?? NO_INFLIGHT;
  }

  /** Messages waiting for a slot in the window, or for the client to come back, oldest first. */
  get queue(): readonly Delivery[] {
    return this.#queue?.toArray() ?? NO_QUEUE;
  }

  /** How many messages wait in {@link queue} (without copying it). */
  get queueLength(): number {
    return this.#queue?.length ?? 0;
  }

  #inflightTable(): InflightTable<Delivery> {
    return this.#inflight ??= new InflightTable();
  }

  #queueList(): Fifo<Delivery> {
    return this.#queue ??= new Fifo();
  }

  /**
   * A persistent session records every durable change for the broker to store; a transient one does not.
   * Storage writes its ref into each delivery it stores (Delivery.storedRef), so a persistent flow holds
   * deliveries of its own (the router gives it its own); a flow made persistent makes its own copies.
   */
  get persistent(): boolean {
    return this.#persistent;
  }

  set persistent(persistent: boolean) {
    if (persistent && !this.#persistent) this.#ownDeliveries();
    this.#persistent = persistent;
  }

  /**
   * The list to record a durable change in; undefined for a transient session. Written as
   * `this.recordsToWrite()?.saveDelivery(...)`: a transient session then records nothing. A persistent one
   * keeps its list once made: taken after every change on the delivery path, a list made anew each time was
   * some 200 B per durable message for the broker's thread to collect.
   */
  recordsToWrite(): SessionRecords | undefined {
    return this.#persistent ? this.records ??= new SessionRecords() : undefined;
  }

  /**
   * {@link recordsToWrite} for a change of the deliveries (queued, in flight, acknowledged): undefined too
   * where persistent sessions keep their queues themselves (see {@link SharedSessionState.recordsDeliveries}).
   */
  deliveryRecords(): SessionRecords | undefined {
    return this.shared.recordsDeliveries ? this.recordsToWrite() : undefined;
  }

  get drops(): DropCounts {
    return this.shared.drops;
  }

  get online(): boolean {
    return this.#attachment !== undefined;
  }

  /**
   * True while storage holds deliveries that memory does not (see {@link pageOut} and {@link pageIn}): new
   * deliveries then go to storage only.
   */
  get storedOnly(): boolean {
    return this.#stored !== undefined;
  }

  /** True while storage holds all of the session's deliveries: it is read back from its first entry. */
  get pagedOut(): boolean {
    return this.#pagedOut;
  }

  /**
   * True when the next page should be read: storage holds more, no read is running, and what waits in
   * memory is down to half a page (the client acknowledged its way through the rest).
   */
  get wantsPage(): boolean {
    return this.storedOnly && !this.#reading &&
      this.queueLength < QUEUE_PAGE.maxEntries / 2 && this.queuedBytes < QUEUE_PAGE.maxBytes / 2;
  }

  /**
   * Forgets the deliveries held in memory because storage has them all (a persistent session whose client
   * left): an offline queue costs no memory. `queued` counts what waits in storage, for the queue limits.
   * A page being read is of no use any more: the next read starts at the top.
   */
  pageOut(queued: StoredCounts = this.#queuedTotals()): void {
    this.#inflight = undefined;
    this.#unsent = undefined;
    this.#queue = undefined;
    this.queuedBytes = 0;
    this.#queuedQos0 = 0;
    // A copy: `queued` may be the caller's (storage's totals at start).
    this.#stored = { entries: queued.entries, bytes: queued.bytes };
    this.#pagedOut = true;
    this.#reading = false;
    // The drops waited for a page that will not come: storage's oldest queued entries are the ones to drop.
    for (; this.#pendingDrops > 0; this.#pendingDrops--) {
      this.deliveryRecords()?.dropOldestStored();
    }
  }

  /**
   * What a paged-out flow must keep when it is let go (see {@link PagedOutFlow}), or undefined while it holds
   * more than that: it is not paged out, or it has changes not yet stored.
   */
  pagedOutState(): PagedOutFlow | undefined {
    if (!this.#pagedOut || this.#reading || this.#pendingDrops > 0 || (this.records?.length ?? 0) > 0) {
      return undefined;
    }
    const stored = this.#stored!;
    return {
      entries: stored.entries,
      bytes: stored.bytes,
      nextPacketId: this.#nextPacketId,
      records: undefined,
    };
  }

  /**
   * Makes this new flow the one a persistent session let go as `state` (see {@link pagedOutState}), with the
   * changes made since (see {@link storePagedOut}) still to be taken.
   */
  resumePagedOut(state: PagedOutFlow): void {
    this.persistent = true;
    this.pageOut(state);
    this.#nextPacketId = state.nextPacketId;
    this.records = state.records;
  }

  /** A page read starts: until {@link pageIn} (or {@link pageOut}), no other starts. */
  beginPageRead(): void {
    this.#reading = true;
    this.#storedWhileReading = 0;
  }

  /** The page read failed: the next trigger reads it again. */
  pageReadFailed(): void {
    this.#reading = false;
  }

  /**
   * The next page of the deliveries in storage, in delivery order. They go behind what memory holds (new
   * deliveries went to storage meanwhile, so nothing newer is in memory); those with a packet id go back
   * in flight under it, as they were. `more` says whether storage holds more after them (or deliveries were
   * stored while the page was read, which it cannot show): until it does not, new deliveries keep going to
   * storage. With the client connected, what the window has room for is sent.
   */
  pageIn(deliveries: StoredDeliveryState[], more: boolean, now: number, out: EffectSink): void {
    this.#reading = false;
    this.#pagedOut = false;
    let entries = 0;
    let bytes = 0;
    for (const { delivery, qos, stage, packetId } of deliveries) {
      if (stage === "queued" || packetId === undefined) {
        entries++;
        bytes += payloadSize(delivery.message) + delivery.message.topic.length;
        this.restore(delivery, qos, "queued");
      } else if (!this.#attachment) {
        this.restore(delivery, qos, stage, packetId);
      } else if (!this.inflight.has(packetId)) {
        // Read after the client came back (the in-flight messages outgrew the pages read before): sent
        // again as attach sent the others [MQTT-4.4.0-1], by the drain below.
        this.restore(delivery, qos, stage, packetId);
        const outstanding = this.inflight.size - 1 - (this.#unsent?.count ?? 0);
        this.#sendAgain(packetId, outstanding < this.#window(), now, out);
      } else {
        // Its id was taken since by a message sent on this connection: sent anew under another.
        this.restore(delivery, qos, "queued");
      }
    }
    // The queue held nothing when these drops were put off, so the oldest queued entries are this page's;
    // the stored totals lost them when they were put off.
    for (; this.#pendingDrops > 0 && this.queueLength > 0; this.#pendingDrops--) {
      entries--;
      bytes -= this.#dropOldestQueued();
    }
    const stored = this.#stored;
    if (stored !== undefined && (more || this.#storedWhileReading > 0)) {
      stored.entries = Math.max(0, stored.entries - entries);
      stored.bytes = Math.max(0, stored.bytes - bytes);
    } else {
      this.#stored = undefined;
      this.#pendingDrops = 0;
    }
    if (this.#attachment) this.#drain(now, out);
  }

  /** What waits to be sent, in memory and in storage, for the queue limits. */
  #queuedTotals(): StoredCounts {
    return {
      entries: this.queueLength + (this.#stored?.entries ?? 0),
      bytes: this.queuedBytes + (this.#stored?.bytes ?? 0),
    };
  }

  /**
   * Starts a new connection: aliases reset, unacknowledged messages sent again, PUBLISHes with DUP in their
   * order and PUBRELs in theirs [MQTT-4.4.0-1] [MQTT-4.6.0-1] [MQTT-4.6.0-3]. The send quota starts anew at
   * the window [MQTT-4.9.0-1]: a client may come back with a smaller Receive Maximum than it had, and the
   * PUBLISHes past it wait for acknowledgements to make room [MQTT-4.9.0-2] (sent all at once, a client that
   * counts them, as MQTT.js does for QoS 2, disconnects with 0x93 and comes back to the same).
   */
  attach(attachment: Attachment, now: number, out: EffectSink): void {
    this.#attachment = attachment;
    this.#aliases = undefined;
    this.#unsent = undefined;
    const inflight = this.#inflight;
    if (inflight !== undefined) {
      const window = this.#window();
      let outstanding = 0;
      for (const [packetId] of inflight) {
        inflight.setMark(packetId, inflight.markOf(packetId) & ~UNSENT);
        if (this.#sendAgain(packetId, outstanding < window, now, out)) outstanding++;
      }
    }
    this.#drain(now, out);
  }

  /**
   * An in-flight delivery of an earlier connection, on this one: a PUBREL goes now (it takes no quota), and
   * so does a PUBLISH when the window has `room` and none waits before it; else it is marked {@link UNSENT},
   * for {@link #drain} to send in order as acknowledgements make room. True when it went now.
   */
  #sendAgain(packetId: number, room: boolean, now: number, out: EffectSink): boolean {
    const inflight = this.#inflight!;
    const mark = inflight.markOf(packetId);
    if ((mark & RELEASED) !== 0 || (room && this.#unsent === undefined)) {
      this.#resend(packetId, inflight.get(packetId)!, now, out);
      return true;
    }
    inflight.setMark(packetId, mark | UNSENT);
    const unsent = this.#unsent ??= new Unsent();
    unsent.packetIds.push(packetId);
    unsent.count++;
    return false;
  }

  /** Sends the {@link UNSENT} PUBLISHes again, oldest first, while the window has room. */
  #sendUnsent(unsent: Unsent, window: number, now: number, out: EffectSink): void {
    const inflight = this.#inflight!;
    const packetIds = unsent.packetIds;
    while (unsent.count > 0 && unsent.at < packetIds.length && inflight.size - unsent.count < window) {
      const packetId = packetIds[unsent.at++];
      const mark = inflight.markOf(packetId);
      if (mark < 0 || (mark & UNSENT) === 0) continue; // acknowledged or released meanwhile
      inflight.setMark(packetId, mark & ~UNSENT);
      unsent.count--;
      this.#resend(packetId, inflight.get(packetId)!, now, out);
    }
    // (Every marked one is in the list: the end of the list with some still counted would be a bug.)
    if (unsent.count === 0 || unsent.at === packetIds.length) this.#unsent = undefined;
  }

  /** An {@link UNSENT} delivery was answered before it was sent again (a PUBREC to the earlier PUBLISH). */
  #answeredUnsent(packetId: number): void {
    const unsent = this.#unsent!;
    this.#inflight!.setMark(packetId, this.#inflight!.markOf(packetId) & ~UNSENT);
    if (--unsent.count === 0) this.#unsent = undefined;
  }

  /** Sends an unacknowledged message again: PUBREL once PUBREC came, else the PUBLISH with DUP. */
  #resend(packetId: number, entry: Delivery, now: number, out: EffectSink): void {
    const mark = this.#inflight!.markOf(packetId);
    if ((mark & RELEASED) !== 0) {
      out.push({ kind: "send", packet: { type: "pubrel", packetId, reasonCode: 0, properties: {} } });
    } else if (!this.#emit(entry, (mark & QOS_BITS) as QoS, packetId, true, now, out)) {
      // not sendable any more (too large for the new connection, or no longer authorized): forget it
      this.#inflight!.delete(packetId);
      this.deliveryRecords()?.deleteDelivery(entry);
    }
  }

  /** The client left: what waits for it may wait long, so it stops pinning the decoder's shared blocks. */
  detach(): void {
    this.#attachment = undefined;
    const queue = this.#queue;
    if (queue) {
      // Shifted through once: the same entries in the same order, each with its compact copy.
      for (let i = queue.length; i > 0; i--) queue.push(this.#compacted(queue.shift()!));
    }
    const inflight = this.#inflight;
    if (inflight) {
      for (const [packetId, entry] of inflight) {
        inflight.set(packetId, this.#compacted(entry), inflight.markOf(packetId));
      }
    }
  }

  /**
   * `delivery` with a compact copy of its message (see SharedSessionState.compact), fit to wait while the
   * client is away: changed in place when it is this session's own (a persistent session's, see
   * {@link persistent}), else a new delivery, since other sessions may hold the same one.
   */
  #compacted(delivery: Delivery): Delivery {
    const message = this.shared.compact(delivery.message);
    if (message === delivery.message) return delivery;
    if (!this.#persistent) return { ...delivery, message };
    delivery.message = message;
    return delivery;
  }

  /** A persistent flow's deliveries are its own (see {@link persistent}). */
  #ownDeliveries(): void {
    const queue = this.#queue;
    if (queue) { for (let i = queue.length; i > 0; i--) queue.push({ ...queue.shift()! }); }
    const inflight = this.#inflight;
    if (inflight) {
      for (const [packetId, entry] of inflight) {
        inflight.set(packetId, { ...entry }, inflight.markOf(packetId));
      }
    }
  }

  /** Rebuilds an entry recovered from storage: in flight under its packet id, or waiting in the queue. */
  restore(delivery: Delivery, qos: QoS, stage: DeliveryStage, packetId?: number): void {
    if (stage === "queued" || packetId === undefined) {
      // A queued delivery's QoS is what it says (see deliveryQos): so it is.
      const entry = deliveryQos(delivery) === qos ? delivery : { ...delivery, grantedQos: qos };
      this.#queueList().push(entry);
      this.queuedBytes += entrySize(entry);
      if (qos === 0) this.#queuedQos0++;
      return;
    }
    this.#inflightTable().set(packetId, delivery, qos | (stage === "released" ? RELEASED : 0));
    if (packetId >= this.#nextPacketId) this.#nextPacketId = packetId === 65535 ? 1 : packetId + 1;
  }

  /** The flow's state as data (see SessionState): in flight in send order, then the queue. */
  toRecord(): Pick<SessionState, "inflight" | "queue" | "nextPacketId"> {
    return {
      inflight: [...this.inflight].map(([packetId, entry]) => {
        const mark = this.#inflight!.markOf(packetId);
        return {
          packetId,
          delivery: entry,
          qos: (mark & QOS_BITS) as QoS,
          stage: (mark & RELEASED) !== 0 ? "released" as const : "sent" as const,
        };
      }),
      queue: this.queue.map((entry) => ({ delivery: entry, qos: deliveryQos(entry) })),
      nextPacketId: this.#nextPacketId,
    };
  }

  /** Rebuilds the flow of a detached session from {@link toRecord}'s data. */
  fromRecord(state: Pick<SessionState, "inflight" | "queue" | "nextPacketId">): void {
    for (const { packetId, delivery, qos, stage } of state.inflight) {
      this.restore(delivery, qos, stage, packetId);
    }
    for (const { delivery, qos } of state.queue) this.restore(delivery, qos, "queued");
    this.#nextPacketId = state.nextPacketId;
  }

  /**
   * Hands one routed message to the client, or queues it. `writable` is false when the socket is backed up.
   * True when it went to `out` now.
   */
  deliver(delivery: Delivery, writable: boolean, now: number, out: EffectSink): boolean {
    if (!this.#attachment) {
      const qos = offlineQos(delivery, now, this.limits, this.drops);
      if (qos === undefined) return false;
      if (this.storedOnly) this.#store(delivery, qos);
      else this.#enqueue(delivery, qos);
      return false;
    }
    const qos = liveQos(delivery, now, this.drops);
    if (qos === undefined) return false;
    if (qos === 0) {
      if (!writable) {
        this.drops.slowConsumer++;
        return false;
      }
      return this.#emit(delivery, 0, undefined, false, now, out);
    }
    if (this.storedOnly) {
      // Behind the queue's tail in storage, to keep the order; read back with it, page by page.
      this.#store(delivery, qos);
      return false;
    }
    if (this.queueLength === 0 && this.inflight.size < this.#window()) {
      return this.#sendNew(delivery, qos, now, out);
    }
    this.#enqueue(delivery, qos);
    return false;
  }

  /**
   * PUBACK from the client. Unknown ids are ignored: a late ack after a resend is harmless. So is one for a
   * PUBLISH of an earlier connection not sent again yet (UNSENT): it is done with.
   */
  acknowledge(packetId: number, now: number, out: EffectSink): void {
    let entry = this.#inflight?.take(packetId, 1);
    if (entry === undefined && this.#unsent !== undefined) {
      entry = this.#inflight!.take(packetId, 1 | UNSENT);
      if (entry !== undefined && --this.#unsent.count === 0) this.#unsent = undefined;
    }
    if (entry !== undefined) {
      this.deliveryRecords()?.deleteDelivery(entry);
      releasePayload(entry);
      this.#drain(now, out);
    }
  }

  /** PUBREC from the client: answer PUBREL (or 0x92 for an unknown id), or end the flow on an error reason. */
  received(packetId: number, reasonCode: number, now: number, out: EffectSink): void {
    const entry = this.inflight.get(packetId);
    const mark = this.#inflight?.markOf(packetId) ?? -1;
    if (!entry || (mark & QOS_BITS) !== 2) {
      out.push({ kind: "send", packet: { type: "pubrel", packetId, reasonCode: 0x92, properties: {} } });
      return;
    }
    if ((mark & UNSENT) !== 0) this.#answeredUnsent(packetId);
    if (reasonCode >= 0x80) {
      this.#inflight!.delete(packetId);
      this.deliveryRecords()?.deleteDelivery(entry);
      releasePayload(entry);
      this.#drain(now, out);
      return;
    }
    this.#inflight!.setMark(packetId, 2 | RELEASED);
    this.deliveryRecords()?.saveDelivery(entry, 2, "released", packetId);
    out.push({ kind: "send", packet: { type: "pubrel", packetId, reasonCode: 0, properties: {} } });
  }

  /** PUBCOMP from the client ends a QoS 2 flow. */
  completed(packetId: number, now: number, out: EffectSink): void {
    const entry = this.#inflight?.take(packetId, 2 | RELEASED);
    if (entry !== undefined) {
      this.deliveryRecords()?.deleteDelivery(entry);
      releasePayload(entry);
      this.#drain(now, out);
    }
  }

  /** Sends queued messages while the window has room; QoS 0 ones were queued only for an offline client. */
  #drain(now: number, out: EffectSink): void {
    const window = this.#window();
    const unsent = this.#unsent;
    if (unsent !== undefined) {
      this.#sendUnsent(unsent, window, now, out);
      // New messages follow the ones sent again.
      if (this.#unsent !== undefined) return;
    }
    const queue = this.#queue;
    if (queue === undefined) return;
    while (
      queue.length > 0 &&
      (this.inflight.size < window || (this.#queuedQos0 > 0 && deliveryQos(queue.peek()!) === 0))
    ) {
      const next = queue.shift()!;
      const qos = deliveryQos(next);
      this.queuedBytes -= entrySize(next);
      if (qos === 0) this.#queuedQos0--;
      const expiresAt = next.message.expiresAt;
      if (expiresAt !== undefined && expiresAt <= now) {
        this.drops.expired++;
        this.deliveryRecords()?.deleteDelivery(next);
        continue;
      }
      if (qos === 0) {
        this.#emit(next, 0, undefined, false, now, out);
        // Nothing acknowledges QoS 0: one stored while the client was away (mqtt.queue_qos0_offline) goes
        // now, or it would be read back and sent again at every resume.
        this.deliveryRecords()?.deleteDelivery(next);
      } else {
        this.#sendNew(next, qos, now, out);
      }
    }
  }

  #window(): number {
    const clientMax = this.#attachment?.receiveMaximum ?? 65535;
    return clientMax < this.limits.maxInflight ? clientMax : this.limits.maxInflight;
  }

  /** Sends a QoS 1/2 entry and puts it in flight; true when the PUBLISH went to `out` (see {@link #emit}). */
  #sendNew(entry: Delivery, qos: QoS, now: number, out: EffectSink): boolean {
    const packetId = this.#allocatePacketId();
    if (!this.#emit(entry, qos, packetId, false, now, out)) {
      this.deliveryRecords()?.deleteDelivery(entry);
      return false;
    }
    this.#inflightTable().set(packetId, entry, qos);
    this.deliveryRecords()?.saveDelivery(entry, qos, "sent", packetId);
    return true;
  }

  #enqueue(delivery: Delivery, qos: QoS): void {
    const size = entrySize(delivery);
    const admitted = admission(this.limits, this.drops, this.queueLength, this.queuedBytes, size);
    if (admitted === "refuse") return;
    if (admitted === "dropOldest") this.#dropOldestQueued();
    if (!this.#attachment) delivery = this.#compacted(delivery);
    this.#queueList().push(delivery);
    this.queuedBytes += size;
    if (qos === 0) this.#queuedQos0++;
    if (qos > 0) this.deliveryRecords()?.saveDelivery(delivery, qos, "queued");
  }

  /**
   * Queues a delivery in storage only (all or the tail of the queue is there); QoS 0 too, since nothing
   * else keeps it. The queue limits count what waits in memory and in storage.
   */
  #store(delivery: Delivery, qos: QoS): void {
    const size = entrySize(delivery);
    const stored = this.#stored!;
    const admitted = admission(
      this.limits,
      this.drops,
      this.queueLength + stored.entries,
      this.queuedBytes + stored.bytes,
      size,
    );
    if (admitted === "refuse") return;
    if (admitted === "dropOldest") {
      if (this.queueLength > 0) {
        this.#dropOldestQueued();
      } else {
        // A page being read may hold the oldest stored entry: drop it from the page when it comes.
        if (this.#reading) this.#pendingDrops++;
        else this.deliveryRecords()?.dropOldestStored();
        uncountOldestStored(stored);
      }
    }
    // No compact copy: nothing here keeps the delivery past this turn (its record goes to storage, which
    // copies the payload), and copying every message for every absent subscriber was a third of a
    // publishing burst's garbage (1 KiB of ArrayBuffer each, freed only by a full collection).
    stored.entries++;
    stored.bytes += size;
    if (this.#reading) this.#storedWhileReading++;
    this.deliveryRecords()?.saveDelivery(delivery, qos, "queued");
  }

  /** Drops the oldest message of the queue in memory (a full queue, drop_oldest); returns its size. */
  #dropOldestQueued(): number {
    const oldest = this.#queue!.shift()!;
    const size = entrySize(oldest);
    this.queuedBytes -= size;
    if (deliveryQos(oldest) === 0) this.#queuedQos0--;
    this.deliveryRecords()?.deleteDelivery(oldest);
    return size;
  }

  /**
   * Packet ids in use are skipped, so a resumed session never reuses one still inflight [MQTT-2.2.1-3]; so is,
   * rarely, one whose slot in the table a long unacknowledged delivery holds (InflightTable.canTake).
   */
  #allocatePacketId(): number {
    for (;;) {
      const id = this.#nextPacketId;
      this.#nextPacketId = id === 65535 ? 1 : id + 1;
      if (this.#inflight === undefined || this.#inflight.canTake(id)) return id;
    }
  }

  /**
   * Builds the outgoing PUBLISH; false when the client may not read the topic (checked here, where every
   * route to the wire meets) or it exceeds the client's Maximum Packet Size [MQTT-3.1.2-25].
   */
  #emit(
    delivery: Delivery,
    qos: QoS,
    packetId: number | undefined,
    dup: boolean,
    now: number,
    out: EffectSink,
  ): boolean {
    const attachment = this.#attachment!;
    const { message } = delivery;
    if (attachment.permissions?.canReceive?.(message.topic) === false) {
      this.drops.notAuthorized++;
      return false;
    }
    const version = attachment.protocolVersion;
    let properties: Properties = message.properties;
    let topic = message.topic;
    if (version === 5) {
      properties = withHopProperties(message.properties, delivery, now);
      const alias = this.#aliasFor(topic, attachment.topicAliasMaximum);
      if (alias !== 0) {
        properties = properties === message.properties ? { ...properties } : properties;
        properties.topicAlias = alias;
        if (alias < 0) {
          properties.topicAlias = -alias;
          topic = "";
        }
      }
    }
    if (attachment.maximumPacketSize !== undefined) {
      const size = publishEncodedLength(topic, payloadSize(message), qos, properties, version);
      if (size > attachment.maximumPacketSize) {
        this.drops.tooLarge++;
        return false;
      }
    }
    out.deliver(message, qos, packetId, dup, delivery.retain, properties, topic);
    return true;
  }

  /**
   * The outbound topic alias for `topic`: 0 for none, a new alias (positive) to send with the topic, or an
   * alias the client already knows (negative) so the topic can be left empty.
   */
  #aliasFor(topic: string, topicAliasMaximum: number): number {
    if (topicAliasMaximum === 0) return 0;
    const aliases = this.#aliases ??= new Map();
    const existing = aliases.get(topic);
    if (existing !== undefined) return -existing;
    if (aliases.size >= topicAliasMaximum) return 0;
    const alias = aliases.size + 1;
    aliases.set(topic, alias);
    return alias;
  }
}

const NO_INFLIGHT: ReadonlyMap<number, Delivery> = new Map();

/** The QoS a delivery goes out at: its message's, at most its subscription's. */
export function deliveryQos(delivery: Delivery): QoS {
  const qos = delivery.message.qos;
  return (qos < delivery.grantedQos ? qos : delivery.grantedQos) as QoS;
}

/**
 * {@link OutboundFlow.deliver} to a client that is away, for a session that let its flow go paged out: the
 * delivery goes to storage behind the others under the same queue limits (as the flow's #store does), and
 * the flow is not made again for it. Otherwise every offline session that receives a message would hold its
 * flow (about 150 B) again until its client came back and left.
 */
export function storePagedOut(
  state: PagedOutFlow,
  delivery: Delivery,
  now: number,
  limits: SessionLimits,
  drops: DropCounts,
): void {
  const qos = offlineQos(delivery, now, limits, drops);
  if (qos === undefined) return;
  const size = entrySize(delivery);
  const admitted = admission(limits, drops, state.entries, state.bytes, size);
  if (admitted === "refuse") return;
  const records = state.records ??= new SessionRecords();
  if (admitted === "dropOldest") {
    records.dropOldestStored();
    uncountOldestStored(state);
  }
  state.entries++;
  state.bytes += size;
  records.saveDelivery(delivery, qos, "queued");
}

/** The QoS `delivery` goes at to a connected client, or undefined when its message expired (a drop). */
function liveQos(delivery: Delivery, now: number, drops: DropCounts): QoS | undefined {
  const message = delivery.message;
  if (message.expiresAt !== undefined && message.expiresAt <= now) {
    drops.expired++;
    return undefined;
  }
  return deliveryQos(delivery);
}

/** {@link liveQos} for a client that is away: QoS 0 is kept for it only with mqtt.queue_qos0_offline. */
function offlineQos(
  delivery: Delivery,
  now: number,
  limits: SessionLimits,
  drops: DropCounts,
): QoS | undefined {
  const qos = liveQos(delivery, now, drops);
  if (qos === 0 && !limits.queueQos0Offline) {
    drops.qos0Offline++;
    return undefined;
  }
  return qos;
}

/**
 * Whether a queue holding `entries` deliveries of `bytes` in all (in memory and in storage) takes one more
 * of `size` (mqtt.max_queued_messages, mqtt.max_queued_bytes). Full, it counts a drop and, under
 * drop_oldest, makes room by dropping its oldest entry if it has one; otherwise the new one is refused.
 */
function admission(
  limits: SessionLimits,
  drops: DropCounts,
  entries: number,
  bytes: number,
  size: number,
): "take" | "dropOldest" | "refuse" {
  const { maxQueuedMessages, maxQueuedBytes } = limits;
  const full = (maxQueuedMessages > 0 && entries >= maxQueuedMessages) ||
    (maxQueuedBytes > 0 && bytes + size > maxQueuedBytes);
  if (!full) return "take";
  drops.queueFull++;
  return limits.queueDropPolicy === "drop_newest" || entries === 0 ? "refuse" : "dropOldest";
}

/**
 * The oldest stored delivery dropped (a full queue, drop_oldest). Its size is in storage, not here: it counts
 * as an average one until the queue is read back, when the totals are exact again.
 */
function uncountOldestStored(stored: StoredCounts): void {
  stored.bytes -= stored.bytes / stored.entries;
  stored.entries--;
}

/** What a delivery counts against the queue's limits: its payload and topic. */
function entrySize(delivery: Delivery): number {
  return payloadSize(delivery.message) + delivery.message.topic.length;
}

/**
 * Gives the memory of an ended delivery's own payload back now (see Delivery.ownsPayload). Draining a big
 * queue reads every message back into a buffer of its own that would otherwise wait for V8's next full
 * collection: 100–180 MB of such garbage on the big-queue benchmark's drain (1 KiB messages).
 */
function releasePayload(delivery: Delivery): void {
  if (!delivery.ownsPayload) return;
  delivery.ownsPayload = false;
  const buffer = delivery.message.payload.buffer;
  // transfer(0) detaches the buffer and frees its memory; a SharedArrayBuffer is never ours alone.
  if (buffer instanceof ArrayBuffer && !buffer.detached) buffer.transfer(0);
}

/** {@link OutboundFlow.toRecord} of a flow that never sent or queued anything. */
export function emptyFlowRecord(): Pick<SessionState, "inflight" | "queue" | "nextPacketId"> {
  return { inflight: [], queue: [], nextPacketId: 1 };
}
const NO_QUEUE: readonly Delivery[] = Object.freeze([]);

/** What the sessions of one broker share: their limits, drop counters and compact copies of kept messages. */
export interface SharedSessionState {
  readonly limits: SessionLimits;
  /**
   * Whether persistent sessions record their deliveries for storage; false where they keep their queues
   * themselves (a single node with the memory store: BrokerOptions.queuesInStore). Their inbound QoS 2 ids
   * are recorded either way.
   */
  readonly recordsDeliveries: boolean;
  readonly drops: DropCounts;
  /** A copy of `message` fit to be kept a while; the same copy for every session that keeps it. */
  compact(message: Message): Message;
}

/** Fresh shared state for sessions under `limits`: zero counters and an empty cache of compact copies. */
export function sharedState(limits: SessionLimits, recordsDeliveries = true): SharedSessionState {
  const copies = new WeakMap<Message, Message>();
  return {
    limits,
    recordsDeliveries,
    drops: emptyDropCounts(),
    compact(message) {
      const payload = message.payload;
      if (message.frameBytes === undefined && payload.byteLength === payload.buffer.byteLength) {
        return message;
      }
      let copy = copies.get(message);
      if (!copy) {
        // The decoder's frames are views into shared blocks, and a kept view would pin its whole block;
        // forwarding the copy re-encodes instead of reusing the frame.
        copy = withoutFrame(message, payload.slice());
        copies.set(message, copy);
      }
      return copy;
    },
  };
}

/**
 * About what a PUBLISH of `message` adds to a socket's output: exact enough to bound it, cheap enough for
 * every delivery (the frame is encoded later, by the connection).
 */
export function estimatedSize(message: Pick<Message, "topic" | "payload">): number {
  return estimatedBytes(message.topic.length, message.payload.byteLength);
}

/** {@link estimatedSize} of a message known by its topic length and payload size. */
export function estimatedBytes(topicLength: number, payloadBytes: number): number {
  return payloadBytes + topicLength + 16;
}

export function emptyDropCounts(): DropCounts {
  return { queueFull: 0, expired: 0, tooLarge: 0, qos0Offline: 0, slowConsumer: 0, notAuthorized: 0 };
}

/** Adds subscription identifiers and the remaining Message Expiry Interval [MQTT-3.3.2-6]. */
function withHopProperties(base: Properties, delivery: Delivery, now: number): Properties {
  const ids = delivery.subscriptionIdentifiers;
  const expiresAt = delivery.message.expiresAt;
  if (!ids?.length && expiresAt === undefined) return base;
  const properties: Properties = { ...base };
  if (ids?.length) properties.subscriptionIdentifiers = ids;
  if (expiresAt !== undefined) {
    properties.messageExpiryInterval = Math.max(0, Math.ceil((expiresAt - now) / 1000));
  }
  return properties;
}
