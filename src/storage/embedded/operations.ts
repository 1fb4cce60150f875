/**
 * Turns each port mutation into a buffered {@link Operation}. Values are captured when the broker calls
 * (it may reuse its objects afterwards); SQL runs later, inside the batch's transaction. The three
 * mutations of the delivery path are plain data, so that `BatchWriter` can run runs of them as
 * multi-row statements; the rest carry their own statement.
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

/** One buffered mutation. */
export type Operation =
  /** A `messages` row: id, topic, payload, qos, retain, properties, publisher id, expiry. */
  | { kind: "appendMessage"; row: SQLInputValue[] }
  /**
   * A `queue_entries` row: client, message, seq, qos, retain, subscription ids, stage, packet id, and the
   * message id again (its size is read from `messages` as the row is written).
   */
  | { kind: "saveQueueEntry"; row: SQLInputValue[] }
  | { kind: "deleteQueueEntry"; row: [clientId: string, messageId: MessageRef] }
  | { kind: "single"; apply(): void; grows: boolean };

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

/** Builds operations over one connection's prepared statements. */
export class OperationBuilder {
  readonly #statements: Record<keyof typeof SQL, StatementSync>;

  constructor(db: DatabaseSync) {
    this.#statements = Object.fromEntries(
      Object.entries(SQL).map(([name, sql]) => [name, db.prepare(sql)]),
    ) as Record<keyof typeof SQL, StatementSync>;
  }

  saveSession(
    { clientId, expiryInterval, disconnectedAt, epoch, owner, connection }: StoredSession,
  ): Operation {
    const statement = this.#statements.saveSession;
    return metadataOperation(() =>
      statement.run(
        clientId,
        expiryInterval,
        disconnectedAt ?? null,
        epoch,
        owner ?? null,
        connection ?? null,
      )
    );
  }

  deleteSession(clientId: string): Operation {
    const s = this.#statements;
    // Messages first: the subquery needs the entries that are about to go.
    const cascade = [
      s.deleteSessionMessages,
      s.deleteSessionEntries,
      s.deleteSessionSubscriptions,
      s.deleteSessionAwaiting,
      s.deleteSession,
    ];
    return metadataOperation(() => {
      for (const statement of cascade) statement.run(clientId);
    });
  }

  saveSubscription(subscription: StoredSubscription): Operation {
    const { clientId, topicFilter, qos, noLocal, retainAsPublished, retainHandling, subscriptionIdentifier } =
      subscription;
    const statement = this.#statements.saveSubscription;
    return metadataOperation(() =>
      statement.run(
        clientId,
        topicFilter,
        qos,
        flag(noLocal),
        flag(retainAsPublished),
        retainHandling,
        subscriptionIdentifier ?? null,
      )
    );
  }

  deleteSubscription(clientId: string, topicFilter: string): Operation {
    const statement = this.#statements.deleteSubscription;
    return metadataOperation(() => statement.run(clientId, topicFilter));
  }

  appendMessage(id: MessageRef, message: StoredMessage): Operation {
    return { kind: "appendMessage", row: [id, ...messageValues(message)] };
  }

  saveQueueEntry(entry: QueueEntry, sequence: number): Operation {
    const { clientId, messageId, qos, retain, subscriptionIdentifiers, stage, packetId } = entry;
    const identifiers = subscriptionIdentifiers ? JSON.stringify(subscriptionIdentifiers) : null;
    return {
      kind: "saveQueueEntry",
      row: [
        clientId,
        messageId,
        sequence,
        qos,
        flag(retain),
        identifiers,
        STAGE_CODES[stage],
        packetId ?? null,
        messageId,
      ],
    };
  }

  deleteQueueEntry(clientId: string, messageId: MessageRef): Operation {
    return { kind: "deleteQueueEntry", row: [clientId, messageId] };
  }

  deleteUnreferencedMessage(messageId: MessageRef): Operation {
    const statement = this.#statements.deleteUnreferencedMessage;
    return metadataOperation(() => statement.run(messageId));
  }

  deleteOldestQueued(clientId: string): Operation {
    const { deleteOldestQueued, deleteUnreferencedMessage } = this.#statements;
    return metadataOperation(() => {
      const deleted = deleteOldestQueued.get(clientId);
      if (deleted) deleteUnreferencedMessage.run(deleted.message_id as number);
    });
  }

  saveMeta(key: string, value: string): Operation {
    const statement = this.#statements.saveMeta;
    return metadataOperation(() => statement.run(key, value));
  }

  addAwaitingRelease(clientId: string, packetId: number): Operation {
    const statement = this.#statements.addAwaitingRelease;
    return metadataOperation(() => statement.run(clientId, packetId));
  }

  deleteAwaitingRelease(clientId: string, packetId: number): Operation {
    const statement = this.#statements.deleteAwaitingRelease;
    return metadataOperation(() => statement.run(clientId, packetId));
  }

  saveRetained(message: StoredMessage): Operation {
    const statement = this.#statements.saveRetained;
    const values = messageValues(message);
    return payloadOperation(() => statement.run(...values));
  }

  deleteRetained(topic: string): Operation {
    const statement = this.#statements.deleteRetained;
    return metadataOperation(() => statement.run(topic));
  }

  saveWill({ clientId, will, publishAt, owner }: StoredWill): Operation {
    const statement = this.#statements.saveWill;
    const properties = encodeProperties(will.properties);
    const { topic, payload, qos, retain } = will;
    return payloadOperation(() =>
      statement.run(clientId, topic, payload, qos, flag(retain), properties, publishAt ?? null, owner ?? null)
    );
  }

  deleteWill(clientId: string): Operation {
    const statement = this.#statements.deleteWill;
    return metadataOperation(() => statement.run(clientId));
  }
}

const payloadOperation = (apply: () => void): Operation => ({ kind: "single", apply, grows: true });
const metadataOperation = (apply: () => void): Operation => ({ kind: "single", apply, grows: false });

/** The column values shared by `messages` and `retained`, in their column order after the id. */
function messageValues(
  message: StoredMessage,
): [string, Uint8Array, number, number, string | null, string, number | null] {
  return [
    message.topic,
    message.payload,
    message.qos,
    flag(message.retain),
    encodeProperties(message.properties),
    message.publisherId,
    message.expiresAt ?? null,
  ];
}
