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
import type { Effect, Message, MessageOrigin, Permissions } from "../session/types.ts";
import type { ClusterLog, ClusterLogStats, LogEntry } from "../storage/cluster_log.ts";
import {
  type ClusterEvent,
  decodeEvent,
  encodeEvent,
  type PublishSkim,
  skimPublish,
  type Stamped,
} from "./events.ts";
import { Join, type JoinStep, type Sender } from "./join.ts";
import { Liveness } from "./liveness.ts";
import { LogClock } from "./log_clock.ts";
import { type ClusterPart, SnapshotWriter } from "./snapshot.ts";

/** A node's view of the cluster (ClusterNode.status). */
export interface ClusterStatus {
  nodeId: string;
  /** The cluster log can be used; `detail` says why not, or what it is. */
  up: boolean;
  detail: string;
  nodes: {
    nodeId: string;
    /** When its process started (ms since the epoch): another value means it restarted. */
    run: number;
    self: boolean;
    /** False once this node asked the log to declare it gone. */
    alive: boolean;
    lastHeardMsAgo: number;
  }[];
  log: ClusterLogStats;
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
  /**
   * The storage holds part of a state this node was installing when it stopped (meta `cluster.join` and no
   * applied position): it is cleared before the node asks for the state again.
   */
  joinInterrupted?: boolean;
}

interface PendingClaim {
  link: SessionLink;
  resolve(result: OpenResult): void;
  reject(error: unknown): void;
}

/** A CONNECT refused because the cluster log cannot be reached (the client may retry elsewhere). */
export class ClusterUnavailableError extends MqttError {
  constructor(reason: string) {
    super(ReasonCode.ServerUnavailable, `cluster unavailable: ${reason}`);
  }
}

const APPLIED_KEY = "cluster.applied";
/** Stored with the first part of another node's state this node installs (see ClusterNodeOptions.joinInterrupted). */
const JOIN_KEY = "cluster.join";
/** The stored applied position may lag behind by entries that changed nothing stored, for at most this long. */
const APPLIED_SAVE_MS = 1000;
/** Snapshot pieces stay well under RocketMQ's 4 MiB message limit, beside other entries in a batch. */
const SNAPSHOT_PIECE_BYTES = 512 * 1024;
/**
 * Pieces a node answering a snapshot request has appended and the log has not yet taken: enough to keep
 * the log's sender busy, few enough that a slow log holds the export back rather than filling memory.
 */
const SNAPSHOT_PIECES_IN_FLIGHT = 4;
/** The longest a joining node whose storage failed waits before it asks for the state again. */
const MAX_JOIN_RETRY_MS = 5 * 60_000;

/** A node of the cluster; connections talk to it as they would to a single broker. */
export class ClusterNode implements SessionService {
  readonly broker: Broker;
  readonly #clock: LogClock;
  readonly #pending = new Map<number, PendingClaim>();
  readonly #liveness: Liveness;
  /** Highest publish sequence applied per (node, run): a send retried after it had landed is applied once. */
  readonly #lastSequence = new Map<string, number>();
  #lastOrigin = { nodeId: "", run: Number.NaN, key: "" };
  readonly #run: number;
  #nextRequest = 1;
  #nextSequence = 1;
  #applied: bigint;
  /** When the applied position was last stored (clock ms); see #storeApplied. */
  #appliedSavedAt = -Infinity;
  /** Set when a connection asked for a flush (see #applyDecoded). */
  #flushAsked = false;
  #heartbeat: TimerHandle | undefined;
  #stopped = false;
  /** Set while this node, which started with no state, waits for another node's. */
  #join: Join | undefined;
  #joinTimer: TimerHandle | undefined;
  /** Nodes seen asking for a state while this node joins, and not seen sending one: they have none to give. */
  readonly #joiners = new Set<string>();
  /** Pieces in a row this node failed to store (see #install). */
  #installFailures = 0;
  /** Requests in a row no node answered (see #askForState). */
  #unanswered = 0;

  constructor(private readonly options: ClusterNodeOptions) {
    this.#clock = new LogClock(options.clock);
    this.#liveness = new Liveness(options.nodeId, options.clock.now);
    this.#run = options.clock.now();
    this.#applied = options.applied?.position ?? -1n;
    if (!options.applied) this.#join = new Join(options.nodeId, this.#run, 1);
    this.broker = options.createBroker({
      egress: {
        forward: (message) => this.#forward(message),
        share: (clientId, epoch, subscription, added) =>
          void this.#append({ kind: "share", clientId, epoch, subscription, added }).catch((error) =>
            this.options.logger.warn("cluster.share_not_appended", { clientId, error: String(error) })
          ),
      },
      onTimer: (timer, clientId, epoch) => this.#appendTimer(timer, clientId, epoch),
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

  /**
   * Starts applying the log and saying that this node is alive. A node without state first asks for
   * another node's; if no other node is heard within three heartbeats (the first node of a cluster), or none
   * answers within the node timeout, it starts from nothing.
   */
  start(): void {
    if (this.#join && this.options.joinInterrupted) {
      this.options.logger.warn("cluster.join_cleared", {
        reason: "a join did not finish before the node stopped",
      });
      this.broker.clearState();
    }
    this.options.log.consume((entries) => this.#applyBatch(entries));
    this.#beat();
    if (this.#join) this.#askForState(this.#join);
  }

  /**
   * Appends the join's request (again each heartbeat while the log refuses it) and waits for an answer:
   * with no other node heard of within three heartbeats (the first node of a cluster), the node starts from
   * nothing. With no answer within the node timeout it asks again while a node that may have a state is
   * alive (the one to answer may have died before its first piece, and is declared gone meanwhile), else
   * it starts from nothing (every other node is joining too: a new cluster). Once an answer starts, it takes
   * as long as it takes.
   */
  #askForState(join: Join): void {
    const { heartbeatMs, nodeTimeoutMs } = this.options;
    this.#append({ kind: "snapshotRequest", node: this.nodeId, run: this.#run, attempt: join.attempt }).catch(
      (error) => {
        if (this.#stopped || this.#join !== join) return;
        this.options.logger.error("cluster.join_request_failed", { error: String(error) });
        this.#setJoinTimer(heartbeatMs, () => this.#askForState(join));
      },
    );
    this.#setJoinTimer(3 * heartbeatMs, () => {
      if (!this.#liveness.othersKnown) return void this.#startAlone("no other node");
      // Twice as long each time no answer came: the node to answer may be busy with this node's earlier
      // requests, each as long as the state takes, and asking faster than it answers would never end.
      const waitMs = Math.min(nodeTimeoutMs * 2 ** this.#unanswered, MAX_JOIN_RETRY_MS);
      this.#setJoinTimer(Math.max(0, waitMs - 3 * heartbeatMs), () => {
        const withState = this.#liveness.alive(this.nodeId).filter((node) => !this.#joiners.has(node));
        if (withState.length === 0) return void this.#startAlone("no node answered");
        this.#unanswered++;
        this.#restartJoin(`no answer; alive and not joining: ${withState.sort().join(", ")}`);
      });
    });
  }

  #setJoinTimer(ms: number, then: () => void): void {
    this.options.clock.cancel(this.#joinTimer);
    this.#joinTimer = this.options.clock.after(ms, then);
  }

  /**
   * The node answering died half-way: what it sent is forgotten and the state asked for again, from the
   * live node with the lowest id as every node sees it now (the request lands after the node's end).
   */
  #restartJoin(reason: string, afterMs = 0): void {
    const join = this.#join!;
    this.options.logger.warn("cluster.join_restarted", { reason, attempt: join.attempt + 1, afterMs });
    this.broker.clearState();
    const next = this.#join = new Join(this.nodeId, this.#run, join.attempt + 1);
    if (afterMs === 0) return this.#askForState(next);
    // Until then the new join has no request in the log: it takes no piece and keeps no entry.
    this.#setJoinTimer(afterMs, () => this.#askForState(next));
  }

  /** True while the node waits for another node's state and cannot take clients yet. */
  get joining(): boolean {
    return this.#join !== undefined;
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.options.clock.cancel(this.#heartbeat);
    this.options.clock.cancel(this.#joinTimer);
    for (const pending of this.#pending.values()) {
      pending.reject(new ClusterUnavailableError("node stopping"));
    }
    this.#pending.clear();
    await this.options.log.stop();
  }

  /** This node's view of the cluster, for the admin API: itself first, then every node it heard of. */
  status(): ClusterStatus {
    const now = this.options.clock.now();
    const health = this.health();
    return {
      nodeId: this.nodeId,
      up: health.ok,
      detail: health.detail,
      nodes: [
        { nodeId: this.nodeId, run: this.#run, self: true, alive: true, lastHeardMsAgo: 0 },
        ...this.#liveness.peers().map((peer) => ({
          nodeId: peer.node,
          run: peer.run,
          self: false,
          alive: !peer.declaredDown,
          lastHeardMsAgo: Math.max(0, Math.round(now - peer.heardAt)),
        })),
      ],
      log: this.options.log.stats(),
    };
  }

  /** For /metrics: whether the log can be used, the nodes believed alive (this one included), the log's counters. */
  metrics(): { up: boolean; nodes: number; log: ClusterLogStats } {
    const { up, nodes, log } = this.status();
    return { up, nodes: nodes.filter((node) => node.alive).length, log };
  }

  health(): { ok: boolean; detail: string } {
    if (this.#join) return { ok: false, detail: `cluster node ${this.nodeId}: joining, waiting for state` };
    const log = this.options.log.health();
    return { ok: log.ok, detail: `cluster node ${this.nodeId}: ${log.detail}` };
  }

  now(): number {
    return this.broker.now();
  }

  flush(): Promise<void> | undefined {
    this.#flushAsked = true;
    return this.broker.flush();
  }

  /**
   * Local: every node reads its own store's pages at its own pace (docs/cluster.md, "Design");
   * the others read the next page at the client's next packet, as they apply it.
   */
  connected(handle: SessionHandle): void {
    this.broker.connected(handle);
  }

  needsAddress(sessionExpiryInterval: number): boolean {
    return this.broker.needsAddress(sessionExpiryInterval);
  }

  /** This node's view of the client id's owner (every node sees every claim). */
  owner(clientId: string): { owner?: string; connected: boolean } | undefined {
    return this.broker.owner(clientId);
  }

  /** Claims the client id through the log; resolves when the claim is applied here. */
  open(request: OpenRequest): Promise<OpenResult> {
    const link = request.link;
    if (!link) return Promise.reject(new Error("a cluster node opens sessions for its own connections only"));
    if (this.#join) {
      return Promise.reject(new ClusterUnavailableError("this node is still joining the cluster"));
    }
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
      address: request.address,
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
  receive(handle: SessionHandle, packet: Packet, out?: Effect[], now?: number): Effect[] {
    if (!handle.session.persistent) return this.broker.receive(handle, packet, out, now);
    if (packet.type === "pingreq") return [{ kind: "send", packet: { type: "pingresp" } }];
    if (packet.type === "publish") {
      const refusal = this.broker.refusalOverBudget(handle.session, packet);
      if (refusal) return refusal;
    }
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
    const origin = { nodeId: this.nodeId, run: this.#run, sequence: this.#nextSequence++ };
    // What the event carries (its encoding writes these fields), in one object: no copy of the message
    // without its packet and then another with its origin, for every message this node forwards.
    const { topic, payload, qos, retain, publisherId, expiresAt, properties } = message;
    const appended = this.#append({
      kind: "publish",
      message: { topic, payload, qos, retain, publisherId, expiresAt, properties, origin },
    });
    // A QoS 0 or broker message has nobody to tell when the log refuses it (QoS 1/2 are refused to their
    // publisher through the returned promise): it is lost, as QoS 0 may be, and must not end the process.
    appended.catch(() => {});
    return appended;
  }

  /**
   * A session timer came due here: its event goes to the log, and is offered again every heartbeat while the
   * log refuses it (expiry and delayed wills wait for the log; a late copy from another node changes nothing).
   */
  #appendTimer(timer: SessionTimer, clientId: string, epoch: number): void {
    this.#append({ kind: "timer", timer, clientId, epoch }).catch((error) => {
      if (this.#stopped) return;
      this.options.logger.warn("cluster.timer_not_appended", { clientId, timer, error: String(error) });
      this.options.clock.after(this.options.heartbeatMs, () => this.#appendTimer(timer, clientId, epoch));
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
    for (const { node, run, lastBeat } of this.#liveness.silent(this.options.nodeTimeoutMs)) {
      this.options.logger.warn("cluster.node_silent", { node });
      this.#append({ kind: "nodeDown", node, run, lastBeat }).catch(() => {});
    }
  }

  async #applyBatch(entries: LogEntry[]): Promise<void> {
    if (this.#join) return await this.#joinBatch(entries);
    const decoded: (DecodedEntry | SkimmedEntry)[] = [];
    for (const entry of entries) {
      if (entry.position <= this.#applied) continue; // delivered again after a restart or a redelivery
      const skim = this.#skim(entry);
      if (skim) {
        decoded.push({ position: entry.position, at: skim.at, skim, entry });
        continue;
      }
      const stamped = this.#decode(entry);
      if (stamped) decoded.push({ position: entry.position, ...stamped });
      else this.#applied = entry.position;
    }
    await this.#applyDecoded(decoded);
  }

  /** Applies entries in order, then stores how far it got with what they changed (one group commit). */
  async #applyDecoded(entries: (DecodedEntry | SkimmedEntry)[]): Promise<void> {
    // Only publishes and heartbeats are applied without a wait and without a flush of their own, so for
    // them "nothing is waiting to be stored" (below) means "they stored nothing".
    let routine = true;
    this.#flushAsked = false;
    try {
      for (const entry of entries) {
        const { position, at } = entry;
        if (position <= this.#applied) continue;
        this.#clock.enter(at, position);
        let event: ClusterEvent;
        if ("skim" in entry) {
          // Decided here, not when it was read: an entry before it in this batch may have subscribed someone.
          if (this.#concernsNobody(entry.skim)) {
            this.#firstSight(entry.skim.origin);
            this.#applied = position;
            continue;
          }
          const stamped = this.#decode(entry.entry);
          if (!stamped) {
            this.#applied = position;
            continue;
          }
          event = stamped.event;
        } else event = entry.event;
        if (event.kind !== "publish" && event.kind !== "heartbeat") routine = false;
        const applying = this.#apply(at, position, event);
        if (applying) await applying; // only claims and snapshot requests wait: no await per message
        this.#applied = position;
      }
    } finally {
      this.#clock.settle();
    }
    // A connection asks for a flush when a QoS 2 delivery must be stored before it is sent.
    await this.#storeApplied(routine && !this.#flushAsked);
  }

  /**
   * Stores how far this node got, in the same commit as what the applied entries changed, before the log
   * is told they are done. Entries that changed nothing stored (publishes that reached only transient
   * sessions or none, heartbeats: `mayDefer`) need no commit: the log's own cursor is what a restarted
   * node resumes from, and the stored position only keeps a batch that was applied but not yet
   * acknowledged from being applied twice after a restart, which for such entries changes nothing that
   * outlives the restart. So their position is written with the next commit, or at least once every
   * APPLIED_SAVE_MS: a commit (an fsync) per received batch was most of the time a node took to apply one
   * (7–8 ms of 10 ms at 2k msg/s).
   */
  async #storeApplied(mayDefer: boolean): Promise<void> {
    // undefined: nothing is waiting to be stored (the meta below joins this same commit otherwise).
    const changed = this.broker.flush();
    const now = this.options.clock.now();
    if (mayDefer && changed === undefined && now - this.#appliedSavedAt < APPLIED_SAVE_MS) return;
    this.#appliedSavedAt = now;
    this.broker.saveMeta(APPLIED_KEY, String(this.#applied));
    await this.broker.flush();
  }

  /** True the first time a publish of this origin and sequence is applied (a retried send lands twice). */
  #firstSight(origin: MessageOrigin): boolean {
    const key = this.#originKey(origin);
    if ((this.#lastSequence.get(key) ?? 0) >= origin.sequence) return false;
    this.#lastSequence.set(key, origin.sequence);
    return true;
  }

  /** The key of an origin's node and run in #lastSequence; the last one is kept, as entries come in runs. */
  #originKey(origin: MessageOrigin): string {
    const last = this.#lastOrigin;
    if (last.nodeId === origin.nodeId && last.run === origin.run) return last.key;
    this.#lastOrigin = { nodeId: origin.nodeId, run: origin.run, key: `${origin.nodeId}/${origin.run}` };
    return this.#lastOrigin.key;
  }

  /** The topic, retain flag and origin of a publish entry (undefined for other events and damaged ones). */
  #skim(entry: LogEntry): PublishSkim | undefined {
    try {
      return skimPublish(entry.body);
    } catch {
      return undefined; // decoded in full, which logs what is wrong with it
    }
  }

  /**
   * A publish that sets no retained message and matches no subscription here (direct, shared, transient
   * or persistent) changes nothing on this node but its origin's sequence: it need not be decoded.
   */
  #concernsNobody(skim: PublishSkim): boolean {
    if (skim.retain) return false;
    TOPIC_PROBE.topic = skim.topic;
    return !this.broker.router.reaches(TOPIC_PROBE, anyone);
  }

  /** The event of an entry, or undefined (logged) for one this code cannot read. */
  #decode(entry: LogEntry): Stamped | undefined {
    try {
      // A copy into a plain Uint8Array: the adapter may hand out views (a Node Buffer, whose slice() is a view).
      return decodeEvent(new Uint8Array(entry.body));
    } catch (error) {
      this.options.logger.error("cluster.entry_unreadable", {
        position: String(entry.position),
        error: String(error),
      });
      return undefined;
    }
  }

  /**
   * While joining: keeps what comes after the request, and installs the state as its pieces arrive, each
   * stored before the next is read (memory holds a batch of entries, not the state).
   */
  async #joinBatch(entries: LogEntry[]): Promise<void> {
    for (let i = 0; i < entries.length; i++) {
      const join = this.#join;
      if (!join) return await this.#applyBatch(entries.slice(i));
      const entry = entries[i];
      const stamped = this.#decode(entry);
      if (!stamped) continue;
      const { event, at } = stamped;
      // Liveness only: the broker holds part of a state, and the kept entry is applied to it in full later.
      if (event.kind === "heartbeat") this.#liveness.heard(event.node, event.run, at);
      if (event.kind === "snapshotRequest" && event.node !== this.nodeId) this.#joiners.add(event.node);
      if (event.kind === "snapshotChunk") this.#joiners.delete(event.from);
      const answered = join.sender !== undefined;
      let step: JoinStep;
      try {
        step = join.take(entry, event);
      } catch (error) {
        this.#restartJoin(error instanceof Error ? error.message : String(error));
        continue;
      }
      const sender = join.sender;
      if (!sender) continue;
      if (!answered) {
        this.#unanswered = 0;
        this.options.logger.info("cluster.join_answered", { from: sender.node, attempt: join.attempt });
        this.options.clock.cancel(this.#joinTimer); // an answer is coming: it takes as long as it takes
      }
      if (this.#senderGone(sender, event)) {
        this.#restartJoin(`${sender.node} (run ${sender.run}) ended before its answer did`);
        continue;
      }
      if (!step || !await this.#install(join, step)) continue;
      if (step.done && this.#join === join) await this.#finish(join, entry.position, step.done);
    }
  }

  /** Whether `event` says the node answering this join is gone: declared down, or started again. */
  #senderGone(sender: Sender, event: ClusterEvent): boolean {
    if (event.kind === "heartbeat") return event.node === sender.node && event.run > sender.run;
    return event.kind === "nodeDown" && event.node === sender.node && event.run === sender.run &&
      this.#liveness.isGone(event.node, event.run, event.lastBeat);
  }

  /**
   * Installs and stores the parts a piece completed. False when this node's storage failed: the state is
   * asked for again later, later each time it fails again, as each answer holds up the node that sends it.
   */
  async #install(join: Join, step: NonNullable<JoinStep>): Promise<boolean> {
    try {
      if (step.restarted) this.broker.clearState();
      for (const part of step.parts) this.broker.importPart(part);
      this.broker.saveMeta(JOIN_KEY, String(join.attempt));
      await this.broker.flush();
      this.#installFailures = 0;
      return true;
    } catch (error) {
      const afterMs = Math.min(this.options.heartbeatMs * 2 ** this.#installFailures++, MAX_JOIN_RETRY_MS);
      this.options.logger.error("cluster.join_install_failed", { error: String(error) });
      if (this.#join === join) this.#restartJoin("this node could not store a piece", afterMs);
      return false;
    }
  }

  /** The last piece is installed: the state is this node's as of the request, then what followed is applied. */
  async #finish(
    join: Join,
    piecePosition: bigint,
    { cluster, position }: NonNullable<NonNullable<JoinStep>["done"]>,
  ): Promise<void> {
    this.options.logger.info("cluster.joined", {
      at: String(position),
      from: join.sender?.node,
      sessions: this.broker.sessionCount,
    });
    this.#installCluster(cluster);
    this.#applied = position;
    await this.#finishJoin();
    if (piecePosition > this.#applied) this.#applied = piecePosition; // the last piece itself
  }

  #installCluster(cluster: ClusterPart): void {
    this.#liveness.importAll(cluster.peers);
    for (const [key, sequence] of cluster.sequences) this.#lastSequence.set(key, sequence);
  }

  /** Starts from nothing: no other node's state is coming. */
  async #startAlone(reason: string): Promise<void> {
    if (!this.#join) return;
    this.options.logger.warn("cluster.join_alone", { reason });
    await this.#finishJoin();
  }

  /** Applies what was kept while joining, and takes clients from now on. */
  async #finishJoin(): Promise<void> {
    const join = this.#join!;
    this.#join = undefined;
    this.options.clock.cancel(this.#joinTimer);
    await this.#applyBatch(join.kept);
  }

  /**
   * Answers another node's snapshot request if this node is the one to (the live node with the lowest id):
   * streams its state as of the request's place in the log, which holds while it sends, as this node
   * applies nothing else meanwhile. A piece the log refuses makes it send the whole state again, from piece
   * 0, after a heartbeat.
   */
  async #answerJoin(node: string, run: number, attempt: number): Promise<void> {
    if (this.#liveness.alive(node).sort()[0] !== this.nodeId) return;
    while (!this.#stopped) {
      try {
        const sent = await this.#sendState(node, run, attempt);
        return void this.options.logger.info("cluster.snapshot_sent", { to: node, attempt, ...sent });
      } catch (error) {
        if (this.#stopped) return;
        this.options.logger.error("cluster.snapshot_failed", { to: node, attempt, error: String(error) });
        await new Promise<void>((resolve) => this.options.clock.after(this.options.heartbeatMs, resolve));
      }
    }
  }

  async #sendState(node: string, run: number, attempt: number): Promise<{ pieces: number; bytes: number }> {
    let index = 0;
    let bytes = 0;
    const appending: Promise<void>[] = [];
    const writer = new SnapshotWriter(SNAPSHOT_PIECE_BYTES, async (data, last) => {
      const appended = this.#append({
        kind: "snapshotChunk",
        node,
        run,
        attempt,
        from: this.nodeId,
        fromRun: this.#run,
        index: index++,
        last,
        data,
      });
      appended.catch(() => {}); // awaited below, in order; a refusal must not go unhandled until then
      appending.push(appended);
      bytes += data.byteLength;
      while (appending.length >= (last ? 1 : SNAPSHOT_PIECES_IN_FLIGHT)) await appending.shift();
    });
    await writer.write({
      kind: "cluster",
      peers: this.#liveness.exportAll(),
      sequences: [...this.#lastSequence],
    });
    for await (const part of this.broker.exportState()) await writer.write(part);
    await writer.end();
    return { pieces: index, bytes };
  }

  #apply(at: number, position: bigint, event: ClusterEvent): Promise<void> | void {
    switch (event.kind) {
      case "claim":
        return this.#applyClaim(position, event);
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
        const { origin } = event.message;
        if (!this.#firstSight(origin)) return;
        this.broker.deliverRemote(event.message, origin.nodeId === this.nodeId && origin.run === this.#run);
        return;
      }
      case "timer":
        return this.broker.fire(event.timer, event.clientId, event.epoch);
      case "share":
        return this.broker.applyShare(event.clientId, event.epoch, event.subscription, event.added);
      case "snapshotRequest":
        return event.node === this.nodeId
          ? undefined
          : this.#answerJoin(event.node, event.run, event.attempt);
      case "snapshotChunk":
        return;
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
    this.#liveness.watch(event.node, event.run);
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
        address: event.address,
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
    const effects = this.broker.receive({ session, epoch: event.epoch }, packet, [], this.broker.now(), true);
    this.broker.linkOf(event.clientId, event.epoch)?.run(effects);
  }

  #applyHeartbeat(at: number, node: string, run: number): void {
    const ended = this.#liveness.heard(node, run, at);
    if (ended) this.#disconnectAll(node, ended.run); // it restarted: its earlier run's clients are gone
  }

  #applyNodeDown(node: string, run: number, lastBeat: number): void {
    if (!this.#liveness.isGone(node, run, lastBeat)) return; // it spoke since: not gone
    this.#disconnectAll(node, run);
    this.#liveness.forget(node, run);
  }

  /** Disconnects, abnormally, every client the gone node's run held (their wills go out, timers start). */
  #disconnectAll(node: string, run: number): void {
    const holder = holderOf(node, run);
    const gone = [...this.broker.connectedClients()].filter((client) => client.holder === holder);
    this.options.logger.warn("cluster.node_down", { node, run, clients: gone.length });
    for (const { clientId, epoch } of gone) {
      const session = this.broker.session(clientId)!;
      this.broker.linkOf(clientId, epoch)?.takeOver();
      this.broker.close({ session, epoch }, true);
    }
  }
}

/** An entry decoded, to apply. */
interface DecodedEntry {
  position: bigint;
  at: number;
  event: ClusterEvent;
}

/** A publish entry read only as far as its topic, retain flag and origin (see #concernsNobody). */
interface SkimmedEntry {
  position: bigint;
  at: number;
  skim: PublishSkim;
  entry: LogEntry;
}

/** The message the router is asked about: only its topic is looked at. */
const TOPIC_PROBE: Message = {
  topic: "",
  payload: new Uint8Array(0),
  qos: 0,
  retain: false,
  publisherId: "",
  properties: {},
};
const anyone = () => true;

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
