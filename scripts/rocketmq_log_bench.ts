/**
 * Measures the RocketMQ cluster log against the RocketMQ of `scripts/rocketmq.sh start` (topic
 * mqtt_log_bench), each appender and reader in a process of its own as cluster nodes would be:
 *
 *   - throughput: appenders append as fast as they can (a bounded window of appends in flight) for a fixed
 *     time, with 64 B and 1 KiB entries, one and three appending processes: RocketMQ messages/s,
 *     entries/s, and CPU per entry in the appender and in the three RocketMQ JVMs;
 *   - latency: one process appends at a fixed 10,000 entries/s, another applies; end-to-end latency from
 *     append() to apply (p50/p99), and CPU per entry on both sides.
 *
 *   deno run -A scripts/rocketmq_log_bench.ts [--seconds 10] [--quick]
 *
 * Every load loop is bounded by its duration. The machine's 2 cores are shared by the JVMs and the Deno
 * processes, so the numbers are for this whole box, not for RocketMQ alone.
 */
import process from "node:process";
import { RocketMqLog } from "../src/storage/rocketmq/mod.ts";

const endpoints = Deno.env.get("ROCKETMQ_LOCAL_ENDPOINTS") ?? "127.0.0.1:8081";
const nameServer = Deno.env.get("ROCKETMQ_LOCAL_NAMESRV") ?? "127.0.0.1:9876";
const runtimeDir = Deno.env.get("ROCKETMQ_LOCAL_HOME") ??
  `${Deno.env.get("HOME")}/.local/state/mqtt-proxy/rocketmq`;
const topic = "mqtt_log_bench";
const encoder = new TextEncoder();
const say = (text: string) => Deno.stdout.writeSync(encoder.encode(`${text}\n`));

function arg(name: string, fallback: string): string {
  const i = Deno.args.indexOf(`--${name}`);
  return i >= 0 && Deno.args[i + 1] !== undefined ? Deno.args[i + 1] : fallback;
}

function cpuMicros(): number {
  const usage = process.cpuUsage();
  return usage.user + usage.system;
}

function openLog(nodeId: string): RocketMqLog {
  return new RocketMqLog({ endpoints, nameServer, topic, nodeId, awaitMs: 1000, appendTimeoutMs: 30_000 });
}

/** Now as epoch milliseconds with sub-millisecond precision, comparable across processes. */
const epochMs = () => performance.timeOrigin + performance.now();

// --- workers (one process each) -------------------------------------------------------------------

async function appendAsFastAsPossible(nodeId: string, size: number, seconds: number): Promise<void> {
  const log = openLog(nodeId);
  await log.start();
  const body = new Uint8Array(size).fill(42);
  const window = Math.max(2000, Math.floor((8 * 1024 * 1024) / size)); // ~8 MiB in flight
  let acked = 0;
  let failed = 0;
  let inflight = 0;
  const cpu0 = cpuMicros();
  const t0 = performance.now();
  const until = t0 + seconds * 1000;
  await new Promise<void>((done) => {
    const pump = () => {
      while (inflight < window && performance.now() < until) {
        inflight++;
        log.append(body).then(() => acked++, () => failed++).finally(() => {
          inflight--;
          if (inflight === 0 && performance.now() >= until) done();
          else pump();
        });
      }
    };
    pump();
  });
  const elapsed = (performance.now() - t0) / 1000;
  const cpu = cpuMicros() - cpu0;
  const { messagesSent } = log.stats();
  await log.stop();
  say(JSON.stringify({ acked, failed, elapsed, cpuMicros: cpu, messages: messagesSent }));
}

async function appendAtRate(nodeId: string, rate: number, seconds: number): Promise<void> {
  const log = openLog(nodeId);
  await log.start();
  const tickMs = 10;
  const perTick = Math.round((rate * tickMs) / 1000);
  const body = new Uint8Array(64);
  const view = new DataView(body.buffer);
  const appends: Promise<void>[] = [];
  const cpu0 = cpuMicros();
  const t0 = performance.now();
  for (let tick = 0; tick * tickMs < seconds * 1000; tick++) {
    const due = t0 + tick * tickMs;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    for (let i = 0; i < perTick; i++) {
      view.setFloat64(0, epochMs());
      appends.push(log.append(body));
    }
  }
  const results = await Promise.allSettled(appends);
  const cpu = cpuMicros() - cpu0;
  const { messagesSent } = log.stats();
  await log.stop();
  const failed = results.filter((result) => result.status === "rejected").length;
  say(JSON.stringify({ appended: appends.length - failed, failed, cpuMicros: cpu, messages: messagesSent }));
}

async function applyAndTime(nodeId: string, expected: number, seconds: number): Promise<void> {
  const log = openLog(nodeId);
  await log.start();
  const latencies: number[] = [];
  let cpu0 = 0;
  let done!: () => void;
  const finished = new Promise<void>((resolve) => done = resolve);
  log.consume((entries) => {
    const now = epochMs();
    if (latencies.length === 0) cpu0 = cpuMicros();
    for (const entry of entries) {
      latencies.push(now - new DataView(entry.body.buffer, entry.body.byteOffset).getFloat64(0));
    }
    if (latencies.length >= expected) done();
    return Promise.resolve();
  });
  say("READY");
  const timer = setTimeout(done, (seconds + 30) * 1000); // bounded even if entries go missing
  await finished;
  clearTimeout(timer);
  const cpu = cpuMicros() - cpu0;
  await log.stop();
  say(JSON.stringify({ applied: latencies.length, cpuMicros: cpu, latencies: summarize(latencies) }));
}

function summarize(values: number[]): Record<string, number> {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
  return { p50: at(0.5), p90: at(0.9), p99: at(0.99), max: sorted.at(-1) ?? NaN };
}

// --- coordinator -----------------------------------------------------------------------------------

interface Worker {
  lines: Promise<string[]>;
  ready: Promise<void>;
}

function spawnWorker(args: string[]): Worker {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", import.meta.filename!, "worker", ...args],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  let markReady!: () => void;
  const ready = new Promise<void>((resolve) => markReady = resolve);
  const lines = (async () => {
    const all: string[] = [];
    let pending = "";
    for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
      pending += chunk;
      const parts = pending.split("\n");
      pending = parts.pop()!;
      for (const line of parts) {
        if (line === "READY") markReady();
        all.push(line);
      }
    }
    const status = await child.status;
    if (!status.success) throw new Error(`worker ${args.join(" ")} exited ${status.code}`);
    markReady();
    return all;
  })();
  return { lines, ready };
}

const lastJson = async (worker: Worker) => JSON.parse((await worker.lines).at(-1)!);

/** CPU seconds the RocketMQ JVMs (by the script's pid files) have used so far. */
async function jvmCpuSeconds(): Promise<number> {
  let total = 0;
  for (const name of ["namesrv", "broker", "proxy"]) {
    const pid = (await Deno.readTextFile(`${runtimeDir}/${name}.pid`)).trim();
    const { stdout } = await new Deno.Command("cat", { args: [`/proc/${pid}/stat`] }).output();
    const fields = new TextDecoder().decode(stdout).split(") ")[1].split(" ");
    total += (Number(fields[11]) + Number(fields[12])) / 100; // utime + stime, in clock ticks
  }
  return total;
}

async function throughputCase(
  size: number,
  processes: number,
  seconds: number,
  run: string,
): Promise<string> {
  const jvm0 = await jvmCpuSeconds();
  const workers = Array.from(
    { length: processes },
    (_, i) => spawnWorker(["append", `${run}-t${size}-${processes}-${i}`, String(size), String(seconds)]),
  );
  const results = await Promise.all(workers.map(lastJson));
  const jvm = (await jvmCpuSeconds()) - jvm0;
  const entries = results.reduce((sum, r) => sum + r.acked, 0);
  const messages = results.reduce((sum, r) => sum + r.messages, 0);
  const failed = results.reduce((sum, r) => sum + r.failed, 0);
  const elapsed = Math.max(...results.map((r) => r.elapsed));
  const clientCpu = results.reduce((sum, r) => sum + r.cpuMicros, 0);
  return `| ${size} B | ${processes} | ${Math.round(messages / elapsed)} | ${
    Math.round(entries / elapsed)
  } | ` +
    `${((entries * size) / elapsed / 1e6).toFixed(1)} | ${(clientCpu / entries).toFixed(2)} | ` +
    `${((jvm * 1e6) / entries).toFixed(2)} | ${failed} |`;
}

async function latencyCase(rate: number, seconds: number, run: string): Promise<string> {
  const expected = rate * seconds;
  const reader = spawnWorker(["apply", `${run}-reader`, String(expected), String(seconds)]);
  await reader.ready;
  const jvm0 = await jvmCpuSeconds();
  const writer = spawnWorker(["rate", `${run}-writer`, String(rate), String(seconds)]);
  const [w, r] = await Promise.all([lastJson(writer), lastJson(reader)]);
  const jvm = (await jvmCpuSeconds()) - jvm0;
  const l = r.latencies;
  return `| ${rate} | ${w.appended} | ${r.applied} | ${l.p50.toFixed(1)} | ${l.p90.toFixed(1)} | ${
    l.p99.toFixed(1)
  } | ` +
    `${l.max.toFixed(1)} | ${(w.cpuMicros / w.appended).toFixed(2)} | ${
      (r.cpuMicros / r.applied).toFixed(2)
    } | ` +
    `${((jvm * 1e6) / w.appended).toFixed(2)} | ${w.messages} |`;
}

if (Deno.args[0] === "worker") {
  const [, role, nodeId, a, b] = Deno.args;
  if (role === "append") await appendAsFastAsPossible(nodeId, Number(a), Number(b));
  else if (role === "rate") await appendAtRate(nodeId, 10_000, Number(b));
  else if (role === "apply") await applyAndTime(nodeId, Number(a), Number(b));
  Deno.exit(0);
}

const quick = Deno.args.includes("--quick");
const seconds = Number(arg("seconds", quick ? "3" : "10"));
const run = `bench${Date.now().toString(36)}`;
say(
  `RocketMQ cluster log benchmark, ${endpoints}, topic ${topic}, ${seconds} s per case, ${navigator.hardwareConcurrency} cores`,
);
say("");
say(
  "| entry | appending processes | RocketMQ messages/s | entries/s | MB/s | client CPU µs/entry | RocketMQ CPU µs/entry | failed |",
);
say("|---|---|---|---|---|---|---|---|");
for (const size of [64, 1024]) {
  for (const processes of [1, 3]) say(await throughputCase(size, processes, seconds, run));
}
say("");
say(
  "| entries/s | appended | applied | p50 ms | p90 ms | p99 ms | max ms | appender CPU µs/entry | reader CPU µs/entry | RocketMQ CPU µs/entry | messages |",
);
say("|---|---|---|---|---|---|---|---|---|---|---|");
say(await latencyCase(10_000, seconds, run));
