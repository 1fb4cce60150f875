/**
 * Applies a batch of operations inside the caller's transaction. Each node:sqlite statement call costs
 * about 2.5 µs of binding overhead in Deno, more than SQLite's own work for a small row, so runs of the
 * delivery-path operations go as multi-row statements (about 1 µs a row instead of 3.5 µs; see
 * docs/storage.md).
 *
 * Order: appends run first (a fresh id conflicts with nothing, and later operations may refer to it);
 * single operations keep their place; between them, queue-entry saves run before deletes (see `write`).
 */
import type { DatabaseSync, SQLInputValue, StatementSync } from "node:sqlite";
import { type Operation, OperationRunner } from "./operations.ts";

/** The operations that are grouped into multi-row statements, besides appends. */
type RowOperation = Extract<Operation, { kind: "saveQueueEntry" | "deleteQueueEntry" }>;

/** Rows per statement at most: 256 × 8 parameters stays far below SQLite's limit of 32 766 (256 rather than 64: +15% durable throughput, fewer statement runs per batch). */
const MAX_ROWS = 256;

/** A statement prepared once per row count (powers of two up to {@link MAX_ROWS}). */
class MultiRowStatement {
  readonly #bySize = new Map<number, StatementSync>();

  constructor(private readonly db: DatabaseSync, private readonly sqlFor: (rows: number) => string) {}

  /** Runs every row; returns the rows a RETURNING clause produced, if any. */
  run(rows: readonly (readonly SQLInputValue[])[]): Record<string, unknown>[] {
    const returned: Record<string, unknown>[] = [];
    for (let start = 0; start < rows.length;) {
      const size = Math.min(MAX_ROWS, 2 ** Math.floor(Math.log2(rows.length - start)));
      const parameters: SQLInputValue[] = [];
      for (let index = start; index < start + size; index++) parameters.push(...rows[index]);
      returned.push(...this.#statement(size).all(...parameters));
      start += size;
    }
    return returned;
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
  readonly #deleteUnreferencedMessages: MultiRowStatement;
  readonly #messageSize: StatementSync;
  /**
   * The sizes of the messages appended lately, by id: an entry is saved in the batch that appends its
   * message, and saved again (its stage) soon after; a query per entry cost durable QoS 1 a third.
   */
  readonly #recentSizes = new Map<SQLInputValue, number>();

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
    this.#deleteQueueEntries = new MultiRowStatement(
      db,
      (rows) =>
        `DELETE FROM queue_entries WHERE (client_id, message_id) IN (VALUES ${placeholders(rows, 2)})
      RETURNING message_id`,
    );
    this.#deleteUnreferencedMessages = new MultiRowStatement(
      db,
      (rows) =>
        `DELETE FROM messages WHERE id IN (${Array(rows).fill("?").join(", ")})
      AND NOT EXISTS (SELECT 1 FROM queue_entries WHERE message_id = messages.id)`,
    );
    this.#messageSize = db.prepare(
      "SELECT length(CAST(payload AS BLOB)) + length(topic) AS bytes FROM messages WHERE id = ?",
    );
  }

  /** Applies the operations; the caller wraps the call in a transaction. */
  write(operations: readonly Operation[]): void {
    const appends: SQLInputValue[][] = [];
    for (const operation of operations) {
      if (operation.kind !== "appendMessage") continue;
      const [id, topic, payload] = operation.row as [SQLInputValue, string, Uint8Array];
      this.#recentSizes.set(id, payload.byteLength + topic.length);
      appends.push(operation.row);
    }
    // Oldest first (insertion order): what is left is the latest RECENT_SIZES appends.
    for (const id of this.#recentSizes.keys()) {
      if (this.#recentSizes.size <= RECENT_SIZES) break;
      this.#recentSizes.delete(id);
    }
    this.#appendMessages.run(appends);

    // Between two single operations, all saves go before all deletes: on the delivery path saves and
    // deletes of different messages interleave, and grouping them keeps the statements long. A save for a
    // message that already had a delete in the segment ends the segment, so that order is kept (the
    // delete of a message's last entry takes the message with it).
    let saves: RowOperation[] = [];
    let deletes: RowOperation[] = [];
    let deleted = new Set<SQLInputValue>();
    const endSegment = () => {
      this.#writeRun(saves);
      this.#writeRun(deletes);
      saves = [];
      deletes = [];
      deleted = new Set();
    };
    for (const operation of operations) {
      if (operation.kind === "appendMessage") continue;
      if (operation.kind === "single") {
        endSegment();
        this.runner.run(operation);
      } else if (operation.kind === "saveQueueEntry") {
        if (deleted.size > 0 && deleted.has(operation.row[1])) endSegment();
        saves.push(operation);
      } else {
        deletes.push(operation);
        deleted.add(operation.row[1]);
      }
    }
    endSegment();
  }

  #sizeOf(messageId: SQLInputValue): number {
    const appended = this.#recentSizes.get(messageId);
    if (appended !== undefined) return appended;
    return Number(this.#messageSize.get(messageId as number)?.bytes ?? 0);
  }

  #writeRun(run: RowOperation[]): void {
    if (run.length === 0) return;
    const rows = run.map((operation) => operation.row);
    if (run[0].kind === "saveQueueEntry") {
      // An entry records its message's size, so that a start totals the queues without reading messages
      // (a save of an existing entry keeps the size it has).
      this.#saveQueueEntries.run(rows.map((row) => [...row, this.#sizeOf(row[1])]));
      return;
    }
    // A message goes with its last entry; only entries that existed count, as the port says.
    const deleted = this.#deleteQueueEntries.run(rows);
    this.#deleteUnreferencedMessages.run(deleted.map((row) => [row.message_id as number]));
  }
}
