/** Helpers for the embedded-store tests: temporary directories, a capturing logger, file sizes. */
import { DatabaseSync } from "node:sqlite";
import { join } from "node:path";
import { sample } from "../../src/storage/conformance_samples.ts";
import {
  createEmbeddedStorage,
  type EmbeddedStorage,
  type EmbeddedStorageOptions,
} from "../../src/storage/mod.ts";
import { LOG_SUFFIXES } from "../../src/storage/embedded/operation_log.ts";
import { indexBatch } from "../../src/storage/embedded/batch_codec.ts";
import type { FlatBatch, WireBatch } from "../../src/storage/embedded/operations.ts";

/** What the store's worker makes of an encoded batch (as StoreEngine.add indexes it). */
export const decoded = ({ operations, payloads }: WireBatch): FlatBatch => indexBatch(operations, payloads);

/** The store file name inside a data directory (see docs/storage.md). */
export const STORE_FILE = "store.db";

/** One logged event. */
export interface LoggedEvent {
  level: "info" | "warn" | "error";
  event: string;
  fields?: Record<string, unknown>;
}

/** A logger that keeps what it is told. */
export function capturingLogger(): EmbeddedStorageOptions["logger"] & { events: LoggedEvent[] } {
  const events: LoggedEvent[] = [];
  return {
    events,
    info: (event, fields) => events.push({ level: "info", event, fields }),
    warn: (event, fields) => events.push({ level: "warn", event, fields }),
    error: (event, fields) => events.push({ level: "error", event, fields }),
  };
}

/** Runs `body` with a fresh temporary directory, removed afterwards. */
export async function withTempDir(body: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "mqtt-storage-extra-" });
  try {
    await body(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** An embedded store in `dir`, durability `sync` unless overridden. */
export function embeddedStore(dir: string, options: Partial<EmbeddedStorageOptions> = {}): EmbeddedStorage {
  return createEmbeddedStorage({ dir, durability: "sync", batchIntervalMs: 10, ...options });
}

/** Size of a file, 0 when it does not exist. */
export function fileSize(path: string): number {
  try {
    return Deno.statSync(path).size;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return 0;
    throw error;
  }
}

/** Bytes the store occupies: the database file plus its WAL. */
export function storeBytes(dir: string): number {
  return fileSize(join(dir, STORE_FILE)) + fileSize(join(dir, `${STORE_FILE}-wal`));
}

/**
 * Copies the store files of a running adapter: what a `kill -9` would leave behind, since the adapter
 * keeps nothing unwritten once `flush()` has resolved (a power loss is not simulated): the database, its WAL
 * and the operation log's two files.
 */
export async function copyStoreFiles(from: string, to: string): Promise<void> {
  for (const suffix of ["", "-wal", ...LOG_SUFFIXES]) {
    await Deno.copyFile(join(from, STORE_FILE + suffix), join(to, STORE_FILE + suffix));
  }
}

/** Lists a directory's entry names, sorted. */
export async function listDir(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(dir)) names.push(entry.name);
  return names.sort();
}

/**
 * A store that flushed two groups (client "a", then client "b", each a session and a queued message of
 * 3000 B) and whose files were then copied, as a kill -9 would leave them. Returns the copy's directory.
 * `inWal`: each group is applied to SQLite before the next (a read applies the operation log's window), so
 * that each is a WAL transaction of its own, and the copy's log is empty, as the log is once the WAL holds
 * its records and was synced: what is left to recover from is SQLite's WAL alone.
 */
export async function crashAfterTwoFlushes(
  dir: string,
  options: Partial<EmbeddedStorageOptions> = {},
  { inWal = false } = {},
): Promise<string> {
  const live = join(dir, "live");
  const crashed = join(dir, "crashed");
  await Deno.mkdir(crashed);
  const storage = embeddedStore(live, options);
  await storage.start();
  try {
    for (const clientId of ["a", "b"]) {
      storage.saveSession(sample.session(clientId));
      const id = storage.appendMessage(sample.message(`for/${clientId}`, { payload: new Uint8Array(3000) }));
      storage.saveQueueEntry(sample.entry(clientId, id));
      await storage.flush();
      if (inWal) await storage.readQueue(clientId, { maxEntries: 1, maxBytes: 1 });
    }
    await copyStoreFiles(live, crashed);
  } finally {
    await storage.stop();
  }
  if (inWal) {
    for (const suffix of LOG_SUFFIXES) await Deno.truncate(join(crashed, STORE_FILE + suffix), 0);
  }
  return crashed;
}

/** Creates the store in `dir`, then has SQLite record every row inserted into messages and queue_entries. */
export async function auditInserts(dir: string): Promise<void> {
  const storage = embeddedStore(dir);
  await storage.start();
  await storage.stop();
  const db = new DatabaseSync(join(dir, STORE_FILE));
  db.exec(`CREATE TABLE audit (what TEXT);
    CREATE TRIGGER audit_messages AFTER INSERT ON messages BEGIN INSERT INTO audit VALUES ('message'); END;
    CREATE TRIGGER audit_entries AFTER INSERT ON queue_entries BEGIN INSERT INTO audit VALUES ('entry'); END;`);
  db.close();
}

/** The rows inserted since {@link auditInserts}, counted by table. */
export function insertedRows(dir: string): { what: string; rows: number }[] {
  const db = new DatabaseSync(join(dir, STORE_FILE));
  const rows = db.prepare("SELECT what, count(*) AS rows FROM audit GROUP BY what ORDER BY what").all();
  db.close();
  return rows.map((row) => ({ what: String(row.what), rows: Number(row.rows) }));
}
