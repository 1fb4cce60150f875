/**
 * Turns the runs of one `deno task bench` into per-case medians and ratios between brokers measured in the
 * same invocation, and renders the result tables (printed on every run, and part of docs/benchmarks.md).
 */
import {
  BASELINE,
  type BrokerName,
  EPOLL_VARIANT,
  FLOOR_NAMES,
  type Layout,
  OWN_VARIANTS,
  REFERENCE_BROKER,
} from "./brokers.ts";
import type { BenchCase, PubSubCase } from "./cases.ts";
import type { GcPause } from "./gc_trace.ts";
import { bucketUpperBoundNs, GENERATOR_BOUND_PCT, type IdleResult, type PubSubResult } from "./generator.ts";
import { median } from "./util.ts";

/** One broker, one case, one run, in one layout. */
export interface RunRecord {
  caseName: string;
  broker: BrokerName;
  layout: Layout;
  run: number;
  pubsub?: PubSubResult;
  idle?: IdleResult;
  /** mqtt-proxy's garbage collections while the run was publishing (from --trace-gc). */
  gc?: { pauses: GcPause[]; windowS: number };
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
  layout: Layout;
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
  brokerCpuPct: number;
  lateSendPct: number;
  connectRate: number;
  rssPerConnection: number;
  connected: number;
  requested: number;
  /** Latency histogram summed over the good runs: [upper bound µs, count]. */
  histogram: [number, number][];
  gc: GcPause[];
  gcWindowS: number;
  flags: string[];
}

export interface Machine {
  nproc: number;
  cpuModel: string;
  kernel: string;
  memory: string;
  deno: string;
  versions: Record<string, string>;
}

export interface ReportInput {
  date: string;
  quick: boolean;
  runs: number;
  durationS: number;
  processes: number;
  layouts: Layout[];
  machine: Machine;
  cases: BenchCase[];
  brokers: BrokerName[];
  /** The baseline's commit when mqtt-proxy-before ran. */
  baseline?: string;
  records: RunRecord[];
  splitRecords: SplitRecord[];
  /** Loud, report-level problems: a broker that would not start or build, an install that failed. */
  failures: string[];
  /** Quieter facts: peers --quick skipped because they are not built yet. */
  notices: string[];
  elapsedS: number;
}

/** A fixed-rate run where more of the messages than this left over 1 ms late is flagged GEN-LATE. */
export const LATE_SEND_FLAG_PCT = 1;
/** A throughput run where the broker used less of its core than this is flagged IDLE-BROKER. */
const SATURATED_PCT = 85;

function totalOrNaN(values: number[]): number {
  return values.length ? values.reduce((total, v) => total + v, 0) : NaN;
}

export function summarize(
  caseName: string,
  broker: BrokerName,
  layout: Layout,
  records: RunRecord[],
): Summary {
  const mine = records.filter((r) => r.caseName === caseName && r.broker === broker && r.layout === layout);
  const good = mine.filter((r) => r.errors.length === 0);
  const pubsub = good.flatMap((r) => (r.pubsub ? [r.pubsub] : []));
  const idle = good.flatMap((r) => (r.idle ? [r.idle] : []));
  const cpu = [...pubsub.map((p) => p.generatorCpuPct), ...idle.map((i) => i.generatorCpuPct)];
  const histogram = new Map<number, number>();
  for (const p of pubsub) {
    for (const [index, count] of p.histogram) {
      const bound = bucketUpperBoundNs(index) / 1000;
      histogram.set(bound, (histogram.get(bound) ?? 0) + count);
    }
  }
  const summary: Summary = {
    caseName,
    broker,
    layout,
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
    brokerCpuPct: median([...pubsub.map((p) => p.brokerCpuPct), ...idle.map((i) => i.brokerCpuPct)]),
    lateSendPct: median(pubsub.map((p) => p.lateSendPct)),
    connectRate: median(idle.map((i) => i.connectRate)),
    rssPerConnection: median(idle.map((i) => i.rssDeltaBytes / Math.max(1, i.connected))),
    connected: idle.length ? Math.min(...idle.map((i) => i.connected)) : NaN,
    requested: idle.length ? idle[0].requested : NaN,
    histogram: [...histogram].sort((a, b) => a[0] - b[0]),
    gc: good.flatMap((r) => r.gc?.pauses ?? []),
    gcWindowS: good.reduce((total, r) => total + (r.gc?.windowS ?? 0), 0),
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

/** Throughput cases where the broker was not kept busy: the figure is the load's, not the broker's. */
export function markIdleBroker(summary: Summary, testCase: PubSubCase): void {
  if (testCase.rate === 0 && summary.brokerCpuPct < SATURATED_PCT) summary.flags.push("IDLE-BROKER");
}

// ---------- formatting ----------

export function integer(value: number): string {
  return Number.isFinite(value) ? Math.round(value).toLocaleString("en-US") : "n/a";
}

export function micros(value: number): string {
  if (!Number.isFinite(value)) return "n/a";
  if (value >= 100_000) return `${(value / 1000).toFixed(0)} ms`;
  if (value >= 10_000) return `${(value / 1000).toFixed(1)} ms`;
  if (value >= 1000) return `${(value / 1000).toFixed(2)} ms`;
  return `${value.toFixed(0)} µs`;
}

export function ratio(value: number, reference: number): string {
  if (!Number.isFinite(value) || !Number.isFinite(reference) || reference === 0) return "n/a";
  return `${(value / reference).toFixed(2)}×`;
}

export function bytes(value: number): string {
  if (!Number.isFinite(value)) return "n/a";
  if (Math.abs(value) >= 10_240) return `${(value / 1024).toFixed(1)} KiB`;
  return `${value.toFixed(0)} B`;
}

export function percent(value: number): string {
  return Number.isFinite(value) ? `${value.toFixed(0)}%` : "n/a";
}

function lossCell(summary: Summary): string {
  if (!Number.isFinite(summary.lost)) return "n/a";
  if (summary.lost === 0) return "0";
  const share = (100 * summary.lost) / (summary.delivered + summary.lost);
  return `${integer(summary.lost)} (${share < 0.01 ? "<0.01" : share.toFixed(2)}%)`;
}

function flagsCell(summary: Summary): string {
  if (summary.okRuns === 0) return "**NO RESULT**";
  return summary.flags.length ? summary.flags.map((f) => `**${f}**`).join(" ") : "";
}

export function table(header: string[], rows: string[][]): string {
  const lines = [`| ${header.join(" | ")} |`, `| ${header.map(() => "---").join(" | ")} |`];
  for (const row of rows) lines.push(`| ${row.join(" | ")} |`);
  return lines.join("\n");
}

export function label(broker: BrokerName): string {
  if (broker === BASELINE) return "mqtt-proxy (before)";
  return broker === EPOLL_VARIANT ? "mqtt-proxy (io = epoll)" : broker;
}

// ---------- sections ----------

/** The brokers with figures in a case and layout: the compared ones, and the baseline where it ran. */
export function summariesFor(
  input: ReportInput,
  testCase: BenchCase,
  layout: Layout,
): Map<BrokerName, Summary> {
  const byBroker = new Map<BrokerName, Summary>();
  const present = new Set(input.records.filter((r) => r.layout === layout).map((r) => r.broker));
  for (const broker of [...input.brokers, BASELINE, EPOLL_VARIANT, ...FLOOR_NAMES]) {
    if (!input.brokers.includes(broker) && !present.has(broker)) continue;
    const summary = summarize(testCase.name, broker, layout, input.records);
    if (summary.totalRuns === 0 && !input.brokers.includes(broker)) continue;
    if (testCase.kind === "pubsub") markIdleBroker(summary, testCase);
    byBroker.set(broker, summary);
  }
  return byBroker;
}

/** The best figure among the other brokers (not mqtt-proxy, its baseline or the floors). */
export function bestPeer(
  summaries: Map<BrokerName, Summary>,
  pick: (s: Summary) => number,
  lowerIsBetter = false,
): { broker: BrokerName; value: number } | undefined {
  let best: { broker: BrokerName; value: number } | undefined;
  for (const [broker, summary] of summaries) {
    if (OWN_VARIANTS.includes(broker) || FLOOR_NAMES.includes(broker)) continue;
    const value = pick(summary);
    if (!Number.isFinite(value)) continue;
    if (!best || (lowerIsBetter ? value < best.value : value > best.value)) best = { broker, value };
  }
  return best;
}

function throughputTable(input: ReportInput, group: "throughput" | "durable", layout: Layout): string {
  const rows: string[][] = [];
  for (const testCase of input.cases) {
    if (testCase.kind !== "pubsub" || testCase.group !== group) continue;
    const summaries = summariesFor(input, testCase, layout);
    const mosquitto = summaries.get(REFERENCE_BROKER)?.msgsPerSecond ?? NaN;
    const rumqttd = summaries.get("rumqttd")?.msgsPerSecond ?? NaN;
    for (const [broker, s] of summaries) {
      rows.push([
        testCase.title,
        label(broker),
        integer(s.msgsPerSecond),
        ratio(s.msgsPerSecond, mosquitto),
        ratio(s.msgsPerSecond, rumqttd),
        micros(s.p50),
        micros(s.p99),
        lossCell(s),
        integer(s.duplicates),
        integer(s.reordered),
        percent(s.brokerCpuPct),
        percent(s.generatorCpuPct),
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
      "vs rumqttd",
      "p50",
      "p99",
      "lost",
      "dup",
      "reord",
      "broker CPU",
      "gen CPU",
      "flags",
    ],
    rows,
  );
}

function latencyTable(input: ReportInput, layout: Layout): string {
  const rows: string[][] = [];
  for (const testCase of input.cases) {
    if (testCase.kind !== "pubsub" || testCase.group !== "latency") continue;
    const summaries = summariesFor(input, testCase, layout);
    const best = bestPeer(summaries, (s) => s.p99, true);
    for (const [broker, s] of summaries) {
      rows.push([
        testCase.title,
        label(broker),
        micros(s.p50),
        micros(s.p99),
        micros(s.p999),
        micros(s.max),
        best ? `${ratio(s.p99, best.value)} (${best.broker})` : "n/a",
        integer(s.msgsPerSecond),
        lossCell(s),
        percent(s.brokerCpuPct),
        percent(s.generatorCpuPct),
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
      "p99 vs best peer",
      "delivered msg/s",
      "lost",
      "broker CPU",
      "gen CPU",
      "flags",
    ],
    rows,
  );
}

function idleTable(input: ReportInput, layout: Layout): string {
  const rows: string[][] = [];
  for (const testCase of input.cases) {
    if (testCase.kind !== "idle") continue;
    const summaries = summariesFor(input, testCase, layout);
    const mosquitto = summaries.get(REFERENCE_BROKER);
    // The epoll variant's floor is the server on the same socket calls; every other Deno server's, deno-floor.
    const floorOf = (broker: BrokerName) =>
      summaries.get(broker === EPOLL_VARIANT ? "deno-syscall-floor" : "deno-floor")?.rssPerConnection ?? NaN;
    for (const [broker, s] of summaries) {
      const deno = OWN_VARIANTS.includes(broker) || FLOOR_NAMES.includes(broker);
      rows.push([
        label(broker),
        `${integer(s.connected)} / ${integer(testCase.connections)}`,
        integer(s.connectRate),
        ratio(s.connectRate, mosquitto?.connectRate ?? NaN),
        bytes(s.rssPerConnection),
        deno && broker !== "deno-floor" ? bytes(s.rssPerConnection - floorOf(broker)) : "",
        ratio(s.rssPerConnection, mosquitto?.rssPerConnection ?? NaN),
        percent(s.brokerCpuPct),
        percent(s.generatorCpuPct),
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
      "above its floor",
      "RSS vs Mosquitto",
      "broker CPU (connecting)",
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
  const row = (n: number, f: typeof one, vs: string) => [
    String(n),
    broker,
    String(f.runs),
    integer(f.rate),
    integer(f.lost),
    percent(f.cpu),
    vs,
  ];
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
    [row(1, one, "1.00×"), row(2, two, ratio(two.rate, one.rate))],
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
    const name = "caseName" in record ? `${record.caseName} (${record.layout})` : "split-check";
    for (const error of record.errors) {
      // A broker disabled after failing to start is listed once above, not once per skipped run.
      if (error.startsWith("not run:")) continue;
      lines.push(`- ${name} / ${label(record.broker)} / run ${record.run}: ${error.split("\n")[0]}`);
    }
  }
  return lines.join("\n");
}

const LAYOUT_TITLES: Record<Layout, string> = {
  pinned: "pinned: every broker on core 0, the generator on core 1",
  unpinned: "unpinned: broker and generator free to use both cores",
};

export function layoutTitle(layout: Layout): string {
  return LAYOUT_TITLES[layout];
}

/** The results part: also what the script prints on every run. */
export function resultsMarkdown(
  input: ReportInput,
  extraSections: (layout: Layout) => string[] = () => [],
): string {
  const failures = failureList(input);
  const parts = [];
  if (failures) parts.push(`### ⚠ Failures\n\n${failures}`);
  if (input.notices.length) parts.push(`### Skipped\n\n${input.notices.map((n) => `- ${n}`).join("\n")}`);
  for (const layout of input.layouts) {
    parts.push(
      `### Throughput (unlimited rate), ${layoutTitle(layout)}\n\n${
        throughputTable(input, "throughput", layout)
      }`,
      `### Latency at a fixed rate, ${layoutTitle(layout)}\n\n${latencyTable(input, layout)}`,
      ...extraSections(layout),
      `### Durable QoS 1 to persistent sessions, ${layoutTitle(layout)}\n\n${
        throughputTable(input, "durable", layout)
      }`,
      `### Idle connections, ${layoutTitle(layout)}\n\n${idleTable(input, layout)}`,
    );
  }
  parts.push(`### Generator check (same case, 1 vs 2 generator processes, pinned)\n\n${splitTable(input)}`);
  return parts.join("\n\n");
}
