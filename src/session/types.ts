import type {
  FrameLevel,
  Packet,
  Properties,
  ProtocolVersion,
  QoS,
  SubackPacket,
  Subscription,
  UnsubackPacket,
} from "../codec/types.ts";

/** An application message as the broker routes and stores it. */
export interface Message {
  topic: string;
  /**
   * A message made from a client's PUBLISH reads it from its frame (see FramedMessage), a view made each
   * time: where only its size is needed, ask payloadSize.
   */
  payload: Uint8Array;
  qos: QoS;
  retain: boolean;
  /** v5 publish properties without the per-hop ones (topic alias, subscription identifiers). */
  properties: Properties;
  /**
   * The frame of the decoded PUBLISH it came from (same topic and properties, the payload its tail), for
   * forwarding its bytes without re-encoding: it starts at `frameStart` of `frameBytes`, a view of the whole
   * buffer the decoder read it into, which the messages decoded from that buffer share (see
   * wholeBufferView), or a view of the frame alone once the message reaches several clients (see
   * shareFrame); it is laid out for `frameLevel`. All three are set together. A copy of a message with
   * another payload has no frame (see withoutFrame): the frame is forwarded as the message's bytes.
   */
  frameBytes?: Uint8Array;
  frameStart?: number;
  frameLevel?: FrameLevel;
  /** Client id of the publisher ("" for messages the broker makes, such as $SYS). */
  publisherId: string;
  /** Absolute expiry in ms since the epoch (Message Expiry Interval), if any. */
  expiresAt?: number;
  /**
   * Where the message entered the broker, when it entered through a cluster: the node, its run and its
   * place in that run's sequence, so a message seen twice (a retried send) or coming back to the node
   * that published it is recognised.
   */
  origin?: MessageOrigin;
}

/** The node a message was published on and its place in that node's sequence. */
export interface MessageOrigin {
  nodeId: string;
  /** The node's run (its start time): sequences restart with each run. */
  run: number;
  sequence: number;
}

/**
 * What the router decided for one subscriber of one message. Sessions may share one (the router gives the
 * same delivery to every transient session a message reaches through a subscription with the same options),
 * so a session never changes a delivery it was given, but for its own (a persistent session's: storage
 * writes `storedRef`; one read back from storage: `ownsPayload`).
 */
export interface Delivery {
  message: Message;
  /** The subscription's maximum QoS; the message goes out at min(message.qos, grantedQos). */
  grantedQos: QoS;
  /** RETAIN flag to send (retained-on-subscribe, or Retain As Published). */
  retain: boolean;
  subscriptionIdentifiers?: number[];
  /** Where the broker stored this delivery's message (its persistence sets it; opaque here). */
  storedRef?: number;
  /**
   * True when the message was made for this delivery alone (read back from storage) and its payload is a
   * buffer nothing else refers to: once the delivery ends (acknowledged), the session gives that memory
   * back at once instead of leaving it to V8's next full collection.
   */
  ownsPayload?: boolean;
}

/** A subscription held by a session. `filter` is the full filter, `$share/...` included. */
/**
 * A subscription a session holds. Whether it is shared, and its group and inner filter, are its filter's
 * (isSharedFilter, parseSharedFilter in topic/), read where needed rather than kept in a field of every
 * subscription (8 B each, and a broker may hold millions).
 */
export interface SessionSubscription extends Subscription {
  subscriptionIdentifier?: number;
}

/** A subscription request accepted by the session, for the broker to add to the router. */
export interface AcceptedSubscription {
  subscription: SessionSubscription;
  /** False when it replaced an existing subscription with the same filter. */
  isNew: boolean;
}

/**
 * What a connection actor runs for its client, in order. The session produces them for routed messages
 * and resumes; the broker adds acknowledgements tied to storage. Nothing here touches a socket.
 */
export type Effect =
  /** Encode and send a control packet. */
  | { kind: "send"; packet: Packet }
  /** Send an application message to this client (encoded from the message's frame where possible). */
  | {
    kind: "deliver";
    message: Message;
    qos: QoS;
    packetId?: number;
    dup: boolean;
    retain: boolean;
    properties: Properties;
    /** Empty string when a topic alias replaces the topic. */
    topic: string;
  }
  | AckEffect
  /** End the connection. At v5, a DISCONNECT with this reason is sent first when `notify` is set. */
  | {
    kind: "close";
    reasonCode: number;
    reasonString?: string;
    notify: boolean;
    /** False after a normal DISCONNECT (reason 0x00): the will is discarded [MQTT-3.1.2-10]. */
    publishWill: boolean;
    /** A new Session Expiry Interval set by the client's DISCONNECT. */
    sessionExpiryInterval?: number;
  };

/**
 * Where a session puts the effects it makes for its client, in order: a list that someone runs later
 * ({@link EffectList}), or the client's connection, which runs each at once. An application message comes
 * field by field, as the fields of a "deliver" effect: a routed message reaches every subscriber through
 * here, and an effect object per delivery was a large share of a QoS 1 message's garbage.
 */
export interface EffectSink {
  push(effect: Effect): void;
  deliver(
    message: Message,
    qos: QoS,
    packetId: number | undefined,
    dup: boolean,
    retain: boolean,
    properties: Properties,
    topic: string,
  ): void;
}

/**
 * Send a PUBACK/PUBREC once `durable` resolves (what the PUBLISH changed is stored), in the order the
 * PUBLISHes came; if it rejects, the publisher hears the storage error instead. The packet's fields are the
 * effect's own (it has no properties): one object per QoS 1/2 PUBLISH, not an effect and a packet.
 */
export interface AckEffect {
  kind: "ack";
  type: "puback" | "pubrec";
  packetId: number;
  reasonCode: number;
  durable: Promise<void> | undefined;
}

/** What a client's packet asks of the broker besides its connection's effects; the broker runs these. */
export type SessionEffect =
  | Effect
  /**
   * Route an inbound message to subscribers, then send `ack` (PUBACK/PUBREC) if any: the broker sets its
   * `durable` and runs it in this effect's place. At v5 the ack's reason becomes 0x10 when no subscriber
   * matched.
   */
  | { kind: "publish"; message: Message; ack?: AckEffect }
  /** Add subscriptions to the router, send the SUBACK, then deliver retained messages per Retain Handling. */
  | { kind: "subscribe"; accepted: AcceptedSubscription[]; suback: SubackPacket }
  /** Remove subscriptions from the router, then send the UNSUBACK. */
  | { kind: "unsubscribe"; removed: SessionSubscription[]; unsuback: UnsubackPacket };

/** Limits and features the broker grants every session (from the config). */
export interface SessionLimits {
  maxInflight: number;
  receiveMaximum: number;
  maxQueuedMessages: number;
  maxQueuedBytes: number;
  queueDropPolicy: "drop_oldest" | "drop_newest";
  queueQos0Offline: boolean;
  maxTopicAlias: number;
  maxSubscriptionsPerClient: number;
  maxTopicLevels: number;
  maxQos: QoS;
  retainAvailable: boolean;
  wildcardSubscriptionAvailable: boolean;
  subscriptionIdentifiersAvailable: boolean;
  sharedSubscriptionAvailable: boolean;
}

/** The connection-scoped facts a session needs while a client is attached. */
export interface Attachment {
  protocolVersion: ProtocolVersion;
  /** Client's Receive Maximum (v5; 65535 when absent). */
  receiveMaximum: number;
  /** Client's Maximum Packet Size (v5), if it set one. */
  maximumPacketSize?: number;
  /** Client's Topic Alias Maximum (v5; 0 when absent). */
  topicAliasMaximum: number;
  /** Session Expiry Interval from CONNECT (seconds), used to check the one in DISCONNECT. */
  sessionExpiryInterval: number;
  /** Whether the client asked for reason strings / user properties on errors (v5 Request Problem Information). */
  requestProblemInformation: boolean;
  /** What this client's identity may do; absent = everything. */
  permissions?: Permissions;
}

/** Access rules bound to one client identity (from the ACL). */
export interface Permissions {
  canPublish(topic: string): boolean;
  canSubscribe(topicFilter: string): boolean;
  /**
   * Whether a message on this topic may go to the client, asked as each PUBLISH is built for it (live,
   * queued, resent after a resume, retained): absent = everything (no ACL, nothing to pay).
   */
  canReceive?(topic: string): boolean;
}

/** Counters a session reports about messages it did not deliver. */
export interface DropCounts {
  queueFull: number;
  expired: number;
  tooLarge: number;
  qos0Offline: number;
  slowConsumer: number;
  /** The ACL no longer lets the client read the topic (reloaded rules, a deny within a wildcard). */
  notAuthorized: number;
}

/**
 * Where a persistent session's durable changes go when the broker takes them (Session.takeRecords), one
 * call per change, in order: the session collects them while it runs (SessionRecords) and the broker
 * writes them to storage. Only QoS 1/2 deliveries are recorded: QoS 0 is at most once.
 */
export interface RecordSink {
  /** A delivery entered the queue, or was sent (`packetId`), or its PUBREL was sent (`released`). */
  saveDelivery(
    clientId: string,
    delivery: Delivery,
    qos: QoS,
    stage: DeliveryStage,
    packetId: number | undefined,
  ): void;
  /** A delivery is finished (acknowledged, expired or dropped). */
  deleteDelivery(clientId: string, delivery: Delivery): void;
  /**
   * A delivery stored ahead of its turn (see Session.storeHeld) takes its turn: stored again at the
   * queue's tail, as a message of its own, and its first entry deleted.
   */
  requeueDelivery(clientId: string, delivery: Delivery, qos: QoS): void;
  /** The oldest delivery still waiting in storage is dropped to make room (the session is paged out). */
  dropOldestStored(clientId: string): void;
  /** Inbound QoS 2 packet id received (`waiting`) or released. */
  awaitingRelease(clientId: string, packetId: number, waiting: boolean): void;
}

/** Where a QoS 1/2 delivery stands: waiting in the queue, PUBLISH sent, or PUBREL sent (QoS 2). */
export type DeliveryStage = "queued" | "sent" | "released";

/**
 * A session's whole state as plain data, independent of any connection: what moves when a session moves
 * to another node, and what a restart rebuilds it from. Deliveries are in order: in flight first (by the
 * order they were sent), then queued.
 */
export interface SessionState {
  clientId: string;
  /** Seconds; 0xFFFFFFFF never expires. */
  expiryInterval: number;
  subscriptions: SessionSubscription[];
  inflight: { packetId: number; delivery: Delivery; qos: QoS; stage: "sent" | "released" }[];
  queue: { delivery: Delivery; qos: QoS }[];
  /** Inbound QoS 2 packet ids received and not yet released. */
  awaitingRelease: number[];
  /** The next outbound packet id to try. */
  nextPacketId: number;
}
