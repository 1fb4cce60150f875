/**
 * Turns the runs of one `deno task bench` into per-case medians, ratios to Mosquitto, the Markdown report
 * (docs/benchmarks.md) and its chart (docs/benchmarks.svg).
 */
import { type BrokerName, REFERENCE_BROKER } from "./brokers.ts";
import { type BenchCase, E2E_WINDOW, LATENCY_RATE, QOS1_INFLIGHT } from "./cases.ts";
import { GENERATOR_BOUND_PCT, type IdleResult, type PubSubResult } from "./generator.ts";
import { median } from "./util.ts";

/** One broker, one case, one run. */
export interface RunRecord {
  caseName: string;
  broker: BrokerName;
  run: number;
  pubsub?: PubSubResult;
  idle?: IdleResult;
  /** Why the run produced no figures or figures that cannot be trusted. */
  errors: string[];
}

/** One run of the generator check: the same case with 1 or 2 generator processes. */
export interface SplitRecord {
  broker: BrokerName;
  processes: number;
  run: number;
  result?: PubSubResult;
  errors: string[];
}

export interface Summary {
  caseName: string;
  broker: BrokerName;
  okRuns: number;
  totalRuns: number;
  msgsPerSecond: number;
  p50: number;
  p99: number;
  p999: number;
  max: number;
  lost: number;
  delivered: number;
  duplicates: number;
  reordered: number;
  generatorCpuPct: number;
  generatorCpuMax: number;
  lateSendPct: number;
  connectRate: number;
  rssPerConnection: number;
  connected: number;
  requested: number;
  flags: string[];
}

export interface Machine {
  nproc: number;
  cpuModel: string;
  kernel: string;
  memory: string;
  deno: string;
  versions: Record<BrokerName, string>;
}

export interface ReportInput {
  date: string;
  quick: boolean;
  runs: number;
  durationS: number;
  processes: number;
  machine: Machine;
  cases: BenchCase[];
  brokers: BrokerName[];
  records: RunRecord[];
  splitRecords: SplitRecord[];
  /** Loud, report-level problems: a broker that would not start, an install that failed. */
  failures: string[];
  elapsedS: number;
}

/** A fixed-rate run where more of the messages than this left over 1 ms late is flagged GEN-LATE. */
const LATE_SEND_FLAG_PCT = 1;

function totalOrNaN(values: number[]): number {
  return values.length ? values.reduce((total, v) => total + v, 0) : NaN;
}

export function summarize(caseName: string, broker: BrokerName, records: RunRecord[]): Summary {
  const mine = records.filter((r) => r.caseName === caseName && r.broker === broker);
  const pubsub = mine.flatMap((r) => (r.pubsub && r.errors.length === 0 ? [r.pubsub] : []));
  const idle = mine.flatMap((r) => (r.idle && r.errors.length === 0 ? [r.idle] : []));
  const cpu = [...pubsub.map((p) => p.generatorCpuPct), ...idle.map((i) => i.generatorCpuPct)];
  const summary: Summary = {
    caseName,
    broker,
    okRuns: pubsub.length + idle.length,
    totalRuns: mine.length,
    msgsPerSecond: median(pubsub.map((p) => p.msgsPerSecond)),
    p50: median(pubsub.map((p) => p.latencyUs.p50)),
    p99: median(pubsub.map((p) => p.latencyUs.p99)),
    p999: median(pubsub.map((p) => p.latencyUs.p999)),
    max: median(pubsub.map((p) => p.latencyUs.max)),
    lost: totalOrNaN(pubsub.map((p) => p.lost)),
    delivered: totalOrNaN(pubsub.map((p) => p.received)),
    duplicates: totalOrNaN(pubsub.map((p) => p.duplicates)),
    reordered: totalOrNaN(pubsub.map((p) => p.reordered)),
    generatorCpuPct: median(cpu),
    generatorCpuMax: cpu.length ? Math.max(...cpu) : NaN,
    lateSendPct: median(pubsub.map((p) => p.lateSendPct)),
    connectRate: median(idle.map((i) => i.connectRate)),
    rssPerConnection: median(idle.map((i) => i.rssDeltaBytes / Math.max(1, i.connected))),
    connected: idle.length ? Math.min(...idle.map((i) => i.connected)) : NaN,
    requested: idle.length ? idle[0].requested : NaN,
    flags: [],
  };
  if (summary.generatorCpuMax > GENERATOR_BOUND_PCT) summary.flags.push("GEN-BOUND");
  if (summary.lateSendPct > LATE_SEND_FLAG_PCT) summary.flags.push("GEN-LATE");
  if (summary.lost > 0) summary.flags.push("LOSS");
  if (summary.duplicates > 0) summary.flags.push("DUP");
  if (idle.some((i) => i.failed > 0)) summary.flags.push("CONN-FAIL");
  const failedRuns = mine.filter((r) => r.errors.length > 0).length;
  if (failedRuns > 0) summary.flags.push(`FAILED ${failedRuns}/${mine.length}`);
  return summary;
}

// ---------- formatting ----------

function integer(value: number): string {
  return Number.isFinite(value) ? Math.round(value).toLocaleString("en-US") : "n/a";
}

function micros(value: number): string {
  if (!Number.isFinite(value)) return "n/a";
  if (value >= 100_000) return `${(value / 1000).toFixed(0)} ms`;
  if (value >= 10_000) return `${(value / 1000).toFixed(1)} ms`;
  if (value >= 1000) return `${(value / 1000).toFixed(2)} ms`;
  return `${value.toFixed(0)} µs`;
}

function ratio(value: number, reference: number): string {
  if (!Number.isFinite(value) || !Number.isFinite(reference) || reference === 0) return "n/a";
  return `${(value / reference).toFixed(2)}×`;
}

function bytes(value: number): string {
  if (!Number.isFinite(value)) return "n/a";
  if (value >= 10_240) return `${(value / 1024).toFixed(1)} KiB`;
  return `${value.toFixed(0)} B`;
}

function lossCell(summary: Summary): string {
  if (!Number.isFinite(summary.lost)) return "n/a";
  if (summary.lost === 0) return "0";
  const share = (100 * summary.lost) / (summary.delivered + summary.lost);
  return `${integer(summary.lost)} (${share < 0.01 ? "<0.01" : share.toFixed(2)}%)`;
}

function cpuCell(summary: Summary): string {
  return Number.isFinite(summary.generatorCpuPct) ? `${summary.generatorCpuPct.toFixed(0)}%` : "n/a";
}

function flagsCell(summary: Summary): string {
  if (summary.okRuns === 0) return "**NO RESULT**";
  return summary.flags.length ? summary.flags.map((f) => `**${f}**`).join(" ") : "";
}

function table(header: string[], rows: string[][]): string {
  const lines = [`| ${header.join(" | ")} |`, `| ${header.map(() => "---").join(" | ")} |`];
  for (const row of rows) lines.push(`| ${row.join(" | ")} |`);
  return lines.join("\n");
}

// ---------- sections ----------

function summariesFor(input: ReportInput, testCase: BenchCase) {
  const byBroker = new Map<BrokerName, Summary>();
  for (const broker of input.brokers) byBroker.set(broker, summarize(testCase.name, broker, input.records));
  return byBroker;
}

function throughputTable(input: ReportInput, group: "throughput" | "durable"): string {
  const rows: string[][] = [];
  for (const testCase of input.cases) {
    if (testCase.kind !== "pubsub" || testCase.group !== group) continue;
    const summaries = summariesFor(input, testCase);
    const reference = summaries.get(REFERENCE_BROKER);
    for (const [broker, s] of summaries) {
      rows.push([
        testCase.title,
        broker,
        integer(s.msgsPerSecond),
        broker === REFERENCE_BROKER ? "1.00×" : ratio(s.msgsPerSecond, reference?.msgsPerSecond ?? NaN),
        micros(s.p50),
        micros(s.p99),
        lossCell(s),
        integer(s.duplicates),
        integer(s.reordered),
        cpuCell(s),
        flagsCell(s),
      ]);
    }
  }
  if (!rows.length) return "_not run_";
  return table(
    [
      "case",
      "broker",
      "delivered msg/s",
      "vs Mosquitto",
      "p50",
      "p99",
      "lost",
      "dup",
      "reord",
      "gen CPU",
      "flags",
    ],
    rows,
  );
}

function latencyTable(input: ReportInput): string {
  const rows: string[][] = [];
  for (const testCase of input.cases) {
    if (testCase.kind !== "pubsub" || testCase.group !== "latency") continue;
    const summaries = summariesFor(input, testCase);
    const reference = summaries.get(REFERENCE_BROKER);
    for (const [broker, s] of summaries) {
      rows.push([
        testCase.title,
        broker,
        micros(s.p50),
        micros(s.p99),
        micros(s.p999),
        micros(s.max),
        broker === REFERENCE_BROKER ? "1.00×" : ratio(s.p99, reference?.p99 ?? NaN),
        integer(s.msgsPerSecond),
        lossCell(s),
        integer(s.duplicates),
        cpuCell(s),
        flagsCell(s),
      ]);
    }
  }
  if (!rows.length) return "_not run_";
  return table(
    [
      "case",
      "broker",
      "p50",
      "p99",
      "p99.9",
      "max",
      "p99 vs Mosquitto",
      "delivered msg/s",
      "lost",
      "dup",
      "gen CPU",
      "flags",
    ],
    rows,
  );
}

function idleTable(input: ReportInput): string {
  const rows: string[][] = [];
  for (const testCase of input.cases) {
    if (testCase.kind !== "idle") continue;
    const summaries = summariesFor(input, testCase);
    const reference = summaries.get(REFERENCE_BROKER);
    for (const [broker, s] of summaries) {
      rows.push([
        broker,
        `${integer(s.connected)} / ${integer(testCase.connections)}`,
        integer(s.connectRate),
        broker === REFERENCE_BROKER ? "1.00×" : ratio(s.connectRate, reference?.connectRate ?? NaN),
        bytes(s.rssPerConnection),
        broker === REFERENCE_BROKER ? "1.00×" : ratio(s.rssPerConnection, reference?.rssPerConnection ?? NaN),
        cpuCell(s),
        flagsCell(s),
      ]);
    }
  }
  if (!rows.length) return "_not run_";
  return table(
    [
      "broker",
      "connected",
      "connects/s",
      "vs Mosquitto",
      "RSS per connection",
      "vs Mosquitto",
      "gen CPU",
      "flags",
    ],
    rows,
  );
}

function splitTable(input: ReportInput): string {
  if (!input.splitRecords.length) return "_not run_";
  const broker = input.splitRecords[0].broker;
  const figures = (processes: number) => {
    const ok = input.splitRecords.flatMap((r) =>
      r.processes === processes && r.result && r.errors.length === 0 ? [r.result] : []
    );
    return {
      runs: ok.length,
      rate: median(ok.map((r) => r.msgsPerSecond)),
      cpu: median(ok.map((r) => r.generatorCpuPct)),
      lost: ok.reduce((total, r) => total + r.lost, 0),
    };
  };
  const one = figures(1);
  const two = figures(2);
  return table(
    [
      "generator processes",
      "broker",
      "runs",
      "delivered msg/s (median)",
      "lost",
      "gen CPU (sum)",
      "vs 1 process",
    ],
    [
      [
        "1",
        broker,
        String(one.runs),
        integer(one.rate),
        integer(one.lost),
        `${one.cpu.toFixed(0)}%`,
        "1.00×",
      ],
      [
        "2",
        broker,
        String(two.runs),
        integer(two.rate),
        integer(two.lost),
        `${two.cpu.toFixed(0)}%`,
        ratio(two.rate, one.rate),
      ],
    ],
  );
}

function failureList(input: ReportInput): string {
  const lines: string[] = [];
  for (const failure of input.failures) {
    const [first, ...detail] = failure.split("\n");
    lines.push(`- **${first}**`);
    if (detail.length) lines.push("", "  ```", ...detail.map((line) => `  ${line}`), "  ```");
  }
  for (const record of [...input.records, ...input.splitRecords]) {
    const name = "caseName" in record ? record.caseName : "split-check";
    for (const error of record.errors) {
      // A broker disabled after failing to start is listed once above, not once per skipped run.
      if (error.startsWith("not run:")) continue;
      lines.push(`- ${name} / ${record.broker} / run ${record.run}: ${error.split("\n")[0]}`);
    }
  }
  return lines.join("\n");
}

/** The results part: also what the script prints on every run. */
export function resultsMarkdown(input: ReportInput): string {
  const failures = failureList(input);
  const parts = [];
  if (failures) parts.push(`### ⚠ Failures\n\n${failures}`);
  parts.push(
    `### Throughput (unlimited rate)\n\n${throughputTable(input, "throughput")}`,
    `### Latency at a fixed ${LATENCY_RATE.toLocaleString("en-US")} msg/s\n\n${latencyTable(input)}`,
    `### Durable QoS 1 to persistent sessions\n\n${throughputTable(input, "durable")}`,
    `### Idle connections\n\n${idleTable(input)}`,
    `### Generator check (same case, 1 vs 2 generator processes)\n\n${splitTable(input)}`,
  );
  return parts.join("\n\n");
}

export function fullMarkdown(input: ReportInput): string {
  const m = input.machine;
  const machine = table(["", ""], [
    ["CPUs (nproc)", String(m.nproc)],
    ["CPU model", m.cpuModel],
    ["memory", m.memory],
    ["kernel", m.kernel],
    ["Deno", m.deno],
    ["mqtt-proxy", m.versions["mqtt-proxy"]],
    ["Mosquitto", m.versions.mosquitto],
    ["Aedes", `${m.versions.aedes} (on Deno's node:net)`],
  ]);
  const run = table(["", ""], [
    ["date", input.date],
    ["runs per case", `${input.runs} (figures are medians; lost/dup/reord are totals over the runs)`],
    ["duration per run", `${input.durationS} s of publishing, then up to 5 s of drain`],
    ["generator processes", String(input.processes)],
    ["whole benchmark", `${(input.elapsedS / 60).toFixed(1)} min`],
    ["mode", input.quick ? "quick (smoke test, not for comparison)" : "full"],
  ]);
  return `# Benchmarks

_Written by \`deno task bench\` (scripts/bench.ts); rerun it rather than editing this file._

![Delivered messages per second and p99 latency per broker](benchmarks.svg)

## Machine and run

${machine}

${run}

## Method

- **Brokers**, each started fresh for every run and stopped after it, pinned with \`taskset -c 0\`, listening on
  127.0.0.1 only:
  - **mqtt-proxy**: \`deno run … main.ts -c <generated file>\` with \`storage.type = memory\`, or for the
    durable case \`storage.type = embedded\`, \`storage.durability = sync\` (written to disk before each
    acknowledgement); \`log.level = warn\`; every other key at its default.
  - **Mosquitto** (Debian package): \`listener <port> 127.0.0.1\`, \`allow_anonymous true\`,
    \`set_tcp_nodelay true\`, defaults otherwise (max_inflight_messages 20, max_queued_messages 1000). The
    durable case adds \`persistence true\`: Mosquitto keeps messages in memory and writes its store only at
    autosave or shutdown, so it **acknowledges before any disk write** — its durable figures are not
    comparable with a broker that syncs.
  - **Aedes** (\`npm:aedes\`) on a \`node:net\` server (\`noDelay: true\`) in Deno. Aedes' default persistence
    is in memory, so its durable case is not durable either.
- **Load generator**: \`scripts/bench/mqttload.c\` (C, epoll, MQTT 3.1.1, one thread, many connections),
  pinned with \`taskset -c 1\`. Every payload carries the publisher id, a sequence number and the
  CLOCK_MONOTONIC send time, so subscribers count **lost** (expected deliveries minus unique deliveries
  after a drain of up to 5 s), **dup**licates, **reord**ered messages and the end-to-end latency (a
  log-linear histogram with < 1.6% bucket error). Subscribers connect and get their SUBACK before anyone
  publishes. The generator's own CPU time (getrusage) is shown as **gen CPU**; **GEN-BOUND** marks a result
  where it used more than ${GENERATOR_BOUND_PCT}% of its core in some run, i.e. the figure may be the
  generator's limit rather than the broker's. Loopback TCP also does part of the broker's kernel work on
  the sending core, so gen CPU includes some of it.
- **Topology**: 10→10 means 10 publishers on bench/<i>/x and 10 subscribers, subscriber i on publisher
  i's topic (each message delivered once, so delivered msg/s = broker throughput). Fan-in: 100 publishers,
  one subscriber on the wildcard bench/+/x. Fan-out: one publisher, 100 subscribers on its topic (every
  message delivered 100 times; delivered msg/s counts deliveries).
- **Unlimited rate** is closed-loop: a publisher sends as fast as it can while every subscriber of its
  topic has fewer than ${E2E_WINDOW} messages addressed to it not yet received (and, at QoS 1, while it
  has fewer than ${QOS1_INFLIGHT} PUBLISHes unacknowledged). An open-loop flood only measures how deep a
  broker queues before it drops or runs out of memory (Aedes crashed with a stack overflow in such a
  test). **delivered msg/s** counts deliveries inside the publishing window; p50/p99 in these tables are
  queueing delays at saturation, not the broker's latency.
- **Latency** runs send a fixed total of ${LATENCY_RATE.toLocaleString("en-US")} msg/s spread evenly
  over 10 publishers (10→10, 64 B); sends are stamped when written, not when scheduled. **GEN-LATE** marks
  a case where over ${LATE_SEND_FLAG_PCT}% of the messages left more than 1 ms behind schedule (the
  generator was held up: on a shared 2-core VM, steal time and neighbours show up as latency spikes).
- **Durable**: QoS 1, subscribers with clean session 0 and fixed client ids, 10→10, 64 B, unlimited rate.
- **Idle connections**: the generator opens N connections (CONNECT, keep alive 0, CONNACK), at most 64
  handshakes at a time (Mosquitto listens with a backlog of 100; overflowing it costs 1 s SYN
  retransmits), from source addresses 127.0.0.2–127.0.0.17; **connects/s** is N over the time to the last
  CONNACK. The kernel's loopback handshake work runs largely on the generator's core, so this figure is
  often GEN-BOUND. The broker's VmRSS (from /proc/<pid>/status) before the connections minus its peak
  while holding them, divided by N, is **RSS per connection**. N is ${
    input.quick ? "small in quick mode" : "19,000"
  }: the per-process file descriptor limit here is 20,000 (hard) for the broker and the generator alike,
  and the broker needs some descriptors of its own.
- **vs Mosquitto**: the broker's median divided by Mosquitto's median from the same invocation (for
  throughput and connects/s higher is better; for latency and RSS lower is better).
- **Generator check**: the 10→10 QoS 0 case driven by one and by two generator processes (both on core 1,
  each with half the publisher/subscriber pairs); the sums should match the single process.
- **Known behaviour**: Mosquitto 2.0.11 logs "Outgoing messages are being dropped" and loses QoS 1
  messages in the fan-in case although the generator never has more than ${E2E_WINDOW} messages
  outstanding towards the subscriber (below its max_queued_messages of 1000); with
  \`max_queued_messages 0\` the loss disappears. The run keeps Mosquitto's defaults and shows the loss.

## Results

${resultsMarkdown(input)}
`;
}

// ---------- chart ----------

const COLORS: Record<BrokerName, string> = {
  "mqtt-proxy": "#1f77b4",
  mosquitto: "#ff7f0e",
  aedes: "#2ca02c",
};

function escapeXml(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

function shortNumber(value: number): string {
  const trim = (text: string) => text.replace(/\.0$/, "");
  if (value >= 1_000_000) return `${trim((value / 1_000_000).toFixed(1))}M`;
  if (value >= 1000) return `${trim((value / 1000).toFixed(value >= 100_000 ? 0 : 1))}k`;
  return value.toFixed(0);
}

/** Axis labels for powers of ten of microseconds. */
function decadeMicros(value: number): string {
  if (value >= 1_000_000) return `${value / 1_000_000} s`;
  if (value >= 1000) return `${value / 1000} ms`;
  return `${value} µs`;
}

function niceCeiling(value: number): number {
  if (!(value > 0)) return 1;
  const magnitude = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) {
    if (step * magnitude >= value) return step * magnitude;
  }
  return 10 * magnitude;
}

/** Grouped bars: one group per case, one bar per broker. */
function barPanel(
  title: string,
  groups: { label: string; values: Map<BrokerName, number> }[],
  brokers: BrokerName[],
  top: number,
  options: { log: boolean; format: (v: number) => string; tick: (v: number) => string },
): { svg: string; height: number } {
  const left = 70, width = 900 - left - 20, plotHeight = 200, labelRoom = 60;
  const all = groups.flatMap((g) => [...g.values.values()]).filter((v) => Number.isFinite(v) && v > 0);
  const out: string[] = [];
  out.push(`<text x="${left}" y="${top + 14}" font-size="14" font-weight="bold">${escapeXml(title)}</text>`);
  const plotTop = top + 28;
  const bottom = plotTop + plotHeight;
  let scale: (v: number) => number;
  const ticks: number[] = [];
  if (options.log) {
    const low = all.length ? 10 ** Math.floor(Math.log10(Math.min(...all))) : 1;
    const high = Math.max(low * 10, all.length ? 10 ** Math.ceil(Math.log10(Math.max(...all))) : 10);
    scale = (v) =>
      plotHeight * (Math.log10(Math.max(v, low)) - Math.log10(low)) / (Math.log10(high) - Math.log10(low));
    for (let t = low; t <= high; t *= 10) ticks.push(t);
  } else {
    const high = niceCeiling(Math.max(...all, 1));
    scale = (v) => (plotHeight * v) / high;
    for (let i = 0; i <= 4; i++) ticks.push((high * i) / 4);
  }
  for (const tick of ticks) {
    const y = bottom - scale(tick);
    out.push(
      `<line x1="${left}" y1="${y.toFixed(1)}" x2="${left + width}" y2="${y.toFixed(1)}" stroke="#ddd"/>`,
    );
    out.push(
      `<text x="${left - 6}" y="${(y + 4).toFixed(1)}" font-size="11" text-anchor="end">${
        escapeXml(options.tick(tick))
      }</text>`,
    );
  }
  out.push(`<line x1="${left}" y1="${bottom}" x2="${left + width}" y2="${bottom}" stroke="#333"/>`);
  const groupWidth = width / Math.max(1, groups.length);
  const barWidth = Math.min(28, (groupWidth * 0.8) / Math.max(1, brokers.length));
  groups.forEach((group, g) => {
    const groupLeft = left + g * groupWidth + (groupWidth - barWidth * brokers.length) / 2;
    brokers.forEach((broker, b) => {
      const value = group.values.get(broker) ?? NaN;
      const x = groupLeft + b * barWidth;
      if (!Number.isFinite(value) || value <= 0) {
        out.push(
          `<text x="${(x + barWidth / 2).toFixed(1)}" y="${
            bottom - 4
          }" font-size="9" text-anchor="middle" fill="#c00">n/a</text>`,
        );
        return;
      }
      const h = Math.max(1, scale(value));
      out.push(
        `<rect x="${x.toFixed(1)}" y="${(bottom - h).toFixed(1)}" width="${
          (barWidth - 2).toFixed(1)
        }" height="${h.toFixed(1)}" fill="${COLORS[broker]}"><title>${
          escapeXml(`${broker}: ${options.format(value)}`)
        }</title></rect>`,
      );
      out.push(
        `<text x="${(x + barWidth / 2 - 1).toFixed(1)}" y="${
          (bottom - h - 3).toFixed(1)
        }" font-size="9" text-anchor="middle">${escapeXml(options.format(value))}</text>`,
      );
    });
    const labelX = left + g * groupWidth + groupWidth / 2;
    out.push(
      `<text x="${labelX.toFixed(1)}" y="${bottom + 16}" font-size="11" text-anchor="middle">${
        escapeXml(group.label)
      }</text>`,
    );
  });
  return { svg: out.join("\n"), height: 28 + plotHeight + labelRoom };
}

export function chartSvg(input: ReportInput): string {
  const throughputGroups = [];
  const latencyGroups = [];
  for (const testCase of input.cases) {
    if (testCase.kind !== "pubsub") continue;
    const summaries = summariesFor(input, testCase);
    if (testCase.group === "latency") {
      latencyGroups.push({
        label: testCase.name,
        values: new Map(input.brokers.map((b) => [b, summaries.get(b)!.p99])),
      });
    } else {
      throughputGroups.push({
        label: testCase.name,
        values: new Map(input.brokers.map((b) => [b, summaries.get(b)!.msgsPerSecond])),
      });
    }
  }
  const parts: string[] = [];
  let y = 40;
  const legend = input.brokers.map((broker, i) =>
    `<rect x="${70 + i * 140}" y="12" width="14" height="14" fill="${COLORS[broker]}"/>` +
    `<text x="${90 + i * 140}" y="24" font-size="13">${escapeXml(broker)}</text>`
  ).join("\n");
  if (throughputGroups.length) {
    // Fan-out deliveries can outnumber the other cases by 10× or more: a log axis keeps every bar readable.
    const panel = barPanel(
      "Delivered msg/s (median, log scale; higher is better)",
      throughputGroups,
      input.brokers,
      y,
      { log: true, format: shortNumber, tick: shortNumber },
    );
    parts.push(panel.svg);
    y += panel.height;
  }
  if (latencyGroups.length) {
    const panel = barPanel(
      `p99 latency at ${LATENCY_RATE.toLocaleString("en-US")} msg/s (median, log scale; lower is better)`,
      latencyGroups,
      input.brokers,
      y,
      { log: true, format: micros, tick: decadeMicros },
    );
    parts.push(panel.svg);
    y += panel.height;
  }
  const note = `${input.machine.cpuModel}, ${input.machine.nproc} CPUs, ${input.date}${
    input.quick ? " (quick run)" : ""
  }`;
  parts.push(`<text x="70" y="${y + 4}" font-size="10" fill="#666">${escapeXml(note)}</text>`);
  const height = y + 16;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="900" height="${height}" viewBox="0 0 900 ${height}" font-family="sans-serif">
<rect width="900" height="${height}" fill="white"/>
${legend}
${parts.join("\n")}
</svg>
`;
}
