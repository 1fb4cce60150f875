/**
 * Builds and drives the C load generator (mqttload.c), splitting a case over several processes when asked
 * and merging their JSON results (counts add up, latency histograms merge exactly).
 */
import { cpuSeconds, type Layout } from "./brokers.ts";
import { E2E_WINDOW, IDLE_PENDING, type PubSubCase, QOS1_INFLIGHT } from "./cases.ts";
import { capture, forEachLine, sleep, stopChild, withTimeout } from "./util.ts";

/** In the pinned layout the generator runs on this core, the broker on core 0. */
export const GENERATOR_CPU = "1";
/** Keep alive of every generated client: longer than any run, since the generator sends no PINGREQ, and not
 * 0, which rumqttd refuses. */
const KEEP_ALIVE_S = 600;
/**
 * Unlimited-rate runs pause this long between polls so reads and writes batch (see mqttload.c). Short
 * enough that no broker waits for the generator: with 500 µs, QoS 1 10→10 left mqtt-proxy at 87–90 % of
 * its core and rumqttd at 92 % (each subscriber's 100 in flight waited for the next poll's PUBACKs); with
 * 200 µs both used 98–99 % (mqtt-proxy 947–979k msg/s, rumqttd 610–728k) and the generator 16–26 %.
 */
export const COALESCE_US = 200;
/**
 * Fixed-rate runs measure latency only from messages sent after this long at the rate, added to the run's
 * duration: the first seconds after a fresh start are the runtime's (JIT compilation on the same core,
 * start-up garbage), not the broker's steady state. One second was too short for V8 on one pinned core:
 * mqtt-proxy's p99 at 10k msg/s QoS 0 was 0.9–1.2 ms measured after 1 s and 0.19–0.22 ms after 2 s (same
 * build, quiet machine, 2026-12-05).
 */
export const LATENCY_WARMUP_S = 3;
/** A generator process above this share of its core measured itself rather than the broker. */
export const GENERATOR_BOUND_PCT = 90;

/** One generator process's output for the pubsub mode (fields as printed by mqttload.c). */
interface PubSubOutput {
  sent: number;
  acked: number;
  expected: number;
  received: number;
  received_in_window: number;
  duplicates: number;
  reordered: number;
  gaps: number;
  foreign: number;
  drain_s: number;
  latency_us: { max: number };
  schedule_slip_max_us: number;
  late_sends: number;
  cpu_s: number;
  wall_s: number;
  errors: number;
  peer_closed: number;
  first_error: string;
  hist: [number, number][];
  error?: string;
}

interface IdleOutput {
  connections: number;
  connected: number;
  connect_failures: number;
  connect_s: number;
  connect_rate: number;
  peer_closed: number;
  cpu_s: number;
  first_error: string;
  error?: string;
}

/** A pubsub run over all generator processes. */
export interface PubSubResult {
  sent: number;
  received: number;
  lost: number;
  duplicates: number;
  reordered: number;
  msgsPerSecond: number;
  drainSeconds: number;
  latencyUs: { p50: number; p99: number; p999: number; max: number };
  scheduleSlipUs: number;
  /** Share of fixed-rate messages sent more than 1 ms behind schedule (the generator was held up). */
  lateSendPct: number;
  generatorCpuPct: number;
  processes: number;
  /** The broker's CPU use over the publishing window, in % of one core (200% = both cores). */
  brokerCpuPct: number;
  /** The merged latency histogram: [bucket index, count] (see bucketUpperBoundNs). */
  histogram: [number, number][];
  errors: string[];
}

export interface IdleResult {
  requested: number;
  connected: number;
  failed: number;
  connectRate: number;
  generatorCpuPct: number;
  /** Broker RSS while the connections were held, minus its RSS before they opened. */
  rssDeltaBytes: number;
  processes: number;
  /** The broker's CPU use while the connections were opened, in % of one core. */
  brokerCpuPct: number;
  errors: string[];
}

/** Where a run happens: the layout, and the broker process whose CPU time is measured. */
export interface RunPlace {
  layout: Layout;
  brokerPid: number;
}

/** Compiles mqttload.c into `outDir` and returns the binary's path; throws with gcc's output on failure. */
export async function buildGenerator(outDir: string): Promise<string> {
  const source = new URL("./mqttload.c", import.meta.url).pathname;
  const binary = `${outDir}/mqttload`;
  const result = await capture("gcc", ["-O2", "-Wall", "-Wextra", "-o", binary, source]);
  if (!result.ok) throw new Error(`gcc failed to build ${source}:\n${result.text}`);
  if (result.text.trim()) {
    throw new Error(`gcc warned on ${source} (the build must be warning-free):\n${result.text}`);
  }
  return binary;
}

/** Log-linear histogram bucket bounds, the same arithmetic as hist_upper_bound() in mqttload.c. */
const HIST_SUB_BITS = 6;
const HIST_SUB_COUNT = 1 << HIST_SUB_BITS;
export function bucketUpperBoundNs(index: number): number {
  if (index < HIST_SUB_COUNT) return index;
  const exponent = Math.floor(index / HIST_SUB_COUNT) + HIST_SUB_BITS - 1;
  const mantissa = index % HIST_SUB_COUNT;
  const width = 2 ** (exponent - HIST_SUB_BITS);
  return (HIST_SUB_COUNT + mantissa) * width + width - 1;
}

function percentileUs(hist: Map<number, number>, count: number, fraction: number, maxUs: number): number {
  if (count === 0) return 0;
  const rank = Math.max(1, Math.floor(fraction * count));
  let seen = 0;
  for (const index of [...hist.keys()].sort((a, b) => a - b)) {
    seen += hist.get(index)!;
    if (seen >= rank) return Math.min(bucketUpperBoundNs(index) / 1000, maxUs);
  }
  return maxUs;
}

/** Contiguous slice `part` of `total` items split `parts` ways. */
function slice(total: number, part: number, parts: number): { offset: number; count: number } {
  const start = Math.floor((total * part) / parts);
  const end = Math.floor((total * (part + 1)) / parts);
  return { offset: start, count: end - start };
}

interface Spawned {
  child: Deno.ChildProcess;
  ready: Promise<boolean>;
  stdout: Promise<string>;
  stderrLines: string[];
}

/**
 * Starts one generator process (pinned to the generator core in the pinned layout); `ready` resolves when
 * it printed READY.
 */
function spawnGenerator(binary: string, args: string[], layout: Layout): Spawned {
  const pinning = layout === "pinned" ? ["taskset", "-c", GENERATOR_CPU] : [];
  const [command, ...rest] = [...pinning, binary, ...args, "--barrier"];
  const child = new Deno.Command(command, {
    args: rest,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stderrLines: string[] = [];
  let markReady: (ready: boolean) => void = () => {};
  const ready = new Promise<boolean>((resolve) => (markReady = resolve));
  const stderrDone = forEachLine(child.stderr, (line) => {
    if (line.startsWith("READY")) markReady(true);
    else stderrLines.push(line);
  }).then(() => markReady(false));
  const stdout = (async () => {
    const text = await new Response(child.stdout).text();
    await stderrDone;
    return text;
  })();
  return { child, ready, stdout, stderrLines };
}

async function release(processes: Spawned[]): Promise<void> {
  for (const process of processes) {
    const writer = process.child.stdin.getWriter();
    try {
      await writer.write(new TextEncoder().encode("GO\n"));
      await writer.close();
    } catch {
      // the process already exited; its output says why
    }
  }
}

/** Waits for every process's JSON line; a process that hangs is killed after `timeoutMs`. */
async function collect<T>(
  processes: Spawned[],
  timeoutMs: number,
): Promise<{ outputs: T[]; errors: string[] }> {
  const outputs: T[] = [];
  const errors: string[] = [];
  for (const process of processes) {
    const text = await withTimeout(process.stdout, timeoutMs);
    if (text === undefined) {
      await stopChild(process.child, 1000);
      errors.push("generator timed out and was killed");
      continue;
    }
    await process.child.status;
    const line = text.trim().split("\n").pop() ?? "";
    try {
      const output = JSON.parse(line) as T & { error?: string; first_error?: string };
      if (output.error) errors.push(`generator: ${output.error}`);
      else outputs.push(output);
    } catch {
      errors.push(`generator printed no result: ${(text + process.stderrLines.join("\n")).slice(0, 300)}`);
    }
  }
  return { outputs, errors };
}

/** The processes a case may be split into: only self-contained pairs keep their end-to-end flow control. */
export function splittable(testCase: PubSubCase): boolean {
  return testCase.topology === "pair" && testCase.pubs === testCase.subs;
}

export async function runPubSub(
  binary: string,
  port: number,
  testCase: PubSubCase,
  durationS: number,
  processCount: number,
  place: RunPlace,
  /** Where subscribers connect, when not to `port` (another node of a cluster), and deeper windows. */
  cluster?: { subscriberPort: number; inflight: number; e2eWindow: number },
): Promise<PubSubResult> {
  const processes = splittable(testCase) ? processCount : 1;
  const warmupS = testCase.rate > 0 ? LATENCY_WARMUP_S : 0;
  const runS = durationS + warmupS;
  const nonce = crypto.getRandomValues(new Uint32Array(1))[0].toString(16);
  const spawned: Spawned[] = [];
  for (let part = 0; part < processes; part++) {
    const pubs = slice(testCase.pubs, part, processes);
    const subs = slice(testCase.subs, part, processes);
    const args = [
      "--mode=pubsub",
      "--host=127.0.0.1",
      `--port=${port}`,
      `--pubs=${pubs.count}`,
      `--pub-offset=${pubs.offset}`,
      `--total-pubs=${testCase.pubs}`,
      `--subs=${subs.count}`,
      `--sub-offset=${subs.offset}`,
      `--total-subs=${testCase.subs}`,
      `--topology=${testCase.topology}`,
      `--qos=${testCase.qos}`,
      `--payload=${testCase.payload}`,
      `--rate=${testCase.rate * pubs.count / testCase.pubs}`,
      `--duration=${runS}`,
      `--inflight=${cluster?.inflight ?? QOS1_INFLIGHT}`,
      `--e2e-window=${cluster?.e2eWindow ?? E2E_WINDOW[testCase.qos]}`,
      `--coalesce-us=${testCase.rate > 0 ? 0 : COALESCE_US}`,
      `--warmup=${warmupS}`,
      `--nonce=${nonce}`,
      "--drain-timeout=5",
      `--keepalive=${KEEP_ALIVE_S}`,
      "--quiet=1",
      "--connect-timeout=20",
    ];
    if (testCase.durable) args.push("--persistent");
    if (cluster) args.push(`--sub-port=${cluster.subscriberPort}`);
    spawned.push(spawnGenerator(binary, args, place.layout));
  }
  // Publishing starts only once every process has all its clients connected and subscribed. A process that
  // could not connect exits with an error line on its own; one that hangs is killed by collect().
  await withTimeout(Promise.all(spawned.map((s) => s.ready)), 30_000);
  await release(spawned);
  const brokerCpu = cpuShare(place.brokerPid, runS * 1000);
  const { outputs, errors } = await collect<PubSubOutput>(spawned, (runS + 40) * 1000);
  return mergePubSub(outputs, errors, runS, processes, await brokerCpu);
}

/** The share of one core a process used over the next `ms` (NaN when it could not be read). */
async function cpuShare(pid: number, ms: number): Promise<number> {
  const before = await cpuSeconds(pid);
  const started = performance.now();
  await sleep(ms);
  const after = await cpuSeconds(pid);
  const wallS = (performance.now() - started) / 1000;
  return before === undefined || after === undefined ? NaN : (100 * (after - before)) / wallS;
}

function mergePubSub(
  outputs: PubSubOutput[],
  errors: string[],
  durationS: number,
  processes: number,
  brokerCpuPct: number,
) {
  const sum = (pick: (o: PubSubOutput) => number) => outputs.reduce((total, o) => total + pick(o), 0);
  const hist = new Map<number, number>();
  for (const output of outputs) {
    for (const [index, count] of output.hist) hist.set(index, (hist.get(index) ?? 0) + count);
  }
  const received = sum((o) => o.received);
  // Percentiles over the messages the histograms hold (those sent after the warm-up).
  let measured = 0;
  for (const count of hist.values()) measured += count;
  const sent = sum((o) => o.sent);
  const maxUs = Math.max(0, ...outputs.map((o) => o.latency_us.max));
  const wall = Math.max(0, ...outputs.map((o) => o.wall_s));
  for (const output of outputs) {
    if (output.errors > 0) {
      errors.push(`generator: ${output.errors} connection errors (${output.first_error})`);
    }
  }
  const result: PubSubResult = {
    sent,
    received,
    lost: outputs.length === processes ? sum((o) => o.expected) - received : NaN,
    duplicates: sum((o) => o.duplicates),
    reordered: sum((o) => o.reordered),
    msgsPerSecond: sum((o) => o.received_in_window) / durationS,
    drainSeconds: Math.max(0, ...outputs.map((o) => o.drain_s)),
    latencyUs: {
      p50: percentileUs(hist, measured, 0.5, maxUs),
      p99: percentileUs(hist, measured, 0.99, maxUs),
      p999: percentileUs(hist, measured, 0.999, maxUs),
      max: maxUs,
    },
    scheduleSlipUs: Math.max(0, ...outputs.map((o) => o.schedule_slip_max_us)),
    lateSendPct: sent > 0 ? (100 * sum((o) => o.late_sends)) / sent : 0,
    // All processes share one core, so their CPU seconds add up against the longest wall time.
    generatorCpuPct: wall > 0 ? (100 * sum((o) => o.cpu_s)) / wall : 0,
    processes,
    brokerCpuPct,
    histogram: [...hist].sort((a, b) => a[0] - b[0]),
    errors,
  };
  return result;
}

/**
 * Opens `connections` idle connections, calls `whileHeld` once all are up (the caller samples the broker's
 * RSS there), then closes them.
 */
export async function runIdle(
  binary: string,
  port: number,
  connections: number,
  processCount: number,
  place: RunPlace,
  whileHeld: () => Promise<number>,
): Promise<IdleResult> {
  const nonce = crypto.getRandomValues(new Uint32Array(1))[0].toString(16);
  const spawned: Spawned[] = [];
  const brokerCpuBefore = await cpuSeconds(place.brokerPid);
  const connectStarted = performance.now();
  for (let part = 0; part < processCount; part++) {
    const share = slice(connections, part, processCount);
    spawned.push(spawnGenerator(binary, [
      "--mode=idle",
      "--host=127.0.0.1",
      `--port=${port}`,
      `--connections=${share.count}`,
      `--conn-offset=${share.offset}`,
      // One source address has ~28k ephemeral ports; spreading over 16 keeps any leftover TIME_WAIT
      // sockets from earlier runs out of the way.
      "--src-ips=16",
      `--max-pending=${Math.max(1, Math.floor(IDLE_PENDING / processCount))}`,
      // Longer than any run (the generator sends no PINGREQ); rumqttd refuses a keep alive of 0.
      `--keepalive=${KEEP_ALIVE_S}`,
      "--connect-timeout=60",
      `--nonce=${nonce}`,
    ], place.layout));
  }
  const ready = await withTimeout(Promise.all(spawned.map((s) => s.ready)), 90_000);
  const brokerCpuConnecting = await cpuSeconds(place.brokerPid);
  const connectingS = (performance.now() - connectStarted) / 1000;
  let rssDeltaBytes = NaN;
  if (ready !== undefined && !ready.includes(false)) rssDeltaBytes = await whileHeld();
  await release(spawned);
  const { outputs, errors } = await collect<IdleOutput>(spawned, 60_000);
  const connected = outputs.reduce((total, o) => total + o.connected, 0);
  const connectSeconds = Math.max(0, ...outputs.map((o) => o.connect_s));
  const generatorCpuS = outputs.reduce((total, o) => total + o.cpu_s, 0);
  for (const output of outputs) {
    if (output.connect_failures > 0) {
      errors.push(`generator: ${output.connect_failures} connections failed (${output.first_error})`);
    }
    if (output.peer_closed > 0) {
      errors.push(`the broker closed ${output.peer_closed} idle connections while they were held`);
    }
  }
  return {
    requested: connections,
    connected,
    failed: connections - connected,
    connectRate: connectSeconds > 0 ? connected / connectSeconds : 0,
    generatorCpuPct: connectSeconds > 0 ? (100 * generatorCpuS) / connectSeconds : 0,
    rssDeltaBytes,
    processes: processCount,
    // From the generators' start to their READY: the broker's CPU time while the connections were opened.
    brokerCpuPct: brokerCpuBefore === undefined || brokerCpuConnecting === undefined
      ? NaN
      : (100 * (brokerCpuConnecting - brokerCpuBefore)) / connectingS,
    errors,
  };
}
