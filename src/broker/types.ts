/** The broker's contracts with the parts around it: connections, a cluster, and its configuration. */
import type { Packet, Will } from "../codec/types.ts";
import type { Session } from "../session/session.ts";
import type {
  Attachment,
  DropCounts,
  Effect,
  EffectSink,
  Message,
  Permissions,
  SessionLimits,
  SessionSubscription,
} from "../session/types.ts";
import type { StorageAdapter } from "../storage/port.ts";
import type { Clock } from "./clock.ts";
import type { MemoryBudget } from "./memory_budget.ts";
import type { SessionEntry } from "./session_entry.ts";
import type { RetainedLimits } from "./retained.ts";
import type { SessionQuotaLimits } from "./session_quota.ts";

/**
 * The broker's handle on a connected client's actor. As an EffectSink it runs each effect at once: routed
 * deliveries, and what the client's acknowledgements let out of its queue, come that way.
 */
export interface SessionLink extends EffectSink {
  /**
   * Runs effects produced for this client by someone else's packet (retained messages, a resume).
   * The list is the caller's and is reused after the call: keep the effects, not the list.
   */
  run(effects: Effect[]): void;
  /** False while the socket is backed up; QoS 0 deliveries are then dropped instead of buffered. */
  readonly writable: boolean;
  /** Bytes the socket's output may still take (mqtt.max_outbound_bytes); absent = unbounded. */
  readonly room?: number;
  /** Ends the connection because a new one took its session [MQTT-3.1.4-3]. */
  takeOver(): void;
  /**
   * Calls `callback` once, when everything sent so far is written and the socket takes more (not if the
   * connection ends first): for what waits on room rather than on the client's acknowledgements.
   */
  whenDrained(callback: () => void): void;
}

/**
 * Where messages published on this node leave it for other nodes (a cluster implements it). With an
 * egress, a publish reaches this node's transient sessions at once and everything else when the message
 * comes back through `Broker.deliverRemote`, on every node in the same order.
 */
export interface Egress {
  /**
   * Sends a message published here to the cluster; resolves once the cluster holds it durably. Undefined
   * when no other node and no persistent session needs it.
   */
  forward(message: Message): Promise<void> | undefined;
  /**
   * A transient session joins or leaves a `$share` group. Every node must see the group's members in the
   * same order to pick the same one, so the membership takes effect through `Broker.applyShare`.
   */
  share(clientId: string, epoch: number, subscription: SessionSubscription, added: boolean): void;
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
  /** Caps on retained messages (default: none). */
  retainedLimits?: RetainedLimits;
  /**
   * Retained payloads stay in the store and are read when a SUBSCRIBE matches them (see RetainedService);
   * for a durable store on a single node. Default: kept in memory.
   */
  retainedPayloadsInStore?: boolean;
  /**
   * Persistent sessions' queues are written to the store, and an absent client's queue lives there alone,
   * read back a page at a time when it returns (default). False for a store that keeps nothing across a
   * restart (the memory store, on a single node): writing each delivery there would only copy what the
   * session's memory holds anyway, so the sessions keep their queues, connected or not, and the store sees
   * no write per delivery.
   */
  queuesInStore?: boolean;
  /** Caps on sessions, in all and per owner (default: none). */
  sessionQuota?: SessionQuotaLimits;
  /** While it is over, client PUBLISHes are not taken (QoS 0 dropped, QoS 1/2 refused with 0x97). */
  memoryBudget?: MemoryBudget;
  clock?: Clock;
  egress?: Egress;
  /**
   * Called when a session timer is due instead of acting at once: a cluster appends it to its log and
   * calls `Broker.fire` when every node applies it. Default: fire at once.
   */
  onTimer?: (timer: SessionTimer, clientId: string, epoch: number) => void;
  /**
   * Asked when a will is about to be published, with the owner of the session that set it (undefined for a
   * session stored before owners were recorded): the rules may have changed since its CONNECT. Absent = allowed.
   */
  authorizeWill?: (clientId: string, owner: string | undefined, will: Will) => boolean;
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
  /**
   * Who authenticated (an opaque key, the same for the same user). A session owned by someone else is
   * not resumed: this CONNECT gets a fresh one, as with Clean Start.
   */
  owner?: string;
  /**
   * The client's IP address, for the per-address cap on persistent sessions: needed only while that cap
   * is set ({@link SessionService.needsAddress}).
   */
  address?: string;
  /** The claim's epoch when a cluster decided it (its place in the log); otherwise the registry picks one. */
  epoch?: number;
  /** In a cluster: the node (and run) the client is connected to. */
  holder?: string;
}

/** A connection's hold on its session: whatever it sends with an epoch that is no longer current is refused. */
export interface SessionHandle {
  readonly session: Session;
  readonly epoch: number;
  /**
   * The registry entry the claim gave, for the broker to check the epoch against without a lookup by
   * client id (a handle made for a cluster's log replay has none).
   */
  readonly entry?: SessionEntry;
}

/** A claimed session: the connection's handle on it, and the resume to run after CONNACK. */
export interface OpenResult extends SessionHandle {
  sessionPresent: boolean;
  /** Unacknowledged deliveries re-sent and queued ones drained, to run after the CONNACK. */
  effects: Effect[];
}

/** What connections ask of the broker (a cluster node offers the same). */
export interface SessionService {
  /**
   * Claims the session of a CONNECT. The result may come as it is, not in a promise, when nothing had to
   * wait (see {@link SessionRegistry.open}); a refusal (MqttError) is then thrown at once.
   */
  open(request: OpenRequest): OpenResult | Promise<OpenResult>;
  /**
   * What the connection must do for one packet of its client, in order. With `out` (an empty list the
   * connection keeps and empties after running it) the effects may be appended there instead of to a new
   * list; either way the returned list is the one to run. `now`: the time of {@link now}, read once for all
   * the packets of one read (reading the clock costs about 0.1 µs, a few times per message otherwise).
   */
  receive(handle: SessionHandle, packet: Packet, out?: Effect[], now?: number): Effect[];
  /** The broker's time (ms since the epoch), as its clock gives it. */
  now(): number;
  close(handle: SessionHandle, publishWill: boolean, sessionExpiryInterval?: number): void;
  /**
   * The connection sent the CONNACK and ran the open result's effects: a queue read back from storage may
   * want its next page already (see {@link SessionRegistry.pageOn}).
   */
  connected(handle: SessionHandle): void;
  flush(): Promise<void> | undefined;
  /** Who owns the client id's session and whether its client is connected; undefined when there is none. */
  owner(clientId: string): { owner?: string; connected: boolean } | undefined;
  /**
   * Whether a request for a session with this Session Expiry Interval needs its `address`: a persistent
   * one while a cap on persistent sessions per address is set.
   */
  needsAddress(sessionExpiryInterval: number): boolean;
}

/** Broker-wide counters, read by $SYS and /metrics. */
export interface BrokerStats {
  messagesReceived: number;
  messagesSent: number;
  /** Messages not delivered, by reason, over all sessions. */
  drops: DropCounts;
  connectedClients: number;
  /** Client connections taken since start (each CONNECT that was accepted). */
  connectsAccepted: number;
  /** Retained messages not retained because the retained store was full (QoS 0: still delivered). */
  retainedRefused: number;
}
