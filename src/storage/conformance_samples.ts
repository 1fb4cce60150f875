/** Sample storage records for the storage tests; each call returns a fresh object tests may vary. */
import type {
  MessageRef,
  QueueEntry,
  StoredMessage,
  StoredSession,
  StoredSubscription,
  StoredWill,
} from "./port.ts";

const encoder = new TextEncoder();

/** Builders with plausible defaults; `extra` overrides or adds fields. */
export const sample = {
  session: (clientId = "client-a", extra: Partial<StoredSession> = {}): StoredSession => ({
    clientId,
    expiryInterval: 3600,
    epoch: 1,
    ...extra,
  }),
  subscription: (
    clientId = "client-a",
    topicFilter = "sensors/+/temperature",
    extra: Partial<StoredSubscription> = {},
  ): StoredSubscription => ({
    clientId,
    topicFilter,
    qos: 1,
    noLocal: false,
    retainAsPublished: false,
    retainHandling: 0,
    ...extra,
  }),
  message: (topic = "sensors/1/temperature", extra: Partial<StoredMessage> = {}): StoredMessage => ({
    topic,
    payload: encoder.encode(`payload of ${topic}`),
    qos: 1,
    retain: false,
    properties: {},
    publisherId: "publisher",
    ...extra,
  }),
  entry: (clientId: string, messageId: MessageRef, extra: Partial<QueueEntry> = {}): QueueEntry => ({
    clientId,
    messageId,
    qos: 1,
    retain: false,
    stage: "queued",
    ...extra,
  }),
  will: (clientId = "client-a", extra: Partial<StoredWill> = {}): StoredWill => ({
    clientId,
    will: {
      topic: `clients/${clientId}/status`,
      payload: encoder.encode("offline"),
      qos: 1,
      retain: true,
      properties: { willDelayInterval: 30, contentType: "text/plain" },
    },
    ...extra,
  }),
};
