/** Conversions between the port's records and SQLite rows (see docs/storage.md for the tables). */
import { Buffer } from "node:buffer";
import type { Properties } from "../../codec/types.ts";
import type {
  MessageRef,
  QueueEntry,
  QueueTotals,
  StorageSnapshot,
  StoredMessage,
  StoredRetained,
  StoredSession,
  StoredSubscription,
  StoredWill,
} from "../port.ts";

/** A row as node:sqlite returns it: column name to value. */
export type Row = Record<string, unknown>;

/** Queue stages as small integers: the column is read only at recovery, written on every delivery. */
export const STAGE_CODES: Record<QueueEntry["stage"], number> = { queued: 0, sent: 1, released: 2 };
const STAGES: QueueEntry["stage"][] = ["queued", "sent", "released"];

const BYTES_TAG = "$bytes";

/**
 * Properties as JSON, with byte fields (correlation and authentication data) as `{"$bytes": base64}`;
 * `null` for the usual empty set so most rows carry no text at all.
 */
export function encodeProperties(properties: Properties): string | null {
  for (const _ in properties) {
    return JSON.stringify(
      properties,
      (_key, value) =>
        value instanceof Uint8Array ? { [BYTES_TAG]: Buffer.from(value).toString("base64") } : value,
    );
  }
  return null;
}

/** Reverses {@link encodeProperties}. */
export function decodeProperties(text: unknown): Properties {
  if (typeof text !== "string") return {};
  return JSON.parse(
    text,
    (_key, value) =>
      typeof value === "object" && value !== null && typeof value[BYTES_TAG] === "string"
        ? new Uint8Array(Buffer.from(value[BYTES_TAG], "base64"))
        : value,
  );
}

/** SQLite has no booleans; 0/1 integers keep rows small. */
export const flag = (value: boolean): number => value ? 1 : 0;

const optionalNumber = (value: unknown): number | undefined => value === null ? undefined : value as number;
const optionalText = (value: unknown): string | undefined => typeof value === "string" ? value : undefined;

/** Copies only the optional fields that are present, so records compare equal to what was saved. */
function withOptional<T extends object>(record: T, optional: Partial<T>): T {
  for (const [key, value] of Object.entries(optional)) {
    if (value !== undefined) (record as Record<string, unknown>)[key] = value;
  }
  return record;
}

/**
 * The snapshot as the store's worker sends it: sessions, subscriptions and queue totals as JSON text of one
 * array per column (see recovery.ts), which crosses to the broker's thread as one string.
 */
export interface WireSnapshot extends Omit<StorageSnapshot, "sessions" | "subscriptions" | "queueTotals"> {
  sessions: WireTable;
  subscriptions: WireTable;
  queueTotals: WireTable;
}

/** One table's rows: how many, and a JSON array of its columns. */
export interface WireTable {
  rows: number;
  columns: string;
}

/** The port's snapshot from the worker's. */
export function snapshotFromWire(wire: WireSnapshot): StorageSnapshot {
  return {
    ...wire,
    sessions: sessionsFromColumns(wire.sessions.columns),
    subscriptions: subscriptionsFromColumns(wire.subscriptions.columns),
    queueTotals: queueTotalsFromColumns(wire.queueTotals.columns),
  };
}

// Row by row with plain assignments (no withOptional): 100,000 rows of each kind are decoded on the
// broker's thread while it starts.
function sessionsFromColumns(text: string): StoredSession[] {
  const [clientIds, expiryIntervals, disconnectedAts, epochs, owners, connections] = JSON.parse(text);
  const sessions: StoredSession[] = new Array(clientIds.length);
  for (let i = 0; i < clientIds.length; i++) {
    const session: StoredSession = {
      clientId: clientIds[i],
      expiryInterval: expiryIntervals[i],
      epoch: epochs[i],
    };
    if (disconnectedAts[i] !== null) session.disconnectedAt = disconnectedAts[i];
    if (owners[i] !== null) session.owner = owners[i];
    if (connections[i] !== null) session.connection = connections[i];
    sessions[i] = session;
  }
  return sessions;
}

function subscriptionsFromColumns(text: string): StoredSubscription[] {
  const [clientIds, filters, qoses, noLocals, retainAsPublisheds, retainHandlings, identifiers] = JSON.parse(
    text,
  );
  const subscriptions: StoredSubscription[] = new Array(clientIds.length);
  for (let i = 0; i < clientIds.length; i++) {
    const subscription: StoredSubscription = {
      clientId: clientIds[i],
      topicFilter: filters[i],
      qos: qoses[i],
      noLocal: noLocals[i] === 1,
      retainAsPublished: retainAsPublisheds[i] === 1,
      retainHandling: retainHandlings[i],
    };
    if (identifiers[i] !== null) subscription.subscriptionIdentifier = identifiers[i];
    subscriptions[i] = subscription;
  }
  return subscriptions;
}

function queueTotalsFromColumns(text: string): Map<string, QueueTotals> {
  const [clientIds, entries, bytes] = JSON.parse(text);
  const totals = new Map<string, QueueTotals>();
  for (let i = 0; i < clientIds.length; i++) {
    totals.set(clientIds[i], { entries: entries[i], bytes: bytes[i] });
  }
  return totals;
}

/**
 * Reads the message columns shared by `messages` and `retained` (a queue read names the message's own qos
 * and retain apart from its entry's). Plain assignments: a drain reads every queued message through here.
 */
export function messageFromRow(row: Row, qos = row.qos, retain = row.retain): StoredMessage {
  const message: StoredMessage = {
    topic: row.topic as string,
    payload: row.payload as Uint8Array,
    qos: qos as StoredMessage["qos"],
    retain: retain === 1,
    properties: decodeProperties(row.properties),
    publisherId: row.publisher_id as string,
  };
  const expiresAt = optionalNumber(row.expires_at);
  if (expiresAt !== undefined) message.expiresAt = expiresAt;
  return message;
}

/** Reads a retained message's columns without its payload, whose size is `payload_bytes`. */
export function retainedFromRow(row: Row): StoredRetained {
  return withOptional<StoredRetained>({
    topic: row.topic as string,
    payloadBytes: row.payload_bytes as number,
    qos: row.qos as StoredRetained["qos"],
    retain: row.retain === 1,
    properties: decodeProperties(row.properties),
    publisherId: row.publisher_id as string,
  }, { expiresAt: optionalNumber(row.expires_at) });
}

export function queueEntryFromRow(row: Row): QueueEntry {
  const entry: QueueEntry = {
    clientId: row.client_id as string,
    messageId: row.message_id as MessageRef,
    qos: row.qos as QueueEntry["qos"],
    retain: row.retain === 1,
    stage: STAGES[row.stage as number],
  };
  const identifiers = row.subscription_identifiers;
  if (typeof identifiers === "string") entry.subscriptionIdentifiers = JSON.parse(identifiers);
  const packetId = optionalNumber(row.packet_id);
  if (packetId !== undefined) entry.packetId = packetId;
  return entry;
}

export function willFromRow(row: Row): StoredWill {
  return withOptional<StoredWill>({
    clientId: row.client_id as string,
    will: {
      topic: row.topic as string,
      payload: row.payload as Uint8Array,
      qos: row.qos as StoredWill["will"]["qos"],
      retain: row.retain === 1,
      properties: decodeProperties(row.properties),
    },
  }, { publishAt: optionalNumber(row.publish_at), owner: optionalText(row.owner) });
}
