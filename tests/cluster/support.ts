/**
 * Broker-level cluster tests without sockets: several cluster nodes in this process share one in-memory
 * log, each with its own in-memory storage, on a fake clock. Clients are plain objects standing in for
 * connections (a SessionLink that records what the node asks it to do).
 */
import assert from "node:assert/strict";
import {
  Broker,
  type MemoryBudget,
  type OpenResult,
  type SessionLink,
  type SessionQuotaLimits,
} from "../../src/broker/mod.ts";
import { ClusterNode } from "../../src/cluster/mod.ts";
import { type ClusterEvent, decodeEvent } from "../../src/cluster/events.ts";
import type { Packet, Properties, ProtocolVersion, PublishPacket, QoS, Will } from "../../src/codec/mod.ts";
import type { AckEffect, Attachment, Effect, Message } from "../../src/session/mod.ts";
import { MemoryLog, MemoryLogService } from "../../src/storage/memory/memory_log.ts";
import { createMemoryState, createMemoryStorage, type MemoryState } from "../../src/storage/mod.ts";
import { FakeClock } from "../helpers/clock.ts";

import { limits } from "../helpers/session_limits.ts";

export const HEARTBEAT_MS = 1000;
/** How long an append waits for an unreachable log (real time, kept short). */
export const APPEND_TIMEOUT_MS = 300;
export const NODE_TIMEOUT_MS = 5000;

/** A QoS 1 publish on t/1 as a node that is gone wrote it to the log, numbered `sequence` in its run. */
export function goneNodePublish(sequence: number, payload: string): ClusterEvent {
  return {
    kind: "publish",
    message: {
      topic: "t/1",
      payload: new TextEncoder().encode(payload),
      qos: 1,
      retain: false,
      publisherId: "p",
      properties: {},
      origin: { nodeId: "gone", run: 1, sequence },
    },
  };
}

/** A cluster in one process: the shared log, a clock, and the nodes started so far. */
export class TestCluster {
  readonly service = new MemoryLogService();
  /** Starts at the real time: storage reads check message expiry against the real clock. */
  readonly clock = new FakeClock(Date.now());
  readonly nodes: ClusterNode[] = [];
  /** How many times each node wrote a meta value (its applied position) to its storage. */
  readonly metaSaves = new Map<string, number>();
  /** Each running node's handle on the log, and its storage. */
  readonly logs = new Map<string, MemoryLog>();
  readonly storages = new Map<string, ReturnType<typeof createMemoryStorage>>();
  /** Each node's storage, kept across a restart of that node. */
  readonly #states = new Map<string, MemoryState>();

  async start(nodeId: string, quota?: SessionQuotaLimits, memoryBudget?: MemoryBudget): Promise<ClusterNode> {
    const node = await this.launch(nodeId, quota, memoryBudget);
    // A node without state waits for another's (or, alone, for three heartbeats).
    for (let beats = 0; node.joining && beats < 20; beats++) await this.advance(HEARTBEAT_MS);
    assert.equal(node.joining, false, `${nodeId} never finished joining`);
    await this.settle();
    return node;
  }

  /** Starts a node and returns it at once, joining if it has no state. */
  async launch(
    nodeId: string,
    quota?: SessionQuotaLimits,
    memoryBudget?: MemoryBudget,
  ): Promise<ClusterNode> {
    const state = this.#states.get(nodeId) ?? createMemoryState();
    this.#states.set(nodeId, state);
    const storage = createMemoryStorage(state);
    const saveMeta = storage.saveMeta.bind(storage);
    storage.saveMeta = (key, value) => {
      this.metaSaves.set(nodeId, (this.metaSaves.get(nodeId) ?? 0) + 1);
      saveMeta(key, value);
    };
    this.storages.set(nodeId, storage);
    const snapshot = await storage.start();
    const log = new MemoryLog(this.service, { nodeId, appendTimeoutMs: APPEND_TIMEOUT_MS });
    await log.start();
    this.logs.set(nodeId, log);
    const applied = snapshot.meta.get("cluster.applied");
    const node = new ClusterNode({
      nodeId,
      log,
      clock: this.clock,
      logger: silentLogger,
      heartbeatMs: HEARTBEAT_MS,
      nodeTimeoutMs: NODE_TIMEOUT_MS,
      applied: applied === undefined ? undefined : { position: BigInt(applied) },
      joinInterrupted: snapshot.meta.has("cluster.join"),
      createBroker: (hooks) =>
        new Broker({
          limits,
          maxSessionExpiry: 0xffffffff,
          sharedSubscriptionStrategy: "round_robin",
          storage,
          sessionQuota: quota,
          memoryBudget,
          ...hooks,
        }),
    });
    await node.broker.restore(snapshot);
    node.start();
    this.nodes.push(node);
    return node;
  }

  /** Stops a node as a crash would: it stops reading and writing, its clients are simply gone. */
  async kill(node: ClusterNode): Promise<void> {
    this.nodes.splice(this.nodes.indexOf(node), 1);
    await node.stop();
  }

  /** The applied position a node has in its storage (what it would start from after a crash). */
  storedApplied(nodeId: string): string | undefined {
    return this.#states.get(nodeId)?.meta.get("cluster.applied");
  }

  /** Throws away a node's disk, as if it were replaced: its next start has no state. */
  forget(nodeId: string): void {
    this.#states.delete(nodeId);
  }

  /** Waits until every node has applied every entry in the log (bounded by a count of turns, not time). */
  async settle(): Promise<void> {
    for (let turn = 0; turn < 10_000; turn++) {
      await new Promise((resolve) => setTimeout(resolve, 0));
      const last = BigInt(this.service.length - 1) << 16n;
      const serving = this.nodes.filter((node) => !node.joining);
      if (this.service.length === 0 || serving.every((node) => node.appliedPosition >= last)) {
        // One more turn: an apply may have appended more.
        await new Promise((resolve) => setTimeout(resolve, 0));
        const after = BigInt(this.service.length - 1) << 16n;
        if (serving.every((node) => node.appliedPosition >= after)) return;
      }
    }
    throw new Error("the cluster did not settle");
  }

  /** Advances the clock and lets the nodes apply what the timers appended. */
  async advance(ms: number, step = HEARTBEAT_MS): Promise<void> {
    for (let done = 0; done < ms; done += step) {
      this.clock.advance(Math.min(step, ms - done));
      await this.settle();
    }
  }

  async stop(): Promise<void> {
    for (const node of this.nodes.splice(0)) await node.stop();
  }
}

const silentLogger = { info() {}, warn() {}, error() {} };

/**
 * Holds the snapshot pieces a node appends: each enters the log only when the test releases it, so a test
 * can look at a joining node between pieces, or let a node die half-way through its answer.
 */
export class PieceGate {
  readonly #held: PromiseWithResolvers<void>[] = [];

  /** Stopping the log (the node stops or dies) loses the held pieces, as a process that dies loses its sends. */
  constructor(log: MemoryLog) {
    const append = log.append.bind(log);
    log.append = (body) => {
      if (decodeEvent(body).event.kind !== "snapshotChunk") return append(body);
      const held = Promise.withResolvers<void>();
      this.#held.push(held);
      return held.promise.then(() => append(body));
    };
    const stop = log.stop.bind(log);
    log.stop = () => {
      for (const held of this.#held.splice(0)) held.reject(new Error("the node stopped"));
      return stop();
    };
  }

  /** Pieces appended and not yet released. */
  get held(): number {
    return this.#held.length;
  }

  /** Lets the oldest held piece into the log. */
  release(): void {
    const next = this.#held.shift();
    assert.ok(next, "no snapshot piece is held");
    next.resolve();
  }
}

/**
 * An effect as a connection runs it: a PUBLISH is encoded then, so its payload is copied here. The session
 * frees a payload read back from storage once it is acknowledged (Delivery.ownsPayload).
 */
function asWritten(effect: Effect): Effect {
  if (effect.kind !== "deliver") return effect;
  return { ...effect, message: { ...effect.message, payload: effect.message.payload.slice() } };
}

/** A stand-in for a connection: records the effects the node runs for its client. */
export class FakeClient implements SessionLink {
  readonly effects: Effect[] = [];
  takenOver = false;
  writable = true;
  /** How many deliveries the test has acknowledged so far. */
  acked = 0;
  handle: OpenResult | undefined;

  constructor(readonly node: ClusterNode, readonly clientId: string, readonly version: ProtocolVersion = 5) {}

  run(effects: Effect[]): void {
    this.effects.push(...effects.map(asWritten));
  }

  push(effect: Effect): void {
    this.effects.push(asWritten(effect));
  }

  deliver(
    message: Message,
    qos: QoS,
    packetId: number | undefined,
    dup: boolean,
    retain: boolean,
    properties: Properties,
    topic: string,
  ): void {
    this.push({ kind: "deliver", message, qos, packetId, dup, retain, properties, topic });
  }

  takeOver(): void {
    this.takenOver = true;
    this.handle = undefined;
  }

  whenDrained(): void {} // always writable

  async connect(
    options: {
      cleanStart?: boolean;
      expiry?: number;
      will?: Will;
      receiveMaximum?: number;
      /** The client's IP address. */
      address?: string;
    } = {},
  ): Promise<OpenResult> {
    const attachment: Attachment = {
      protocolVersion: this.version,
      receiveMaximum: options.receiveMaximum ?? 65535,
      topicAliasMaximum: 0,
      sessionExpiryInterval: options.expiry ?? 0,
      requestProblemInformation: true,
    };
    this.handle = await this.node.open({
      clientId: this.clientId,
      cleanStart: options.cleanStart ?? true,
      sessionExpiryInterval: options.expiry ?? 0,
      will: options.will,
      attachment,
      link: this,
      address: options.address,
    });
    this.effects.push(...this.handle.effects.map(asWritten));
    return this.handle;
  }

  /** Sends a packet as the client would; the node's immediate answer joins the recorded effects. */
  send(packet: Packet): void {
    assert.ok(this.handle, `${this.clientId} is not connected`);
    this.effects.push(...this.node.receive(this.handle, packet).map(asWritten));
  }

  subscribe(filter: string, qos: QoS, packetId = 1): void {
    this.send({
      type: "subscribe",
      packetId,
      subscriptions: [{
        topicFilter: filter,
        qos,
        noLocal: false,
        retainAsPublished: false,
        retainHandling: 0,
      }],
      properties: {},
    });
  }

  publish(topic: string, payload: string, qos: QoS, packetId?: number, retain = false): void {
    this.send({
      type: "publish",
      topic,
      payload: new TextEncoder().encode(payload),
      qos,
      retain,
      dup: false,
      packetId,
      properties: {},
    });
  }

  ack(packetId: number, type: "puback" | "pubrec" | "pubcomp" = "puback"): void {
    this.send({ type, packetId, reasonCode: 0, properties: {} } as Packet);
  }

  disconnect(publishWill = false): void {
    assert.ok(this.handle);
    this.node.close(this.handle, publishWill);
    this.handle = undefined;
  }

  /** The application messages delivered so far: topic, payload, QoS, packet id, DUP. */
  delivered(): { topic: string; payload: string; qos: QoS; packetId?: number; dup: boolean }[] {
    return this.effects.flatMap((effect) =>
      effect.kind === "deliver"
        ? [{
          topic: effect.message.topic,
          payload: new TextDecoder().decode(effect.message.payload),
          qos: effect.qos,
          packetId: effect.packetId,
          dup: effect.dup,
        }]
        : []
    );
  }

  /** The acknowledgements sent to this client as a publisher, once durable. */
  async acks(): Promise<AckEffect[]> {
    const acks = [];
    for (const effect of this.effects) {
      if (effect.kind !== "ack") continue;
      await effect.durable;
      acks.push(effect);
    }
    return acks;
  }

  sent(type: Packet["type"]): Packet[] {
    return this.effects.flatMap((effect) =>
      effect.kind === "send" && effect.packet.type === type ? [effect.packet] : []
    );
  }
}

export type { PublishPacket };
