import { MqttError } from "../codec/errors.ts";
import { NO_PROPERTIES } from "../codec/properties.ts";
import { wholeBufferView } from "../codec/bytes.ts";
import { DecodedPublish } from "../codec/decode_publish.ts";
import { frameLevel, publishFrameLength, publishTopicEnd } from "../codec/encode_publish.ts";
import { ReasonCode } from "../codec/reason_codes.ts";
import type {
  DisconnectPacket,
  Packet,
  PublishPacket,
  QoS,
  SubscribePacket,
  UnsubscribePacket,
} from "../codec/types.ts";
import { hasWildcard, parseSharedFilter, validateTopicFilter, validateTopicName } from "../topic/mod.ts";
import { EffectList } from "./effect_list.ts";
import { FramedMessage } from "./message.ts";
import {
  deliveryQos,
  emptyFlowRecord,
  OutboundFlow,
  type PagedOutFlow,
  type SharedSessionState,
  type StoredCounts,
  storePagedOut,
} from "./outbound.ts";
import {
  findSubscription,
  subscriptionCount,
  subscriptionsIn,
  type SubscriptionTable,
  withoutSubscription,
  withSubscription,
} from "./subscription_table.ts";
import type {
  AcceptedSubscription,
  AckEffect,
  Attachment,
  Delivery,
  Effect,
  EffectSink,
  Message,
  RecordSink,
  SessionEffect,
  SessionLimits,
  SessionState,
  SessionSubscription,
} from "./types.ts";

/**
 * What a session holds only while it is in use (its client connected): one object then, none while the
 * session sits offline (a broker may hold millions). A subclass keeps what it holds only while in use in
 * the same object (see Session.newInUse), and says when that is empty.
 */
export class SessionInUse {
  attachment: Attachment | undefined = undefined;
  /** Inbound topic aliases of this connection; created by the first PUBLISH that sets one. */
  inboundAliases: Map<number, string> | undefined = undefined;
  /** The last topic name this client published to that passed validation (a cache, lost with the object). */
  validTopic = "";

  /** True when it holds nothing the session needs: the session lets it go. */
  isEmpty(): boolean {
    return this.attachment === undefined && this.inboundAliases === undefined;
  }
}

/**
 * One client's MQTT session: the protocol state machine after CONNECT. It turns inbound packets and
 * routed messages into effects for the connection and broker to run; it never touches a socket, so
 * every rule is testable with plain values. Its state outlives connections (persistent sessions).
 * Its methods are TypeScript-private, not #private: #methods give every instance a brand field (8 bytes),
 * and there is a session per client.
 */
export class Session {
  /** The subscriptions by filter (see SubscriptionTable): a lone one held as it is. */
  #subscriptions: SubscriptionTable;
  /** Created when first used: most sessions never hold one. */
  #awaitingRelease: Set<number> | undefined;
  /**
   * The outbound flow, made at its first use (a delivery, an acknowledgement from the client, a persistent
   * session): an idle clean-session client never needs one. Read through {@link outbound}, or the counts
   * below, which make none. A persistent session whose client is away, with all of its deliveries in
   * storage, keeps only a PagedOutFlow here instead (about 100 B less per offline session; one field for
   * either); the flow is made again from it at its next use, which a delivery while the client is away is
   * not (see storePagedOut).
   */
  #flow: OutboundFlow | PagedOutFlow | undefined;
  /** Seconds the session outlives its connection; 0xFFFFFFFF = never expires. */
  expiryInterval = 0;
  /** See SessionInUse: made at {@link attach}, let go once empty ({@link releaseInUse}). */
  protected inUse: SessionInUse | undefined = undefined;
  /**
   * The router's mark: the routing pass that last reached this session, and where its delivery sits in that
   * pass (a session reached through several subscriptions gets one delivery). Kept here rather than in a
   * map of the router's: an entry and a slot object per session cost about 90 B.
   */
  routePass = 0;
  routeIndex = 0;

  /** `shared`: the broker's (see SharedSessionState), with the limits its sessions work under. */
  constructor(readonly clientId: string, private readonly shared: SharedSessionState) {}

  /** The session limits (the shared state's: a field of the session's own would cost 8 B per session). */
  private get limits(): SessionLimits {
    return this.shared.limits;
  }

  /** The server-to-client half of the session (made now if it was not yet needed). */
  get outbound(): OutboundFlow {
    const flow = this.#flow;
    return flow instanceof OutboundFlow ? flow : this.#flow = this.makeFlow(flow);
  }

  /** A new flow: the one the session let go paged out (see {@link pageOut}) if it did, else an empty one. */
  private makeFlow(kept: PagedOutFlow | undefined): OutboundFlow {
    const flow = new OutboundFlow(this.shared, this.attachment);
    if (kept) flow.resumePagedOut(kept);
    return flow;
  }

  /** The flow if the session has one, made again if it was let go paged out; undefined if it never had one. */
  private heldFlow(): OutboundFlow | undefined {
    return this.#flow === undefined ? undefined : this.outbound;
  }

  /** The flow if memory holds it (not let go paged out), without making one. */
  private flowInMemory(): OutboundFlow | undefined {
    const flow = this.#flow;
    return flow instanceof OutboundFlow ? flow : undefined;
  }

  /**
   * Storage holds all of this persistent session's deliveries (its client left, or it was just restored):
   * memory keeps none of them (see OutboundFlow.pageOut), and, unless a change of it waits to be stored, not
   * its flow either. `queued`: what waits in storage (default: what the flow holds now).
   */
  pageOut(queued?: StoredCounts): void {
    const flow = this.outbound;
    flow.pageOut(queued);
    const kept = flow.pagedOutState();
    if (kept) this.#flow = kept;
  }

  /** QoS 1/2 deliveries sent and not yet acknowledged. */
  get inflightCount(): number {
    return this.flowInMemory()?.inflight.size ?? 0;
  }

  /** Deliveries waiting in memory for the inflight window or for the client to come back. */
  get queueLength(): number {
    return this.flowInMemory()?.queueLength ?? 0;
  }

  /** The size of {@link queueLength}'s deliveries. */
  get queuedBytes(): number {
    return this.flowInMemory()?.queuedBytes ?? 0;
  }

  /** True while storage holds deliveries memory does not: all, or the queue's tail (see OutboundFlow). */
  get storedOnly(): boolean {
    const flow = this.#flow;
    return flow instanceof OutboundFlow ? flow.storedOnly : flow !== undefined;
  }

  /** True while storage holds all of the session's deliveries (see OutboundFlow.pageOut). */
  get pagedOut(): boolean {
    const flow = this.#flow;
    return flow instanceof OutboundFlow ? flow.pagedOut : flow !== undefined;
  }

  /** How many subscriptions the session holds. */
  get subscriptionCount(): number {
    return subscriptionCount(this.#subscriptions);
  }

  /** The session's subscription to `filter`, if any. */
  subscription(filter: string): SessionSubscription | undefined {
    return findSubscription(this.#subscriptions, filter);
  }

  /** The session's subscriptions, in the order their filters were first added. */
  subscriptions(): IterableIterator<SessionSubscription> {
    return subscriptionsIn(this.#subscriptions);
  }

  /** Adds or replaces the subscription to its filter (a subscription's place is where its filter was first added). */
  setSubscription(subscription: SessionSubscription): void {
    this.#subscriptions = withSubscription(this.#subscriptions, subscription);
  }

  /** Removes the subscription to `filter`; false when there was none. */
  deleteSubscription(filter: string): boolean {
    if (this.subscription(filter) === undefined) return false;
    this.#subscriptions = withoutSubscription(this.#subscriptions, filter);
    return true;
  }

  /** Inbound QoS 2 packet ids received and not yet released: a resent PUBLISH is not routed twice [MQTT-4.3.3-10]. */
  get awaitingRelease(): Set<number> {
    return this.#awaitingRelease ??= new Set();
  }

  get attachment(): Attachment | undefined {
    return this.inUse?.attachment;
  }

  /** A persistent session records every durable change (see {@link takeRecords}); a transient one does not. */
  get persistent(): boolean {
    const flow = this.#flow;
    return flow instanceof OutboundFlow ? flow.persistent : flow !== undefined;
  }

  set persistent(persistent: boolean) {
    if (persistent) {
      this.outbound.persistent = true;
    } else {
      const flow = this.heldFlow();
      if (flow) {
        flow.persistent = false;
        flow.records = undefined;
      }
    }
  }

  /** The session's state as data, e.g. to move it to another node. */
  toRecord(): SessionState {
    return {
      clientId: this.clientId,
      expiryInterval: this.expiryInterval,
      subscriptions: [...this.subscriptions()],
      awaitingRelease: [...this.awaitingRelease],
      ...(this.heldFlow()?.toRecord() ?? emptyFlowRecord()),
    };
  }

  /** Fills this new, detached session (of `state`'s client id) with {@link toRecord}'s data: rebuilds it. */
  load(state: SessionState): void {
    this.expiryInterval = state.expiryInterval;
    for (const subscription of state.subscriptions) this.setSubscription(subscription);
    for (const packetId of state.awaitingRelease) this.awaitingRelease.add(packetId);
    this.outbound.fromRecord(state);
  }

  /**
   * Records the whole durable state of a persistent session (its deliveries in order and its inbound QoS 2
   * ids), e.g. after {@link load}, so that storage gets all of it at the next {@link takeRecords}.
   */
  recordAll(): void {
    const records = this.heldFlow()?.recordsToWrite();
    if (!records) return;
    if (this.shared.recordsDeliveries) {
      const { inflight, queue } = this.outbound.toRecord();
      for (const { packetId, delivery, qos, stage } of inflight) {
        records.saveDelivery(delivery, qos, stage, packetId);
      }
      for (const { delivery, qos } of queue) {
        records.saveDelivery(delivery, qos, "queued");
      }
    }
    for (const packetId of this.awaitingRelease) {
      records.awaitingRelease(packetId, true);
    }
  }

  /** Hands the durable changes since the last call to `sink`, in order, for the broker to store. */
  takeRecords(sink: RecordSink): void {
    const flow = this.#flow;
    const records = flow?.records;
    if (records === undefined) return;
    records.takeInto(this.clientId, sink);
    // A paged-out flow is the least an offline session keeps: no list while nothing waits to be taken.
    if (!(flow instanceof OutboundFlow)) flow!.records = undefined;
  }

  /** A connection took this session: resend what is unacknowledged, then what is queued. */
  attach(attachment: Attachment, now: number): Effect[] {
    const inUse = this.inUse ??= this.newInUse();
    inUse.attachment = attachment;
    inUse.inboundAliases = undefined;
    const out = new EffectList();
    this.heldFlow()?.attach(attachment, now, out);
    return out.effects;
  }

  detach(): void {
    const inUse = this.inUse;
    if (inUse) {
      inUse.attachment = undefined;
      inUse.inboundAliases = undefined;
      this.releaseInUse();
    }
    this.flowInMemory()?.detach();
  }

  /** A new in-use state (see SessionInUse); a subclass makes one with room for its own. */
  protected newInUse(): SessionInUse {
    return new SessionInUse();
  }

  /** Lets the in-use state go once it holds nothing. */
  protected releaseInUse(): void {
    if (this.inUse?.isEmpty()) this.inUse = undefined;
  }

  /**
   * The broker refused the QoS 2 PUBLISH with this packet id (PUBREC ≥ 0x80, or a 3.1.1 client cut off
   * for it): it was delivered to nobody, and the id is free for the client to reuse [MQTT-4.3.3].
   */
  refuseInbound(packetId: number): void {
    if (!this.awaitingRelease.delete(packetId)) return;
    this.heldFlow()?.recordsToWrite()?.awaitingRelease(packetId, false);
  }

  /** A message routed to this client. */
  deliver(delivery: Delivery, writable: boolean, now: number): Effect[] {
    const out = new EffectList();
    this.deliverInto(delivery, writable, now, out);
    return out.effects;
  }

  /**
   * {@link deliver} into the caller's sink (the broker's hot path: the client's connection itself). True
   * when the message went to `out` now, not to the queue.
   */
  deliverInto(delivery: Delivery, writable: boolean, now: number, out: EffectSink): boolean {
    const flow = this.#flow;
    if (flow instanceof OutboundFlow) return flow.deliver(delivery, writable, now, out);
    if (flow !== undefined && this.inUse?.attachment === undefined) {
      storePagedOut(flow, delivery, now, this.limits, this.shared.drops);
      return false;
    }
    return this.outbound.deliver(delivery, writable, now, out);
  }

  /**
   * A message the broker holds back for a moment (behind an older retained message of its topic still being
   * read from the store) is stored now as queued, so that the publisher's acknowledgement, which waits for
   * this turn's writes, never covers a message only memory has; delivered later, its entry is updated in
   * place. QoS 0 is not kept, as for a connected client.
   */
  storeHeld(delivery: Delivery): void {
    const qos = deliveryQos(delivery);
    if (qos > 0) {
      this.outbound.deliveryRecords()?.saveDelivery(delivery, qos, "queued");
    }
  }

  /**
   * A message {@link storeHeld} stored is let go to the client: its entry moves behind the ones stored
   * meanwhile (the retained message it waited for among them), so that storage, read back after the client
   * leaves or after a restart, has them in the order the client is sent them.
   */
  releaseHeld(delivery: Delivery): void {
    const qos = deliveryQos(delivery);
    if (qos > 0) this.outbound.deliveryRecords()?.requeueDelivery(delivery, qos);
  }

  /**
   * One packet from the client. Protocol violations come back as a `close` effect carrying the
   * reason code (the connection sends DISCONNECT at v5 and closes the socket).
   */
  handleIn(packet: Packet, now: number): SessionEffect[] {
    const out: SessionEffect[] = [];
    return this.handleInto(packet, now, out, new EffectList(out as Effect[]));
  }

  /**
   * {@link handleIn} appending to the caller's list, which it returns. What the server-to-client flow makes
   * (PUBLISHes the acknowledgement lets out of the queue, PUBREL) goes to `sink`, which may be the client's
   * connection, or a list sink on `out`.
   */
  handleInto(packet: Packet, now: number, out: SessionEffect[], sink: EffectSink): SessionEffect[] {
    try {
      this.handle(packet, now, out, sink);
    } catch (error) {
      if (!(error instanceof MqttError)) throw error;
      out.push(closeFor(error));
    }
    return out;
  }

  private handle(packet: Packet, now: number, out: SessionEffect[], sink: EffectSink): void {
    switch (packet.type) {
      case "publish":
        return this.publish(packet, now, out);
      case "puback":
        return this.outbound.acknowledge(packet.packetId, now, sink);
      case "pubrec":
        return this.outbound.received(packet.packetId, packet.reasonCode, now, sink);
      case "pubcomp":
        return this.outbound.completed(packet.packetId, now, sink);
      case "pubrel": {
        const known = this.awaitingRelease.delete(packet.packetId);
        if (known) {
          this.heldFlow()?.recordsToWrite()?.awaitingRelease(packet.packetId, false);
        }
        out.push({
          kind: "send",
          packet: {
            type: "pubcomp",
            packetId: packet.packetId,
            reasonCode: known ? 0 : ReasonCode.PacketIdentifierNotFound,
            properties: {},
          },
        });
        return;
      }
      case "subscribe":
        return this.subscribe(packet, out);
      case "unsubscribe":
        return this.unsubscribe(packet, out);
      case "pingreq":
        out.push({ kind: "send", packet: { type: "pingresp" } });
        return;
      case "disconnect":
        return this.disconnect(packet, out);
      case "connect":
        throw new MqttError(ReasonCode.ProtocolError, "second CONNECT", "[MQTT-3.1.0-2]");
      default:
        throw new MqttError(ReasonCode.ProtocolError, `a client may not send ${packet.type.toUpperCase()}`);
    }
  }

  private publish(packet: PublishPacket, now: number, out: SessionEffect[]): void {
    const message = this.acceptPublish(packet, now, out);
    if (message !== undefined) out.push({ kind: "publish", message, ack: publishAck(packet) });
  }

  /**
   * {@link handleInto} for a PUBLISH, without the publish effect: the message to route (its acknowledgement
   * is {@link publishAck}'s), or undefined when it is not routed, its answer (a refusal, the PUBREC of a
   * resent QoS 2 PUBLISH, a close for a protocol violation) in `out`. The broker's path: one object less
   * per message.
   */
  acceptPublishInto(packet: PublishPacket, now: number, out: SessionEffect[]): Message | undefined {
    try {
      return this.acceptPublish(packet, now, out);
    } catch (error) {
      if (!(error instanceof MqttError)) throw error;
      out.push(closeFor(error));
      return undefined;
    }
  }

  private acceptPublish(packet: PublishPacket, now: number, out: SessionEffect[]): Message | undefined {
    const version = this.attachment!.protocolVersion;
    if (packet.properties.subscriptionIdentifiers !== undefined) {
      throw new MqttError(
        ReasonCode.ProtocolError,
        "a PUBLISH from a client carries a Subscription Identifier",
        "[MQTT-3.3.4-6]",
      );
    }
    const topic = this.resolveTopic(packet);
    if (packet.qos > this.limits.maxQos) {
      throw new MqttError(
        ReasonCode.QoSNotSupported,
        `QoS ${packet.qos} is not supported`,
        "[MQTT-3.2.2-11]",
      );
    }
    const responseTopic = packet.properties.responseTopic;
    if (responseTopic !== undefined && hasWildcard(responseTopic)) {
      throw new MqttError(ReasonCode.ProtocolError, "wildcards in the Response Topic", "[MQTT-3.3.2-14]");
    }
    if (packet.retain && !this.limits.retainAvailable) {
      throw new MqttError(ReasonCode.RetainNotSupported, "retain is not supported", "[MQTT-3.2.2-14]");
    }
    if (packet.qos === 2 && this.awaitingRelease.has(packet.packetId!)) {
      // A resend before PUBREL: acknowledge again, deliver nothing [MQTT-4.3.3-10].
      out.push({
        kind: "send",
        packet: { type: "pubrec", packetId: packet.packetId!, reasonCode: 0, properties: NO_PROPERTIES },
      });
      return undefined;
    }
    // Every protocol level: a 3.1.1 client never hears our Receive Maximum, but may not pile up ids either.
    if (packet.qos === 2 && this.awaitingRelease.size >= this.limits.receiveMaximum) {
      throw new MqttError(
        ReasonCode.ReceiveMaximumExceeded,
        "more QoS 2 messages than Receive Maximum",
        "[MQTT-3.3.4-9]",
      );
    }
    if (this.attachment!.permissions?.canPublish(topic) === false) {
      this.refusePublish(packet, version, out);
      return undefined;
    }
    if (packet.qos === 2) this.awaitRelease(packet.packetId!);
    return toMessage(packet, topic, this.clientId, now);
  }

  /**
   * An unauthorized PUBLISH is not routed. v5 acks it with 0x87; 3.1.1 cannot say no, so it acks
   * normally and drops the message, as the spec allows [MQTT-3.3.5-2].
   */
  private refusePublish(packet: PublishPacket, version: number, out: SessionEffect[]): void {
    if (packet.qos === 0) return;
    const reasonCode = version === 5 ? ReasonCode.NotAuthorized : 0;
    if (packet.qos === 2 && reasonCode === 0) this.awaitRelease(packet.packetId!);
    const type = packet.qos === 1 ? "puback" : "pubrec";
    out.push({ kind: "send", packet: { type, packetId: packet.packetId!, reasonCode, properties: {} } });
  }

  private awaitRelease(packetId: number): void {
    this.awaitingRelease.add(packetId);
    this.heldFlow()?.recordsToWrite()?.awaitingRelease(packetId, true);
  }

  /** Applies an inbound Topic Alias [MQTT-3.3.2-12] and validates the resulting topic name. */
  private resolveTopic(packet: PublishPacket): string {
    const alias = packet.properties.topicAlias;
    let topic = packet.topic;
    if (alias !== undefined) {
      if (alias === 0 || alias > this.limits.maxTopicAlias) {
        throw new MqttError(
          ReasonCode.TopicAliasInvalid,
          `topic alias ${alias} out of range`,
          "[MQTT-3.3.2-9]",
        );
      }
      if (topic === "") {
        const known = this.inUse!.inboundAliases?.get(alias);
        if (known === undefined) {
          throw new MqttError(ReasonCode.ProtocolError, `unknown topic alias ${alias}`);
        }
        topic = known;
      } else {
        (this.inUse!.inboundAliases ??= new Map()).set(alias, topic);
      }
    } else if (topic === "") {
      throw new MqttError(ReasonCode.ProtocolError, "empty topic without a topic alias", "[MQTT-3.3.2-1]");
    }
    // A client publishes to the same topic again and again: check each new one once.
    const inUse = this.inUse!;
    if (topic !== inUse.validTopic) {
      validateTopicName(topic, this.limits.maxTopicLevels);
      inUse.validTopic = topic;
    }
    return topic;
  }

  private subscribe(packet: SubscribePacket, out: SessionEffect[]): void {
    const version = this.attachment!.protocolVersion;
    if (version < 5) refuseEmptyFilters(packet.subscriptions.map((requested) => requested.topicFilter));
    const subscriptionIdentifier = packet.properties.subscriptionIdentifiers?.[0];
    if (subscriptionIdentifier !== undefined && !this.limits.subscriptionIdentifiersAvailable) {
      throw new MqttError(
        ReasonCode.SubscriptionIdentifiersNotSupported,
        "subscription identifiers are not supported",
      );
    }
    const accepted: AcceptedSubscription[] = [];
    const reasonCodes: number[] = [];
    for (const requested of packet.subscriptions) {
      const code = this.checkFilter(requested.topicFilter, requested.noLocal);
      if (code !== 0) {
        reasonCodes.push(version === 5 ? code : 0x80);
        continue;
      }
      const qos = (requested.qos < this.limits.maxQos ? requested.qos : this.limits.maxQos) as QoS;
      // Every field written out, in the order a subscription read back from storage has them: one object
      // shape for all, and all in the object (a spread's object keeps the last two in a separate store, 40 B).
      const subscription: SessionSubscription = {
        topicFilter: requested.topicFilter,
        qos,
        noLocal: requested.noLocal,
        retainAsPublished: requested.retainAsPublished,
        retainHandling: requested.retainHandling,
        subscriptionIdentifier,
      };
      const isNew = this.subscription(requested.topicFilter) === undefined;
      this.setSubscription(subscription);
      accepted.push({ subscription, isNew });
      reasonCodes.push(qos);
    }
    out.push({
      kind: "subscribe",
      accepted,
      suback: { type: "suback", packetId: packet.packetId, reasonCodes, properties: {} },
    });
  }

  /** 0 when the filter may be subscribed, else the v5 reason code refusing it. */
  private checkFilter(filter: string, noLocal: boolean): number {
    let inner = filter;
    try {
      const shared = parseSharedFilter(filter, this.limits.maxTopicLevels);
      if (shared) {
        if (!this.limits.sharedSubscriptionAvailable) return ReasonCode.SharedSubscriptionsNotSupported;
        if (noLocal) {
          throw new MqttError(
            ReasonCode.ProtocolError,
            "No Local on a shared subscription",
            "[MQTT-3.8.3-4]",
          );
        }
        inner = shared.filter;
      } else {
        validateTopicFilter(filter, this.limits.maxTopicLevels);
      }
    } catch (error) {
      if (error instanceof MqttError && error.reasonCode === ReasonCode.TopicFilterInvalid) {
        return ReasonCode.TopicFilterInvalid;
      }
      throw error;
    }
    if (this.attachment!.permissions?.canSubscribe(filter) === false) return ReasonCode.NotAuthorized;
    if (!this.limits.wildcardSubscriptionAvailable && hasWildcard(inner)) {
      return ReasonCode.WildcardSubscriptionsNotSupported;
    }
    const max = this.limits.maxSubscriptionsPerClient;
    if (max > 0 && this.subscriptionCount >= max && this.subscription(filter) === undefined) {
      return ReasonCode.QuotaExceeded;
    }
    return 0;
  }

  private unsubscribe(packet: UnsubscribePacket, out: SessionEffect[]): void {
    const version = this.attachment!.protocolVersion;
    if (version < 5) refuseEmptyFilters(packet.topicFilters);
    const removed: SessionSubscription[] = [];
    const reasonCodes: number[] = [];
    for (const filter of packet.topicFilters) {
      const existing = this.subscription(filter);
      if (existing) {
        this.deleteSubscription(filter);
        removed.push(existing);
      }
      reasonCodes.push(existing ? 0 : ReasonCode.NoSubscriptionExisted);
    }
    out.push({
      kind: "unsubscribe",
      removed,
      unsuback: {
        type: "unsuback",
        packetId: packet.packetId,
        reasonCodes: version === 5 ? reasonCodes : [],
        properties: {},
      },
    });
  }

  private disconnect(packet: DisconnectPacket, out: SessionEffect[]): void {
    const requested = packet.properties.sessionExpiryInterval;
    if (requested !== undefined && requested !== 0 && this.attachment!.sessionExpiryInterval === 0) {
      throw new MqttError(
        ReasonCode.ProtocolError,
        "Session Expiry Interval set on DISCONNECT after 0 on CONNECT",
        "[MQTT-3.14.2-2]",
      );
    }
    out.push({
      kind: "close",
      reasonCode: 0,
      notify: false,
      publishWill: packet.reasonCode === ReasonCode.DisconnectWithWillMessage,
      sessionExpiryInterval: requested,
    });
  }
}

/**
 * MQTT 3.1.1 has no reason code to refuse an empty Topic Filter, and one breaks [MQTT-4.7.3-1]: a protocol
 * violation, which closes the connection [MQTT-4.8.0-1]. (MQTT 5 refuses it per filter with 0x8F.)
 * Checked before anything of the packet is applied.
 */
function refuseEmptyFilters(filters: string[]): void {
  if (filters.includes("")) {
    throw new MqttError(ReasonCode.MalformedPacket, "empty topic filter", "[MQTT-4.7.3-1]");
  }
}

/** The answer to a protocol violation: DISCONNECT with its reason (at v5), then close; the will goes out. */
function closeFor(error: MqttError): SessionEffect {
  return {
    kind: "close",
    reasonCode: error.reasonCode,
    reasonString: error.message,
    notify: true,
    publishWill: true,
  };
}

/**
 * The acknowledgement of a PUBLISH accepted for routing (none at QoS 0), for the broker to send once it is
 * routed and stored.
 */
export function publishAck(packet: PublishPacket): AckEffect | undefined {
  if (packet.qos === 0) return undefined;
  const type = packet.qos === 1 ? "puback" : "pubrec";
  return { kind: "ack", type, packetId: packet.packetId!, reasonCode: 0, durable: undefined };
}

/**
 * Gives a message that reaches more than one client a view of its own frame (see Message.frameBytes): each
 * copy of it to a client then reads that view whole, where a view of the shared buffer would need a view
 * of the frame per copy. A message reaching one client keeps no view of its own: it would live until the
 * client acknowledged, copied by every young-generation collection meanwhile.
 */
export function shareFrame(message: Message): void {
  const bytes = message.frameBytes;
  const start = message.frameStart;
  if (bytes === undefined || start === undefined) return;
  const length = publishFrameLength(bytes, start);
  if (start === 0 && length === bytes.length) return; // its own already
  message.frameBytes = bytes.subarray(start, start + length);
  message.frameStart = 0;
}

/**
 * Strips the per-hop Topic Alias and converts Message Expiry Interval to an absolute deadline. (A client's
 * PUBLISH never reaches here with Subscription Identifiers: they are refused [MQTT-3.3.4-6].) A message
 * whose topic and properties are the frame's keeps the frame for forwarding (see FramedMessage).
 */
function toMessage(packet: PublishPacket, topic: string, publisherId: string, now: number): Message {
  let properties = packet.properties;
  if (properties.topicAlias !== undefined) {
    properties = { ...properties };
    delete properties.topicAlias;
  }
  const { qos, retain } = packet;
  const expiry = properties.messageExpiryInterval;
  const expiresAt = expiry === undefined ? undefined : now + expiry * 1000;
  if (properties === packet.properties && topic === packet.topic) {
    if (packet instanceof DecodedPublish) {
      const { frameBytes, frameStart, payloadOffset } = packet;
      const level = packet.frameLevel;
      return new FramedMessage(
        topic,
        qos,
        retain,
        properties,
        frameBytes,
        frameStart,
        level,
        publisherId,
        expiresAt,
        payloadOffset,
      );
    }
    const { frame, payload } = packet;
    const level = frame === undefined ? undefined : frameLevel(frame, publishTopicEnd(frame), payload);
    if (level !== undefined) {
      const offset = payload.byteOffset - frame!.byteOffset;
      const bytes = wholeBufferView(frame!);
      return new FramedMessage(
        topic,
        qos,
        retain,
        properties,
        bytes,
        frame!.byteOffset,
        level,
        publisherId,
        expiresAt,
        offset,
      );
    }
  }
  return { topic, payload: packet.payload, qos, retain, properties, publisherId, expiresAt };
}
