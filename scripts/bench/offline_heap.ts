/**
 * What one offline persistent session holds in mqtt-proxy's JS heap (issue 11): starts the broker in this
 * process (embedded store in a temporary directory, log level warn), then N clients each CONNECT with a
 * persistent session (MQTT 3.1.1, clean session 0), SUBSCRIBE at QoS 1 to a topic of their own and
 * DISCONNECT, as the big-queue benchmark's sessions do. The heap after a full GC is compared with the empty
 * broker's: with the sessions just created; after one more client published one QoS 1 message of 1 KiB to
 * each session's topic (queued: as the big-queue benchmark's sessions hold their queues); and after a
 * restart on the same store, with the sessions (and their one queued message each) rebuilt from it. The
 * store's worker has a heap of its own, not counted here.
 * With --snapshot it also writes V8 heap snapshots and prints, per object kind (V8's node type and
 * constructor name), the count and self bytes per session, in each phase.
 *
 * Usage: deno run -A --v8-flags=--expose-gc scripts/bench/offline_heap.ts [--sessions 10000] [--snapshot]
 *        [--keep DIR] (keeps the snapshots there)
 */
import { writeHeapSnapshot } from "node:v8";
import { startBroker } from "../../main.ts";
import { parseConfig } from "../../src/config/mod.ts";
import { createLogger } from "../../src/observe/mod.ts";
import { aggregate } from "./heap_snapshot.ts";
import { connect, DISCONNECT, subscribePacket, writePublish } from "./mqtt_wire.ts";
import { freePort, sleep } from "./util.ts";

function option(name: string): string | undefined {
  const index = Deno.args.indexOf(name);
  return index >= 0 ? Deno.args[index + 1] : undefined;
}

const sessions = Number(option("--sessions") ?? 10_000);
const snapshot = Deno.args.includes("--snapshot");
const CONCURRENCY = 100;
/** PUBLISHes in flight at once from the publisher. */
const PUBLISH_WINDOW = 1000;
const PAYLOAD_BYTES = 1024;
const PHASES = ["created", "queued", "restored"] as const;
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error("run with --v8-flags=--expose-gc");
if (!Number.isInteger(sessions) || sessions < 1) throw new Error("--sessions must be a positive integer");

async function heapAfterCollection(): Promise<number> {
  // Promises and timers of the last clients settle first; a few collections free what the first frees.
  await sleep(500);
  for (let i = 0; i < 4; i++) gc!();
  return Deno.memoryUsage().heapUsed;
}

async function createSession(port: number, index: number): Promise<void> {
  const clientId = `offline-${index}`;
  const { client } = await connect(port, clientId, false);
  await client.write(subscribePacket(1, `q/${clientId}`, 1));
  const suback = await client.next();
  if (!suback || suback.header !== 0x90) throw new Error(`${clientId}: no SUBACK`);
  await client.write(DISCONNECT);
  await client.next(); // the broker closes the connection
  client.close();
}

/** One QoS 1 message to each session's topic, from one client; returns once every one is acknowledged. */
async function publishToEach(port: number): Promise<void> {
  const { client } = await connect(port, "offline-heap-publisher", true);
  const encoder = new TextEncoder();
  const payload = new Uint8Array(PAYLOAD_BYTES);
  let acked = 0;
  for (let start = 0; start < sessions; start += PUBLISH_WINDOW) {
    const end = Math.min(sessions, start + PUBLISH_WINDOW);
    const out = new Uint8Array((end - start) * (PAYLOAD_BYTES + 64));
    let used = 0;
    for (let index = start; index < end; index++) {
      used = writePublish(out, used, encoder.encode(`q/offline-${index}`), (index % 65535) + 1, payload);
    }
    await client.write(out.subarray(0, used));
    while (acked < end) {
      const packet = await client.next();
      if (!packet) throw new Error(`the broker closed the publisher after ${acked} PUBACKs`);
      if (packet.header === 0x40) acked++;
    }
  }
  await client.write(DISCONNECT);
  await client.next();
  client.close();
}

const scratch = await Deno.makeTempDir({ prefix: "offline-heap-" });
try {
  const port = freePort();
  const config = parseConfig(
    [
      "listener.default.host = 127.0.0.1",
      `listener.default.port = ${port}`,
      "storage.type = embedded",
      `storage.dir = ${scratch}/store`,
      "storage.durability = batch",
      // As the big-queue benchmark: every client comes from 127.0.0.1, unauthenticated.
      "mqtt.max_persistent_sessions_per_address = 0",
      "mqtt.max_persistent_sessions_per_user = 0",
      "log.level = warn",
    ].join("\n"),
    "offline_heap",
  );
  const logger = createLogger({ level: "warn" });
  let running = await startBroker(config, logger);
  const empty = await heapAfterCollection();
  if (snapshot) writeHeapSnapshot(`${scratch}/empty.heapsnapshot`);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(CONCURRENCY, sessions) }, async () => {
      while (next < sessions) await createSession(port, next++);
    }),
  );
  const created = await heapAfterCollection();
  if (snapshot) writeHeapSnapshot(`${scratch}/created.heapsnapshot`);
  if (running.broker.sessionCount !== sessions) {
    throw new Error(`${running.broker.sessionCount} sessions held, not ${sessions}`);
  }
  await publishToEach(port);
  const queued = await heapAfterCollection();
  if (snapshot) writeHeapSnapshot(`${scratch}/queued.heapsnapshot`);
  await running.stop();
  running = await startBroker(config, logger);
  const restored = await heapAfterCollection();
  if (snapshot) writeHeapSnapshot(`${scratch}/restored.heapsnapshot`);
  if (running.broker.sessionCount !== sessions) {
    throw new Error(`${running.broker.sessionCount} sessions restored, not ${sessions}`);
  }
  await running.stop();
  const per = (heap: number) => ((heap - empty) / sessions).toFixed(0);
  console.log(
    `${sessions} offline sessions, one subscription each; JS heap per session after a full GC: ` +
      `created ${per(created)} B, one message queued ${per(queued)} B, restored ${per(restored)} B ` +
      `(empty broker: ${(empty / 1e6).toFixed(1)} MB)`,
  );
  if (snapshot) {
    const empty = await aggregate(`${scratch}/empty.heapsnapshot`);
    for (const phase of PHASES) {
      const held = await aggregate(`${scratch}/${phase}.heapsnapshot`);
      const rows = [...held].map(([key, after]) => {
        const was = empty.get(key) ?? { count: 0, bytes: 0 };
        return {
          key,
          count: (after.count - was.count) / sessions,
          bytes: (after.bytes - was.bytes) / sessions,
        };
      }).filter((row) => Math.abs(row.bytes) >= 1).sort((x, y) => y.bytes - x.bytes);
      let total = 0;
      for (const row of rows) total += row.bytes;
      console.log(`snapshot self bytes per ${phase} session: ${total.toFixed(0)} B`);
      for (const row of rows.slice(0, 25)) {
        console.log(`${row.bytes.toFixed(1).padStart(8)} B ${row.count.toFixed(2).padStart(6)}×  ${row.key}`);
      }
    }
  }
} finally {
  if (option("--keep")) {
    for (const name of PHASES) {
      await Deno.rename(`${scratch}/${name}.heapsnapshot`, `${option("--keep")}/${name}.heapsnapshot`).catch(
        () => {},
      );
    }
  }
  await Deno.remove(scratch, { recursive: true });
}
