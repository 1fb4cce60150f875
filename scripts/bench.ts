/**
 * `deno task bench`: mqtt-proxy against rumqttd, mochi-mqtt, Mosquitto and Aedes on the same machine, in one
 * run, every case in two layouts (pinned: each broker on core 0, the generator on core 1; unpinned).
 *
 *   deno task bench            full run: builds the peers once (~6 min the first time), 3 runs per case,
 *                              both layouts, the baseline commit too; rewrites docs/benchmarks.{md,svg}
 *   deno task bench --quick    smoke test: 1 short run per case, pinned only, small idle N, peers only if
 *                              already built (it says which it skipped); report on stdout
 *   deno task bench --only mosquitto,rumqttd --case q0-64,idle --runs 1 --layout pinned
 *                              a partial run: report on stdout, docs only with --write-docs
 *   deno task bench --cluster  three nodes over RocketMQ against one node (scripts/bench/cluster.ts)
 *   deno task bench --big-queue  1M queued messages in 100k offline sessions (scripts/bench/big_queue.ts)
 *
 * Options: --runs N, --duration S, --quick, --only <brokers>, --case <names>, --layout pinned|unpinned|both,
 * --procs N (generator processes per pubsub case where the topology allows), --no-baseline, --write-docs
 * (also in --quick), --json <file>.
 *
 * Every broker runs fresh for every run. The C load generator (scripts/bench/mqttload.c) is built with gcc
 * into a temporary directory. Exits non-zero when a broker could not be built or started or a run failed,
 * after printing the whole report.
 */
import {
  BASELINE,
  BROKER_NAMES,
  type BrokerEnvironment,
  type BrokerName,
  BrokerStartError,
  brokerVersions,
  ensureMosquitto,
  EPOLL_VARIANT,
  IDLE_FLOOR_NAMES,
  LATENCY_FLOOR,
  type Layout,
  OWN_VARIANTS,
  REFERENCE_BROKER,
  type RunningBroker,
  startBroker,
} from "./bench/brokers.ts";
import {
  allCases,
  type BenchCase,
  IDLE_HOLD_MS,
  IDLE_PROCESSES,
  type IdleCase,
  type PubSubCase,
} from "./bench/cases.ts";
import { chartSvg } from "./bench/chart.ts";
import { gcPausesIn } from "./bench/gc_trace.ts";
import { buildGenerator, LATENCY_WARMUP_S, runIdle, runPubSub } from "./bench/generator.ts";
import { buildNoDelayShim, PEER_NAMES, type PeerName, preparePeers } from "./bench/peers.ts";
import {
  type Machine,
  type ReportInput,
  resultsMarkdown,
  type RunRecord,
  type SplitRecord,
} from "./bench/report.ts";
import { fullMarkdown } from "./bench/report_doc.ts";
import { capture, freePort, note, print, residentBytes, sleep } from "./bench/util.ts";
import { BASELINE_COMMIT } from "./bench/what_changed.ts";
import { epollUnsupported } from "../src/transport/epoll.ts";

interface Options {
  runs: number;
  durationS: number;
  quick: boolean;
  brokers: BrokerName[];
  caseNames: string[] | undefined;
  layouts: Layout[];
  processes: number;
  baseline: boolean;
  writeDocs: boolean;
  jsonPath: string | undefined;
}

const USAGE = `usage: deno task bench [--quick] [--runs N] [--duration S] [--only ${BROKER_NAMES.join(",")}]
                       [--case NAME,...] [--layout pinned|unpinned|both] [--procs N] [--no-baseline]
                       [--write-docs] [--json FILE]
cases: ${allCases(false).map((c) => c.name).join(", ")}`;

/** After this long the remaining runs are skipped (and reported as such), whatever the options. */
const TIME_BUDGET_S = 110 * 60;
/** A broker that fails to start this many times in a row is not tried again in this invocation. */
const START_ATTEMPTS = 2;

function parseOptions(args: string[]): Options {
  const options: Options = {
    runs: 3,
    durationS: 4,
    quick: false,
    brokers: [...BROKER_NAMES],
    caseNames: undefined,
    layouts: ["pinned", "unpinned"],
    processes: 1,
    baseline: true,
    writeDocs: false,
    jsonPath: undefined,
  };
  let runsGiven = false, durationGiven = false, layoutGiven = false;
  for (let i = 0; i < args.length; i++) {
    const [flag, inline] = args[i].split("=", 2);
    const value = () => inline ?? args[++i];
    switch (flag) {
      case "--runs":
        options.runs = Number(value());
        runsGiven = true;
        break;
      case "--duration":
        options.durationS = Number(value());
        durationGiven = true;
        break;
      case "--quick":
        options.quick = true;
        break;
      case "--only":
        options.brokers = value().split(",").map((b) => b.trim()) as BrokerName[];
        break;
      case "--case":
        options.caseNames = value().split(",").map((c) => c.trim());
        break;
      case "--layout": {
        const layout = value();
        if (!["pinned", "unpinned", "both"].includes(layout)) {
          throw new Error(`--layout ${layout}?\n${USAGE}`);
        }
        options.layouts = layout === "both" ? ["pinned", "unpinned"] : [layout as Layout];
        layoutGiven = true;
        break;
      }
      case "--procs":
        options.processes = Number(value());
        break;
      case "--no-baseline":
        options.baseline = false;
        break;
      case "--write-docs":
        options.writeDocs = true;
        break;
      case "--json":
        options.jsonPath = value();
        break;
      case "--help":
      case "-h":
        print(USAGE);
        Deno.exit(0);
        break;
      default:
        throw new Error(`unknown option ${args[i]}\n${USAGE}`);
    }
  }
  if (options.quick) {
    if (!runsGiven) options.runs = 1;
    if (!durationGiven) options.durationS = 1.5;
    if (!layoutGiven) options.layouts = ["pinned"];
    options.baseline = false;
  }
  const unknown = options.brokers.filter((b) => !BROKER_NAMES.includes(b));
  if (unknown.length) {
    throw new Error(`unknown broker ${unknown.join(", ")}; known: ${BROKER_NAMES.join(", ")}`);
  }
  if (!options.brokers.includes("mqtt-proxy")) options.baseline = false;
  if (!(options.runs >= 1 && options.runs <= 20)) throw new Error("--runs must be 1..20");
  if (!(options.durationS > 0 && options.durationS <= 30)) throw new Error("--duration must be in (0, 30] s");
  if (!(options.processes >= 1 && options.processes <= 4)) throw new Error("--procs must be 1..4");
  const names = allCases(false).map((c) => c.name);
  const badCases = (options.caseNames ?? []).filter((c) => !names.includes(c));
  if (badCases.length) throw new Error(`unknown case ${badCases.join(", ")}; known: ${names.join(", ")}`);
  options.brokers.sort((a, b) => BROKER_NAMES.indexOf(a) - BROKER_NAMES.indexOf(b));
  return options;
}

async function describeMachine(versions: Record<string, string>): Promise<Machine> {
  // /proc is read through `cat`: Deno wants --allow-all for it (see residentBytes).
  const cpuinfo = (await capture("cat", ["/proc/cpuinfo"])).text;
  const meminfo = (await capture("cat", ["/proc/meminfo"])).text;
  const memKb = Number(meminfo.match(/^MemTotal:\s+(\d+)/m)?.[1] ?? NaN);
  return {
    nproc: navigator.hardwareConcurrency,
    cpuModel: cpuinfo.match(/^model name\s*:\s*(.+)$/m)?.[1]?.trim() ?? "unknown",
    kernel: Deno.osRelease(),
    memory: Number.isFinite(memKb) ? `${(memKb / 1024 / 1024).toFixed(1)} GiB` : "unknown",
    deno: Deno.version.deno,
    versions,
  };
}

/** The baseline commit's tree, extracted (git archive) into `dir`; a reason string when that fails. */
async function extractBaseline(commit: string, dir: string): Promise<string | undefined> {
  const repo = new URL("../", import.meta.url).pathname;
  const archive = `${dir}.tar`;
  const made = await capture("git", ["-C", repo, "archive", "--format=tar", "-o", archive, commit]);
  if (!made.ok) return `git archive ${commit} failed: ${made.text.trim().split("\n")[0]}`;
  await Deno.mkdir(dir, { recursive: true });
  const unpacked = await capture("tar", ["-xf", archive, "-C", dir]);
  await Deno.remove(archive);
  return unpacked.ok ? undefined : `tar failed: ${unpacked.text.trim().split("\n")[0]}`;
}

/** Tracks brokers that would not start, so a broken one costs two attempts, not every run. */
class BrokerHealth {
  private failuresInARow = new Map<BrokerName, number>();
  readonly disabled = new Map<BrokerName, string>();
  readonly failures: string[] = [];

  constructor(private readonly env: BrokerEnvironment) {}

  disable(broker: BrokerName, reason: string, failure = true): void {
    this.disabled.set(broker, reason);
    if (failure) this.failures.push(`${broker} NOT BENCHMARKED: ${reason}`);
  }

  async start(
    broker: BrokerName,
    runDir: string,
    durable: boolean,
    layout: Layout,
  ): Promise<RunningBroker | string> {
    const blocked = this.disabled.get(broker);
    if (blocked) return `not run: ${blocked.split("\n")[0]}`;
    try {
      const running = await startBroker(broker, { port: freePort(), runDir, durable, layout }, this.env);
      this.failuresInARow.set(broker, 0);
      return running;
    } catch (error) {
      const message = error instanceof BrokerStartError ? error.message : String(error);
      note(`!! ${message}`);
      const count = (this.failuresInARow.get(broker) ?? 0) + 1;
      this.failuresInARow.set(broker, count);
      if (count >= START_ATTEMPTS) {
        this.disable(broker, `failed to start ${count} times in a row: ${message}`);
      }
      return `failed to start: ${message.split("\n")[0]}`;
    }
  }
}

function brokerDied(broker: RunningBroker): string[] {
  const status = broker.exitStatus();
  return status ? [`${broker.name} exited during the run (code ${status.code}); see ${broker.logPath}`] : [];
}

/** mqtt-proxy's GC pauses from the release of the publishers to the end of the run. */
async function collectGc(record: RunRecord, running: RunningBroker, releasedAt: number): Promise<void> {
  if (!OWN_VARIANTS.includes(running.name)) return;
  const from = releasedAt - running.spawnedAt;
  const to = Date.now() - running.spawnedAt;
  record.gc = { pauses: await gcPausesIn(running.logPath, from, to), windowS: (to - from) / 1000 };
}

interface RunContext {
  binary: string;
  health: BrokerHealth;
  options: Options;
}

async function runPubSubCase(
  context: RunContext,
  testCase: PubSubCase,
  broker: BrokerName,
  layout: Layout,
  run: number,
  runDir: string,
  processes = context.options.processes,
): Promise<RunRecord> {
  const record: RunRecord = { caseName: testCase.name, broker, layout, run, errors: [] };
  const running = await context.health.start(broker, runDir, testCase.durable, layout);
  if (typeof running === "string") {
    record.errors.push(running);
    return record;
  }
  const releasedAt = Date.now();
  try {
    record.pubsub = await runPubSub(
      context.binary,
      running.port,
      testCase,
      context.options.durationS,
      processes,
      {
        layout,
        brokerPid: running.pid,
      },
    );
    record.errors.push(...record.pubsub.errors, ...brokerDied(running));
  } finally {
    await running.stop();
  }
  // The log is complete once the broker stopped. Fixed-rate runs: the pauses of the measured part only.
  const warmup = testCase.rate > 0 ? LATENCY_WARMUP_S * 1000 : 0;
  await collectGc(record, running, releasedAt + warmup);
  return record;
}

async function runIdleCase(
  context: RunContext,
  testCase: IdleCase,
  broker: BrokerName,
  layout: Layout,
  run: number,
  runDir: string,
): Promise<RunRecord> {
  const record: RunRecord = { caseName: testCase.name, broker, layout, run, errors: [] };
  const running = await context.health.start(broker, runDir, false, layout);
  if (typeof running === "string") {
    record.errors.push(running);
    return record;
  }
  try {
    await sleep(500); // let the runtime settle after start-up before taking the baseline
    const baseline = await residentBytes(running.pid) ?? NaN;
    const place = { layout, brokerPid: running.pid };
    record.idle = await runIdle(
      context.binary,
      running.port,
      testCase.connections,
      IDLE_PROCESSES,
      place,
      async () => {
        // The cost of connections at rest: held past the quiet time of the memory reclaimer (mqtt-proxy and the deno-floor
        // give a connect storm's garbage back once quiet; Go's and Node's collectors run meanwhile too), the
        // median of the last three samples, a second apart.
        const samples: number[] = [];
        for (let held = 0; held < IDLE_HOLD_MS; held += 1000) {
          await sleep(1000);
          samples.push(await residentBytes(running.pid) ?? NaN);
        }
        return samples.slice(-3).sort((a, b) => a - b)[1] - baseline;
      },
    );
    record.errors.push(...record.idle.errors, ...brokerDied(running));
  } finally {
    await running.stop();
  }
  return record;
}

function describeRecord(record: RunRecord): string {
  if (record.errors.length && !record.pubsub && !record.idle) {
    return `ERROR ${record.errors[0].split("\n")[0]}`;
  }
  const suffix = record.errors.length ? `  ERROR ${record.errors[0].split("\n")[0]}` : "";
  const cpu = (pct: number) => Number.isFinite(pct) ? `${pct.toFixed(0)}%` : "n/a";
  if (record.pubsub) {
    const p = record.pubsub;
    const gc = record.gc ? `  gc ${record.gc.pauses.length}` : "";
    return `${Math.round(p.msgsPerSecond).toLocaleString("en-US")} msg/s  p50 ${
      p.latencyUs.p50.toFixed(0)
    } µs` +
      `  p99 ${p.latencyUs.p99.toFixed(0)} µs  lost ${p.lost}  dup ${p.duplicates}` +
      `  broker ${cpu(p.brokerCpuPct)}  gen ${cpu(p.generatorCpuPct)}${gc}${suffix}`;
  }
  const i = record.idle!;
  return `${i.connected}/${i.requested} connected  ${Math.round(i.connectRate)} conn/s` +
    `  RSS/conn ${(i.rssDeltaBytes / Math.max(1, i.connected)).toFixed(0)} B  broker ${cpu(i.brokerCpuPct)}` +
    `  gen ${cpu(i.generatorCpuPct)}${suffix}`;
}

/** Who runs a case in a layout: the compared brokers; the floors and the baseline only where they apply. */
function brokersFor(
  testCase: BenchCase,
  layout: Layout,
  options: Options,
  baselineReady: boolean,
): BrokerName[] {
  const brokers = [...options.brokers];
  if (layout !== "pinned" || !options.brokers.includes("mqtt-proxy")) return brokers;
  const variants = [...(baselineReady ? [BASELINE] : []), ...(epollUnsupported() ? [] : [EPOLL_VARIANT])];
  brokers.splice(1, 0, ...variants);
  if (testCase.kind === "idle") brokers.push(...IDLE_FLOOR_NAMES);
  if (testCase.kind === "pubsub" && testCase.group === "latency") brokers.push(LATENCY_FLOOR);
  return brokers;
}

async function main(): Promise<number> {
  if (Deno.args.includes("--cluster")) {
    const { runClusterBench } = await import("./bench/cluster.ts");
    return await runClusterBench(Deno.args);
  }
  if (Deno.args.includes("--big-queue")) {
    const { runBigQueueBench } = await import("./bench/big_queue.ts");
    return await runBigQueueBench(Deno.args);
  }
  const options = parseOptions(Deno.args);
  const started = Date.now();
  if (navigator.hardwareConcurrency < 2) {
    throw new Error("the benchmark pins the broker and the generator to cores 0 and 1: it needs 2 CPUs");
  }
  const tempDir = await Deno.makeTempDir({ prefix: "mqtt-bench-" });
  const binary = await buildGenerator(tempDir);
  const wantedPeers = options.brokers.filter((b): b is PeerName => PEER_NAMES.includes(b as PeerName));
  const peers = await preparePeers(wantedPeers, !options.quick);
  const env: BrokerEnvironment = {
    peers: new Map(peers.map((p) => [p.name, p])),
    noDelayShim: await buildNoDelayShim(tempDir),
  };
  const health = new BrokerHealth(env);
  const notices: string[] = [];
  for (const peer of peers) {
    if (!peer.notBuilt) continue;
    if (options.quick) {
      notices.push(`${peer.name} ${peer.version} skipped: ${peer.notBuilt}`);
      note(`NOTE: ${peer.name} skipped in --quick: ${peer.notBuilt}`);
      health.disable(peer.name, `not built: ${peer.notBuilt}`, false);
    } else {
      health.disable(peer.name, `not built: ${peer.notBuilt}`);
    }
  }
  const quietlySkipped = new Set<BrokerName>(
    options.quick ? peers.filter((p) => p.notBuilt).map((p) => p.name) : [],
  );
  if (options.brokers.includes("mosquitto") && !(await ensureMosquitto())) {
    health.disable("mosquitto", "mosquitto is not installed and apt-get install mosquitto failed");
  }
  let baseline: string | undefined;
  if (options.baseline) {
    env.baselineDir = `${tempDir}/baseline`;
    const failed = await extractBaseline(BASELINE_COMMIT, env.baselineDir);
    if (failed) health.disable(BASELINE, failed);
    else baseline = BASELINE_COMMIT;
  }
  const versions = await brokerVersions(env);
  const cases = allCases(options.quick).filter((c) =>
    !options.caseNames || options.caseNames.includes(c.name)
  );
  const brokers = options.brokers.filter((b) => !quietlySkipped.has(b));
  const records: RunRecord[] = [];
  const splitRecords: SplitRecord[] = [];
  note(
    `mqtt-bench: ${cases.length} cases × ${brokers.length} brokers × ${options.layouts.length} layouts × ` +
      `${options.runs} runs, ${options.durationS} s each; work dir ${tempDir}`,
  );

  let runIndex = 0;
  const nextRunDir = async (label: string) => {
    const dir = `${tempDir}/${String(++runIndex).padStart(3, "0")}-${label}`;
    await Deno.mkdir(dir);
    return dir;
  };
  const overBudget = () => (Date.now() - started) / 1000 > TIME_BUDGET_S;
  let skippedForTime = 0;
  const context: RunContext = { binary, health, options };

  for (const layout of options.layouts) {
    for (const testCase of cases) {
      for (let run = 1; run <= options.runs; run++) {
        if (testCase.kind === "split-check") {
          if (layout !== "pinned") continue;
          const reference = brokers.includes(REFERENCE_BROKER) ? REFERENCE_BROKER : brokers[0];
          for (const processes of [1, 2]) {
            if (overBudget()) {
              skippedForTime++;
              continue;
            }
            const dir = await nextRunDir(`split${processes}-${reference}`);
            const record = await runPubSubCase(
              context,
              testCase.base,
              reference,
              layout,
              run,
              dir,
              processes,
            );
            splitRecords.push({
              broker: reference,
              processes,
              run,
              result: record.pubsub,
              errors: record.errors,
            });
            note(
              `[${testCase.name} ${run}/${options.runs}] ${processes} process(es) ${reference}: ${
                describeRecord(record)
              }`,
            );
          }
          continue;
        }
        for (const broker of brokersFor(testCase, layout, { ...options, brokers }, baseline !== undefined)) {
          if (overBudget()) {
            skippedForTime++;
            continue;
          }
          const dir = await nextRunDir(`${layout}-${testCase.name}-${broker}`);
          const record = testCase.kind === "idle"
            ? await runIdleCase(context, testCase, broker, layout, run, dir)
            : await runPubSubCase(context, testCase, broker, layout, run, dir);
          records.push(record);
          note(`[${layout} ${testCase.name} ${run}/${options.runs}] ${broker}: ${describeRecord(record)}`);
        }
      }
    }
  }

  const failures = [...health.failures];
  if (skippedForTime) {
    failures.push(`${skippedForTime} runs SKIPPED: the ${TIME_BUDGET_S / 60} min budget ran out`);
  }
  const input: ReportInput = {
    date: new Date().toISOString().replace(/\.\d+Z$/, "Z"),
    quick: options.quick,
    runs: options.runs,
    durationS: options.durationS,
    processes: options.processes,
    layouts: options.layouts,
    machine: await describeMachine(versions),
    cases: cases.filter((c): c is BenchCase => c.kind !== "split-check" || splitRecords.length > 0),
    brokers,
    baseline,
    records,
    splitRecords,
    failures,
    notices,
    elapsedS: (Date.now() - started) / 1000,
  };

  print(resultsMarkdown(input));
  // A partial run (--only, --case) would replace the full report with part of one: only when asked.
  const partial = options.caseNames !== undefined || BROKER_NAMES.some((b) => !options.brokers.includes(b));
  if (options.writeDocs || (!options.quick && !partial)) {
    const docs = new URL("../docs/", import.meta.url);
    await Deno.mkdir(docs, { recursive: true });
    // The big-queue section is written by `--big-queue --write-docs` (scripts/bench/big_queue.ts): kept.
    const { keptBigQueueSection } = await import("./bench/big_queue_docs.ts");
    const kept = await keptBigQueueSection(new URL("benchmarks.md", docs));
    await Deno.writeTextFile(new URL("benchmarks.md", docs), fullMarkdown(input) + kept);
    await Deno.writeTextFile(new URL("benchmarks.svg", docs), chartSvg(input));
    note("wrote docs/benchmarks.md and docs/benchmarks.svg");
  }
  if (options.jsonPath) await Deno.writeTextFile(options.jsonPath, JSON.stringify(input, null, 2) + "\n");

  const failedRuns = [...records, ...splitRecords].filter((r) => r.errors.length > 0).length;
  const broken = failures.length > 0 || failedRuns > 0;
  if (broken) {
    print(`\nBENCHMARK INCOMPLETE: ${failures.length} broker/budget failures, ${failedRuns} failed runs.`);
    print(`Broker logs and configs are kept in ${tempDir}`);
  } else {
    await Deno.remove(tempDir, { recursive: true });
  }
  if (notices.length) print(`\n${notices.map((n) => `NOTE: ${n}`).join("\n")}`);
  note(`done in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  return broken ? 1 : 0;
}

if (import.meta.main) {
  try {
    Deno.exit(await main());
  } catch (error) {
    note(`bench failed: ${error instanceof Error ? error.message : String(error)}`);
    Deno.exit(2);
  }
}
