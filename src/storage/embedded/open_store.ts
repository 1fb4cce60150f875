/**
 * Opens the store file and recovers it. A damaged file never stops the broker: it is moved aside to
 * `<dir>/corrupt-<timestamp>/` for inspection, logged as `storage.corrupt`, and an empty store starts.
 */
import { DatabaseSync } from "node:sqlite";
import { join } from "node:path";
import { replayLog } from "./apply_window.ts";
import { BatchWriter } from "./batch_writer.ts";
import { LOG_SUFFIXES } from "./operation_log.ts";
import { recover, type RecoveredStore } from "./recovery.ts";
import { type DiskBudget, prepareDatabase, StoreDamagedError } from "./schema.ts";

/** The structured logger the adapter reports to (the broker's `Logger` fits). */
export interface StorageLogger {
  info(event: string, fields?: Record<string, unknown>): void;
  warn(event: string, fields?: Record<string, unknown>): void;
  error(event: string, fields?: Record<string, unknown>): void;
}

/** The store file inside the data directory. */
const STORE_FILE = "store.db";
const COMPANION_SUFFIXES = ["", "-wal", "-shm", "-journal", ...LOG_SUFFIXES];

/** An open, recovered store. */
export interface OpenedStore extends RecoveredStore {
  db: DatabaseSync;
  path: string;
  /** The sequence of the last operation-log record applied (see apply_window.ts). */
  appliedSeq: number;
}

/** Opens `<dir>/store.db`, replacing it with an empty store if it is damaged. */
export function openStore(
  dir: string,
  budget: DiskBudget,
  logger: StorageLogger,
  now: number,
): OpenedStore {
  const path = join(dir, STORE_FILE);
  try {
    return openAndRecover(path, budget, logger, now);
  } catch (error) {
    if (!isDamage(error)) throw error;
    const movedTo = moveAside(dir, now);
    logger.error("storage.corrupt", { path, movedTo, error: String(error) });
    return openAndRecover(path, budget, logger, now);
  }
}

function openAndRecover(path: string, budget: DiskBudget, logger: StorageLogger, now: number): OpenedStore {
  let db: DatabaseSync | undefined;
  try {
    db = new DatabaseSync(path);
    prepareDatabase(db, budget);
    // The operations acknowledged but not yet applied, before recovery reads anything.
    const appliedSeq = replayLog(db, new BatchWriter(db), path, logger);
    return { db, path, appliedSeq, ...recover(db, now) };
  } catch (error) {
    db?.close();
    throw error;
  }
}

/** Damage, as opposed to a busy lock or a permission problem, which must not move anyone's data. */
function isDamage(error: unknown): boolean {
  if (error instanceof StoreDamagedError) return true;
  return error instanceof Error && /malformed|not a database|corrupt/i.test(error.message);
}

function moveAside(dir: string, now: number): string {
  const stamp = new Date(now).toISOString().replaceAll(/[-:.]/g, "");
  const target = join(dir, `corrupt-${stamp}`);
  Deno.mkdirSync(target, { recursive: true });
  for (const suffix of COMPANION_SUFFIXES) {
    try {
      Deno.renameSync(join(dir, STORE_FILE + suffix), join(target, STORE_FILE + suffix));
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
  }
  return target;
}
