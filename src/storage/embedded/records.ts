/** Conversions between the port's records and SQLite rows (see docs/storage.md for the tables). */
import { Buffer } from "node:buffer";
import type { Properties } from "../../codec/types.ts";
import type {
  MessageRef,
  QueueEntry,
  StoredMessage,
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

export function sessionFromRow(row: Row): StoredSession {
  return withOptional<StoredSession>(
    {
      clientId: row.client_id as string,
      expiryInterval: row.expiry_interval as number,
      epoch: row.epoch as number,
    },
    {
      disconnectedAt: optionalNumber(row.disconnected_at),
      owner: typeof row.owner === "string" ? row.owner : undefined,
      connection: typeof row.connection === "string" ? row.connection : undefined,
    },
  );
}

export function subscriptionFromRow(row: Row): StoredSubscription {
  return withOptional<StoredSubscription>({
    clientId: row.client_id as string,
    topicFilter: row.topic_filter as string,
    qos: row.qos as StoredSubscription["qos"],
    noLocal: row.no_local === 1,
    retainAsPublished: row.retain_as_published === 1,
    retainHandling: row.retain_handling as StoredSubscription["retainHandling"],
  }, { subscriptionIdentifier: optionalNumber(row.subscription_identifier) });
}

/** Reads the message columns shared by `messages` and `retained`. */
export function messageFromRow(row: Row): StoredMessage {
  return withOptional<StoredMessage>({
    topic: row.topic as string,
    payload: row.payload as Uint8Array,
    qos: row.qos as StoredMessage["qos"],
    retain: row.retain === 1,
    properties: decodeProperties(row.properties),
    publisherId: row.publisher_id as string,
  }, { expiresAt: optionalNumber(row.expires_at) });
}

export function queueEntryFromRow(row: Row): QueueEntry {
  const identifiers = row.subscription_identifiers;
  return withOptional<QueueEntry>({
    clientId: row.client_id as string,
    messageId: row.message_id as MessageRef,
    qos: row.qos as QueueEntry["qos"],
    retain: row.retain === 1,
    stage: STAGES[row.stage as number],
  }, {
    subscriptionIdentifiers: typeof identifiers === "string" ? JSON.parse(identifiers) : undefined,
    packetId: optionalNumber(row.packet_id),
  });
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
