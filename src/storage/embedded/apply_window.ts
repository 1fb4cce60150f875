/**
 * Applying the operation log's records to SQLite (operation_log.ts), in bulk: the records applied together
 * are one transaction, with the log sequence they reach (`store.log_applied` in `meta`), so that a replay
 * after a crash applies exactly the records after it — never one twice (`deleteOldestQueued` is relative:
 * applied twice it would delete a second entry).
 *
 * Across the records held in memory (the window), operations cancel out as inside one batch (see
 * Cancellations): a message appended, queued, sent and acknowledged within it never becomes a row. The
 * newer records of the window, not applied yet, count too: an operation of an applied record that a newer
 * one cancels is dropped from both (SQLite reaches the state after the newer record; a replay after a
 * crash redoes the newer records, whose leftovers then find nothing to act on, as a start's orphan sweep).
 */
import type { DatabaseSync } from "node:sqlite";
import type { MessageRef } from "../port.ts";
import type { BatchWriter } from "./batch_writer.ts";
import { Cancellations } from "./cancellations.ts";
import type { StorageLogger } from "./open_store.ts";
import { type LogRecord, readLog } from "./operation_log.ts";
import {
  APPEND,
  cancelInPlace,
  DELETE_ENTRY,
  type FlatBatch,
  type PayloadSource,
  SAVE_ENTRY,
  SINGLE,
} from "./operations.ts";

/** The `meta` key holding the sequence of the last log record applied. */
const APPLIED_KEY = "store.log_applied";

/**
 * The bookkeeping of {@link cancelAcross}, kept from call to call so that its tables keep their size: a
 * window holds some 150,000 operations, and tables grown from nothing for each apply cost as much again.
 */
const acrossWindow = new Cancellations((operation) => acrossCancelled[operation] = 1);
/** What {@link acrossWindow} marks, by operation across the batches of the current call. */
let acrossCancelled = new Uint8Array(0);
/**
 * The clients of the current call, numbered for Cancellations (a number compares and hashes faster than a
 * client id), and by batch each string's number once looked up (a batch names its strings by index).
 */
const clientNumbers = new Map<string, number>();
const UNNUMBERED = -1;

function clientNumber(clientId: string): number {
  let number = clientNumbers.get(clientId);
  if (number === undefined) {
    number = clientNumbers.size;
    clientNumbers.set(clientId, number);
  }
  return number;
}

/**
 * Marks the operations that cancel out across the batches (see `cancelInPlace`; the writer skips them), those
 * within one batch included: the broker's thread leaves them to this. Operations marked
 * by an earlier call, or by the broker's thread (a log written before it left them), are no longer there.
 *
 * The batches from `keptFrom` on stay in the window after this apply, to be looked at again by the next:
 * there, only operations on messages the applied batches touch count now (they may cancel what is applied).
 * A message first seen in them is left for the next apply, which sees all of its operations so far; looked
 * at twice, those were half of the work of applying a window by halves. Leaving a message out changes nothing
 * for the others (a message's bookkeeping is its own; the clients pinned are still pinned in order), and
 * cancels less, never more.
 */
export function cancelAcross(batches: readonly FlatBatch[], keptFrom = batches.length): void {
  let total = 0;
  for (const batch of batches) total += batch.kinds.length;
  const cancelled = acrossCancelled = new Uint8Array(total);
  const cancellations = acrossWindow;
  cancellations.reset();
  clientNumbers.clear();
  let operation = 0;
  for (let b = 0; b < batches.length; b++) {
    const batch = batches[b];
    const { kinds, ids, refs, strings } = batch;
    const numbers = new Int32Array(strings.length).fill(UNNUMBERED);
    const clientOf = (k: number): number => {
      const ref = refs[k];
      let number = numbers[ref];
      if (number === UNNUMBERED) number = numbers[ref] = clientNumber(strings[ref]);
      return number;
    };
    const kept = b >= keptFrom;
    for (let k = 0; k < kinds.length; k++, operation++) {
      const kind = kinds[k];
      if (kind === APPEND) {
        if (!kept) cancellations.appended(ids[k] as MessageRef, operation);
      } else if (kind === SAVE_ENTRY) {
        const id = ids[k] as MessageRef;
        if (!kept || cancellations.knows(id)) cancellations.saved(clientOf(k), id, operation);
      } else if (kind === DELETE_ENTRY) {
        if (!cancellations.deleted(clientOf(k), ids[k] as MessageRef)) cancelled[operation] = 1;
      } else if (kind === SINGLE) {
        const single = batch.single(k);
        const statement = single[0];
        if (statement === "deleteUnreferencedMessage") {
          if (!cancellations.unreferenced(single[3] as MessageRef)) cancelled[operation] = 1;
        } else if (statement === "deleteOldestQueued" || statement === "deleteSessionCascade") {
          cancellations.pin(clientNumber(single[3] as string));
        }
      }
    }
  }
  operation = 0;
  for (const { kinds } of batches) {
    for (let k = 0; k < kinds.length; k++, operation++) {
      if (cancelled[operation] === 1) cancelInPlace(kinds, k);
    }
  }
}

/**
 * Applies the batches of the log records up to `seq` (after {@link cancelAcross}) as one transaction, their
 * payloads from `source` when given (see BatchWriter.write); rolls back whatever part ran if it throws.
 */
export function applyRecords(
  db: DatabaseSync,
  writer: BatchWriter,
  batches: readonly FlatBatch[],
  seq: number,
  source?: PayloadSource,
): void {
  db.exec("BEGIN");
  try {
    writer.write(batches, true, source);
    db.prepare("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)").run(APPLIED_KEY, seq);
    db.exec("COMMIT");
  } finally {
    // SQLite rolls back by itself on SQLITE_FULL; any other failure leaves the transaction open.
    if (db.isTransaction) db.exec("ROLLBACK");
  }
}

/** The sequence of the last log record applied to `db` (0 for none). */
export function appliedSeq(db: DatabaseSync): number {
  const row = db.prepare("SELECT value FROM meta WHERE key = ?").get(APPLIED_KEY);
  return Number(row?.value ?? 0);
}

/**
 * The log a replay applies in one transaction: what it holds in memory at once, however large the window
 * was that a crash left in the log.
 */
const REPLAY_CHUNK_BYTES = 4 * 1024 * 1024;

/**
 * At start, before recovery reads anything: applies the records of the log files of `storePath` that come
 * after the applied sequence (not yet durable: the caller fsyncs the WAL, then empties the log), in chunks of
 * about {@link REPLAY_CHUNK_BYTES} of log, each one transaction with the sequence it reaches, so that the
 * replay holds a chunk in memory, not the whole log (a crash during the replay resumes after the last chunk
 * committed). A torn or damaged tail is dropped and logged. Returns the last sequence applied.
 */
export function replayLog(
  db: DatabaseSync,
  writer: BatchWriter,
  storePath: string,
  logger: StorageLogger,
): number {
  const applied = appliedSeq(db);
  let seq = applied;
  let skipped = 0;
  let chunk: LogRecord[] = [];
  let bytes = 0;
  const applyChunk = () => {
    const batches = chunk.flatMap((record) => record.batches);
    cancelAcross(batches);
    seq = chunk[chunk.length - 1].seq;
    applyRecords(db, writer, batches, seq);
    // Freed now rather than by a later collection: the replay reads the next chunk straight after.
    for (const record of chunk) record.body.transfer(0);
    chunk = [];
    bytes = 0;
  };
  let gap = false;
  for (const record of readLog(storePath, (tail) => logger.warn("storage.log_tail_dropped", { ...tail }))) {
    const expected = seq + chunk.length + 1;
    // Records follow one another; after a gap (a record lost at a power loss while a later one in the other
    // file was kept: neither was acknowledged) the rest could refer to what is missing.
    if (record.seq <= applied || gap || record.seq !== expected) {
      if (!gap && record.seq > applied) {
        gap = true;
        logger.warn("storage.log_gap", { expected, found: record.seq });
      }
      skipped++;
      continue;
    }
    chunk.push(record);
    bytes += record.bytes;
    if (bytes >= REPLAY_CHUNK_BYTES) applyChunk();
  }
  if (chunk.length > 0) applyChunk();
  if (seq > applied) {
    logger.info("storage.log_replayed", { records: seq - applied, skipped, from: applied + 1, to: seq });
  }
  return seq;
}
