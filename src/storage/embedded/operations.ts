/**
 * Turns each port mutation into a buffered operation: plain data, captured when the broker calls (it may
 * reuse its objects afterwards) and handed to the worker that owns the database, which runs them later
 * inside a batch's transaction (`BatchWriter`, {@link OperationRunner}). The three mutations of the
 * delivery path are rows, so that `BatchWriter` can run runs of them as multi-row statements; the rest
 * name their statement.
 */
import type { DatabaseSync, SQLInputValue, StatementSync } from "node:sqlite";
import type {
  MessageRef,
  QueueEntry,
  StoredMessage,
  StoredSession,
  StoredSubscription,
  StoredWill,
} from "../port.ts";
import { APPEND, BatchEncoder, DELETE_ENTRY, type IndexedBatch, SAVE_ENTRY, SINGLE } from "./batch_codec.ts";
import { encodeProperties, flag, STAGE_CODES } from "./records.ts";

/** The statements a single operation may name: those of {@link SQL} and a sequence of them. */
export type SingleStatement = keyof typeof SQL | "deleteSessionCascade";

const SQL = {
  saveSession: `INSERT OR REPLACE INTO sessions (client_id, expiry_interval, disconnected_at, epoch, owner,
    connection) VALUES (?, ?, ?, ?, ?, ?)`,
  deleteSessionEntries: "DELETE FROM queue_entries WHERE client_id = ?",
  deleteSessionSubscriptions: "DELETE FROM subscriptions WHERE client_id = ?",
  deleteSessionAwaiting: "DELETE FROM awaiting_release WHERE client_id = ?",
  deleteSession: "DELETE FROM sessions WHERE client_id = ?",
  saveSubscription:
    `INSERT OR REPLACE INTO subscriptions (client_id, topic_filter, qos, no_local, retain_as_published,
    retain_handling, subscription_identifier) VALUES (?, ?, ?, ?, ?, ?, ?)`,
  deleteSubscription: "DELETE FROM subscriptions WHERE client_id = ? AND topic_filter = ?",
  addAwaitingRelease: "INSERT OR IGNORE INTO awaiting_release (client_id, packet_id) VALUES (?, ?)",
  deleteAwaitingRelease: "DELETE FROM awaiting_release WHERE client_id = ? AND packet_id = ?",
  saveRetained:
    `INSERT OR REPLACE INTO retained (topic, payload, qos, retain, properties, publisher_id, expires_at)
    VALUES (?, ?, ?, ?, ?, ?, ?)`,
  deleteRetained: "DELETE FROM retained WHERE topic = ?",
  saveWill: `INSERT OR REPLACE INTO wills (client_id, topic, payload, qos, retain, properties, publish_at,
    owner) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
  deleteWill: "DELETE FROM wills WHERE client_id = ?",
  deleteOldestQueued: `DELETE FROM queue_entries WHERE client_id = ?1 AND seq =
    (SELECT min(seq) FROM queue_entries WHERE client_id = ?1 AND stage = 0)`,
  deleteUnreferencedMessage:
    "DELETE FROM messages WHERE id = ? AND NOT EXISTS (SELECT 1 FROM queue_entries WHERE message_id = ?1)",
  saveMeta: "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
} as const;

export {
  APPEND,
  APPEND_VALUES,
  DELETE_ENTRY,
  DELETE_VALUES,
  SAVE_ENTRY,
  SAVE_VALUES,
  SINGLE,
} from "./batch_codec.ts";

/** A batch as the worker holds and writes it (see IndexedBatch). */
export type FlatBatch = IndexedBatch;

/**
 * Where the writer gets a batch's payloads when they are not in memory (a batch in the operation log's
 * window: read back from the log). Asked only for a batch with an append left to write, once per write.
 */
export type PayloadSource = (batch: FlatBatch) => Uint8Array<ArrayBuffer>;

/**
 * A batch as it crosses to the worker and as the operation log keeps it: its operations encoded (see
 * batch_codec.ts) and its payloads, each a buffer of its own to move.
 */
export interface WireBatch {
  operations: Uint8Array<ArrayBuffer>;
  payloads: Uint8Array<ArrayBuffer>;
}

/**
 * The least first size of a batch's payload buffer. The first size is a quarter more than the last batch's
 * payloads took (batches of a steady load are alike), and it doubles as payloads need: from 16 KiB every
 * time, a durable batch of some 2,000 messages grew it three or four times, each a zeroed buffer and a copy.
 * Capped, so that one batch of large messages does not make every next one start large.
 */
const FIRST_PAYLOAD_BYTES = 16 * 1024;
const MAX_FIRST_PAYLOAD_BYTES = 4 * 1024 * 1024;

/**
 * The operations collected until the worker takes them, encoded as they come (see BatchEncoder), and
 * messages' payloads in one buffer that moves to the worker without a copy rather than one buffer each (an
 * ArrayBuffer per message cost more than the rest of the append, mostly in GC). Every operation is kept: the
 * operations that cancel out do so in the worker, across the batches of the store's window (apply_window.ts).
 */
export class OperationBatch {
  /** Kept from batch to batch, with its buffers (see {@link reset}). */
  readonly #encoder = new BatchEncoder();
  /** Made at the first append: most batches of a quiet broker carry none. */
  #payloads: Uint8Array<ArrayBuffer> | undefined;
  /** {@link #payloads}' bytes, for a payload copied in from its source (StoredMessage.payloadSource). */
  #payloadWords: DataView | undefined;
  #payloadBytes = 0;
  /** What the last batch's payloads took: the next batch's buffer starts a quarter larger. */
  #lastPayloadBytes = 0;

  /** Whether no operation was added since the last {@link reset}. */
  get empty(): boolean {
    return this.#encoder.operationCount === 0;
  }

  /**
   * The operations encoded for the worker, and the payloads in a buffer of their own. Once per batch, then
   * {@link reset}.
   */
  encode(): WireBatch {
    const payloads = this.#payloads?.subarray(0, this.#payloadBytes) ?? new Uint8Array(0);
    return { operations: this.#encoder.finish(), payloads };
  }

  /** Empties the batch for the next one (after {@link encode}; the payload buffer went with it). */
  reset(): void {
    this.#encoder.reset();
    this.#lastPayloadBytes = this.#payloadBytes;
    this.#payloadBytes = 0;
    this.#payloads = this.#payloadWords = undefined;
  }

  /** A single operation: its statement, whether it adds payload bytes, its argument count (then the arguments). */
  #single(statement: SingleStatement, grows: boolean, argumentCount: number): BatchEncoder {
    const encoder = this.#encoder;
    encoder.begin(SINGLE);
    encoder.string(statement);
    encoder.number(grows ? 1 : 0);
    encoder.number(argumentCount);
    return encoder;
  }

  saveSession({ clientId, expiryInterval, disconnectedAt, epoch, owner, connection }: StoredSession): void {
    const encoder = this.#single("saveSession", false, 6);
    encoder.string(clientId);
    encoder.number(expiryInterval);
    encoder.optionalNumber(disconnectedAt);
    encoder.number(epoch);
    encoder.optionalString(owner);
    encoder.optionalString(connection);
  }

  deleteSession(clientId: string): void {
    this.#single("deleteSessionCascade", false, 1).string(clientId);
  }

  saveSubscription(subscription: StoredSubscription): void {
    const { clientId, topicFilter, qos, noLocal, retainAsPublished, retainHandling, subscriptionIdentifier } =
      subscription;
    const encoder = this.#single("saveSubscription", false, 7);
    encoder.string(clientId);
    encoder.string(topicFilter);
    encoder.number(qos);
    encoder.number(flag(noLocal));
    encoder.number(flag(retainAsPublished));
    encoder.number(retainHandling);
    encoder.optionalNumber(subscriptionIdentifier);
  }

  deleteSubscription(clientId: string, topicFilter: string): void {
    const encoder = this.#single("deleteSubscription", false, 2);
    encoder.string(clientId);
    encoder.string(topicFilter);
  }

  appendMessage(id: MessageRef, message: StoredMessage): void {
    const source = message.payloadSource;
    const size = source ? source.payloadSize : message.payload.byteLength;
    const offset = this.#payloadBytes;
    let payloads = this.#payloads;
    if (!payloads || offset + size > payloads.byteLength) {
      const room = payloads ? 2 * payloads.byteLength : Math.min(
        MAX_FIRST_PAYLOAD_BYTES,
        Math.max(FIRST_PAYLOAD_BYTES, this.#lastPayloadBytes + (this.#lastPayloadBytes >> 2)),
      );
      const grown = new Uint8Array(Math.max(room, offset + size));
      if (payloads) grown.set(payloads.subarray(0, offset));
      this.#payloads = payloads = grown;
      this.#payloadWords = new DataView(grown.buffer);
    }
    if (source) source.copyPayloadTo(this.#payloadWords!, offset);
    else payloads.set(message.payload, offset);
    this.#payloadBytes = offset + size;
    this.#encoder.append(
      id,
      message.topic,
      offset,
      size,
      message.qos,
      flag(message.retain),
      encodeProperties(message.properties),
      message.publisherId,
      message.expiresAt,
    );
  }

  saveQueueEntry(entry: QueueEntry, sequence: number): void {
    const { clientId, messageId, qos, retain, subscriptionIdentifiers, stage, packetId } = entry;
    this.#encoder.saveEntry(
      clientId,
      messageId,
      sequence,
      qos,
      flag(retain),
      subscriptionIdentifiers ? JSON.stringify(subscriptionIdentifiers) : undefined,
      STAGE_CODES[stage],
      packetId,
    );
  }

  deleteQueueEntry(clientId: string, messageId: MessageRef): void {
    this.#encoder.deleteEntry(clientId, messageId);
  }

  deleteUnreferencedMessage(messageId: MessageRef): void {
    this.#single("deleteUnreferencedMessage", false, 1).number(messageId);
  }

  deleteOldestQueued(clientId: string): void {
    this.#single("deleteOldestQueued", false, 1).string(clientId);
  }

  saveMeta(key: string, value: string): void {
    const encoder = this.#single("saveMeta", false, 2);
    encoder.string(key);
    encoder.string(value);
  }

  addAwaitingRelease(clientId: string, packetId: number): void {
    const encoder = this.#single("addAwaitingRelease", false, 2);
    encoder.string(clientId);
    encoder.number(packetId);
  }

  deleteAwaitingRelease(clientId: string, packetId: number): void {
    const encoder = this.#single("deleteAwaitingRelease", false, 2);
    encoder.string(clientId);
    encoder.number(packetId);
  }

  saveRetained(message: StoredMessage): void {
    const encoder = this.#single("saveRetained", true, 7);
    encoder.string(message.topic);
    encoder.bytes(message.payload);
    encoder.number(message.qos);
    encoder.number(flag(message.retain));
    encoder.optionalString(encodeProperties(message.properties));
    encoder.string(message.publisherId);
    encoder.optionalNumber(message.expiresAt);
  }

  deleteRetained(topic: string): void {
    this.#single("deleteRetained", false, 1).string(topic);
  }

  saveWill({ clientId, will, publishAt, owner }: StoredWill): void {
    const { topic, payload, qos, retain } = will;
    const encoder = this.#single("saveWill", true, 8);
    encoder.string(clientId);
    encoder.string(topic);
    encoder.bytes(payload);
    encoder.number(qos);
    encoder.number(flag(retain));
    encoder.optionalString(encodeProperties(will.properties));
    encoder.optionalNumber(publishAt);
    encoder.optionalString(owner);
  }

  deleteWill(clientId: string): void {
    this.#single("deleteWill", false, 1).string(clientId);
  }
}

/**
 * Marks an operation of a batch in the worker as cancelled out (across the batches of the store's window):
 * its kind becomes `~kind`, and its values stay where they are.
 */
export function cancelInPlace(kinds: Int8Array, index: number): void {
  if (kinds[index] >= 0) kinds[index] = ~kinds[index];
}

/** How many of the operations are not cancelled out. */
export function liveCount(kinds: Int8Array): number {
  let live = 0;
  for (let k = 0; k < kinds.length; k++) if (kinds[k] >= 0) live++;
  return live;
}

/**
 * Whether the batch adds payload bytes: the part of a batch that is left out when the store is full, so
 * that deletes and updates still land.
 */
export function grows(batch: FlatBatch): boolean {
  const { kinds } = batch;
  for (let k = 0; k < kinds.length; k++) {
    const kind = kinds[k];
    if (kind === APPEND || (kind === SINGLE && batch.single(k)[1] === 1)) return true;
  }
  return false;
}

/**
 * The single operations that change which entries a client's queue holds, their client the first argument.
 * (deleteUnreferencedMessage changes no queue: it takes a message no entry refers to.)
 */
const QUEUE_SINGLES: ReadonlySet<SingleStatement> = new Set<SingleStatement>([
  "deleteSessionCascade",
  "deleteSessionEntries",
  "deleteOldestQueued",
]);

/**
 * Counts in `counts` (by `delta`: 1 as the batch enters the operation log's window, -1 as it leaves) the
 * clients whose queues the batch changes: those of its saves and deletes of entries, and of its single
 * operations on a queue; a client at 0 is deleted. A read of any other client's queue finds in SQLite what
 * the batch would leave there.
 */
export function countQueueClients(batch: FlatBatch, counts: Map<string, number>, delta: 1 | -1): void {
  const { kinds, refs, strings } = batch;
  // A batch names few clients, each in many operations: one Map update per client, not per operation.
  const seen = new Uint8Array(strings.length);
  for (let k = 0; k < kinds.length; k++) {
    const kind = kinds[k] < 0 ? ~kinds[k] : kinds[k];
    if (kind === SAVE_ENTRY || kind === DELETE_ENTRY) {
      const ref = refs[k];
      if (seen[ref] === 0) {
        seen[ref] = 1;
        count(counts, strings[ref], delta);
      }
    } else if (kind === SINGLE) {
      const single = batch.single(k);
      if (QUEUE_SINGLES.has(single[0] as SingleStatement)) count(counts, single[3] as string, delta);
    }
  }
}

function count(counts: Map<string, number>, clientId: string, delta: 1 | -1): void {
  const next = (counts.get(clientId) ?? 0) + delta;
  if (next === 0) counts.delete(clientId);
  else counts.set(clientId, next);
}

/** Runs single operations over one connection's prepared statements (in the store's worker). */
export class OperationRunner {
  readonly #statements: Record<keyof typeof SQL, StatementSync>;

  constructor(db: DatabaseSync) {
    this.#statements = Object.fromEntries(
      Object.entries(SQL).map(([name, sql]) => [name, db.prepare(sql)]),
    ) as Record<keyof typeof SQL, StatementSync>;
  }

  run(statement: SingleStatement, args: SQLInputValue[]): void {
    const s = this.#statements;
    if (statement === "deleteSessionCascade") {
      // The session's messages go with their last entries (the schema's trigger).
      const cascade = [
        s.deleteSessionEntries,
        s.deleteSessionSubscriptions,
        s.deleteSessionAwaiting,
        s.deleteSession,
      ];
      for (const step of cascade) step.run(...args);
    } else {
      s[statement].run(...args);
    }
  }
}
