/**
 * Applies encoded batches of operations (see `OperationBatch`) inside the caller's transaction. Each
 * node:sqlite statement call costs about 2.5 µs of binding overhead in Deno, more than SQLite's own work for
 * a small row, so runs of the delivery-path operations go as multi-row statements (about 1 µs a row instead
 * of 3.5 µs; see docs/storage.md). An operation's values are read from the batch's bytes (IndexedBatch)
 * straight into those statements' parameters: no object or array per operation on the worker's side either.
 *
 * Operations cancelled in place (`~kind`, see `cancelInPlace`) are skipped.
 *
 * Order: a batch's appends run first (a fresh id conflicts with nothing, and later operations may refer
 * to it); single operations keep their place; between them, queue-entry saves run before deletes (see
 * `#writeRest`).
 */
import type { DatabaseSync, SQLInputValue, StatementSync } from "node:sqlite";
import {
  APPEND,
  APPEND_VALUES,
  DELETE_ENTRY,
  DELETE_VALUES,
  type FlatBatch,
  OperationRunner,
  type PayloadSource,
  SAVE_ENTRY,
  SAVE_VALUES,
  SINGLE,
  type SingleStatement,
} from "./operations.ts";

/** Rows per statement at most: 256 × 8 parameters stays far below SQLite's limit of 32 766 (256 rather than 64: +15% durable throughput, fewer statement runs per batch). */
const MAX_ROWS = 256;

/** A statement prepared once per row count (powers of two up to {@link MAX_ROWS}). */
class MultiRowStatement {
  readonly #bySize = new Map<number, StatementSync>();

  constructor(private readonly db: DatabaseSync, private readonly sqlFor: (rows: number) => string) {}

  /** Runs the rows given as `columns` values each, back to back in the first `length` of `parameters`. */
  run(parameters: SQLInputValue[], length: number, columns: number): void {
    const rows = length / columns;
    for (let start = 0; start < rows;) {
      const size = Math.min(MAX_ROWS, 2 ** Math.floor(Math.log2(rows - start)));
      this.#statement(size).run(...parameters.slice(start * columns, (start + size) * columns));
      start += size;
    }
  }

  #statement(size: number): StatementSync {
    let statement = this.#bySize.get(size);
    if (!statement) {
      statement = this.db.prepare(this.sqlFor(size));
      this.#bySize.set(size, statement);
    }
    return statement;
  }
}

const placeholders = (rows: number, columns: number): string =>
  Array.from({ length: rows }, () => `(${Array.from({ length: columns }, () => "?").join(", ")})`).join(", ");

/** How many appended messages' sizes are remembered for the saves of their queue entries. */
const RECENT_SIZES = 65_536;

/** Writes batches of {@link Operation}s over one connection. */
export class BatchWriter {
  readonly #appendMessages: MultiRowStatement;
  readonly #saveQueueEntries: MultiRowStatement;
  readonly #deleteQueueEntries: MultiRowStatement;
  readonly #messageSize: StatementSync;
  /**
   * The sizes of the messages appended lately, by id: an entry is saved in the batch that appends its
   * message, and saved again (its stage) soon after; a query per entry cost durable QoS 1 a third.
   */
  readonly #recentSizes = new Map<SQLInputValue, number>();
  /** Parameter lists kept from batch to batch (filled with nulls after use, not to hold payloads). */
  readonly #appendParameters: SQLInputValue[] = [];
  readonly #saveParameters: SQLInputValue[] = [];
  readonly #deleteParameters: SQLInputValue[] = [];
  /** One append's values, read from its batch. */
  readonly #values: SQLInputValue[] = new Array(APPEND_VALUES).fill(null);

  readonly runner: OperationRunner;

  constructor(db: DatabaseSync) {
    this.runner = new OperationRunner(db);
    this.#appendMessages = new MultiRowStatement(
      db,
      (rows) =>
        `INSERT INTO messages (id, topic, payload, qos, retain, properties, publisher_id, expires_at)
      VALUES ${placeholders(rows, 8)}`,
    );
    // ON CONFLICT keeps `seq`: a replaced entry stays where it was first queued.
    this.#saveQueueEntries = new MultiRowStatement(
      db,
      (rows) =>
        `INSERT INTO queue_entries (client_id, message_id, seq, qos, retain, subscription_identifiers, stage, packet_id,
      bytes) VALUES ${placeholders(rows, 9)}
      ON CONFLICT (client_id, message_id) DO UPDATE SET qos = excluded.qos, retain = excluded.retain,
      subscription_identifiers = excluded.subscription_identifiers, stage = excluded.stage,
      packet_id = excluded.packet_id`,
    );
    // A message goes with its last entry, in SQLite (the schema's trigger).
    this.#deleteQueueEntries = new MultiRowStatement(
      db,
      (rows) =>
        `DELETE FROM queue_entries WHERE (client_id, message_id) IN (VALUES ${placeholders(rows, 2)})`,
    );
    this.#messageSize = db.prepare(
      "SELECT length(CAST(payload AS BLOB)) + length(topic) AS bytes FROM messages WHERE id = ?",
    );
  }

  /**
   * Applies the batches in order; the caller wraps the call in a transaction. Unless `growing`, operations
   * that add payload bytes are left out (a full disk; see `grows`). A batch's payloads come from `source`
   * when given (read for that batch only, freed after it), else from the batch.
   */
  write(batches: readonly FlatBatch[], growing: boolean, source?: PayloadSource): void {
    for (const batch of batches) {
      if (growing) this.#writeAppends(batch, source);
      this.#writeRest(batch, growing);
    }
  }

  #writeAppends(batch: FlatBatch, source: PayloadSource | undefined): void {
    const { kinds } = batch;
    const first = kinds.indexOf(APPEND);
    if (first < 0) return;
    const payloads = source ? source(batch) : batch.payloads;
    const parameters = this.#appendParameters;
    const values = this.#values;
    let length = 0;
    const recentSizes = this.#recentSizes;
    for (let k = first; k < kinds.length; k++) {
      if (kinds[k] !== APPEND) continue;
      batch.readFixed(k, values, 0);
      const id = values[0], topic = values[1] as string;
      const offset = values[2] as number, bytes = values[3] as number;
      recentSizes.set(id, bytes + topic.length);
      parameters[length++] = id;
      parameters[length++] = topic;
      parameters[length++] = payloads.subarray(offset, offset + bytes);
      for (let column = 4; column < APPEND_VALUES; column++) parameters[length++] = values[column];
    }
    values.fill(null);
    // Oldest first (insertion order): what is left is the latest RECENT_SIZES appends.
    for (const id of recentSizes.keys()) {
      if (recentSizes.size <= RECENT_SIZES) break;
      recentSizes.delete(id);
    }
    this.#appendMessages.run(parameters, length, APPEND_VALUES - 1);
    parameters.fill(null, 0, length);
    // SQLite has copied them: freed now rather than when a collection finds them.
    if (source) payloads.buffer.transfer(0);
  }

  /**
   * Between two single operations, all saves go before all deletes: on the delivery path saves and
   * deletes of different messages interleave, and grouping them keeps the statements long. A save for a
   * message that already had a delete in the segment ends the segment, so that order is kept (the delete
   * of a message's last entry takes the message with it).
   */
  #writeRest(batch: FlatBatch, growing: boolean): void {
    const { kinds } = batch;
    const saves = this.#saveParameters, deletes = this.#deleteParameters;
    let savesLength = 0, deletesLength = 0;
    const deleted = new Set<SQLInputValue>();
    const endSegment = () => {
      if (savesLength > 0) this.#saveQueueEntries.run(saves, savesLength, SAVE_VALUES + 1);
      if (deletesLength > 0) this.#deleteQueueEntries.run(deletes, deletesLength, DELETE_VALUES);
      saves.fill(null, 0, savesLength);
      deletes.fill(null, 0, deletesLength);
      savesLength = deletesLength = 0;
      deleted.clear();
    };
    for (let k = 0; k < kinds.length; k++) {
      const kind = kinds[k];
      if (kind === SAVE_ENTRY) {
        const messageId = batch.ids[k];
        if (deleted.size > 0 && deleted.has(messageId)) endSegment();
        savesLength += batch.readFixed(k, saves, savesLength);
        // An entry records its message's size, so that a start totals the queues without reading
        // messages (a save of an existing entry keeps the size it has).
        saves[savesLength++] = this.#sizeOf(messageId);
      } else if (kind === DELETE_ENTRY) {
        deletes[deletesLength++] = batch.client(k);
        deletes[deletesLength++] = batch.ids[k];
        deleted.add(batch.ids[k]);
      } else if (kind === SINGLE) {
        const single = batch.single(k);
        if (growing || single[1] !== 1) {
          endSegment();
          this.runner.run(single[0] as SingleStatement, single.slice(3));
        }
      }
    }
    endSegment();
  }

  #sizeOf(messageId: SQLInputValue): number {
    const appended = this.#recentSizes.get(messageId);
    if (appended !== undefined) return appended;
    return Number(this.#messageSize.get(messageId as number)?.bytes ?? 0);
  }
}
