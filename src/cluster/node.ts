/**
 * One node of a cluster: the local broker becomes a replica of a state machine whose inputs are the
 * entries of one shared, totally ordered log (src/storage/cluster_log.ts). docs/cluster.md has the design;
 * in short:
 *
 * - every CONNECT claims its client id through the log; the claim's place in the log is its epoch, so one
 *   client id has one connection cluster-wide and a stale holder is fenced out everywhere at once;
 * - a persistent session's packets go through the log and every node applies them to its copy of the
 *   session, so any node can resume it with its queue, packet ids and QoS 2 stages;
 * - a transient session lives on its node only; what it publishes reaches that node's transient sessions
 *   at once and everyone else through the log, and the publisher's PUBACK waits for the log;
 * - wills, retained messages and session timers take effect where they land in the log, on every node;
 * - heartbeats let the others declare a silent node gone and disconnect its clients (wills go out).
 */
import { encode, MqttError, type Packet, ReasonCode } from "../codec/mod.ts";
import { Decoder } from "../codec/decoder.ts";
import type {
  Broker,
  Clock,
  Egress,
  OpenRequest,
  OpenResult,
  SessionHandle,
  SessionLink,
  SessionService,
  SessionTimer,
  TimerHandle,
} from "../broker/mod.ts";
import type { Effect, Message, Permissions } from "../session/types.ts";
import type { ClusterLog, LogEntry } from "../storage/cluster_log.ts";
import { type ClusterEvent, decodeEvent, encodeEvent } from "./events.ts";

/** The log's clock during an apply: every node uses the event's time and the entry's position. */
export class LogClock implements Clock {
  #at: number | undefined;
  #seed = 0;

  constructor(private readonly real: Clock) {}

  now = (): number => this.#at ?? this.real.now();
  after = (ms: number, callback: () => void) => this.real.after(ms, callback);
  cancel = (handle: Parameters<Clock["cancel"]>[0]) => this.real.cancel(handle);

  /** Chance derived from the log position while applying, so every node draws the same number. */
  random = (): number => {
    if (this.#at === undefined) return this.real.random();
    this.#seed = (Math.imul(this.#seed ^ (this.#seed >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) | 0;
    return (this.#seed >>> 0) / 0x1_0000_0000;
  };

  /**
   * From now until {@link settle}, "now" is the log time of the entry being applied and chance comes from
   * its position. (Local work that runs while an apply waits for storage sees the log's time too; it is a
   * few milliseconds old at most.)
   */
  enter(at: number, position: bigint): void {
    this.#at = at;
    this.#seed = Number(position & 0xffff_ffffn) | 0;
  }

  settle(): void {
    this.#at = undefined;
  }
}

/** Logs a cluster node writes; the broker's Logger fits. */
export interface ClusterLogger {
  info(event: string, fields?: Record<string, unknown>): void;
  warn(event: string, fields?: Record<string, unknown>): void;
  error(event: string, fields?: Record<string, unknown>): void;
}

export interface ClusterNodeOptions {
  nodeId: string;
  log: ClusterLog;
  /** Builds the local replica with the node's hooks: its egress, timers and log clock. */
  createBroker: (
    hooks: {
      egress: Egress;
      onTimer: (timer: SessionTimer, clientId: string, epoch: number) => void;
      clock: Clock;
    },
  ) => Broker;
  clock: Clock;
  logger: ClusterLogger;
  /** How often this node says it is alive. */
  heartbeatMs: number;
  /** Silence after which another node is declared gone and its clients disconnected. */
  nodeTimeoutMs: number;
  /** The ACL of a client, rebuilt on every node from who it is (the claim's owner). */
  permissionsFor?: (clientId: string, owner: string | undefined) => Permissions | undefined;
  /** Where this node's applied position and run are kept (the broker's storage meta). */
  applied?: { position: bigint };
}

interface PendingClaim {
  link: SessionLink;
  resolve(result: OpenResult): void;
  reject(error: unknown): void;
}

/** What a node knows of another node's liveness. */
interface Peer {
  run: number;
  /** Log time of its last heartbeat applied, and the local time when it was applied. */
  lastBeat: number;
  heardAt: number;
  declaredDown: boolean;
}

/** A CONNECT refused because the cluster log cannot be reached (the client may retry elsewhere). */
export class ClusterUnavailableError extends MqttError {
  constructor(reason: string) {
    super(ReasonCode.ServerUnavailable, `cluster unavailable: ${reason}`);
  }
}

const APPLIED_KEY = "cluster.applied";
/** The last heartbeat of a node never heard from. */
const NEVER = -1;

/** A node of the cluster; connections talk to it as they would to a single broker. */
export class ClusterNode implements SessionService {
  readonly broker: Broker;
  readonly #clock: LogClock;
  readonly #pending = new Map<number, PendingClaim>();
  readonly #peers = new Map<string, Peer>();
  /** Highest publish sequence applied per (node, run): a send retried after it had landed is applied once. */
  readonly #lastSequence = new Map<string, number>();
  readonly #run: number;
  #nextRequest = 1;
  #nextSequence = 1;
  #applied: bigint;
  #heartbeat: TimerHandle | undefined;
  #stopped = false;

  constructor(private readonly options: ClusterNodeOptions) {
    this.#clock = new LogClock(options.clock);
    this.#run = options.clock.now();
    this.#applied = options.applied?.position ?? -1n;
    this.broker = options.createBroker({
      egress: { forward: (message) => this.#forward(message) },
      onTimer: (timer, clientId, epoch) => void this.#append({ kind: "timer", timer, clientId, epoch }),
      clock: this.#clock,
    });
  }

  get nodeId(): string {
    return this.options.nodeId;
  }

  /** The position of the last log entry this node applied (and stored). */
  get appliedPosition(): bigint {
    return this.#applied;
  }

  /** Starts applying the log and saying that this node is alive. */
  start(): void {
    this.options.log.consume((entries) => this.#applyBatch(entries));
    this.#beat();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.options.clock.cancel(this.#heartbeat);
    for (const pending of this.#pending.values()) {
      pending.reject(new ClusterUnavailableError("node stopping"));
    }
    this.#pending.clear();
    await this.options.log.stop();
  }

  health(): { ok: boolean; detail: string } {
    const log = this.options.log.health();
    return { ok: log.ok, detail: `cluster node ${this.nodeId}: ${log.detail}` };
  }

  flush(): Promise<void> | undefined {
    return this.broker.flush();
  }

  /** Claims the client id through the log; resolves when the claim is applied here. */
  open(request: OpenRequest): Promise<OpenResult> {
    const link = request.link;
    if (!link) return Promise.reject(new Error("a cluster node opens sessions for its own connections only"));
    const id = this.#nextRequest++;
    const { permissions: _, ...attachment } = request.attachment;
    const claimed = new Promise<OpenResult>((resolve, reject) =>
      this.#pending.set(id, { link, resolve, reject })
    );
    this.#append({
      kind: "claim",
      node: this.nodeId,
      request: id,
      clientId: request.clientId,
      cleanStart: request.cleanStart,
      sessionExpiryInterval: request.sessionExpiryInterval,
      owner: request.owner,
      will: request.will,
      attachment,
      run: this.#run,
    }).catch((error) => {
      const pending = this.#pending.get(id);
      this.#pending.delete(id);
      pending?.reject(new ClusterUnavailableError(error instanceof Error ? error.message : String(error)));
    });
    return claimed;
  }

  /**
   * A packet from a client of this node. A transient session handles it here; a persistent one's goes
   * through the log, and its effects reach the connection when this node applies it.
   */
  receive(handle: SessionHandle, packet: Packet): Effect[] {
    if (!handle.session.persistent) return this.broker.receive(handle, packet);
    if (packet.type === "pingreq") return [{ kind: "send", packet: { type: "pingresp" } }];
    const version = handle.session.attachment?.protocolVersion ?? 4;
    const frame = encode(packet, version);
    const clientId = handle.session.clientId;
    this.#append({ kind: "packet", clientId, epoch: handle.epoch, version, frame }).catch((error) => {
      // The packet never reached the log: the client must not think otherwise. It can resume elsewhere.
      this.options.logger.warn("cluster.packet_not_appended", { clientId, error: String(error) });
      this.broker.linkOf(clientId, handle.epoch)?.run([unavailable()]);
    });
    return [];
  }

  /** The connection ended; every node applies it where it lands in the log. */
  close(handle: SessionHandle, publishWill: boolean, sessionExpiryInterval?: number): void {
    const { clientId } = handle.session;
    this.#append({ kind: "leave", clientId, epoch: handle.epoch, publishWill, sessionExpiryInterval }).catch(
      (error) => this.options.logger.warn("cluster.leave_not_appended", { clientId, error: String(error) }),
    );
  }

  /** Egress: a message published here by a transient session or the broker goes to the log. */
  #forward(message: Message): Promise<void> {
    const { packet: _, ...plain } = message;
    return this.#append({
      kind: "publish",
      node: this.nodeId,
      run: this.#run,
      sequence: this.#nextSequence++,
      message: plain,
    });
  }

  #append(event: ClusterEvent): Promise<void> {
    if (this.#stopped) return Promise.reject(new ClusterUnavailableError("node stopped"));
    return this.options.log.append(encodeEvent(this.options.clock.now(), event));
  }

  /** Says this node is alive, and asks the log to declare gone any node silent too long; then again later. */
  #beat(): void {
    if (this.#stopped) return;
    this.#heartbeat = this.options.clock.after(this.options.heartbeatMs, () => this.#beat());
    this.#append({ kind: "heartbeat", node: this.nodeId, run: this.#run }).catch(() => {});
    const now = this.options.clock.now();
    for (const [node, peer] of this.#peers) {
      if (node === this.nodeId || peer.declaredDown) continue;
      if (now - peer.heardAt < this.options.nodeTimeoutMs) continue;
      peer.declaredDown = true; // ask once; the log decides
      this.options.logger.warn("cluster.node_silent", { node, silentMs: now - peer.heardAt });
      this.#append({ kind: "nodeDown", node, run: peer.run, lastBeat: peer.lastBeat }).catch(() => {});
    }
  }

  async #applyBatch(entries: LogEntry[]): Promise<void> {
    try {
      for (const entry of entries) {
        if (entry.position <= this.#applied) continue; // delivered again after a restart or a redelivery
        let stamped;
        try {
          stamped = decodeEvent(entry.body.slice());
        } catch (error) {
          this.options.logger.error("cluster.entry_unreadable", {
            position: String(entry.position),
            error: String(error),
          });
          this.#applied = entry.position;
          continue;
        }
        this.#clock.enter(stamped.at, entry.position);
        await this.#apply(stamped.at, entry.position, stamped.event);
        this.#applied = entry.position;
      }
    } finally {
      this.#clock.settle();
    }
    this.broker.saveMeta(APPLIED_KEY, String(this.#applied));
    await this.broker.flush();
  }

  async #apply(at: number, position: bigint, event: ClusterEvent): Promise<void> {
    switch (event.kind) {
      case "claim":
        return await this.#applyClaim(position, event);
      case "packet":
        return this.#applyPacket(event);
      case "leave": {
        const session = this.broker.session(event.clientId);
        if (session) {
          this.broker.close({ session, epoch: event.epoch }, event.publishWill, event.sessionExpiryInterval);
        }
        return;
      }
      case "publish": {
        const key = `${event.node}/${event.run}`;
        if ((this.#lastSequence.get(key) ?? 0) >= event.sequence) return;
        this.#lastSequence.set(key, event.sequence);
        this.broker.deliverRemote(event.message, event.node === this.nodeId && event.run === this.#run);
        return;
      }
      case "timer":
        return this.broker.fire(event.timer, event.clientId, event.epoch);
      case "heartbeat":
        return this.#applyHeartbeat(at, event.node, event.run);
      case "nodeDown":
        return this.#applyNodeDown(event.node, event.run, event.lastBeat);
    }
  }

  async #applyClaim(position: bigint, event: Extract<ClusterEvent, { kind: "claim" }>): Promise<void> {
    const here = event.node === this.nodeId && event.run === this.#run;
    const pending = here ? this.#pending.get(event.request) : undefined;
    if (here) this.#pending.delete(event.request);
    if (!this.#peers.has(event.node)) {
      // A node holding clients must be watched even if none of its heartbeats reached us yet.
      this.#peers.set(event.node, {
        run: event.run,
        lastBeat: NEVER,
        heardAt: this.options.clock.now(),
        declaredDown: false,
      });
    }
    const permissions = this.options.permissionsFor?.(event.clientId, event.owner);
    try {
      const opened = await this.broker.open({
        clientId: event.clientId,
        cleanStart: event.cleanStart,
        sessionExpiryInterval: event.sessionExpiryInterval,
        will: event.will,
        attachment: permissions ? { ...event.attachment, permissions } : event.attachment,
        link: pending?.link,
        owner: event.owner,
        epoch: Number(position),
        holder: holderOf(event.node, event.run),
      });
      pending?.resolve(opened);
    } catch (error) {
      pending?.reject(error);
    }
  }

  #applyPacket(event: Extract<ClusterEvent, { kind: "packet" }>): void {
    const session = this.broker.session(event.clientId);
    if (!session) return;
    const decoder = new Decoder({ maxPacketSize: 0x0fff_ffff, protocolVersion: event.version });
    decoder.push(event.frame);
    const packet = decoder.next();
    if (!packet) return;
    const effects = this.broker.receive({ session, epoch: event.epoch }, packet, [], true);
    this.broker.linkOf(event.clientId, event.epoch)?.run(effects);
  }

  #applyHeartbeat(at: number, node: string, run: number): void {
    const peer = this.#peers.get(node);
    if (peer && peer.run > run) return; // a late beat of an earlier run
    if (peer && peer.run < run) this.#applyNodeDown(node, peer.run, peer.lastBeat); // it restarted
    this.#peers.set(node, { run, lastBeat: at, heardAt: this.options.clock.now(), declaredDown: false });
  }

  /** Disconnects, abnormally, every client the gone node's run held (their wills go out, timers start). */
  #applyNodeDown(node: string, run: number, lastBeat: number): void {
    const peer = this.#peers.get(node);
    if (peer && peer.run === run && peer.lastBeat !== lastBeat) return; // it spoke since: not gone
    const holder = holderOf(node, run);
    const gone = [...this.broker.connectedClients()].filter((client) => client.holder === holder);
    this.options.logger.warn("cluster.node_down", { node, run, clients: gone.length });
    for (const { clientId, epoch } of gone) {
      const session = this.broker.session(clientId)!;
      this.broker.linkOf(clientId, epoch)?.takeOver();
      this.broker.close({ session, epoch }, true);
    }
    if (peer?.run === run) this.#peers.delete(node);
  }
}

/** How the broker records where a client is connected: node and run. */
function holderOf(node: string, run: number): string {
  return `${node}/${run}`;
}

function unavailable(): Effect {
  return {
    kind: "close",
    reasonCode: ReasonCode.ServerUnavailable,
    reasonString: "cluster unavailable",
    notify: true,
    publishWill: true,
  };
}
