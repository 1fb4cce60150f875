/**
 * `deno task bench`: mqtt-proxy against Mosquitto and Aedes on the same machine, in one run.
 *
 *   deno task bench                       full run (3 runs per case, ~10 min), rewrites docs/benchmarks.*
 *   deno task bench --quick               smoke test (1 short run per case, small idle N), report on stdout
 *   deno task bench --only mosquitto,aedes --case q0-64,idle --runs 1
 *   deno task bench --cluster             three nodes over RocketMQ against one node (scripts/bench/cluster.ts)
 *   deno task bench --big-queue           1M queued messages in 100k offline sessions (scripts/bench/big_queue.ts)
 *
 * Options: --runs N, --duration S, --quick, --only <brokers>, --case <names>, --procs N (generator
 * processes per pubsub case where the topology allows), --write-docs (also in --quick), --json <file>.
 *
 * Every broker runs fresh for every run, pinned to core 0; the C load generator (scripts/bench/mqttload.c,
 * built with gcc into a temporary directory) runs on core 1. Exits non-zero when a broker could not be
 * started or a run failed, after printing the whole report.
 */
import {
  BROKER_NAMES,
  type BrokerName,
  BrokerStartError,
  brokerVersions,
  ensureMosquitto,
  REFERENCE_BROKER,
  type RunningBroker,
  startBroker,
} from "./bench/brokers.ts";
import { allCases, type BenchCase, type IdleCase, type PubSubCase } from "./bench/cases.ts";
import { buildGenerator, runIdle, runPubSub } from "./bench/generator.ts";
import {
  chartSvg,
  fullMarkdown,
  type Machine,
  type ReportInput,
  resultsMarkdown,
  type RunRecord,
  type SplitRecord,
} from "./bench/report.ts";
import { capture, freePort, note, print, residentBytes, sleep } from "./bench/util.ts";

interface Options {
  runs: number;
  durationS: number;
  quick: boolean;
  brokers: BrokerName[];
  caseNames: string[] | undefined;
  processes: number;
  writeDocs: boolean;
  jsonPath: string | undefined;
}

const USAGE = `usage: deno task bench [--quick] [--runs N] [--duration S] [--only ${BROKER_NAMES.join(",")}]
                       [--case NAME,...] [--procs N] [--write-docs] [--json FILE]
cases: ${allCases(false).map((c) => c.name).join(", ")}`;

/** After this long the remaining runs are skipped (and reported as such), whatever the options. */
const TIME_BUDGET_S = 20 * 60;
/** A broker that fails to start this many times in a row is not tried again in this invocation. */
const START_ATTEMPTS = 2;

function parseOptions(args: string[]): Options {
  const options: Options = {
    runs: 3,
    durationS: 4,
    quick: false,
    brokers: [...BROKER_NAMES],
    caseNames: undefined,
    processes: 1,
    writeDocs: false,
    jsonPath: undefined,
  };
  let runsGiven = false, durationGiven = false;
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
      case "--procs":
        options.processes = Number(value());
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
  }
  const unknown = options.brokers.filter((b) => !BROKER_NAMES.includes(b));
  if (unknown.length) {
    throw new Error(`unknown broker ${unknown.join(", ")}; known: ${BROKER_NAMES.join(", ")}`);
  }
  if (!(options.runs >= 1 && options.runs <= 20)) throw new Error("--runs must be 1..20");
  if (!(options.durationS > 0 && options.durationS <= 30)) throw new Error("--duration must be in (0, 30] s");
  if (!(options.processes >= 1 && options.processes <= 4)) throw new Error("--procs must be 1..4");
  const names = allCases(false).map((c) => c.name);
  const badCases = (options.caseNames ?? []).filter((c) => !names.includes(c));
  if (badCases.length) throw new Error(`unknown case ${badCases.join(", ")}; known: ${names.join(", ")}`);
  // Keep the reference broker first so its figures exist when the others' ratios are printed.
  options.brokers.sort((a, b) => BROKER_NAMES.indexOf(a) - BROKER_NAMES.indexOf(b));
  return options;
}

async function describeMachine(versions: Record<BrokerName, string>): Promise<Machine> {
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

/** Tracks brokers that would not start, so a broken one costs two attempts, not every run. */
class BrokerHealth {
  private failuresInARow = new Map<BrokerName, number>();
  readonly disabled = new Map<BrokerName, string>();
  readonly failures: string[] = [];

  disable(broker: BrokerName, reason: string): void {
    this.disabled.set(broker, reason);
    this.failures.push(`${broker} NOT BENCHMARKED: ${reason}`);
  }

  async start(broker: BrokerName, runDir: string, durable: boolean): Promise<RunningBroker | string> {
    const blocked = this.disabled.get(broker);
    if (blocked) return `not run: ${blocked.split("\n")[0]}`;
    try {
      const running = await startBroker(broker, { port: freePort(), runDir, durable });
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

async function runPubSubCase(
  binary: string,
  health: BrokerHealth,
  testCase: PubSubCase,
  broker: BrokerName,
  run: number,
  runDir: string,
  options: Options,
  processes = options.processes,
): Promise<RunRecord> {
  const record: RunRecord = { caseName: testCase.name, broker, run, errors: [] };
  const running = await health.start(broker, runDir, testCase.durable);
  if (typeof running === "string") {
    record.errors.push(running);
    return record;
  }
  try {
    record.pubsub = await runPubSub(binary, running.port, testCase, options.durationS, processes);
    record.errors.push(...record.pubsub.errors, ...brokerDied(running));
  } finally {
    await running.stop();
  }
  return record;
}

async function runIdleCase(
  binary: string,
  health: BrokerHealth,
  testCase: IdleCase,
  broker: BrokerName,
  run: number,
  runDir: string,
  options: Options,
): Promise<RunRecord> {
  const record: RunRecord = { caseName: testCase.name, broker, run, errors: [] };
  const running = await health.start(broker, runDir, false);
  if (typeof running === "string") {
    record.errors.push(running);
    return record;
  }
  try {
    await sleep(500); // let the runtime settle after start-up before taking the baseline
    const baseline = await residentBytes(running.pid) ?? NaN;
    record.idle = await runIdle(binary, running.port, testCase.connections, options.processes, async () => {
      // Hold the connections a moment (brokers allocate lazily), then keep the peak of a few samples.
      let peak = 0;
      for (let sample = 0; sample < 4; sample++) {
        await sleep(400);
        peak = Math.max(peak, await residentBytes(running.pid) ?? 0);
      }
      return peak - baseline;
    });
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
  if (record.pubsub) {
    const p = record.pubsub;
    return `${Math.round(p.msgsPerSecond).toLocaleString("en-US")} msg/s  p50 ${
      p.latencyUs.p50.toFixed(0)
    } µs` +
      `  p99 ${p.latencyUs.p99.toFixed(0)} µs  lost ${p.lost}  dup ${p.duplicates}` +
      `  gen ${p.generatorCpuPct.toFixed(0)}%${suffix}`;
  }
  const i = record.idle!;
  return `${i.connected}/${i.requested} connected  ${Math.round(i.connectRate)} conn/s` +
    `  RSS/conn ${(i.rssDeltaBytes / Math.max(1, i.connected)).toFixed(0)} B  gen ${
      i.generatorCpuPct.toFixed(0)
    }%` +
    suffix;
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
  const health = new BrokerHealth();
  if (options.brokers.includes("mosquitto") && !(await ensureMosquitto())) {
    health.disable("mosquitto", "mosquitto is not installed and apt-get install mosquitto failed");
  }
  const versions = await brokerVersions();
  const cases = allCases(options.quick).filter((c) =>
    !options.caseNames || options.caseNames.includes(c.name)
  );
  const records: RunRecord[] = [];
  const splitRecords: SplitRecord[] = [];
  note(
    `mqtt-bench: ${cases.length} cases × ${options.brokers.length} brokers × ${options.runs} runs, ` +
      `${options.durationS} s each; work dir ${tempDir}`,
  );

  let runIndex = 0;
  const nextRunDir = async (label: string) => {
    const dir = `${tempDir}/${String(++runIndex).padStart(3, "0")}-${label}`;
    await Deno.mkdir(dir);
    return dir;
  };
  const overBudget = () => (Date.now() - started) / 1000 > TIME_BUDGET_S;
  let skippedForTime = 0;

  for (const testCase of cases) {
    for (let run = 1; run <= options.runs; run++) {
      if (testCase.kind === "split-check") {
        const reference = options.brokers.includes(REFERENCE_BROKER) ? REFERENCE_BROKER : options.brokers[0];
        for (const processes of [1, 2]) {
          if (overBudget()) {
            skippedForTime++;
            continue;
          }
          const dir = await nextRunDir(`split${processes}-${reference}`);
          const record = await runPubSubCase(
            binary,
            health,
            testCase.base,
            reference,
            run,
            dir,
            options,
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
      for (const broker of options.brokers) {
        if (overBudget()) {
          skippedForTime++;
          continue;
        }
        const dir = await nextRunDir(`${testCase.name}-${broker}`);
        const record = testCase.kind === "idle"
          ? await runIdleCase(binary, health, testCase, broker, run, dir, options)
          : await runPubSubCase(binary, health, testCase, broker, run, dir, options);
        records.push(record);
        note(`[${testCase.name} ${run}/${options.runs}] ${broker}: ${describeRecord(record)}`);
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
    machine: await describeMachine(versions),
    cases: cases.filter((c): c is BenchCase => c.kind !== "split-check" || splitRecords.length > 0),
    brokers: options.brokers,
    records,
    splitRecords,
    failures,
    elapsedS: (Date.now() - started) / 1000,
  };

  print(resultsMarkdown(input));
  if (!options.quick || options.writeDocs) {
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
