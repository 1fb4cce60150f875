/**
 * `deno task bench --big-queue`: 100,000 offline persistent sessions with 1,000,000 queued QoS 1 messages of
 * 1 KiB (1 GiB of payload) in the embedded store; the broker's memory while they are queued, after a restart
 * (SIGTERM, then kill -9) and while every session reconnects and drains its queue.
 *
 *   deno task bench --big-queue [--quick] [--sessions N] [--per-session M] [--durability batch|sync]
 *                               [--v8-flags FLAGS] [--settle S] [--inspect PORT] [--write-docs]
 *                               [--save-queued DIR | --drain-from DIR]
 *
 * --quick is 10,000 sessions and 100,000 messages. The driver is scripts/bench/mqtt_wire.ts (MQTT 3.1.1,
 * clean session 0), in this process, with bounded concurrency; nothing is pinned. Exits non-zero when a
 * message was lost or duplicated, or a phase failed.
 *
 * To try a change on the drain alone: --save-queued DIR copies the store to DIR once the queue is built and
 * the broker stopped with SIGTERM; --drain-from DIR then starts the broker on a copy of it and runs only the
 * restart and the drain (the session and message counts must be the ones DIR was saved with).
 */
import { BenchBroker, type BenchBroker as Broker } from "./big_queue_broker.ts";
import {
  count,
  mb,
  mosquittoReport,
  ms,
  rate,
  report,
  seconds,
  writeBigQueueSection,
} from "./big_queue_docs.ts";
import {
  concat,
  connect,
  DISCONNECT,
  type Packet,
  parsePublish,
  pubackPacket,
  subscribePacket,
  type WireClient,
  writePublish,
} from "./mqtt_wire.ts";
import { note, print, sleep, withTimeout } from "./util.ts";

const PAYLOAD_BYTES = 1024;
/** Sessions connecting (and subscribing, or draining) at once. */
const SETUP_CONCURRENCY = 200;
const DRAIN_CONCURRENCY = 400;
/** Publisher connections, each with this many unacknowledged QoS 1 PUBLISHes at most. */
const PUBLISHERS = 4;
const PUBLISH_WINDOW = 1000;
/** A session waits at most this long for each of its messages while draining. */
const MESSAGE_WAIT_MS = 30_000;

interface Options {
  sessions: number;
  perSession: number;
  durability: "batch" | "sync";
  v8Flags: string[];
  /** Idle time after a phase, so the broker's heap settles before the "at rest" sample. */
  settleMs: number;
  /** Broker's inspector port (heap snapshots during the idle time after each phase), when given. */
  inspectPort: number | undefined;
  writeDocs: boolean;
  /** The broker measured: mqtt-proxy, or Mosquitto for the comparison (a section of its own). */
  broker: "mqtt-proxy" | "mosquitto";
  /** Where the queued store is copied to, when given. */
  saveQueued: string | undefined;
  /** A store saved by --save-queued: only the restart and the drain run, on a copy of it. */
  drainFrom: string | undefined;
}

function parse(args: string[]): Options {
  const options: Options = {
    sessions: 100_000,
    perSession: 10,
    durability: "batch",
    v8Flags: [],
    settleMs: 5000,
    inspectPort: undefined,
    writeDocs: false,
    broker: "mqtt-proxy",
    saveQueued: undefined,
    drainFrom: undefined,
  };
  for (let i = 0; i < args.length; i++) {
    const value = () => args[++i];
    switch (args[i]) {
      case "--big-queue":
        break;
      case "--quick":
        options.sessions = 10_000;
        break;
      case "--sessions":
        options.sessions = Number(value());
        break;
      case "--per-session":
        options.perSession = Number(value());
        break;
      case "--durability":
        options.durability = value() as "batch" | "sync";
        break;
      case "--broker":
        options.broker = value() as Options["broker"];
        break;
      case "--write-docs":
        options.writeDocs = true;
        break;
      case "--settle":
        options.settleMs = Number(value()) * 1000;
        break;
      case "--inspect":
        options.inspectPort = Number(value());
        break;
      case "--v8-flags":
        options.v8Flags = value().split(",");
        break;
      case "--save-queued":
        options.saveQueued = value();
        break;
      case "--drain-from":
        options.drainFrom = value();
        break;
      default:
        throw new Error(`unknown option ${args[i]} for --big-queue`);
    }
  }
  if (!(options.sessions >= 1 && options.sessions <= 200_000)) {
    throw new Error("--sessions must be 1..200000");
  }
  if (!(options.perSession >= 1 && options.perSession <= 100)) {
    throw new Error("--per-session must be 1..100");
  }
  if (!["batch", "sync"].includes(options.durability)) throw new Error("--durability is batch or sync");
  if (!["mqtt-proxy", "mosquitto"].includes(options.broker)) {
    throw new Error("--broker is mqtt-proxy or mosquitto");
  }
  if (options.saveQueued && options.drainFrom) throw new Error("--save-queued or --drain-from, not both");
  if (options.writeDocs && options.drainFrom) {
    throw new Error("--drain-from runs part of the benchmark: no docs");
  }
  return options;
}

/** Runs `work(i)` for i in [0, count) with at most `concurrency` at once; the first error ends the run. */
async function pool(count: number, concurrency: number, work: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < count) await work(next++);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
}

const clientId = (session: number) => `bq-${session}`;
const topicOf = (session: number) => `bq/${session}`;

/** Waits for the broker to close the socket after DISCONNECT, so the TIME_WAIT lands on its side. */
async function disconnect(client: WireClient, onPacket?: (packet: Packet) => void): Promise<void> {
  await client.write(DISCONNECT).catch(() => {});
  for (;;) {
    const packet = await withTimeout(client.next(), 5000);
    if (!packet) break;
    onPacket?.(packet);
  }
  client.close();
}

/** Each session: CONNECT (clean session 0), SUBSCRIBE QoS 1 to its own topic, DISCONNECT. */
async function createSessions(port: number, sessions: number): Promise<void> {
  await pool(sessions, SETUP_CONCURRENCY, async (session) => {
    const { client } = await connect(port, clientId(session), false);
    await client.write(subscribePacket(1, topicOf(session), 1));
    const suback = await client.next();
    if (!suback || suback.header !== 0x90 || suback.body[2] !== 1) {
      throw new Error(`${clientId(session)}: SUBACK ${suback?.body[2] ?? "none"}`);
    }
    await disconnect(client);
  });
}

/** A payload names its session and round in its first 8 bytes; the rest differs per message too. */
function payloadFor(session: number, round: number, filler: Uint8Array): Uint8Array {
  const payload = filler.slice();
  const view = new DataView(payload.buffer);
  view.setUint32(0, session);
  view.setUint32(4, round);
  view.setUint32(8, session * 131 + round * 7919);
  return payload;
}

/** Publisher `part` sends round after round to its share of the sessions, QoS 1, windowed. */
async function publish(port: number, part: number, options: Options, filler: Uint8Array): Promise<number> {
  const { client } = await connect(port, `bq-publisher-${part}`, true);
  let sent = 0, acked = 0, closed = false;
  let wake: () => void = () => {};
  const reading = (async () => {
    for (;;) {
      const packet = await client.next();
      if (!packet) break;
      if (packet.header === 0x40) acked++;
      wake();
    }
    closed = true;
    wake();
  })();
  const chunk = new Uint8Array(256 * 1024);
  let used = 0;
  const topics = new Map<number, Uint8Array>();
  for (let round = 0; round < options.perSession; round++) {
    for (let session = part; session < options.sessions; session += PUBLISHERS) {
      while (sent - acked >= PUBLISH_WINDOW && !closed) {
        if (used > 0) {
          await client.write(chunk.subarray(0, used));
          used = 0;
        }
        await new Promise<void>((resolve) => (wake = resolve));
      }
      if (closed) {
        throw new Error(`publisher ${part}: the broker closed the connection after ${acked} PUBACKs`);
      }
      let topic = topics.get(session);
      if (!topic) topics.set(session, topic = new TextEncoder().encode(topicOf(session)));
      if (used + PAYLOAD_BYTES + 64 > chunk.length) {
        await client.write(chunk.subarray(0, used));
        used = 0;
      }
      used = writePublish(chunk, used, topic, (sent % 65535) + 1, payloadFor(session, round, filler));
      sent++;
    }
    topics.clear();
  }
  if (used > 0) await client.write(chunk.subarray(0, used));
  while (acked < sent && !closed) await new Promise<void>((resolve) => (wake = resolve));
  await disconnect(client);
  await reading;
  if (acked < sent) throw new Error(`publisher ${part}: ${sent - acked} PUBLISHes not acknowledged`);
  return sent;
}

interface DrainCounts {
  received: number;
  unique: number;
  duplicates: number;
  foreign: number;
  missingSessions: number;
  timedOut: number;
}

/** Every session reconnects (clean session 0), acknowledges what it receives until it has all its messages. */
async function drain(port: number, options: Options): Promise<DrainCounts> {
  const counts: DrainCounts = {
    received: 0,
    unique: 0,
    duplicates: 0,
    foreign: 0,
    missingSessions: 0,
    timedOut: 0,
  };
  await pool(options.sessions, DRAIN_CONCURRENCY, async (session) => {
    const { client, sessionPresent } = await connect(port, clientId(session), false);
    if (!sessionPresent) counts.missingSessions++;
    const seen = new Uint8Array(options.perSession);
    let unique = 0;
    const acks: Uint8Array[] = [];
    const take = (packet: Packet) => {
      if ((packet.header & 0xf0) !== 0x30) return;
      const publish = parsePublish(packet);
      counts.received++;
      if (publish.packetId) acks.push(pubackPacket(publish.packetId));
      const view = new DataView(
        publish.payload.buffer,
        publish.payload.byteOffset,
        publish.payload.byteLength,
      );
      const round = view.getUint32(4);
      if (
        publish.topic !== topicOf(session) || view.getUint32(0) !== session || round >= options.perSession
      ) {
        counts.foreign++;
      } else if (seen[round]) counts.duplicates++;
      else {
        seen[round] = 1;
        unique++;
      }
    };
    while (unique < options.perSession) {
      const packet = await withTimeout(client.next(), MESSAGE_WAIT_MS);
      if (!packet) {
        counts.timedOut++;
        break;
      }
      take(packet);
      for (let more = client.buffered(); more; more = client.buffered()) take(more);
      if (acks.length) await client.write(concat(acks.splice(0)));
    }
    // Anything after the last expected message (a re-send) counts as a duplicate; it is acknowledged too.
    await disconnect(client, (packet) => take(packet));
    counts.unique += unique;
  });
  return counts;
}

/** Creates the sessions, publishes into them and restarts the broker after SIGTERM and after kill -9. */
async function buildQueue(
  broker: Broker,
  options: Options,
  filler: Uint8Array,
  fact: (what: string, figure: string) => void,
): Promise<void> {
  const first = await broker.start();
  fact("start, empty store: ready / CONNACK", `${ms(first.readyMs)} / ${ms(first.connackMs)}`);

  broker.phase("sessions");
  const setup = await timed(() => createSessions(broker.port, options.sessions));
  fact(
    "sessions created (CONNECT, SUBSCRIBE, DISCONNECT)",
    `${count(options.sessions)} in ${seconds(setup.ms)} (${rate(options.sessions, setup.ms)})`,
  );
  await settle(broker, "sessions at rest", options);

  broker.phase("publish");
  const published = await timed(async () => {
    const sent = await Promise.all(
      Array.from({ length: PUBLISHERS }, (_, part) => publish(broker.port, part, options, filler)),
    );
    return sent.reduce((a, b) => a + b, 0);
  });
  fact(
    `published into offline sessions (${PUBLISHERS} publishers, QoS 1, every one acknowledged)`,
    `${count(published.value)} in ${seconds(published.ms)} (${rate(published.value, published.ms)})`,
  );
  await settle(broker, "queued", options);
  fact("store on disk while queued", mb(await broker.storeBytes()));
  fact("broker VmHWM from start to queued", mb(await broker.highWater()));

  for (const signal of ["SIGTERM", "SIGKILL"] as const) {
    const stopMs = await broker.stop(signal);
    if (signal === "SIGTERM" && options.saveQueued) await copyStore(broker.storeDir, options.saveQueued);
    broker.phase(`after ${signal}`);
    const times = await broker.start();
    fact(
      `restart after ${signal === "SIGKILL" ? "kill -9" : "SIGTERM"} (stop took ${
        ms(stopMs)
      }): ready / CONNACK`,
      `${ms(times.readyMs)} / ${ms(times.connackMs)}`,
    );
    await settle(broker, `after ${signal}`, options);
  }
}

/** Copies a store directory (the embedded store's files) to `to`, replacing what was there. */
async function copyStore(from: string, to: string): Promise<void> {
  await Deno.remove(to, { recursive: true }).catch(() => {});
  const copied = await new Deno.Command("cp", { args: ["-a", from, to] }).output();
  if (!copied.success) throw new Error(`cp -a ${from} ${to}: ${new TextDecoder().decode(copied.stderr)}`);
}

async function timed<T>(work: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const started = performance.now();
  const value = await work();
  return { value, ms: performance.now() - started };
}

async function settle(broker: Broker, phase: string, options: Options): Promise<void> {
  broker.phase(phase);
  if (options.inspectPort) {
    note(`settling in "${phase}" for ${options.settleMs / 1000} s (inspector: ${options.inspectPort})`);
  }
  await sleep(options.settleMs);
}

export async function runBigQueueBench(args: string[]): Promise<number> {
  const options = parse(args);
  const total = options.sessions * options.perSession;
  const dir = await Deno.makeTempDir({ prefix: "mqtt-proxy-bench-bigqueue-" });
  const broker = new BenchBroker(
    dir,
    options.durability,
    options.v8Flags,
    options.inspectPort,
    options.broker,
  );
  const filler = crypto.getRandomValues(new Uint8Array(PAYLOAD_BYTES));
  /** The results table: what was measured, and the figure. */
  const facts: [string, string][] = [];
  const fact = (what: string, figure: string) => {
    facts.push([what, figure]);
    note(`${what}: ${figure}`);
  };
  let failed = false;
  try {
    note(
      `big queue: ${options.sessions} sessions × ${options.perSession} QoS 1 messages of ${PAYLOAD_BYTES} B, ` +
        `storage.durability = ${options.durability}`,
    );
    if (options.drainFrom) {
      await copyStore(options.drainFrom, broker.storeDir);
      broker.phase("after SIGTERM");
      const times = await broker.start();
      fact(
        `restart on ${options.drainFrom}: ready / CONNACK`,
        `${ms(times.readyMs)} / ${ms(times.connackMs)}`,
      );
      await settle(broker, "after SIGTERM", options);
    } else {
      await buildQueue(broker, options, filler, fact);
    }

    broker.phase("drain");
    const drained = await timed(() => drain(broker.port, options));
    const counts = drained.value;
    fact(
      "drained (every session reconnects, receives and acknowledges its queue)",
      `${count(counts.unique)} of ${count(total)} in ${seconds(drained.ms)} (${
        rate(counts.unique, drained.ms)
      })`,
    );
    fact(
      "lost / duplicated / foreign; sessions not present / timed out",
      `${total - counts.unique} / ${counts.duplicates} / ${counts.foreign}; ${counts.missingSessions} / ` +
        `${counts.timedOut}`,
    );
    fact(
      `broker VmHWM from the ${options.drainFrom ? "" : "kill -9 "}restart to drained`,
      mb(await broker.highWater()),
    );
    await settle(broker, "drained", options);
    failed = counts.unique !== total || counts.duplicates > 0 || counts.foreign > 0 ||
      counts.missingSessions > 0;
    await broker.stop("SIGTERM");
  } catch (error) {
    failed = true;
    note(`big queue failed: ${error instanceof Error ? error.stack : error}`);
    await broker.stop("SIGKILL").catch(() => {});
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
  const markdown = options.broker === "mosquitto"
    ? mosquittoReport(facts, broker.phases, failed)
    : report({ ...options, payloadBytes: PAYLOAD_BYTES }, facts, broker.phases, failed);
  print(markdown);
  if (options.writeDocs) {
    const section = options.broker === "mosquitto" ? "big-queue-mosquitto" : "big-queue";
    await writeBigQueueSection(new URL("../../docs/benchmarks.md", import.meta.url), markdown, section);
    note("wrote the Big queues section of docs/benchmarks.md");
  }
  return failed ? 1 : 0;
}
