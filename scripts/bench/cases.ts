/** The benchmark cases: what each measures and how the load generator is driven for it. */
import { RECLAIM_INTERVAL_MS } from "../../src/observe/memory_reclaimer.ts";

export type Topology = "pair" | "wildcard";

/** Publishers to subscribers over MQTT 3.1.1. */
export interface PubSubCase {
  kind: "pubsub";
  name: string;
  title: string;
  group: "throughput" | "latency" | "durable";
  pubs: number;
  subs: number;
  /** pair: publisher i publishes on bench/i/x, subscriber j subscribes to bench/(j mod P)/x;
   * wildcard: every subscriber subscribes to bench/+/x. */
  topology: Topology;
  qos: 0 | 1;
  payload: number;
  /** Total messages per second over all publishers; 0 = as fast as the broker delivers. */
  rate: number;
  /** Subscribers use clean session 0 and fixed client ids; the brokers persist to disk. */
  durable: boolean;
}

/** Many connections that only CONNECT and stay. */
export interface IdleCase {
  kind: "idle";
  name: string;
  title: string;
  connections: number;
}

/** The same pubsub case driven by one and by two generator processes (not a broker comparison). */
export interface SplitCheckCase {
  kind: "split-check";
  name: string;
  title: string;
  base: PubSubCase;
}

export type BenchCase = PubSubCase | IdleCase | SplitCheckCase;

/**
 * Unlimited rate: a subscriber may have this many messages addressed to it and not yet received before its
 * publisher pauses, so the run measures sustainable delivery, not how deep a broker queues. Deep enough that
 * every broker's core stays busy (the report shows its CPU use): with 1,000 at QoS 0, rumqttd idled with
 * about 40 ms of messages queued. At QoS 1 it stays below the per-client queue every broker keeps by default
 * (Mosquitto and mqtt-proxy: 1,000 queued behind the in-flight window), which would otherwise drop.
 */
export const E2E_WINDOW: Record<0 | 1, number> = { 0: 10_000, 1: 1_000 };
/** Unacknowledged QoS 1 PUBLISHes per publisher. */
export const QOS1_INFLIGHT = 1_000;
/**
 * QoS 1 PUBLISHes a broker may have unacknowledged to one subscriber, set alike wherever a broker lets it be set
 * for MQTT 3.1.1 clients: mqtt-proxy (default 100) and Mosquitto (default 20); mochi allows 8,192 and Aedes sets
 * no limit. rumqttd's is fixed at 100 (MAX_INFLIGHT in its src/router/iobufs.rs); its `max_inflight_count`,
 * the packets read from a connection per batch, gets the same number. With 100, fan-in's one subscriber set the
 * pace (a round was its PUBACKs, the broker's next 100 PUBLISHes and the generator's pause) and mqtt-proxy and
 * rumqttd both idled at a third of their core.
 */
export const SUBSCRIBER_INFLIGHT = 1_000;
/** At fixed rate the latency cases send this many messages per second in total. */
export const LATENCY_RATE = 10_000;
/** Idle connections: under the 20,000 per-process fd limit of broker and generator alike, with room for
 * the broker's own descriptors (listeners, storage, runtime). */
export const IDLE_CONNECTIONS = 19_000;
export const QUICK_IDLE_CONNECTIONS = 500;
/**
 * How long the idle case holds its connections before it takes their cost: past the quiet time of mqtt-proxy's
 * memory reclaimer and its next allocator trim (src/observe/memory_reclaimer.ts), so every broker is measured
 * at rest.
 */
export const IDLE_HOLD_MS = RECLAIM_INTERVAL_MS + 4_000;
/** The idle case opens its connections from this many generator processes at once. */
export const IDLE_PROCESSES = 4;
/** Handshakes in flight over all generator processes: Mosquitto listens with a backlog of 100, and
 * overflowing it costs 1 s SYN retransmits, which would measure the backlog rather than the broker. */
export const IDLE_PENDING = 96;

function pubsub(
  name: string,
  title: string,
  group: PubSubCase["group"],
  shape: Partial<Omit<PubSubCase, "kind" | "name" | "title" | "group">>,
): PubSubCase {
  return {
    kind: "pubsub",
    name,
    title,
    group,
    pubs: 10,
    subs: 10,
    topology: "pair",
    qos: 0,
    payload: 64,
    rate: 0,
    durable: false,
    ...shape,
  };
}

export function allCases(quick: boolean): BenchCase[] {
  const pairs = pubsub("q0-64", "QoS 0, 10→10, 64 B", "throughput", {});
  return [
    pairs,
    pubsub("q0-1k", "QoS 0, 10→10, 1 KiB", "throughput", { payload: 1024 }),
    pubsub("q1-64", "QoS 1, 10→10, 64 B", "throughput", { qos: 1 }),
    pubsub("q1-1k", "QoS 1, 10→10, 1 KiB", "throughput", { qos: 1, payload: 1024 }),
    pubsub("fanin-q0", "fan-in 100→1 (bench/+/x), QoS 0, 64 B", "throughput", {
      pubs: 100,
      subs: 1,
      topology: "wildcard",
    }),
    pubsub("fanin-q1", "fan-in 100→1 (bench/+/x), QoS 1, 64 B", "throughput", {
      pubs: 100,
      subs: 1,
      topology: "wildcard",
      qos: 1,
    }),
    pubsub("fanout-q0", "fan-out 1→100, QoS 0, 64 B", "throughput", { pubs: 1, subs: 100 }),
    pubsub("fanout-q1", "fan-out 1→100, QoS 1, 64 B", "throughput", { pubs: 1, subs: 100, qos: 1 }),
    pubsub("latency-q0", "10k msg/s, QoS 0, 10→10, 64 B", "latency", { rate: LATENCY_RATE }),
    pubsub("latency-q1", "10k msg/s, QoS 1, 10→10, 64 B", "latency", { qos: 1, rate: LATENCY_RATE }),
    pubsub("durable-q1", "QoS 1 to persistent sessions, durable store, 10→10, 64 B", "durable", {
      qos: 1,
      durable: true,
    }),
    pubsub(
      "durable-fanout-q1",
      "QoS 1 to persistent sessions, durable store, fan-out 1→100, 64 B",
      "durable",
      {
        pubs: 1,
        subs: 100,
        qos: 1,
        durable: true,
      },
    ),
    {
      kind: "idle",
      name: "idle",
      title: "idle connections",
      connections: quick ? QUICK_IDLE_CONNECTIONS : IDLE_CONNECTIONS,
    },
    {
      kind: "split-check",
      name: "split-check",
      title: "generator check: 1 vs 2 processes, QoS 0, 10→10, 64 B",
      base: pairs,
    },
  ];
}
