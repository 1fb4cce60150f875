/**
 * Turns each port mutation into a buffered {@link Operation}: plain data, captured when the broker calls (it
 * may reuse its objects afterwards) and handed to the worker that owns the database, which runs them later
 * inside a batch's transaction ({@link OperationRunner}). The three mutations of the delivery path are rows,
 * so that `BatchWriter` can run runs of them as multi-row statements; the rest name their statement.
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
import { encodeProperties, flag, STAGE_CODES } from "./records.ts";

/** One buffered mutation; structured-cloneable, so it can cross to the store's worker. */
export type Operation =
  /** A `messages` row: id, topic, payload, qos, retain, properties, publisher id, expiry. */
  | { kind: "appendMessage"; row: SQLInputValue[] }
  /** A `queue_entries` row: client, message, seq, qos, retain, subscription ids, stage, packet id. */
  | { kind: "saveQueueEntry"; row: SQLInputValue[] }
  | { kind: "deleteQueueEntry"; row: [clientId: string, messageId: MessageRef] }
  /** One run of a named statement (or of a named sequence of them, see {@link OperationRunner}). */
  | { kind: "single"; statement: SingleStatement; args: SQLInputValue[]; grows: boolean };

/** The statements a single operation may name: those of {@link SQL} and two sequences. */
export type SingleStatement = keyof typeof SQL | "deleteSessionCascade" | "deleteOldestQueuedCascade";

/**
 * Whether the operation adds payload bytes: the part of a batch that is dropped when the store is full,
 * so that deletes and updates still land.
 */
export function grows(operation: Operation): boolean {
  return operation.kind === "appendMessage" || (operation.kind === "single" && operation.grows);
}

const SQL = {
  saveSession: `INSERT OR REPLACE INTO sessions (client_id, expiry_interval, disconnected_at, epoch, owner,
    connection) VALUES (?, ?, ?, ?, ?, ?)`,
  deleteSessionMessages:
    `DELETE FROM messages WHERE id IN (SELECT message_id FROM queue_entries WHERE client_id = ?1)
    AND NOT EXISTS (SELECT 1 FROM queue_entries q WHERE q.message_id = messages.id AND q.client_id <> ?1)`,
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
    (SELECT min(seq) FROM queue_entries WHERE client_id = ?1 AND stage = 0) RETURNING message_id`,
  deleteUnreferencedMessage:
    "DELETE FROM messages WHERE id = ? AND NOT EXISTS (SELECT 1 FROM queue_entries WHERE message_id = ?1)",
  saveMeta: "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
} as const;

/** Operation kinds as small integers, for the flat encoding. */
const APPEND = 0, SAVE_ENTRY = 1, DELETE_ENTRY = 2, SINGLE = 3;

/**
 * One turn's operations, flat: a kind per operation and all their values in one list, so that handing a
 * batch to the worker clones two arrays of plain values rather than an object and an array per operation.
 * {@link decodeBatch} turns it back into {@link Operation}s on the worker's side.
 */
export class OperationBatch {
  readonly kinds: number[] = [];
  readonly values: SQLInputValue[] = [];

  get size(): number {
    return this.kinds.length;
  }

  #single(statement: SingleStatement, grows: boolean, ...args: SQLInputValue[]): void {
    this.kinds.push(SINGLE);
    this.values.push(statement, grows ? 1 : 0, args.length, ...args);
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
    this.kinds.push(APPEND);
    this.values.push(
      id,
      message.topic,
      ownBytes(message.payload),
      message.qos,
      flag(message.retain),
      encodeProperties(message.properties),
      message.publisherId,
      message.expiresAt ?? null,
    );
  }

  saveQueueEntry(entry: QueueEntry, sequence: number): void {
    const { clientId, messageId, qos, retain, subscriptionIdentifiers, stage, packetId } = entry;
    this.kinds.push(SAVE_ENTRY);
    this.values.push(
      clientId,
      messageId,
      sequence,
      qos,
      flag(retain),
      subscriptionIdentifiers ? JSON.stringify(subscriptionIdentifiers) : null,
      STAGE_CODES[stage],
      packetId ?? null,
    );
  }

  deleteQueueEntry(clientId: string, messageId: MessageRef): void {
    this.kinds.push(DELETE_ENTRY);
    this.values.push(clientId, messageId);
  }

  deleteUnreferencedMessage(messageId: MessageRef): void {
    this.#single("deleteUnreferencedMessage", false, messageId);
  }

  deleteOldestQueued(clientId: string): void {
    this.#single("deleteOldestQueuedCascade", false, clientId);
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

/** The operations of a batch encoded by {@link OperationBatch}, in order. */
export function decodeBatch(kinds: readonly number[], values: readonly SQLInputValue[]): Operation[] {
  const decoded: Operation[] = [];
  let at = 0;
  for (const kind of kinds) {
    if (kind === APPEND) {
      decoded.push({ kind: "appendMessage", row: values.slice(at, at += 8) });
    } else if (kind === SAVE_ENTRY) {
      decoded.push({ kind: "saveQueueEntry", row: values.slice(at, at += 8) });
    } else if (kind === DELETE_ENTRY) {
      decoded.push({
        kind: "deleteQueueEntry",
        row: [values[at] as string, values[at + 1] as MessageRef],
      });
      at += 2;
    } else {
      const statement = values[at] as SingleStatement;
      const grows = values[at + 1] === 1;
      const count = values[at + 2] as number;
      at += 3;
      decoded.push({ kind: "single", statement, args: values.slice(at, at += count), grows });
    }
  }
  return decoded;
}

/** Runs single operations over one connection's prepared statements (in the store's worker). */
export class OperationRunner {
  readonly #statements: Record<keyof typeof SQL, StatementSync>;

  constructor(db: DatabaseSync) {
    this.#statements = Object.fromEntries(
      Object.entries(SQL).map(([name, sql]) => [name, db.prepare(sql)]),
    ) as Record<keyof typeof SQL, StatementSync>;
  }

  run(operation: Extract<Operation, { kind: "single" }>): void {
    const s = this.#statements;
    const { statement, args } = operation;
    if (statement === "deleteSessionCascade") {
      // Messages first: the subquery needs the entries that are about to go.
      const cascade = [
        s.deleteSessionMessages,
        s.deleteSessionEntries,
        s.deleteSessionSubscriptions,
        s.deleteSessionAwaiting,
        s.deleteSession,
      ];
      for (const step of cascade) step.run(...args);
    } else if (statement === "deleteOldestQueuedCascade") {
      const deleted = s.deleteOldestQueued.get(...args);
      if (deleted) s.deleteUnreferencedMessage.run(deleted.message_id as number);
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
