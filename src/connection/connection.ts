import { setImmediate } from "node:timers";
import {
  addressOf,
  empty,
  type OpenResult,
  type SessionEntry,
  type SessionHandle,
  type SessionLink,
  sessionOwner,
  type SessionService,
} from "../broker/mod.ts";
import {
  type AckPacket,
  connackCodeForV3,
  Decoder,
  encode,
  encodePublish,
  forwardableAt,
  hasProperties,
  MqttError,
  type Packet,
  type Properties,
  type ProtocolVersion,
  publishFrameLength,
  type QoS,
  ReasonCode,
  UnsupportedProtocolError,
  writeForwarded,
} from "../codec/mod.ts";
import type { Authenticator, Authorizer, EnhancedAuthMethod } from "../auth/port.ts";
import { type Logger, type LogLevel, logsAt } from "../observe/mod.ts";
import type { TrafficMetrics } from "../observe/metrics.ts";
import {
  type AckEffect,
  authWithoutMethod,
  type ConnectSettings,
  type Effect,
  Handshake,
  type HandshakeStep,
  type Message,
  type Permissions,
  type Session,
} from "../session/mod.ts";
import { StorageError } from "../storage/port.ts";
import type { Accepted } from "../transport/mod.ts";
import {
  type Admission,
  admit,
  clientPermissions,
  type DenialListener,
  mayPublishWithoutAcl,
  RateLimitedLog,
  type TakeoverPolicy,
} from "./access.ts";
import type { BufferPool } from "./buffer_pool.ts";
import { LINGER_MS, settlesWithin } from "./closing.ts";
import type { Outbox, OutboxOwner, OutboxPool } from "./outbox.ts";
import { ackPacketId, ackReasonCode, ackType, WaitingAcks } from "./waiting_acks.ts";
import type { ListenerCounts } from "./server.ts";

/** What an operator sees of a connected client: logs and the admin API. */
export interface ClientConnectionInfo {
  clientId: string;
  /** The authenticated user name, if any. */
  username?: string;
  remoteAddress: string;
  listener: string;
  protocolVersion: ProtocolVersion;
  /** ms since the epoch. */
  connectedAt: number;
  keepAlive: number;
  cleanStart: boolean;
  bytesReceived: number;
  bytesSent: number;
}

/** The protocol level as people write it. */
export function protocolName(version: ProtocolVersion): "3.1" | "3.1.1" | "5.0" {
  return version === 3 ? "3.1" : version === 4 ? "3.1.1" : "5.0";
}

/** Everything a connection actor needs from the server around it. */
export interface ConnectionContext {
  /** The broker, or the cluster node in front of it. */
  broker: SessionService;
  /** This broker's packet counters. */
  traffic: TrafficMetrics;
  settings: ConnectSettings;
  connectTimeoutMs: number;
  logger: Logger;
  /** Read buffers: large ones lent to busy connections, small slab views for idle ones. */
  readBuffers: BufferPool;
  /** Small buffers an outbox batches a turn's first frames into (then large ones, from readBuffers). */
  writeBuffers: BufferPool;
  /**
   * Bytes of encoded packets an outbox may hold (mqtt.max_outbound_bytes): past it QoS 0 deliveries are
   * dropped for this client, and QoS 1/2 ones wait unencoded (see `Connection.run`).
   */
  outboxHighWaterMark: number;
  generateClientId: () => string;
  /** Checks credentials at CONNECT; absent = everyone may connect. */
  authenticator?: Authenticator;
  /** Checks every PUBLISH and SUBSCRIBE; absent = everything allowed. */
  authorizer?: Authorizer;
  /** Enhanced authentication methods (v5 Authentication Method), by name. */
  authMethods?: ReadonlyMap<string, EnhancedAuthMethod>;
  /** Who may disconnect a connected client by reusing its client id; default same_user. */
  takeover?: TakeoverPolicy;
}

/** The context a manager gives its connections: one object for all of them, with what each calls at its end. */
export interface ManagedContext extends ConnectionContext {
  /** Called once when a connection's serve() ends, whatever ended it. */
  finished(connection: Connection): void;
  /** Outboxes idle connections let go, for the next that sends. */
  outboxes: OutboxPool;
  /**
   * Decoders that hold no bytes, for the next read of any connection: a read that ends with a whole packet
   * gives its decoder back (see {@link Connection} #decode), so a connect and disconnect makes none.
   */
  decoders: Decoder[];
}

// Bits of Connection's flags field; once set, a bit stays set.
/** No more input is processed; what still arrives is read and dropped (see closing.ts). */
const CLOSED = 1;
/** The session is back with the broker (will, expiry). */
const RELEASED = 2;
/** The socket is closed, and anything sent from now on is dropped. */
const FINISHED = 4;
/** The last packet is in the outbox: nothing may follow it [MQTT-3.14.4-1]. */
const FAREWELL_SENT = 8;
/** The reader saw the end of the client's input (or the socket failed). */
const INPUT_ENDED = 16;
/** CONNECT was accepted (and stays so after a takeover, for the disconnect log). */
const CONNECTED = 32;
/** The accepted CONNECT asked for a clean start. */
const CLEAN_START = 64;
/** The client sent DISCONNECT: it closes its side next, and the socket waits for that (closing.ts). */
const GOODBYE = 128;
/**
 * Half-closed (closing.ts): the socket is closed when the client's input ends, or by the sweep once the
 * linger has run out (see {@link Connection.checkDeadlines}), or at shutdown.
 */
const LINGERING = 256;
/** The server is stopping: a closing socket does not linger. */
const STOPPING = 512;

/** Deadlines are checked this often (by the manager): a keep alive of 1 s is enforced between 1.5 and 1.75 s. */
export const SWEEP_INTERVAL_MS = 250;
/** A lingering socket is closed at the first sweep this long after its half-close: at most LINGER_MS after it. */
const LINGER_SWEPT_AFTER_MS = LINGER_MS - SWEEP_INTERVAL_MS;

/**
 * Whole milliseconds since the process started, rounded up (a deadline is never early): V8 keeps a small
 * integer in the object's field itself, but puts a fractional or large number in a 16-byte box of its own,
 * one per connection and field. Small enough for the first 24 days of a process; a later time is boxed
 * again, and still right.
 */
function uptimeMs(): number {
  return Math.ceil(performance.now());
}

/** Connect times are kept as ms after this one (when the module loaded), small integers like uptimeMs(). */
const WALL_CLOCK_BASE = Date.now();

/**
 * The effects of the packet being handled, one list for every connection: a packet's effects are run, and
 * the list emptied, before any other packet is handled (see SessionLink.run).
 */
const PACKET_EFFECTS: Effect[] = [];

/** Idle decoders kept for the next reads: about the number of connections whose handshake waits at once. */
const MAX_FREE_DECODERS = 64;

/** The backlog of a connection with nothing waiting: shared, replaced by a list of its own before use. */
const NO_BACKLOG: never[] = [];

/** A QoS 2 PUBLISH or a PUBREL: sent only once the session state it implies is stored. */
function isExactlyOnce(effect: Effect): boolean {
  return (effect.kind === "deliver" && effect.qos === 2) ||
    (effect.kind === "send" && effect.packet.type === "pubrel");
}

const FLUSH_TIMEOUT_MS = 1000;

/** How a connection ends, once it does. */
interface Ending {
  /** Why, for the client.disconnected log line. */
  reason: string;
  /** The last packet (a DISCONNECT or refusing CONNACK), queued once the acknowledgements before it are. */
  farewell: Promise<void> | undefined;
  /** The close under way; serve() awaits it so that the manager tracks it to the end. */
  closed: Promise<void> | undefined;
}

function newEnding(): Ending {
  return { reason: "connection closed", farewell: undefined, closed: undefined };
}

/** A CONNECT let in by its handshake, on its way to its session. */
type Admitted = Extract<HandshakeStep, { kind: "admit" }>;

/** Log lines a client could flood the log with, one a second at most: made at the first of each. */
interface ThrottledLogs {
  /** A PUBLISH its permissions refused. */
  denied?: RateLimitedLog;
  /** An acknowledgement storage refused. */
  notStored?: RateLimitedLog;
}

/** Resolves after the event loop has polled I/O once (setTimeout(0) would wait a millisecond or more). */
function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
/** Acknowledgements without reason code or properties, by type: PUBACK, PUBREC, PUBREL, PUBCOMP. */
const ACK_FIRST_BYTES: Partial<Record<Packet["type"], number>> = {
  puback: 0x40,
  pubrec: 0x50,
  pubrel: 0x62,
  pubcomp: 0x70,
};

/**
 * The actor shell around one socket: reads frames through the incremental decoder, runs the session's
 * effects in order, enforces CONNECT timeout and keep alive, and is the one place where an error becomes
 * a CONNACK or DISCONNECT reason code and a closed socket.
 */
export class Connection implements SessionLink, SessionHandle, OutboxOwner, DenialListener, Permissions {
  /**
   * Outgoing bytes while there are any: taken from the manager's pool when the connection sends and given
   * back once all is written, so that an idle connection holds none.
   */
  #outbox: Outbox | undefined;
  /**
   * The yes/no states (CLOSED, RELEASED, ... above), one bit each in one field: an idle connection
   * must stay cheap, and a field costs 8 bytes.
   */
  #flags = 0;
  bytesSent = 0;
  /**
   * Made at a read and let go once it holds no bytes again (a new one goes on as it would): an idle
   * connection holds none.
   */
  #decoder: Decoder | undefined;
  #version: ProtocolVersion = 4;
  /**
   * The session this connection holds, once CONNECT succeeded; undefined again after a takeover. With
   * #epoch, the connection is its own SessionHandle (see {@link session}): no handle object per client.
   */
  #session: Session | undefined;
  /** The epoch of the claim that gave this connection its session (kept after a takeover). */
  #epoch = 0;
  /** The registry entry of that claim (see SessionHandle.entry; kept after a takeover, like #epoch). */
  #entry: SessionEntry | undefined;
  #keepAliveMs = 0;
  /** When the client last sent something (uptimeMs()); once the socket lingers, when it was half-closed. */
  #lastActivity = uptimeMs();
  /** Made by the last packet or the first close: a connection that is not ending holds none. */
  #ending: Ending | undefined;
  /**
   * CONNECT, AUTH and re-AUTH: made at the first packet, kept after the session opened only for a v5
   * enhanced method (re-authentication); null after that otherwise, so an idle connection holds none.
   */
  #handshakeState: Handshake | null | undefined;
  #throttledLogs: ThrottledLogs | undefined;
  /** The v5 client's Maximum Packet Size, once its CONNECT is read. */
  #clientMaximumPacketSize: number | undefined;
  /**
   * Acknowledgements waiting for storage or for an earlier one (see WaitingAcks), while any does: one wait per
   * storage batch rather than a chain of promises per PUBLISH, which lived until the fsync and were a fifth
   * of what a durable publish allocated.
   */
  #waitingAcks: WaitingAcks | undefined;
  /** Resolves once no acknowledgement waits; made when the last packet has to go after them. */
  #acksSent: PromiseWithResolvers<void> | undefined;
  /**
   * Packets to send once the outbox has room, in order, not yet encoded: a QoS 1/2 delivery here holds a
   * reference to the routed message every subscriber shares, not a copy. Their number is bounded by the
   * inflight window (the session queues the rest).
   */
  #backlog: { effect: Effect; durable?: Promise<void> }[] = NO_BACKLOG;
  /** Who waits for everything to be written (see SessionLink.whenDrained); one at a time, the latest. */
  #onDrained: (() => void) | undefined;
  bytesReceived = 0;
  /** What logs and the admin API show besides the session and socket, once CONNECT is accepted. */
  #username: string | undefined;
  /**
   * Until CONNECT is accepted, when the socket was (uptimeMs(), for the CONNECT timeout); from then on,
   * when the client connected (ms after WALL_CLOCK_BASE). One field for both: an idle connection stays cheap.
   */
  #connectedAt = uptimeMs();
  #keepAlive = 0;

  #endingNow(): Ending {
    return this.#ending ??= newEnding();
  }

  /** Whether a flag (CLOSED, RELEASED, …) is set: once set, a flag stays set. */
  #is(flag: number): boolean {
    return (this.#flags & flag) !== 0;
  }

  constructor(
    private readonly accepted: Accepted,
    private readonly context: ManagedContext,
    /** The name and counts of the listener that accepted it (the manager keeps the counts). */
    readonly listenerCounts: ListenerCounts,
  ) {
  }

  /** Made at the first packet: a TLS client certificate's name is known only once the TLS handshake is done. */
  get #handshake(): Handshake {
    // AUTH is decoded at v5 only; a client without an enhanced method has nothing to re-authenticate.
    if (this.#handshakeState === null) throw authWithoutMethod();
    return this.#handshakeState ??= new Handshake({
      settings: this.context.settings,
      generateClientId: this.context.generateClientId,
      authenticator: this.context.authenticator,
      methods: this.context.authMethods ?? new Map(),
      client: this.accepted,
    });
  }

  /**
   * Logs with the client's id and address. No child logger per connection: most connections never log,
   * and an idle connection must stay cheap.
   */
  #log(level: LogLevel, event: string, fields: Record<string, unknown> = {}): void {
    if (!logsAt(this.context.logger, level)) return;
    this.context.logger[level](event, {
      clientId: this.#session?.clientId,
      remote: this.accepted.remoteAddress,
      ...fields,
    });
  }

  get writable(): boolean {
    if (this.#backlog.length > 0) return false;
    return this.#outbox ? this.#outbox.writable : !this.#is(FINISHED);
  }

  get room(): number {
    if (this.#backlog.length > 0 || this.#is(FINISHED)) return 0;
    return this.#outbox ? this.#outbox.room : this.context.outboxHighWaterMark;
  }

  /** The outbox to send through (one from the pool if the last went idle). */
  #out(): Outbox {
    if (this.#outbox === undefined) {
      this.#outbox = this.context.outboxes.take(this.accepted.stream, this);
      if (this.#is(FINISHED)) this.#outbox.close();
    }
    return this.#outbox;
  }

  written(bytes: number): void {
    this.bytesSent += bytes;
  }

  /** Everything is written: send what waited for room, or let the outbox go until the next send. */
  outboxIdle(): void {
    if (this.#backlog.length > 0) return this.#sendBacklog();
    this.context.outboxes.give(this.#outbox!);
    this.#outbox = undefined;
    const drained = this.#onDrained;
    this.#onDrained = undefined;
    drained?.();
  }

  whenDrained(callback: () => void): void {
    this.#onDrained = callback;
  }

  /**
   * The peer is gone (reset, broken pipe): an abnormal disconnect, so the will goes out, unless a close
   * already under way decides (a DISCONNECT received, a takeover).
   */
  writeFailed(error: unknown): void {
    this.#log("debug", "connection.write_failed", { error });
    if (this.#ending?.closed) this.#shutdownSocket();
    else this.#end(true);
  }

  /** The held session, as a SessionHandle: read by the broker only while the connection holds one. */
  get session(): Session {
    return this.#session!;
  }

  get epoch(): number {
    return this.#epoch;
  }

  get entry(): SessionEntry | undefined {
    return this.#entry;
  }

  /** v5 hears 0x87 for a refused PUBLISH, 3.1.1 nothing: the log must say it (one line a second at most). */
  publishDenied(topic: string, reason: string): void {
    const logs = this.#throttledLogs ??= {};
    logs.denied ??= new RateLimitedLog((fields) => this.#log("info", "publish.denied", fields));
    logs.denied.write({ topic, reason });
  }

  /**
   * Without an authorizer the connection is its client's Permissions (no object per client): it may publish
   * to any topic but a reserved one, and subscribe to any filter.
   */
  canPublish(topic: string): boolean {
    return mayPublishWithoutAcl(topic, this);
  }

  canSubscribe(): boolean {
    return true;
  }

  /** The connected client, or undefined before its CONNECT is accepted and after it is gone. */
  get client(): ClientConnectionInfo | undefined {
    if (!this.#is(CONNECTED) || this.#is(CLOSED) || !this.#session) return undefined;
    return {
      clientId: this.#session.clientId,
      username: this.#username,
      remoteAddress: this.accepted.remoteAddress,
      listener: this.listenerCounts.name,
      protocolVersion: this.#version,
      connectedAt: WALL_CLOCK_BASE + this.#connectedAt,
      keepAlive: this.#keepAlive,
      cleanStart: this.#is(CLEAN_START),
      bytesReceived: this.bytesReceived,
      bytesSent: this.bytesSent,
    };
  }

  /** Outbound QoS 1/2 deliveries not yet acknowledged by this client, plus an ack waiting for storage. */
  get unacknowledged(): number {
    if (this.#is(CLOSED)) return 0;
    return (this.#session?.inflightCount ?? 0) + (this.#waitingAcks?.length ? 1 : 0);
  }

  /** Ends the connection on an operator's request: v5 clients hear `reasonCode`; the will goes out. */
  kick(reasonCode: number, reason: string): void {
    if (this.#is(CLOSED)) return;
    this.#endingNow().reason = `kicked: ${reason}`;
    this.#sendDisconnect(reasonCode, reason);
    void this.#closeAfterFlush(true);
  }

  /**
   * Reads until the socket ends, then waits for the close to finish; never throws. An idle connection's
   * pending read holds only a small view of a shared slab; a busy one borrows a large buffer and gives it
   * back when it quiets down. Packets are handled synchronously, in the turn their bytes arrived, unless
   * one needs to wait (CONNECT, AUTH).
   */
  async serve(): Promise<void> {
    const pool = this.context.readBuffers;
    let buffer = pool.takeSmall();
    try {
      while (!this.#is(FINISHED)) {
        const n = await this.accepted.stream.read(buffer);
        if (n === null) break;
        this.bytesReceived += n;
        if (this.#is(CLOSED)) continue; // closing: read only so that the socket ends with FIN, not RST
        this.#lastActivity = uptimeMs();
        try {
          const waiting = this.#decode(buffer, n);
          if (waiting) await waiting;
        } catch (error) {
          this.#onError(error);
          continue;
        }
        // A read that filled the large buffer means more is waiting, and the next read completes at once:
        // without a turn of the event loop in between, one fast client would keep it (and every other
        // client's reads and writes) waiting.
        if (n === pool.size) await nextTurn();
        // A busy client borrows a large buffer; a quiet one gives it back.
        if (n === buffer.byteLength && buffer.byteLength < pool.size) {
          pool.giveSmall(buffer);
          buffer = pool.take();
        } else if (n < pool.smallSize && buffer.byteLength > pool.smallSize) {
          pool.give(buffer);
          buffer = pool.takeSmall();
        }
      }
    } catch (error) {
      this.#onError(error);
    } finally {
      if (buffer.byteLength === pool.size) pool.give(buffer);
      else pool.giveSmall(buffer);
      this.#flags |= INPUT_ENDED;
      if (this.#is(LINGERING)) this.#shutdownSocket();
    }
    try {
      if (!this.#is(CLOSED)) this.#end(true); // closed without DISCONNECT: the will goes out
      await this.#ending?.closed;
    } catch (error) {
      this.context.logger.error("connection.crashed", { error });
    } finally {
      this.context.finished(this);
    }
  }

  /**
   * Ends the connection at shutdown: v5 clients hear 0x8B Server shutting down. No lingering: the process
   * is stopping, and a connection already lingering stops waiting.
   */
  async shutdown(): Promise<void> {
    this.#flags |= STOPPING;
    if (this.#is(CLOSED)) {
      if (this.#is(LINGERING)) this.#shutdownSocket();
      return;
    }
    this.#endingNow().reason = "server shutting down";
    this.#sendDisconnect(ReasonCode.ServerShuttingDown, "server shutting down");
    await this.#closeAfterFlush(false);
  }

  run(effects: Effect[]): void {
    // After a DISCONNECT (ours or the client's) nothing more is sent [MQTT-3.14.4-1]; what was in flight
    // stays in the session and is re-sent if the client resumes it.
    if (this.#is(CLOSED)) return;
    for (let i = 0; i < effects.length; i++) this.#take(effects[i]);
  }

  /** One effect for this client, run now (the connection as its session's EffectSink). */
  push(effect: Effect): void {
    if (!this.#is(CLOSED)) this.#take(effect);
  }

  /** An application message for this client, run now: a "deliver" effect's fields, without the object. */
  deliver(
    message: Message,
    qos: QoS,
    packetId: number | undefined,
    dup: boolean,
    retain: boolean,
    properties: Properties,
    topic: string,
  ): void {
    if (this.#is(CLOSED)) return;
    if (this.#mustWait()) {
      return this.#defer({ kind: "deliver", message, qos, packetId, dup, retain, properties, topic });
    }
    if (this.#ending?.farewell) return; // still inflight in the session: resent on a later connection
    this.#deliver(message, qos, packetId, dup, retain, properties, topic);
    if (qos === 2) this.#outbox?.holdUntil(this.#storedSoon());
  }

  /** Runs an effect, or puts its packet in the backlog while packets must wait for room. */
  #take(effect: Effect): void {
    if ((effect.kind === "deliver" || effect.kind === "send") && this.#mustWait()) return this.#defer(effect);
    this.#runEffect(effect);
    // QoS 2 needs persist-before-send: a packet id the client saw must survive a crash, or a resend under a
    // new id would be delivered twice. QoS 1 may be repeated after a crash anyway, so it need not wait.
    // Nothing queued without an outbox, so nothing to hold then.
    if (isExactlyOnce(effect)) this.#outbox?.holdUntil(this.#storedSoon());
  }

  /**
   * Past mqtt.max_outbound_bytes, packets wait (in order) for the outbox to drain: a client that does not
   * read holds the broker to that many bytes, plus references to the messages in its window.
   */
  #mustWait(): boolean {
    return this.#backlog.length > 0 || (this.#outbox !== undefined && !this.#outbox.writable);
  }

  /**
   * Resolves once storage holds what the session changed by the end of this task. A packet can reach the
   * connection before the change it implies reaches storage (the broker writes a session's changes once
   * the session has made them, in the same task), so the flush is asked for a microtask later.
   */
  #storedSoon(): Promise<void> {
    return Promise.resolve().then(() => this.context.broker.flush());
  }

  /** Puts a packet in the backlog, with the flush an exactly-once packet must wait for once it is sent. */
  #defer(effect: Effect): void {
    const durable = isExactlyOnce(effect) ? this.#storedSoon() : undefined;
    if (this.#backlog === NO_BACKLOG) this.#backlog = [];
    this.#backlog.push({ effect, durable });
  }

  /** The outbox drained: send what waited for room, until it is full again. */
  #sendBacklog(): void {
    while (this.#backlog.length > 0 && !this.#is(CLOSED) && this.#out().writable) {
      const { effect, durable } = this.#backlog.shift()!;
      this.#runEffect(effect);
      if (durable) this.#outbox?.holdUntil(durable);
    }
    if (this.#backlog.length === 0) this.#backlog = NO_BACKLOG;
  }

  takeOver(): void {
    this.#sendDisconnect(ReasonCode.SessionTakenOver, "session taken over");
    this.#logDisconnected("session taken over");
    this.#session = undefined; // the broker has already moved the session to the new connection
    void this.#closeAfterFlush(false);
  }

  /**
   * Handles the packets of a read's bytes. Not in serve() itself: a decoder held in its frame while it
   * awaits the next read would outlive its use.
   */
  #decode(buffer: Uint8Array, length: number): Promise<void> | undefined {
    const decoder = this.#decoder ??= this.#takeDecoder();
    decoder.push(buffer, length);
    const waiting = this.#drainDecoder(decoder);
    if (waiting) return this.#releaseDecoderAfter(waiting, decoder);
    this.#releaseDecoder(decoder);
    return undefined;
  }

  /**
   * {@link #releaseDecoder} once `waiting` settles. A method of its own: a closure in {@link #decode} would
   * make every read allocate the variables it captures, also when nothing waits.
   */
  #releaseDecoderAfter(waiting: Promise<void>, decoder: Decoder): Promise<void> {
    return waiting.then(() => this.#releaseDecoder(decoder));
  }

  /**
   * A decoder for a read: one that another connection (or this one) gave back, at this client's protocol
   * level, else a new one. An empty decoder goes on as a new one would (Decoder.empty).
   */
  #takeDecoder(): Decoder {
    const decoder = this.context.decoders.pop();
    if (decoder !== undefined) {
      decoder.protocolVersion = this.#version;
      return decoder;
    }
    return new Decoder({
      maxPacketSize: this.context.settings.maxPacketSize,
      fromClients: true,
      allowControlCharacters: this.context.settings.allowControlCharacters,
      protocolVersion: this.#version,
      // Every packet is handled before the next is decoded, and none is kept: a message keeps the PUBLISH's
      // frame and fields, a cluster encodes a packet anew.
      reusePackets: true,
    });
  }

  /** A decoder that holds no bytes is given back: the next read, of any connection, takes it again. */
  #releaseDecoder(decoder: Decoder): void {
    if (!decoder.empty || this.#decoder !== decoder) return;
    this.#decoder = undefined;
    const free = this.context.decoders;
    if (free.length < MAX_FREE_DECODERS) free.push(decoder);
  }

  /**
   * Handles every whole packet the decoder has. Returns a promise only when a packet needs to wait (a
   * CONNECT whose credentials are checked or whose session is read back from storage, AUTH): the rest of
   * the packets are then handled after it, in order.
   */
  #drainDecoder(decoder: Decoder): Promise<void> | undefined {
    const broker = this.context.broker;
    // One time for the packets of a read: they arrived together, and the clock costs per reading.
    let now = -1;
    for (;;) {
      const packet = decoder.next();
      if (packet === undefined) return undefined;
      this.context.traffic.received(packet.type);
      if (this.#is(CLOSED)) return undefined;
      if (this.#session && packet.type !== "auth") {
        if (now < 0) now = broker.now();
        try {
          this.run(broker.receive(this, packet, PACKET_EFFECTS, now));
        } finally {
          // emptied even when a packet fails: what is left would be run for the next connection's packet
          empty(PACKET_EFFECTS);
        }
        continue;
      }
      const waiting = this.#handleHandshake(packet);
      if (waiting !== undefined) return this.#drainAfter(waiting, decoder);
    }
  }

  /** The packets behind a handshake packet that waits, once it is done (see {@link #releaseDecoderAfter}). */
  #drainAfter(waiting: Promise<void>, decoder: Decoder): Promise<void> {
    return waiting.then(() => this.#drainDecoder(decoder));
  }

  /**
   * A packet of the handshake (CONNECT, AUTH), its step run at once when nothing had to wait for it (an
   * anonymous client whose session needs no storage read: no promise and no async frame per CONNECT);
   * else a promise that settles once its step has run, for the connection to read on after.
   */
  #handleHandshake(packet: Packet): Promise<void> | undefined {
    const handshake = this.#handshake;
    if (packet.type === "connect" && handshake.phase === "awaiting_connect") {
      this.#version = packet.protocolVersion;
      this.#clientMaximumPacketSize = packet.properties.maximumPacketSize;
    }
    const step = handshake.receive(packet);
    return step instanceof Promise ? this.#runHandshakeStepLater(step) : this.#runHandshakeStep(step);
  }

  /** {@link #runHandshakeStep} once `step` settles (a method of its own: no closure where nothing waits). */
  #runHandshakeStepLater(step: Promise<HandshakeStep>): Promise<void> {
    return step.then((settled) => this.#runHandshakeStep(settled));
  }

  /** Runs a handshake step; a promise when it waits (for its session). */
  #runHandshakeStep(step: HandshakeStep): Promise<void> | undefined {
    switch (step.kind) {
      case "refuse":
        this.#refuse(step.reasonCode, step.reason, step.properties, step.publicReason, step.method);
        return;
      case "challenge":
        this.#send(step.packet);
        return;
      case "admit":
        return this.#admit(step);
      case "reauthenticated":
        this.#send({ type: "auth", reasonCode: ReasonCode.Success, properties: step.properties });
        return;
      case "reauthentication_failed":
        // [MQTT-4.12.1-2]
        this.#log("info", "client.reauthentication_failed", {
          reasonCode: step.reasonCode,
          reason: step.reason,
        });
        this.#sendDisconnect(step.reasonCode, step.publicReason);
        void this.#closeAfterFlush(true);
        return;
      case "session":
        if (this.#session) this.run(this.context.broker.receive(this, step.packet));
        return;
    }
  }

  /**
   * An authenticated CONNECT: the session rules for its identity (takeover, will), then the session. A
   * promise only when the session has to wait to be claimed (an earlier claim of the id, a queue read back
   * from storage, a cluster's log).
   */
  #admit(admitted: Admitted): Promise<void> | undefined {
    const handshake = this.#handshake;
    if (this.#is(CLOSED)) {
      handshake.end();
      return;
    }
    const { connect: packet, decision } = admitted;
    const identity = { clientId: decision.clientId, username: admitted.username };
    const owner = sessionOwner(identity.username);
    const { broker, authorizer } = this.context;
    const policy = this.context.takeover ?? "same_user";
    const admission = admit(
      { will: packet.will, identity, owner, policy },
      broker.owner(identity.clientId),
      authorizer,
    );
    if (admission.refusal !== undefined) {
      this.#logAdmission(admission, identity.clientId);
      handshake.end();
      this.#refuse(ReasonCode.NotAuthorized, admission.refusal, {}, "not authorized");
      return;
    }
    decision.attachment.permissions = authorizer ? clientPermissions(identity, authorizer, this) : this;
    let opened;
    try {
      opened = broker.open({
        clientId: decision.clientId,
        cleanStart: packet.cleanStart,
        sessionExpiryInterval: decision.sessionExpiryInterval,
        will: packet.will,
        attachment: decision.attachment,
        link: this,
        owner,
        // made into text only where a cap needs it (about 200 B and a formatting per CONNECT on io = epoll)
        address: broker.needsAddress(decision.sessionExpiryInterval)
          ? addressOf(this.accepted.remoteAddress)
          : undefined,
      });
    } catch (error) {
      return this.#notOpened(error);
    }
    if (opened instanceof Promise) return this.#openedLater(opened, admitted, admission);
    this.#opened(opened, admitted, admission);
    return undefined;
  }

  /** {@link #opened} once the claim settles (a method of its own: no closures where nothing waits). */
  #openedLater(opening: Promise<OpenResult>, admitted: Admitted, admission: Admission): Promise<void> {
    return opening.then(
      (opened) => this.#opened(opened, admitted, admission),
      (error) => this.#notOpened(error),
    );
  }

  /**
   * The session could not be claimed: over a cap on sessions (0x97; 3.1.1 0x03), or a cluster whose log
   * is unreachable (0x88 Server unavailable). Any other error is the connection's failure.
   */
  #notOpened(error: unknown): undefined {
    this.#handshake.end();
    if (!(error instanceof MqttError)) throw error;
    this.#refuse(error.reasonCode, error.message, {});
  }

  #logAdmission(admission: Admission, clientId: string): void {
    for (const { event, fields } of admission.events) this.#log("info", event, { clientId, ...fields });
  }

  /** The session is claimed: CONNACK, then what the session resumes with. */
  #opened(opened: OpenResult, admitted: Admitted, admission: Admission): void {
    const handshake = this.#handshake;
    const broker = this.context.broker;
    const { connect: packet, decision } = admitted;
    this.#logAdmission(admission, decision.clientId);
    if (this.#is(RELEASED)) {
      // The connection ended while the session was being claimed: hand it straight back.
      handshake.end();
      broker.close(opened, true);
      return;
    }
    handshake.opened();
    if (!handshake.reauthenticates) this.#handshakeState = null;
    // The session and epoch only: the open result's resume effects are run once, below, and not kept.
    this.#session = opened.session;
    this.#epoch = opened.epoch;
    this.#entry = opened.entry;
    const { sessionPresent, effects } = opened;
    this.#flags |= CONNECTED;
    this.#username = admitted.username;
    this.#connectedAt = Date.now() - WALL_CLOCK_BASE;
    this.#keepAlive = packet.keepAlive;
    if (packet.cleanStart) this.#flags |= CLEAN_START;
    this.#send({
      type: "connack",
      sessionPresent,
      reasonCode: 0,
      properties: this.#version === 5 ? { ...decision.properties, ...admitted.properties } : {},
    });
    this.#log("info", "client.connected", {
      user: admitted.username,
      protocol: protocolName(this.#version),
      listener: this.listenerCounts.name,
      sessionPresent,
      cleanStart: packet.cleanStart,
      keepAlive: packet.keepAlive,
    });
    this.run(effects);
    broker.connected(opened);
    this.#keepAliveMs = decision.keepAliveTimeoutMs;
  }

  /**
   * Called by the manager's sweep (no timer per connection: an idle connection must stay cheap): ends a
   * socket that sent no CONNECT in time, or a client silent for 1.5 × its keep alive [MQTT-3.1.2-24].
   */
  checkDeadlines(now: number): void {
    if (this.#is(CLOSED)) {
      if (this.#is(LINGERING) && now >= this.#lastActivity + LINGER_SWEPT_AFTER_MS) this.#shutdownSocket();
      return;
    }
    if (!this.#session) {
      if (now >= this.#connectedAt + this.context.connectTimeoutMs) this.#fail("connect_timeout");
    } else if (this.#keepAliveMs > 0 && now - this.#lastActivity >= this.#keepAliveMs) {
      this.#fail("keep_alive_timeout", ReasonCode.KeepAliveTimeout);
    }
  }

  /** Refuses a CONNECT; `reason` goes to the log and, unless a `publicReason` replaces it, to a v5 client. */
  #refuse(
    reasonCode: number,
    reason: string,
    properties: Properties,
    publicReason = reason,
    method?: string,
  ): void {
    const v5 = this.#version === 5;
    // The code the client actually receives: 3.1/3.1.1 CONNACKs have their own, smaller set.
    const sent = v5 ? reasonCode : connackCodeForV3(reasonCode);
    this.#log("info", "client.refused", {
      // the handshake is let go only once the session is open, after which nothing is refused
      clientId: this.#handshakeState?.requestedClientId,
      protocol: protocolName(this.#version),
      listener: this.listenerCounts.name,
      reasonCode: sent,
      reason,
      method,
    });
    this.#sendFarewell({
      type: "connack",
      sessionPresent: false,
      reasonCode: sent,
      properties: v5 ? { ...properties, reasonString: publicReason } : {},
    });
    void this.#closeAfterFlush(false);
  }

  #runEffect(effect: Effect): void {
    switch (effect.kind) {
      case "send":
        return this.#send(effect.packet);
      case "deliver":
        if (this.#ending?.farewell) return; // still inflight in the session: resent on a later connection
        return this.#deliver(
          effect.message,
          effect.qos,
          effect.packetId,
          effect.dup,
          effect.retain,
          effect.properties,
          effect.topic,
        );
      case "ack":
        return this.#acknowledge(effect);
      case "close":
        this.#endingNow().reason = effect.reasonCode === 0 && !effect.notify
          ? "client disconnected"
          : `reason 0x${effect.reasonCode.toString(16).padStart(2, "0")}${
            effect.reasonString ? `: ${effect.reasonString}` : ""
          }`;
        if (effect.notify) this.#sendDisconnect(effect.reasonCode, effect.reasonString);
        else this.#flags |= GOODBYE;
        if (effect.reasonCode >= 0x80) {
          this.#log("info", "client.protocol_error", {
            reasonCode: effect.reasonCode,
            reason: effect.reasonString,
          });
        }
        void this.#closeAfterFlush(effect.publishWill, effect.sessionExpiryInterval);
        return;
    }
  }

  /**
   * Sends a PUBACK/PUBREC once what the PUBLISH changed is durable: an acknowledged message survives a
   * crash. Acks leave in the order their PUBLISHes came [MQTT-4.6.0-2], so one waiting for storage holds
   * back the ones behind it (see {@link #releaseAcks}).
   */
  #acknowledge(ack: AckEffect): void {
    if (!ack.durable && !this.#waitingAcks) return this.#sendAck(ack.type, ack.packetId, ack.reasonCode);
    const waiting = this.#waitingAcks ??= WaitingAcks.take();
    waiting.push(ack.type, ack.packetId, ack.reasonCode, ack.durable);
    if (waiting.length === 1) this.#awaitFirstAck();
  }

  /**
   * Waits for the storage of the oldest waiting acknowledgement. A method of its own: its closures in
   * #acknowledge would make every acknowledgement allocate what they capture, also those sent at once.
   */
  #awaitFirstAck(): void {
    const durable = this.#waitingAcks!.firstDurable!;
    durable.then(
      () => this.#releaseAcks(durable, false, undefined),
      (error) => this.#releaseAcks(durable, true, error),
    );
  }

  /**
   * Sends the waiting acknowledgements, in order, up to the first that waits for other storage than the
   * settled `durable`. If storage refused, v5 publishers hear the reason (0x97 when full) and 3.1.1
   * publishers, who have no way to hear it, are disconnected.
   */
  #releaseAcks(durable: Promise<void>, failed: boolean, error: unknown): void {
    const waiting = this.#waitingAcks!;
    while (waiting.length > 0) {
      const waitsFor = waiting.firstDurable;
      if (waitsFor !== undefined && waitsFor !== durable) return this.#awaitFirstAck();
      const ack = waiting.shift();
      if (failed && waitsFor === durable) this.#ackNotStored(ack, error);
      else this.#sendAck(ackType(ack), ackPacketId(ack), ackReasonCode(ack));
    }
    this.#waitingAcks = undefined;
    waiting.release();
    this.#acksSent?.resolve();
    this.#acksSent = undefined;
  }

  /** An acknowledgement (packed, see WaitingAcks) whose PUBLISH storage refused. */
  #ackNotStored(ack: number, error: unknown): void {
    const reasonCode = error instanceof StorageError ? error.reasonCode : ReasonCode.UnspecifiedError;
    // one line a second at most: a publisher can keep sending into a full store or memory budget
    const logs = this.#throttledLogs ??= {};
    logs.notStored ??= new RateLimitedLog((fields) => this.#log("error", "publish.not_stored", fields));
    logs.notStored.write({ reasonCode, error });
    if (this.#version === 5) this.#sendAck(ackType(ack), ackPacketId(ack), reasonCode);
    else void this.#closeAfterFlush(true);
  }

  /** A PUBACK/PUBREC from its fields (it has no properties): {@link #send} without a packet object, mostly. */
  #sendAck(type: "puback" | "pubrec", packetId: number, reasonCode: number): void {
    if (reasonCode === 0 && this.#writePlainAck(type, packetId)) return;
    this.#send({ type, packetId, reasonCode, properties: {} });
  }

  /**
   * The common acknowledgement (reason 0, no properties), written straight into the outbox: 4 bytes, no
   * encoder, no buffer. False when the client's Maximum Packet Size is below 4: {@link #send} decides then.
   */
  #writePlainAck(type: Packet["type"], packetId: number): boolean {
    const max = this.#clientMaximumPacketSize;
    if (max !== undefined && max < 4) return false;
    if (this.#is(FAREWELL_SENT)) return true; // nothing follows the last packet [MQTT-3.14.4-1]
    const outbox = this.#out();
    const at = outbox.reserve(4);
    const out = outbox.buffer;
    out[at] = ACK_FIRST_BYTES[type]!;
    out[at + 1] = 2;
    out[at + 2] = packetId >>> 8;
    out[at + 3] = packetId & 0xff;
    this.context.traffic.sent(type);
    return true;
  }

  /**
   * Encodes and queues a control packet. One over the client's Maximum Packet Size loses its Reason String
   * and User Properties first [MQTT-3.2.2-19] [MQTT-3.14.2-3], then its other (all optional) properties; a
   * packet that still does not fit is not sent [MQTT-3.1.2-24].
   */
  #send(packet: Packet): void {
    if (this.#is(FAREWELL_SENT)) return;
    if (ACK_FIRST_BYTES[packet.type] !== undefined) {
      const ack = packet as AckPacket<"puback">;
      const plain = ack.reasonCode === 0 && (this.#version < 5 || !hasProperties(ack.properties));
      if (plain && this.#writePlainAck(packet.type, ack.packetId)) return;
    }
    let bytes = encode(packet, this.#version);
    const max = this.#clientMaximumPacketSize;
    if (max !== undefined && bytes.byteLength > max && "properties" in packet) {
      const { reasonString: _reason, userProperties: _user, ...essential } = packet.properties;
      bytes = encode({ ...packet, properties: essential } as Packet, this.#version);
      if (bytes.byteLength > max) bytes = encode({ ...packet, properties: {} } as Packet, this.#version);
      if (bytes.byteLength > max) return;
    }
    this.context.traffic.sent(packet.type);
    this.#out().push(bytes);
  }

  /**
   * An application message to this client: its received frame copied into the outbox with new flags and
   * packet id when it can be (no topic alias, no per-hop properties, a compatible protocol level), else
   * encoded.
   */
  #deliver(
    message: Message,
    qos: QoS,
    packetId: number | undefined,
    dup: boolean,
    retain: boolean,
    properties: Properties,
    topic: string,
  ): void {
    // A payload read back from storage is freed once acknowledged (Delivery.ownsPayload): a client that
    // acknowledged a packet id before the PUBLISH left the backlog has nothing left to be sent. A view of a
    // freed buffer is empty; `detached` (a call into the runtime, ~3 % of a fan-out's CPU) is asked only then.
    // A message with a frame came from a client, not from storage (and reading its payload makes a view).
    const bytes = message.frameBytes;
    if (bytes === undefined) {
      const payload = message.payload;
      if (payload.length === 0 && (payload.buffer as ArrayBuffer).detached) return;
    }
    const start = message.frameStart;
    const level = message.frameLevel;
    const sameProperties = properties === message.properties && topic === message.topic;
    this.context.traffic.sent("publish");
    if (bytes !== undefined && start !== undefined && level !== undefined && sameProperties) {
      const idAt = forwardableAt(bytes, start, level, this.#version, qos);
      if (idAt > 0) {
        const length = publishFrameLength(bytes, start);
        const outbox = this.#out();
        const at = outbox.reserve(length);
        writeForwarded(bytes, start, length, idAt, outbox, at, qos, dup, retain, packetId);
        return;
      }
    }
    const encoded = encodePublish(
      {
        type: "publish",
        topic: message.topic,
        payload: message.payload,
        qos: message.qos,
        retain: message.retain,
        dup: false,
        properties: message.properties,
        frame: bytes !== undefined && start !== undefined
          ? bytes.subarray(start, start + publishFrameLength(bytes, start))
          : undefined,
      },
      this.#version,
      { qos, dup, retain, packetId, ...(sameProperties ? {} : { topic, properties }) },
    );
    this.#out().push(encoded);
  }

  #sendDisconnect(reasonCode: number, reasonString?: string): void {
    if (this.#version !== 5 || !this.#session) return;
    const properties = reasonString ? { reasonString } : {};
    this.#sendFarewell({ type: "disconnect", reasonCode, properties });
  }

  /**
   * Queues the last packet of the connection, a DISCONNECT or a refusing CONNACK, behind the acknowledgements
   * still waiting for storage: those PUBLISHes were accepted before the error, so their acks go first.
   */
  #sendFarewell(packet: Packet): void {
    const ending = this.#endingNow();
    if (ending.farewell) return;
    const acksSent = this.#waitingAcks?.length
      ? (this.#acksSent ??= Promise.withResolvers()).promise
      : Promise.resolve();
    ending.farewell = acksSent.then(() => {
      this.#send(packet);
      this.#flags |= FAREWELL_SENT;
    });
  }

  #onError(error: unknown): void {
    if (error instanceof MqttError) {
      this.#log("info", "client.malformed", {
        reasonCode: error.reasonCode,
        reason: error.message,
      });
      this.#endingNow().reason = `malformed: ${error.message}`;
      if (error instanceof UnsupportedProtocolError) {
        if (this.#session) {
          // Any second CONNECT is a protocol error, whatever it announces [MQTT-3.1.0-2].
          this.#sendDisconnect(ReasonCode.ProtocolError, "second CONNECT");
          return void this.#closeAfterFlush(true);
        }
        // A level-5 client reads a v5 CONNACK; anything else gets the 3.1.1 form, which every client reads.
        this.#version = error.level === 5 ? 5 : 4;
        return this.#refuse(error.reasonCode, error.message, {});
      }
      this.#sendDisconnect(error.reasonCode, error.message);
      void this.#closeAfterFlush(true);
      return;
    }
    if (this.#is(CLOSED)) return; // the read was cut short by our own close
    // A reset, a broken pipe, or a TLS peer that closed without close_notify (MQTT.js does when it is
    // ended in a hurry): the client went away, nothing failed here.
    if (
      error instanceof Deno.errors.ConnectionReset || error instanceof Deno.errors.BrokenPipe ||
      error instanceof Deno.errors.UnexpectedEof
    ) {
      this.#log("debug", "connection.reset");
    } else {
      this.#log("error", "connection.failed", { error });
    }
    this.#end(true);
  }

  #fail(event: string, reasonCode?: number): void {
    this.#log("info", `client.${event}`);
    this.#endingNow().reason = event.replaceAll("_", " ");
    if (reasonCode !== undefined) this.#sendDisconnect(reasonCode);
    void this.#closeAfterFlush(true);
  }

  /**
   * Stops processing input, lets queued packets (a CONNACK or DISCONNECT) reach the client, hands the
   * session back, then closes the socket. A client that does not read gets FLUSH_TIMEOUT_MS, not forever.
   * After a reason code that was written, or the client's DISCONNECT, the socket lingers half-closed
   * (closing.ts) unless the server is stopping. The first close wins; later calls share it.
   */
  #closeAfterFlush(publishWill: boolean, sessionExpiryInterval?: number): Promise<void> {
    this.#flags |= CLOSED;
    const ending = this.#endingNow();
    return ending.closed ??= this.#close(ending, publishWill, sessionExpiryInterval);
  }

  async #close(
    ending: Ending,
    publishWill: boolean,
    sessionExpiryInterval: number | undefined,
  ): Promise<void> {
    // Nothing to say and nothing queued (a client's DISCONNECT, usually): no timer to race. Still after a
    // microtask, as after a flush: the session is not released inside the effects that ended it.
    const flushed = ending.farewell === undefined && this.#outbox === undefined
      ? await Promise.resolve(true)
      : await settlesWithin(
        (ending.farewell ?? Promise.resolve()).then(() => this.#outbox?.drain()),
        FLUSH_TIMEOUT_MS,
      );
    this.#release(publishWill, sessionExpiryInterval);
    // Half-closed (where the transport can: not WebSocket, which has its own closing handshake), a lingering
    // socket is closed by the reader when the client's input ends, or by the sweep once LINGER_MS is up.
    const stream = this.accepted.stream;
    if (flushed && stream.closeWrite !== undefined && this.#lingers()) {
      try {
        await stream.closeWrite();
        if (this.#lingers()) {
          this.#flags |= LINGERING;
          this.#lastActivity = uptimeMs();
          return;
        }
      } catch { /* the socket is gone already: nothing to wait for */ }
    }
    this.#shutdownSocket();
  }

  /**
   * Whether a closing socket waits half-closed for the client's close: after a reason code it was sent, or
   * after its DISCONNECT, while it is open and its input goes on, unless the server is stopping.
   */
  #lingers(): boolean {
    return (this.#flags & (FAREWELL_SENT | GOODBYE)) !== 0 &&
      (this.#flags & (FINISHED | INPUT_ENDED | STOPPING)) === 0;
  }

  /** Ends everything at once: the session back to the broker (will, expiry), then the socket. */
  #end(publishWill: boolean, sessionExpiryInterval?: number): void {
    this.#flags |= CLOSED;
    this.#release(publishWill, sessionExpiryInterval);
    this.#shutdownSocket();
  }

  #release(publishWill: boolean, sessionExpiryInterval?: number): void {
    if (this.#is(RELEASED)) return;
    this.#flags |= RELEASED;
    // packets that waited for room in the outbox: the session resends what it needs on resume
    this.#backlog = NO_BACKLOG;
    if (this.#session) {
      this.context.broker.close(this, publishWill, sessionExpiryInterval);
      this.#logDisconnected(this.#endingNow().reason, publishWill);
    }
  }

  #logDisconnected(reason: string, publishWill?: boolean): void {
    if (!this.#is(CONNECTED)) return;
    this.#log("info", "client.disconnected", {
      user: this.#username,
      protocol: protocolName(this.#version),
      listener: this.listenerCounts.name,
      reason,
      publishWill,
    });
  }

  #shutdownSocket(): void {
    if (this.#is(FINISHED)) return;
    this.#flags |= FINISHED;
    this.#outbox?.close();
    try {
      this.accepted.stream.close();
    } catch { /* already closed */ }
  }
}
