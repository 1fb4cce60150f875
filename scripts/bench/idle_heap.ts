/**
 * What one idle connection holds in mqtt-proxy's JS heap: starts the broker in this process (memory
 * storage, log level warn), opens N clean-session connections with the C generator (CONNECT, keep alive
 * 600 s, CONNACK, then nothing), and compares the heap after a full GC before and while they are held.
 * With --snapshot it also writes a V8 heap snapshot at both points and prints, per object kind (V8's node
 * type and constructor name), the count and self bytes added per connection. --floor measures the bench's
 * deno-floor server (idle_floor.ts) the same way instead of the broker: Deno's own share. RSS is printed too, but RSS in
 * the same process as this probe is only indicative: the benchmark's idle case is the figure of record.
 *
 * Usage: deno run -A --v8-flags=--expose-gc scripts/bench/idle_heap.ts [--connections 5000] [--snapshot]
 *        [--mqttload PATH] (the generator binary; built with gcc into a temporary directory when absent)
 */
import { writeHeapSnapshot } from "node:v8";
import { parseConfig } from "../../src/config/mod.ts";
import { createLogger } from "../../src/observe/mod.ts";
import { startBroker } from "../../main.ts";
import { buildGenerator } from "./generator.ts";
import { aggregate } from "./heap_snapshot.ts";
import { startFloor } from "./idle_floor.ts";
import { freePort, sleep } from "./util.ts";

function option(name: string): string | undefined {
  const index = Deno.args.indexOf(name);
  return index >= 0 ? Deno.args[index + 1] : undefined;
}

const connections = Number(option("--connections") ?? 5000);
const snapshot = Deno.args.includes("--snapshot");
/** Instead of the broker, the bench's deno-floor server (idle_floor.ts) in this process: Deno's own share. */
const floor = Deno.args.includes("--floor");
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error("run with --v8-flags=--expose-gc");
if (!Number.isInteger(connections) || connections < 1 || connections > 19_000) {
  throw new Error("--connections must be 1..19000 (the per-process descriptor limit is 20,000)");
}

function collect(): void {
  for (let i = 0; i < 3; i++) gc!();
}

interface Sizes {
  heapUsed: number;
  external: number;
  rss: number;
}

function sizes(): Sizes {
  const { heapUsed, external, rss } = Deno.memoryUsage();
  return { heapUsed, external, rss };
}

/** idle_floor.ts's server with the broker's read strategy, shaped like the part of RunningBroker used here. */
function floorInProcess(port: number) {
  const server = startFloor(port);
  return {
    connections: {
      get connectionCount() {
        return server.openConnections;
      },
    },
    stop: () => server.stop(),
  };
}

const scratch = await Deno.makeTempDir({ prefix: "idle-heap-" });
try {
  const mqttload = option("--mqttload") ?? await buildGenerator(scratch);
  const port = freePort();
  const config = parseConfig(
    [
      "listener.default.host = 127.0.0.1",
      `listener.default.port = ${port}`,
      "storage.type = memory",
      "log.level = warn",
    ].join("\n"),
    "idle_heap",
  );
  const running = floor ? floorInProcess(port) : await startBroker(config, createLogger({ level: "warn" }));
  await sleep(300);
  collect();
  const before = sizes();
  if (snapshot) writeHeapSnapshot(`${scratch}/before.heapsnapshot`);
  collect();
  const generator = new Deno.Command(mqttload, {
    args: [
      "--mode=idle",
      "--host=127.0.0.1",
      `--port=${port}`,
      `--connections=${connections}`,
      "--src-ips=16",
      "--max-pending=96",
      "--keepalive=600",
      "--connect-timeout=60",
      "--barrier",
    ],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stderr = generator.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let seen = "";
  while (!seen.includes("READY")) {
    const { value, done } = await stderr.read();
    if (done) throw new Error(`the generator ended before READY: ${seen}`);
    seen += value;
  }
  await sleep(1000); // the last CONNACKs' writes and the sessions settle
  collect();
  const held = sizes();
  const open = running.connections.connectionCount;
  if (snapshot) writeHeapSnapshot(`${scratch}/held.heapsnapshot`);
  const writer = generator.stdin.getWriter();
  await writer.write(new TextEncoder().encode("go\n"));
  await writer.close();
  const output = await new Response(generator.stdout).text();
  await generator.status;
  stderr.releaseLock();
  await generator.stderr.cancel().catch(() => {});
  const per = (key: keyof Sizes) => ((held[key] - before[key]) / open).toFixed(0);
  console.log(
    `${open} connections open; per connection: heapUsed ${per("heapUsed")} B, external ${
      per("external")
    } B, rss ${per("rss")} B (in-process, indicative)`,
  );
  console.log(`generator: ${output.trim()}`);
  if (snapshot) {
    const [a, b] = await Promise.all([
      aggregate(`${scratch}/before.heapsnapshot`),
      aggregate(`${scratch}/held.heapsnapshot`),
    ]);
    const rows = [...b].map(([key, after]) => {
      const was = a.get(key) ?? { count: 0, bytes: 0 };
      return { key, count: (after.count - was.count) / open, bytes: (after.bytes - was.bytes) / open };
    }).filter((row) => Math.abs(row.bytes) >= 1).sort((x, y) => y.bytes - x.bytes);
    let total = 0;
    for (const row of rows) total += row.bytes;
    console.log(`snapshot self bytes per connection: ${total.toFixed(0)} B`);
    for (const row of rows.slice(0, 40)) {
      console.log(`${row.bytes.toFixed(1).padStart(8)} B ${row.count.toFixed(2).padStart(6)}×  ${row.key}`);
    }
  }
  await running.stop();
} finally {
  if (option("--keep")) {
    for (const name of ["before", "held"]) {
      await Deno.rename(`${scratch}/${name}.heapsnapshot`, `${option("--keep")}/${name}.heapsnapshot`).catch(
        () => {},
      );
    }
  }
  await Deno.remove(scratch, { recursive: true });
}
