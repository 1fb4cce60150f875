/**
 * Measures durable-storage candidates for the broker's write pattern: each PUBLISH appends one message
 * and one queue entry per subscriber (fan-out 2); each acknowledgement deletes one entry, and the last
 * one deletes the message. Operations are grouped into batches of 1, 64 or 1024 per durable commit.
 * Prints one markdown row per case; the whole run takes well under two minutes.
 *
 *   deno run -A scripts/storage_bench.ts [--only <candidate-prefix>]
 *
 * Deno KV needs `--unstable-kv`; without it the script measures KV in a child process that has the flag.
 */
import { DatabaseSync, type StatementSync } from "node:sqlite";
import { setImmediate } from "node:timers";
import { parseArgs } from "node:util";
import { createEmbeddedStorage } from "../src/storage/mod.ts";
import type { MessageRef, StorageAdapter } from "../src/storage/mod.ts";

const FAN_OUT = 2;
const PAYLOAD_SIZES = [64, 1024];
const BATCH_SIZES = [1, 64, 1024];
/** Publishes per case, by batch size: enough for a stable rate, few enough to keep the run short. */
const PUBLISHES: Record<number, number> = { 1: 300, 64: 64 * 50, 1024: 1024 * 12 };
/** Each case runs this often; the table shows the median (the machine is shared and noisy). */
const REPEATS = 3;
const CLIENTS = Array.from({ length: FAN_OUT }, (_, index) => `client-${index}`);

type Operation =
  | { kind: "publish"; id: number; topic: string; payload: Uint8Array }
  | { kind: "ack"; id: number; client: string; last: boolean };

/** One storage engine under test; `commit` makes a batch durable (or as durable as the engine gets). */
interface Candidate {
  name: string;
  open(dir: string): Promise<void>;
  /**
   * Does its synchronous part before returning; the promise settles when the batch is durable, with the
   * milliseconds of event-loop stall the batch caused later (in a callback of its own), if any.
   */
  commit(batch: Operation[]): Promise<number | void>;
  close(): Promise<void>;
}

interface CaseResult {
  publishesPerSecond: number;
  acksPerSecond: number;
  commits: number;
  averageBlockMicros: number;
  maxBlockMicros: number;
}

const encoder = new TextEncoder();

function print(line: string): void {
  Deno.stdout.writeSync(encoder.encode(line + "\n"));
}

function sqliteCandidate(name: string, synchronous: "FULL" | "NORMAL", syncWal: boolean): Candidate {
  let db: DatabaseSync;
  let wal: Deno.FsFile | undefined;
  let statements: Record<"insertMessage" | "insertEntry" | "deleteEntry" | "deleteMessage", StatementSync>;
  return {
    name,
    open(dir) {
      db = new DatabaseSync(`${dir}/bench.db`);
      db.exec(`PRAGMA journal_mode=WAL; PRAGMA locking_mode=EXCLUSIVE; PRAGMA synchronous=${synchronous};
        CREATE TABLE messages(id INTEGER PRIMARY KEY, topic TEXT NOT NULL, payload BLOB NOT NULL);
        CREATE TABLE queue_entries(client_id TEXT NOT NULL, message_id INTEGER NOT NULL, seq INTEGER NOT NULL,
          PRIMARY KEY (client_id, message_id)) WITHOUT ROWID;
        CREATE INDEX queue_entries_by_message ON queue_entries(message_id);`);
      statements = {
        insertMessage: db.prepare("INSERT INTO messages(id, topic, payload) VALUES (?, ?, ?)"),
        insertEntry: db.prepare("INSERT INTO queue_entries(client_id, message_id, seq) VALUES (?, ?, ?)"),
        deleteEntry: db.prepare("DELETE FROM queue_entries WHERE client_id = ? AND message_id = ?"),
        deleteMessage: db.prepare(
          "DELETE FROM messages WHERE id = ?1 AND NOT EXISTS (SELECT 1 FROM queue_entries WHERE message_id = ?1)",
        ),
      };
      if (syncWal) wal = Deno.openSync(`${dir}/bench.db-wal`, { read: true });
      return Promise.resolve();
    },
    commit(batch) {
      db.exec("BEGIN");
      for (const operation of batch) {
        if (operation.kind === "publish") {
          statements.insertMessage.run(operation.id, operation.topic, operation.payload);
          for (const client of CLIENTS) statements.insertEntry.run(client, operation.id, operation.id);
        } else {
          statements.deleteEntry.run(operation.client, operation.id);
          if (operation.last) statements.deleteMessage.run(operation.id);
        }
      }
      db.exec("COMMIT");
      return wal ? wal.syncData() : Promise.resolve();
    },
    close() {
      wal?.close();
      db.close();
      return Promise.resolve();
    },
  };
}

const CRC_TABLE = Uint32Array.from({ length: 256 }, (_, index) => {
  let crc = index;
  for (let bit = 0; bit < 8; bit++) crc = crc & 1 ? 0xEDB88320 ^ (crc >>> 1) : crc >>> 1;
  return crc >>> 0;
});

function crc32(bytes: Uint8Array): number {
  let crc = 0xFFFFFFFF;
  for (const byte of bytes) crc = CRC_TABLE[(crc ^ byte) & 0xFF] ^ (crc >>> 8);
  return (crc ^ 0xFFFFFFFF) >>> 0;
}

/** A hand-written log: records `[length u32][crc32 u32][body]`, one write and one fdatasync per batch. */
function appendLogCandidate(): Candidate {
  let file: Deno.FsFile;
  const records: Uint8Array[] = [];
  const addRecord = (kind: number, id: number, text: string, payload: Uint8Array): void => {
    const textBytes = encoder.encode(text);
    const body = new Uint8Array(1 + 8 + 2 + textBytes.length + payload.length);
    const view = new DataView(body.buffer);
    view.setUint8(0, kind);
    view.setFloat64(1, id);
    view.setUint16(9, textBytes.length);
    body.set(textBytes, 11);
    body.set(payload, 11 + textBytes.length);
    const header = new DataView(new ArrayBuffer(8));
    header.setUint32(0, body.length);
    header.setUint32(4, crc32(body));
    records.push(new Uint8Array(header.buffer), body);
  };
  const empty = new Uint8Array(0);
  return {
    name: "append-only log + await syncData()",
    async open(dir) {
      file = await Deno.open(`${dir}/bench.log`, { create: true, append: true });
    },
    async commit(batch) {
      for (const operation of batch) {
        if (operation.kind === "publish") {
          addRecord(1, operation.id, operation.topic, operation.payload);
          for (const client of CLIENTS) addRecord(2, operation.id, client, empty);
        } else {
          addRecord(3, operation.id, operation.client, empty);
          if (operation.last) addRecord(4, operation.id, "", empty);
        }
      }
      const total = records.reduce((sum, record) => sum + record.length, 0);
      const buffer = new Uint8Array(total);
      let offset = 0;
      for (const record of records) {
        buffer.set(record, offset);
        offset += record.length;
      }
      records.length = 0;
      // Positional writes are not needed: the file is opened for append, so one write lands at the end.
      for (let written = 0; written < buffer.length;) written += file.writeSync(buffer.subarray(written));
      await file.syncData();
    },
    close() {
      file.close();
      return Promise.resolve();
    },
  };
}

/** Deno KV limits an atomic to 1000 mutations and 800 KB, so larger batches take several commits. */
function kvCandidate(): Candidate {
  let kv: Deno.Kv;
  return {
    name: "Deno KV atomic()",
    async open(dir) {
      kv = await Deno.openKv(`${dir}/bench.kv`);
    },
    async commit(batch) {
      let atomic = kv.atomic();
      let mutations = 0;
      let bytes = 0;
      const pending: Promise<Deno.KvCommitResult | Deno.KvCommitError>[] = [];
      const add = (cost: number, apply: (operation: Deno.AtomicOperation) => void): void => {
        if (mutations + 1 > 1000 || bytes + cost > 800_000) {
          pending.push(atomic.commit());
          atomic = kv.atomic();
          mutations = 0;
          bytes = 0;
        }
        apply(atomic);
        mutations++;
        bytes += cost;
      };
      for (const operation of batch) {
        if (operation.kind === "publish") {
          const value = { topic: operation.topic, payload: operation.payload };
          add(operation.payload.length + 64, (a) => a.set(["m", operation.id], value));
          for (const client of CLIENTS) add(64, (a) => a.set(["q", client, operation.id], operation.id));
        } else {
          add(64, (a) => a.delete(["q", operation.client, operation.id]));
          if (operation.last) add(64, (a) => a.delete(["m", operation.id]));
        }
      }
      pending.push(atomic.commit());
      await Promise.all(pending);
    },
    close() {
      kv.close();
      return Promise.resolve();
    },
  };
}

/** The adapter this project ships, at durability `sync`: measures its own overhead on top of the engine. */
function embeddedAdapterCandidate(): Candidate {
  let storage: StorageAdapter;
  const adapterIds = new Map<number, MessageRef>();
  return {
    name: "embedded adapter (durability sync)",
    async open(dir) {
      storage = createEmbeddedStorage({ dir, durability: "sync", batchIntervalMs: 10 });
      await storage.start();
    },
    commit(batch) {
      for (const operation of batch) {
        if (operation.kind === "publish") {
          const id = storage.appendMessage({
            topic: operation.topic,
            payload: operation.payload,
            qos: 1,
            retain: false,
            properties: {},
            publisherId: "bench",
          });
          adapterIds.set(operation.id, id);
          for (const client of CLIENTS) {
            storage.saveQueueEntry({
              clientId: client,
              messageId: id,
              qos: 1,
              retain: false,
              stage: "queued",
            });
          }
        } else {
          storage.deleteQueueEntry(operation.client, adapterIds.get(operation.id)!);
        }
      }
      // The adapter writes in a setImmediate callback queued by the first mutation; one queued now runs
      // right after it, so the gap is that transaction's stall (the fsync itself runs off the loop).
      const queued = performance.now();
      const transactionDone = new Promise<number>((resolve) =>
        setImmediate(() => resolve(performance.now()))
      );
      return Promise.all([transactionDone, storage.flush()]).then(([done]) => done - queued);
    },
    close: () => storage.stop(),
  };
}

async function runCase(candidate: Candidate, payloadSize: number, batchSize: number): Promise<CaseResult> {
  const dir = await Deno.makeTempDir({ prefix: "storage-bench-" });
  try {
    await candidate.open(dir);
    const total = PUBLISHES[batchSize];
    const payload = new Uint8Array(payloadSize).fill(0x61);
    const publishes: Operation[] = Array.from(
      { length: total },
      (_, id) => ({ kind: "publish", id: id + 1, topic: `sensors/${id % 100}/temperature`, payload }),
    );
    const acks: Operation[] = publishes.flatMap((publish) =>
      CLIENTS.map((client, index) => ({ kind: "ack", id: publish.id, client, last: index === FAN_OUT - 1 }))
    );
    const blocks: number[] = [];
    const runPhase = async (operations: Operation[]): Promise<number> => {
      const started = performance.now();
      for (let start = 0; start < operations.length; start += batchSize) {
        const blockStarted = performance.now();
        const durable = candidate.commit(operations.slice(start, start + batchSize));
        const synchronous = performance.now() - blockStarted;
        blocks.push(synchronous + (await durable ?? 0));
      }
      return (performance.now() - started) / 1000;
    };
    const publishSeconds = await runPhase(publishes);
    const ackSeconds = await runPhase(acks);
    await candidate.close();
    return {
      publishesPerSecond: total / publishSeconds,
      acksPerSecond: acks.length / ackSeconds,
      commits: blocks.length,
      averageBlockMicros: blocks.reduce((sum, block) => sum + block, 0) / blocks.length * 1000,
      maxBlockMicros: Math.max(...blocks) * 1000,
    };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Median of each rate and of the average stall; the worst of the maximum stalls. */
function medianOf(runs: CaseResult[]): CaseResult {
  const median = (pick: (run: CaseResult) => number): number =>
    runs.map(pick).sort((x, y) => x - y)[Math.floor(runs.length / 2)];
  return {
    publishesPerSecond: median((run) => run.publishesPerSecond),
    acksPerSecond: median((run) => run.acksPerSecond),
    commits: runs[0].commits,
    averageBlockMicros: median((run) => run.averageBlockMicros),
    maxBlockMicros: Math.max(...runs.map((run) => run.maxBlockMicros)),
  };
}

function rate(perSecond: number): string {
  if (perSecond >= 1e6) return `${(perSecond / 1e6).toFixed(2)}M`;
  if (perSecond >= 1e3) return `${(perSecond / 1e3).toFixed(1)}k`;
  return perSecond.toFixed(0);
}

async function measure(candidates: Candidate[]): Promise<void> {
  for (const candidate of candidates) {
    for (const payloadSize of PAYLOAD_SIZES) {
      for (const batchSize of BATCH_SIZES) {
        const runs: CaseResult[] = [];
        for (let repeat = 0; repeat < REPEATS; repeat++) {
          runs.push(await runCase(candidate, payloadSize, batchSize));
        }
        const result = medianOf(runs);
        print(
          `| ${candidate.name} | ${payloadSize} B | ${batchSize} | ${rate(result.publishesPerSecond)} | ` +
            `${rate(result.acksPerSecond)} | ${result.commits} | ${result.averageBlockMicros.toFixed(0)} | ` +
            `${result.maxBlockMicros.toFixed(0)} |`,
        );
      }
    }
  }
}

/** Runs the KV cases in a child that has `--unstable-kv`, printing its rows into this table. */
async function measureKvInChild(): Promise<void> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--unstable-kv", new URL(import.meta.url).pathname, "--only", "Deno KV"],
    stdout: "inherit",
    stderr: "inherit",
  });
  const { code } = await child.output();
  if (code !== 0) print(`| Deno KV atomic() | – | – | child exited ${code} | | | | |`);
}

async function main(): Promise<void> {
  const { values } = parseArgs({ args: Deno.args, options: { only: { type: "string" } } });
  const kvAvailable = typeof Deno.openKv === "function";
  const candidates: Candidate[] = [
    sqliteCandidate("node:sqlite WAL synchronous=FULL", "FULL", false),
    sqliteCandidate("node:sqlite WAL synchronous=NORMAL (no fsync per commit)", "NORMAL", false),
    sqliteCandidate("node:sqlite WAL NORMAL + await WAL syncData()", "NORMAL", true),
    appendLogCandidate(),
    embeddedAdapterCandidate(),
    ...(kvAvailable ? [kvCandidate()] : []),
  ].filter((candidate) => values.only === undefined || candidate.name.startsWith(values.only));
  if (values.only === undefined) {
    print(`fan-out ${FAN_OUT}: a publish = 1 message + ${FAN_OUT} queue entries; an ack = 1 entry delete`);
    print("(+ the message on the last ack). block = synchronous time per commit, i.e. event loop stalled.");
    print(`Median of ${REPEATS} runs per row (max block: worst of them).\n`);
    print(
      "| candidate | payload | ops/commit | publishes/s | acks/s | commits | avg block µs | max block µs |",
    );
    print("|---|---|---|---|---|---|---|---|");
  }
  await measure(candidates);
  if (values.only === undefined && !kvAvailable) await measureKvInChild();
}

await main();
