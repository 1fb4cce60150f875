/**
 * docs/benchmarks.md: the machine, the method, the targets checked against this run, the latency histogram
 * with mqtt-proxy's GC pauses, what changed since the baseline, and the result tables.
 */
import { BASELINE, type BrokerName, EPOLL_VARIANT, type Layout, REFERENCE_BROKER } from "./brokers.ts";
import {
  E2E_WINDOW,
  IDLE_HOLD_MS,
  IDLE_PENDING,
  IDLE_PROCESSES,
  LATENCY_RATE,
  QOS1_INFLIGHT,
  SUBSCRIBER_INFLIGHT,
} from "./cases.ts";
import { COALESCE_US, GENERATOR_BOUND_PCT, LATENCY_WARMUP_S } from "./generator.ts";
import {
  bestPeer,
  bytes,
  integer,
  label,
  LATE_SEND_FLAG_PCT,
  layoutTitle,
  micros,
  ratio,
  type ReportInput,
  resultsMarkdown,
  summariesFor,
  type Summary,
  table,
} from "./report.ts";
import { CHANGES, PEER_NOTES } from "./what_changed.ts";

/** Latency buckets of the histogram table, upper bounds in µs. */
const LATENCY_BUCKETS = [100, 250, 500, 1000, 2000, 5000, 10_000, Infinity];
/** GC pause buckets, upper bounds in ms. */
const GC_BUCKETS = [0.5, 1, 2, 5, 10, Infinity];

function bucketLabel(bounds: number[], index: number, unit: (v: number) => string): string {
  const low = index === 0 ? 0 : bounds[index - 1];
  const high = bounds[index];
  if (high === Infinity) return `≥ ${unit(low)}`;
  return index === 0 ? `< ${unit(high)}` : `${unit(low)}–${unit(high)}`;
}

function shares(histogram: [number, number][]): string[] {
  const total = histogram.reduce((n, [, count]) => n + count, 0);
  const counts = LATENCY_BUCKETS.map(() => 0);
  for (const [boundUs, count] of histogram) {
    counts[LATENCY_BUCKETS.findIndex((b) => boundUs < b)] += count;
  }
  return counts.map((c) =>
    total === 0 ? "n/a" : c === 0 ? "0" : `${((100 * c) / total).toFixed(c / total < 0.001 ? 3 : 2)}%`
  );
}

/** The latency histogram of every broker in the fixed-rate cases, then mqtt-proxy's GC pauses there. */
function latencyHistogramSection(input: ReportInput, layout: Layout): string[] {
  const histogramRows: string[][] = [];
  const gcRows: string[][] = [];
  for (const testCase of input.cases) {
    if (testCase.kind !== "pubsub" || testCase.group !== "latency") continue;
    for (const [broker, s] of summariesFor(input, testCase, layout)) {
      histogramRows.push([testCase.title, label(broker), ...shares(s.histogram)]);
      if (s.gcWindowS > 0) gcRows.push([testCase.title, label(broker), ...gcCells(s)]);
    }
  }
  if (!histogramRows.length) return [];
  const micro = (v: number) => micros(v);
  const milli = (v: number) => `${v} ms`;
  return [
    `### Latency histogram at ${LATENCY_RATE.toLocaleString("en-US")} msg/s, ${layoutTitle(layout)}\n\n` +
    "Share of the messages delivered within each latency band (all runs together).\n\n" +
    table(
      ["case", "broker", ...LATENCY_BUCKETS.map((_, i) => bucketLabel(LATENCY_BUCKETS, i, micro))],
      histogramRows,
    ),
    `### mqtt-proxy's garbage collection pauses in the same runs, ${layoutTitle(layout)}\n\n` +
    "From V8's `--trace-gc` (main-thread pause of each collection while the generator was publishing). A " +
    "young-generation pause (scavenge) holds every message that arrives meanwhile.\n\n" +
    (gcRows.length
      ? table(
        [
          "case",
          "broker",
          "scavenges/s",
          "p50",
          "p99",
          "max",
          ...GC_BUCKETS.map((_, i) => bucketLabel(GC_BUCKETS, i, milli)),
          "mark-compacts (max)",
        ],
        gcRows,
      )
      : "_no GC trace_"),
  ];
}

function gcCells(s: Summary): string[] {
  const young = s.gc.filter((p) => p.kind === "scavenge").map((p) => p.ms).sort((a, b) => a - b);
  const old = s.gc.filter((p) => p.kind === "mark-compact").map((p) => p.ms);
  const at = (q: number) =>
    young.length ? `${young[Math.min(young.length - 1, Math.floor(q * young.length))].toFixed(2)} ms` : "n/a";
  const counts = GC_BUCKETS.map(() => 0);
  for (const ms of young) counts[GC_BUCKETS.findIndex((b) => ms < b)]++;
  return [
    (young.length / s.gcWindowS).toFixed(1),
    at(0.5),
    at(0.99),
    young.length ? `${young[young.length - 1].toFixed(2)} ms` : "n/a",
    ...counts.map(String),
    `${old.length} (${old.length ? Math.max(...old).toFixed(1) : 0} ms)`,
  ];
}

interface Target {
  what: string;
  goal: string;
  measured: string;
  met: boolean | undefined;
}

/** Every target of this round, checked against the pinned figures of this run. */
function targetRows(input: ReportInput): Target[] {
  const layout: Layout = "pinned";
  const byName = new Map(input.cases.map((c) => [c.name, c]));
  const get = (name: string) => {
    const testCase = byName.get(name);
    return testCase ? summariesFor(input, testCase, layout) : new Map<BrokerName, Summary>();
  };
  const targets: Target[] = [];
  const add = (
    what: string,
    goal: string,
    value: number,
    threshold: number,
    higher: boolean,
    show: string,
  ) => {
    const met = Number.isFinite(value) ? (higher ? value >= threshold : value <= threshold) : undefined;
    targets.push({ what, goal, measured: show, met });
  };
  for (const [name, title] of [["q0-64", "QoS 0 10→10 64 B"], ["q1-64", "QoS 1 10→10 64 B"]]) {
    const s = get(name);
    const ours = s.get("mqtt-proxy")?.msgsPerSecond ?? NaN;
    const vsMosquitto = ours / (s.get(REFERENCE_BROKER)?.msgsPerSecond ?? NaN);
    add(
      `${title} vs Mosquitto`,
      "≥ 3×",
      vsMosquitto,
      3,
      true,
      ratio(ours, s.get(REFERENCE_BROKER)?.msgsPerSecond ?? NaN),
    );
    const rumqttd = s.get("rumqttd")?.msgsPerSecond ?? NaN;
    add(`${title} vs rumqttd`, "≥ 1.3×", ours / rumqttd, 1.3, true, ratio(ours, rumqttd));
  }
  for (const name of ["fanout-q0", "fanout-q1"]) {
    const s = get(name);
    const ours = s.get("mqtt-proxy")?.msgsPerSecond ?? NaN;
    const rumqttd = s.get("rumqttd")?.msgsPerSecond ?? NaN;
    add(`${byName.get(name)?.title} vs rumqttd`, "≥ 1.2×", ours / rumqttd, 1.2, true, ratio(ours, rumqttd));
  }
  for (const testCase of input.cases) {
    if (testCase.kind !== "pubsub" || testCase.group !== "throughput") continue;
    const s = summariesFor(input, testCase, layout);
    const ours = s.get("mqtt-proxy")?.msgsPerSecond ?? NaN;
    const best = bestPeer(s, (x) => x.msgsPerSecond);
    add(
      `${testCase.title}: lead every peer`,
      "> 1× best peer",
      best ? ours / best.value : NaN,
      1.0000001,
      true,
      best ? `${ratio(ours, best.value)} ${best.broker}` : "n/a",
    );
  }
  for (const name of ["latency-q0", "latency-q1"]) {
    const s = get(name);
    const ours = s.get("mqtt-proxy");
    const title = byName.get(name)?.title ?? name;
    add(`${title}: p99`, "≤ 1 ms", ours?.p99 ?? NaN, 1000, false, micros(ours?.p99 ?? NaN));
    add(`${title}: p99.9`, "≤ 5 ms", ours?.p999 ?? NaN, 5000, false, micros(ours?.p999 ?? NaN));
    const best = bestPeer(s, (x) => x.p99, true);
    add(
      `${title}: p99 vs best peer`,
      "≤ best peer",
      best ? (ours?.p99 ?? NaN) / best.value : NaN,
      1,
      false,
      best ? `${micros(ours?.p99 ?? NaN)} vs ${micros(best.value)} (${best.broker})` : "n/a",
    );
  }
  const durable = get("durable-q1").get("mqtt-proxy")?.msgsPerSecond ?? NaN;
  const memory = get("q1-64").get("mqtt-proxy")?.msgsPerSecond ?? NaN;
  add(
    "durable QoS 1 (sync) vs in-memory QoS 1",
    "≥ 0.6×",
    durable / memory,
    0.6,
    true,
    ratio(durable, memory),
  );
  const idle = get("idle");
  const ours = idle.get("mqtt-proxy");
  const floor = idle.get("deno-floor")?.rssPerConnection ?? NaN;
  const above = (ours?.rssPerConnection ?? NaN) - floor;
  add("idle: RSS per connection above deno-floor", "≤ 1 KB", above, 1024, false, bytes(above));
  const connects = (ours?.connectRate ?? NaN) / (idle.get(REFERENCE_BROKER)?.connectRate ?? NaN);
  add(
    "connects/s vs Mosquitto",
    "≥ 1.5×",
    connects,
    1.5,
    true,
    ratio(ours?.connectRate ?? NaN, idle.get(REFERENCE_BROKER)?.connectRate ?? NaN),
  );
  const epoll = idle.get(EPOLL_VARIANT);
  if (epoll) {
    add(
      "connects/s vs Mosquitto, io = epoll",
      "≥ 1.5×",
      epoll.connectRate / (idle.get(REFERENCE_BROKER)?.connectRate ?? NaN),
      1.5,
      true,
      ratio(epoll.connectRate, idle.get(REFERENCE_BROKER)?.connectRate ?? NaN),
    );
  }
  return targets;
}

function targetsSection(input: ReportInput): string {
  if (!input.layouts.includes("pinned")) return "_the pinned layout was not run_";
  const rows = targetRows(input).map((
    t,
  ) => [t.what, t.goal, t.measured, t.met === undefined ? "n/a" : t.met ? "met" : "**missed**"]);
  return table(["target (pinned, this run)", "goal", "measured", ""], rows);
}

/** mqtt-proxy against its baseline in this run, then the per-change measurements of what_changed.ts. */
function whatChangedSection(input: ReportInput): string {
  const parts: string[] = [];
  if (input.baseline) {
    const rows: string[][] = [];
    for (const testCase of input.cases) {
      if (testCase.kind === "split-check") continue;
      const s = summariesFor(input, testCase, "pinned");
      const now = s.get("mqtt-proxy");
      const before = s.get(BASELINE);
      if (!now || !before) continue;
      if (testCase.kind === "idle") {
        rows.push([
          testCase.title,
          "RSS per connection",
          bytes(before.rssPerConnection),
          bytes(now.rssPerConnection),
          ratio(now.rssPerConnection, before.rssPerConnection),
        ]);
        rows.push([
          testCase.title,
          "connects/s",
          integer(before.connectRate),
          integer(now.connectRate),
          ratio(now.connectRate, before.connectRate),
        ]);
      } else if (testCase.group === "latency") {
        rows.push([testCase.title, "p99", micros(before.p99), micros(now.p99), ratio(now.p99, before.p99)]);
        rows.push([
          testCase.title,
          "p99.9",
          micros(before.p999),
          micros(now.p999),
          ratio(now.p999, before.p999),
        ]);
      } else {
        rows.push([
          testCase.title,
          "delivered msg/s",
          integer(before.msgsPerSecond),
          integer(now.msgsPerSecond),
          ratio(now.msgsPerSecond, before.msgsPerSecond),
        ]);
      }
    }
    parts.push(
      `mqtt-proxy against itself at the baseline commit \`${input.baseline}\` (run as "mqtt-proxy (before)" in the ` +
        "pinned layout of this same invocation, so the ratios share the machine's state):\n\n" +
        table(["case", "figure", "before", "after", "after / before"], rows),
    );
  } else {
    parts.push("_The baseline was not run in this invocation (`--no-baseline` or --quick)._");
  }
  parts.push(
    "Each change on its own, measured while it was made (before → after, the change alone on top of the ones " +
      "above it; allocation and heap figures are counted by V8 and do not depend on the machine's load, timings " +
      "are ranges of repeated runs with the load average noted):\n\n" +
      table(
        ["change", "measured", "before", "after", "after / before"],
        CHANGES.map((c) => [c.change, c.measure, c.before, c.after, c.ratio]),
      ),
  );
  return parts.join("\n\n");
}

export function fullMarkdown(input: ReportInput): string {
  const m = input.machine;
  const window = SUBSCRIBER_INFLIGHT.toLocaleString("en-US");
  const windowSetting = String(SUBSCRIBER_INFLIGHT);
  const machine = table(["", ""], [
    ["CPUs (nproc)", String(m.nproc)],
    ["CPU model", m.cpuModel],
    ["memory", m.memory],
    ["kernel", m.kernel],
    ["Deno", m.deno],
    ["mqtt-proxy", m.versions["mqtt-proxy"]],
    ["rumqttd", `${m.versions.rumqttd} (Rust, crates.io; scripts/bench/rumqttd/)`],
    ["mochi-mqtt", `${m.versions.mochi} (Go, github.com/mochi-mqtt/server/v2; scripts/bench/mochi/)`],
    ["Mosquitto", `${m.versions.mosquitto} (Debian package)`],
    ["Aedes", `${m.versions.aedes} (on Deno's node:net)`],
  ]);
  const run = table(["", ""], [
    ["date", input.date],
    ["layouts", input.layouts.map(layoutTitle).join("; ")],
    ["runs per case", `${input.runs} (figures are medians; lost/dup/reord are totals over the runs)`],
    ["duration per run", `${input.durationS} s of publishing, then up to 5 s of drain`],
    ["whole benchmark", `${(input.elapsedS / 60).toFixed(1)} min`],
    ["mode", input.quick ? "quick (smoke test, not for comparison)" : "full"],
  ]);
  return `# Benchmarks

_Written by \`deno task bench\` (scripts/bench.ts); rerun it rather than editing this file. The full run is
one command, \`deno task bench\` (it builds rumqttd and mochi-mqtt once into ~/.cache/mqtt-proxy/bench);
\`deno task bench --quick\` is the smoke test CI runs._

![Delivered messages per second and p99 latency per broker](benchmarks.svg)

## Machine and run

${machine}

${run}

## Targets

${targetsSection(input)}

${PEER_NOTES}

## What changed

${whatChangedSection(input)}

## Method

- **Two layouts, every case in both.** **Pinned**: every broker runs with \`taskset -c 0\` and the load
  generator with \`taskset -c 1\`, so a figure is what one broker core does (rumqttd, mochi-mqtt and Aedes' Node
  runtime use every core they are given, so only this layout compares cores like for like). **Unpinned**:
  neither is pinned; the multi-threaded brokers then spread over both cores and share them with the generator.
- **Brokers**, each started fresh for every run and stopped after it, listening on 127.0.0.1 only, Nagle off
  in every one, nothing persisted unless the case is durable:
  - **mqtt-proxy**: \`deno run … main.ts -c <generated file>\` with the V8 flags of \`deno task start\`,
    \`storage.type = memory\`, or for the durable cases \`storage.type = embedded\`, \`storage.durability = sync\`
    (written to disk before each acknowledgement); \`mqtt.max_inflight = ${windowSetting}\` (default 100);
    \`log.level = warn\`; \`--trace-gc\` for the pause table.
  - **rumqttd**: the crate's \`Broker\` started from the crate's sample config (one v4 listener, router and
    connection settings as shipped, \`next_connection_delay_ms = 0\`, \`max_inflight_count = ${windowSetting}\`:
    the packets it reads from a connection per batch, 100 in the sample), TCP_NODELAY set on accepted sockets by
    an LD_PRELOAD shim (rumqttd has no setting for it). Its in-flight window to a subscriber is fixed at 100
    (\`MAX_INFLIGHT\` in src/router/iobufs.rs, no setting). It keeps no disk store: its durable cases are in memory.
  - **mochi-mqtt**: \`scripts/bench/mochi/main.go\`, the server with an allow-all hook and one TCP listener;
    the durable cases add the bbolt storage hook (one synced transaction per stored packet, before the PUBACK).
    Its in-flight window to a 3.1.1 client is its \`MaximumInflight\`, 8,192.
  - **Mosquitto** (Debian package): \`set_tcp_nodelay true\`, \`max_inflight_messages ${windowSetting}\` (default 20),
    \`connection_messages false\` (like the others, no log line per client: until 2026-12-06 it wrote three per
    connect into a pipe, its connect rate measured with that work), defaults otherwise (max_queued_messages 1000). The durable cases add \`persistence true\`: Mosquitto writes its store only at
    autosave or shutdown, so it **acknowledges before any disk write** — not comparable with a broker that syncs.
  - **Aedes** (\`npm:aedes\`) on a \`node:net\` server (\`noDelay: true\`) in Deno, in-memory persistence; no
    in-flight window to a subscriber.
  - **The in-flight window to a subscriber** (QoS 1 messages sent and not yet acknowledged) is ${window} wherever it
    can be set: with 100, the fan-in case's one subscriber set the pace (a round was its PUBACKs, the broker's next
    100 PUBLISHes and the generator's pause) and left mqtt-proxy and rumqttd at a third of their core
    (until 2026-12-06).
- **Load generator**: \`scripts/bench/mqttload.c\` (C, epoll, MQTT 3.1.1). Every payload carries the publisher
  id, a sequence number and the send time, so subscribers count **lost**, **dup**licates, **reord**ered messages
  and the end-to-end latency (log-linear histogram, < 1.6% bucket error). **broker CPU** is the broker process's
  user + system time over the publishing window (from /proc/<pid>/stat, all threads) as a share of one core
  (200% = both cores); **IDLE-BROKER** marks an unlimited-rate result where it stayed under 85%, i.e. the load,
  not the broker, set the pace. **gen CPU** is the generator's; **GEN-BOUND** marks a result where it used more
  than ${GENERATOR_BOUND_PCT}% of its core.
- **Topology**: 10→10 = 10 publishers on bench/<i>/x, subscriber i on publisher i's topic. Fan-in: 100
  publishers, one subscriber on bench/+/x. Fan-out: one publisher, 100 subscribers (deliveries counted).
- **Unlimited rate** is closed-loop: a publisher sends while each of its subscribers has fewer than
  ${E2E_WINDOW[0].toLocaleString("en-US")} (QoS 0) or ${
    E2E_WINDOW[1].toLocaleString("en-US")
  } (QoS 1) messages
  addressed to it and not yet received, and at QoS 1 while it has fewer than ${
    QOS1_INFLIGHT.toLocaleString("en-US")
  }
  PUBLISHes unacknowledged: deep enough that every broker's core stays busy, below the per-client queues that
  would drop. The generator pauses ${COALESCE_US} µs between polls there, so that its reads and writes batch
  (until 2026-12-06 500 µs, which left the fastest brokers' cores 8–13 % idle at QoS 1: their subscribers'
  in-flight windows waited for the next poll's acknowledgements). p50/p99 there are queueing delays at
  saturation, not latency.
- **Latency** runs send a fixed ${
    LATENCY_RATE.toLocaleString("en-US")
  } msg/s over 10 publishers (10→10, 64 B) for the run's duration plus ${LATENCY_WARMUP_S} s first; latency counts
  the messages sent after those ${LATENCY_WARMUP_S} s (every broker starts fresh; its first seconds are JIT
  compilation and start-up garbage, not the steady state: until 2026-12-05 this was 1 s, in which V8 on one
  pinned core had not finished optimizing, and mqtt-proxy's p99 at 10k msg/s QoS 0 measured 0.9–1.2 ms
  instead of 0.19–0.22 ms), loss counts them all;
  **GEN-LATE** marks a case where over ${LATE_SEND_FLAG_PCT}% of the messages left more than 1 ms behind schedule.
- **Durable**: QoS 1, subscribers with clean session 0 and fixed client ids, 64 B, unlimited rate: 10→10, and
  fan-out 1→100 (since the twenty-fifth session: every message stored for 100 persistent sessions).
- **Idle connections**: ${IDLE_PROCESSES} generator processes open N connections together (CONNECT, keep alive 600 s,
  CONNACK), ${IDLE_PENDING} handshakes in flight in all (Mosquitto listens with a backlog of 100) from 127.0.0.2–17;
  **connects/s** is N over the time to the last CONNACK, **broker CPU (connecting)** the broker's CPU use
  meanwhile: near 100% pinned means the broker, not the generator, set the rate. **RSS per connection** is the
  broker's VmRSS at rest minus its VmRSS before, over N: the median of three samples a second apart, taken
  after the connections were held idle for ${
    IDLE_HOLD_MS / 1000
  } s (past the quiet time of mqtt-proxy's memory
  reclaimer, which gives a connect storm's garbage back once quiet; the deno-floor runs the same reclaimer;
  runs before 2026-12-04 took the peak within 1.6 s of the last CONNACK). N is ${
    input.quick ? "small in quick mode" : "19,000"
  } (the per-process descriptor limit here is 20,000). **deno-floor** is a bare \`Deno.listen\` server
  (scripts/bench/idle_floor.ts) with the broker's read strategy and V8 flags, answering CONNECT with CONNACK:
  Deno's own cost; **above its floor** is mqtt-proxy's. **deno-floor-512** keeps a 512-byte buffer per socket,
  the read strategy before this round. **deno-syscall-floor** (scripts/bench/syscall_floor.ts) is the same server
  with libc's socket calls made through FFI from one epoll loop, as Mosquitto makes them, instead of Deno's
  socket ops: what JavaScript on V8 costs without Deno's socket layer (its **above its floor**, against
  deno-floor, is negative: that layer's share). **mqtt-proxy (io = epoll)** is mqtt-proxy with
  \`listener.default.io = epoll\` (src/transport/epoll.ts: its TCP sockets on libc's calls from one epoll
  loop); its floor is deno-syscall-floor. It runs in the pinned layout of every case, next to mqtt-proxy.
- **deno-relay** (latency cases only) is a bare \`Deno.listen\` MQTT relay (scripts/bench/relay_floor.ts) with the
  broker's V8 flags: just enough MQTT 3.1.1 to forward each PUBLISH to the subscribers of its exact topic, one
  read pending per socket, the frames of a read handled in its turn, one write per connection per turn; no
  sessions, limits or validation. Its latency is Deno's own share on the pinned core; what mqtt-proxy shows
  above it is the broker's.
- **Ratios** are medians of this invocation divided by medians of this invocation.
- **Generator check**: the 10→10 QoS 0 case on Mosquitto driven by one and by two generator processes.
- **Known behaviour**: Mosquitto 2.0.11 drops QoS 1 messages in the fan-in case ("Outgoing messages are being
  dropped") although the generator keeps fewer than its max_queued_messages outstanding; the run keeps its
  defaults and shows the loss.

## Results

${resultsMarkdown(input, (layout) => latencyHistogramSection(input, layout))}
`;
}
