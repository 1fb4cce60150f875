/** Session limits for tests that build brokers or sessions without a config file, and the records a session took. */
import type { QoS } from "../../src/codec/mod.ts";
import type { Attachment, Delivery, DeliveryStage, Session, SessionLimits } from "../../src/session/mod.ts";

export const limits: SessionLimits = {
  maxInflight: 10,
  receiveMaximum: 10,
  maxQueuedMessages: 1000,
  maxQueuedBytes: 0,
  queueDropPolicy: "drop_oldest",
  queueQos0Offline: false,
  maxTopicAlias: 10,
  maxSubscriptionsPerClient: 100,
  maxTopicLevels: 32,
  maxQos: 2,
  retainAvailable: true,
  wildcardSubscriptionAvailable: true,
  subscriptionIdentifiersAvailable: true,
  sharedSubscriptionAvailable: true,
};

/** How an MQTT 5 client with no limits of its own attaches (no Session Expiry unless a test sets one). */
export const attachmentV5: Attachment = {
  protocolVersion: 5,
  receiveMaximum: 65535,
  topicAliasMaximum: 0,
  sessionExpiryInterval: 0,
  requestProblemInformation: true,
};

/** A durable change as data, for tests to compare: one call of a RecordSink. */
export type SessionRecord =
  | { kind: "saveDelivery"; delivery: Delivery; qos: QoS; stage: DeliveryStage; packetId?: number }
  | { kind: "deleteDelivery"; delivery: Delivery }
  | { kind: "requeueDelivery"; delivery: Delivery; qos: QoS }
  | { kind: "dropOldestStored" }
  | { kind: "awaitingRelease"; packetId: number; waiting: boolean };

/** The durable changes a session recorded since they were last taken, in order (see Session.takeRecords). */
export function takenRecords(session: Session): SessionRecord[] {
  const records: SessionRecord[] = [];
  session.takeRecords({
    saveDelivery: (_clientId, delivery, qos, stage, packetId) =>
      records.push(
        packetId === undefined
          ? { kind: "saveDelivery", delivery, qos, stage }
          : { kind: "saveDelivery", delivery, qos, stage, packetId },
      ),
    deleteDelivery: (_clientId, delivery) => records.push({ kind: "deleteDelivery", delivery }),
    requeueDelivery: (_clientId, delivery, qos) => records.push({ kind: "requeueDelivery", delivery, qos }),
    dropOldestStored: () => records.push({ kind: "dropOldestStored" }),
    awaitingRelease: (_clientId, packetId, waiting) =>
      records.push({ kind: "awaitingRelease", packetId, waiting }),
  });
  return records;
}
