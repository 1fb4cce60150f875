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
import { BatchEncoder, type Operations } from "./batch_codec.ts";
import { Cancellations } from "./cancellations.ts";
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

/**
 * Operation kinds as small integers, for the flat encoding; CANCELLED marks one that cancelled out. The
 * three mutations of the delivery path take a fixed number of values: an append the `messages` row's
 * (id, topic, the payload's offset and length in `payloads`, qos, retain, properties, publisher id,
 * expiry), a save the `queue_entries` row's (client, message, seq, qos, retain, subscription ids, stage,
 * packet id), a delete the entry's client and message. A single operation takes its statement's name,
 * 1 if it adds payload bytes (else 0), its argument count, then its arguments.
 */
export const APPEND = 0, SAVE_ENTRY = 1, DELETE_ENTRY = 2, SINGLE = 3;
export const APPEND_VALUES = 9, SAVE_VALUES = 8, DELETE_VALUES = 2;
const CANCELLED = -1;

/** A batch as the worker writes it; `payloads` holds the appended messages' payloads back to back. */
export interface FlatBatch extends Operations {
  payloads: Uint8Array<ArrayBuffer>;
}

/**
 * A batch as it crosses to the worker and as the operation log keeps it: its operations encoded (see
 * batch_codec.ts) and its payloads, each a buffer of its own to move.
 */
export interface WireBatch {
  operations: Uint8Array<ArrayBuffer>;
  payloads: Uint8Array<ArrayBuffer>;
}

/** The first size of a batch's payload buffer; it doubles as payloads need. */
const FIRST_PAYLOAD_BYTES = 16 * 1024;

/**
 * The operations collected until the worker takes them, flat: a kind per operation and all their values in
 * one list, so that handing a batch to the worker clones two arrays of plain values rather than an object and
 * an array per operation, and messages' payloads in one buffer that moves to the worker without a copy rather
 * than one buffer each (an ArrayBuffer per message cost more than the rest of the append, mostly in GC).
 * `BatchWriter` reads it as it is on the worker's side.
 * Operations on the same queue entry may cancel out (see {@link Cancellations}).
 */
export class OperationBatch {
  /**
   * Kept from batch to batch (see {@link reset}) and filled by index, only ever growing: lists rebuilt by
   * push for every batch lived until it left, long enough to be promoted, and cost more in copies as they
   * grew than the values they held.
   */
  readonly #kinds: number[] = [];
  readonly #values: SQLInputValue[] = [];
  /** Where each operation's values start in `#values`. */
  readonly #starts: number[] = [];
  #kindCount = 0;
  #valueCount = 0;
  readonly #cancellations = new Cancellations((operation) => {
    this.#kinds[operation] = CANCELLED;
    this.#dropped++;
  });
  /** Operations marked CANCELLED in `#kinds`. */
  #dropped = 0;
  /** Deletes that cancelled out before they were added. */
  #skipped = 0;
  readonly #encoder = new BatchEncoder();
  /** Made at the first append: most batches of a quiet broker carry none. */
  #payloads: Uint8Array<ArrayBuffer> | undefined;
  #payloadBytes = 0;

  /** Operations that will be written. */
  get size(): number {
    return this.#kindCount - this.#dropped;
  }

  /** Operations that cancelled out. */
  get cancelled(): number {
    return this.#dropped + this.#skipped;
  }

  /**
   * The operations that did not cancel out, encoded for the worker, and the payloads in a buffer of their
   * own. Once per batch, then {@link reset}: the kept operations are moved down in place to be encoded.
   */
  encode(): WireBatch {
    const kinds = this.#kinds, values = this.#values, kindCount = this.#kindCount;
    const payloads = this.#payloads?.subarray(0, this.#payloadBytes) ?? new Uint8Array(0);
    if (this.#dropped === 0) {
      return { operations: this.#encoder.encode(kinds, kindCount, values, this.#valueCount), payloads };
    }
    const starts = this.#starts;
    let keptKinds = 0, keptValues = 0;
    for (let i = 0; i < kindCount; i++) {
      if (kinds[i] === CANCELLED) continue;
      kinds[keptKinds++] = kinds[i];
      const end = i + 1 < kindCount ? starts[i + 1] : this.#valueCount;
      for (let at = starts[i]; at < end; at++) values[keptValues++] = values[at];
    }
    return { operations: this.#encoder.encode(kinds, keptKinds, values, keptValues), payloads };
  }

  /** Empties the batch for the next one (after {@link encode}; the payload buffer went with it). */
  reset(): void {
    // Not to hold the last batch's strings until they are overwritten.
    this.#values.fill(null, 0, this.#valueCount);
    this.#kindCount =
      this.#valueCount =
      this.#dropped =
      this.#skipped =
      this.#payloadBytes =
        0;
    this.#payloads = undefined;
    this.#cancellations.reset();
  }

  /** Starts an operation of `kind`; returns its index. */
  #begin(kind: number): number {
    const index = this.#kindCount++;
    this.#starts[index] = this.#valueCount;
    this.#kinds[index] = kind;
    return index;
  }

  #single(statement: SingleStatement, grows: boolean, ...args: SQLInputValue[]): void {
    this.#begin(SINGLE);
    const values = this.#values;
    let at = this.#valueCount;
    values[at++] = statement;
    values[at++] = grows ? 1 : 0;
    values[at++] = args.length;
    for (const arg of args) values[at++] = arg;
    this.#valueCount = at;
  }

  saveSession({ clientId, expiryInterval, disconnectedAt, epoch, owner, connection }: StoredSession): void {
    this.#single(
      "saveSession",
      false,
      clientId,
      expiryInterval,
      disconnectedAt ?? null,
      epoch,
      owner ?? null,
      connection ?? null,
    );
  }

  deleteSession(clientId: string): void {
    this.#cancellations.pin(clientId);
    this.#single("deleteSessionCascade", false, clientId);
  }

  saveSubscription(subscription: StoredSubscription): void {
    const { clientId, topicFilter, qos, noLocal, retainAsPublished, retainHandling, subscriptionIdentifier } =
      subscription;
    this.#single(
      "saveSubscription",
      false,
      clientId,
      topicFilter,
      qos,
      flag(noLocal),
      flag(retainAsPublished),
      retainHandling,
      subscriptionIdentifier ?? null,
    );
  }

  deleteSubscription(clientId: string, topicFilter: string): void {
    this.#single("deleteSubscription", false, clientId, topicFilter);
  }

  appendMessage(id: MessageRef, message: StoredMessage): void {
    this.#cancellations.appended(id, this.#begin(APPEND));
    const { payload } = message;
    const offset = this.#payloadBytes;
    let payloads = this.#payloads;
    if (!payloads || offset + payload.byteLength > payloads.byteLength) {
      const grown = new Uint8Array(
        Math.max(2 * (payloads?.byteLength ?? FIRST_PAYLOAD_BYTES / 2), offset + payload.byteLength),
      );
      if (payloads) grown.set(payloads.subarray(0, offset));
      this.#payloads = payloads = grown;
    }
    payloads.set(payload, offset);
    this.#payloadBytes = offset + payload.byteLength;
    const values = this.#values;
    let at = this.#valueCount;
    values[at++] = id;
    values[at++] = message.topic;
    values[at++] = offset;
    values[at++] = payload.byteLength;
    values[at++] = message.qos;
    values[at++] = flag(message.retain);
    values[at++] = encodeProperties(message.properties);
    values[at++] = message.publisherId;
    values[at++] = message.expiresAt ?? null;
    this.#valueCount = at;
  }

  saveQueueEntry(entry: QueueEntry, sequence: number): void {
    const { clientId, messageId, qos, retain, subscriptionIdentifiers, stage, packetId } = entry;
    this.#cancellations.saved(clientId, messageId, this.#begin(SAVE_ENTRY));
    const values = this.#values;
    let at = this.#valueCount;
    values[at++] = clientId;
    values[at++] = messageId;
    values[at++] = sequence;
    values[at++] = qos;
    values[at++] = flag(retain);
    values[at++] = subscriptionIdentifiers ? JSON.stringify(subscriptionIdentifiers) : null;
    values[at++] = STAGE_CODES[stage];
    values[at++] = packetId ?? null;
    this.#valueCount = at;
  }

  deleteQueueEntry(clientId: string, messageId: MessageRef): void {
    if (!this.#cancellations.deleted(clientId, messageId)) {
      this.#skipped++;
      return;
    }
    this.#begin(DELETE_ENTRY);
    const at = this.#valueCount;
    this.#values[at] = clientId;
    this.#values[at + 1] = messageId;
    this.#valueCount = at + 2;
  }

  deleteUnreferencedMessage(messageId: MessageRef): void {
    if (!this.#cancellations.unreferenced(messageId)) {
      this.#skipped++;
      return;
    }
    this.#single("deleteUnreferencedMessage", false, messageId);
  }

  deleteOldestQueued(clientId: string): void {
    this.#cancellations.pin(clientId);
    this.#single("deleteOldestQueued", false, clientId);
  }

  saveMeta(key: string, value: string): void {
    this.#single("saveMeta", false, key, value);
  }

  addAwaitingRelease(clientId: string, packetId: number): void {
    this.#single("addAwaitingRelease", false, clientId, packetId);
  }

  deleteAwaitingRelease(clientId: string, packetId: number): void {
    this.#single("deleteAwaitingRelease", false, clientId, packetId);
  }

  saveRetained(message: StoredMessage): void {
    this.#single("saveRetained", true, ...messageValues(message));
  }

  deleteRetained(topic: string): void {
    this.#single("deleteRetained", false, topic);
  }

  saveWill({ clientId, will, publishAt, owner }: StoredWill): void {
    const { topic, payload, qos, retain } = will;
    const properties = encodeProperties(will.properties);
    this.#single(
      "saveWill",
      true,
      clientId,
      topic,
      ownBytes(payload),
      qos,
      flag(retain),
      properties,
      publishAt ?? null,
      owner ?? null,
    );
  }

  deleteWill(clientId: string): void {
    this.#single("deleteWill", false, clientId);
  }
}

/**
 * Marks an operation of a batch in the worker as cancelled out (across the batches of the store's window):
 * its kind becomes `~kind`, and its values stay where they are.
 */
export function cancelInPlace(kinds: number[], index: number): void {
  if (kinds[index] >= 0) kinds[index] = ~kinds[index];
}

/** How many values the operation of `kind` (or one cancelled in place, `~kind`) starting at `at` takes. */
export function valueCount(kind: number, values: readonly SQLInputValue[], at: number): number {
  if (kind < 0) kind = ~kind;
  if (kind === APPEND) return APPEND_VALUES;
  if (kind === SAVE_ENTRY) return SAVE_VALUES;
  if (kind === DELETE_ENTRY) return DELETE_VALUES;
  return 3 + (values[at + 2] as number);
}

/**
 * Whether the batch adds payload bytes: the part of a batch that is left out when the store is full, so
 * that deletes and updates still land.
 */
export function grows({ kinds, values }: FlatBatch): boolean {
  for (let k = 0, at = 0; k < kinds.length; k++) {
    const kind = kinds[k];
    if (kind === APPEND || (kind === SINGLE && values[at + 1] === 1)) return true;
    at += valueCount(kind, values, at);
  }
  return false;
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

/**
 * A payload that owns its whole buffer: the decoder's are views of shared 32 KiB blocks, and passing a
 * view to the worker would copy the whole block.
 */
function ownBytes(bytes: Uint8Array): Uint8Array {
  return bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength ? bytes : bytes.slice();
}

/** The column values shared by `messages` and `retained`, in their column order after the id. */
function messageValues(
  message: StoredMessage,
): [string, Uint8Array, number, number, string | null, string, number | null] {
  return [
    message.topic,
    ownBytes(message.payload),
    message.qos,
    flag(message.retain),
    encodeProperties(message.properties),
    message.publisherId,
    message.expiresAt ?? null,
  ];
}
