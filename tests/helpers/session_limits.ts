/** Session limits for tests that build brokers or sessions without a config file, and the records a session took. */
import type { Attachment, Session, SessionLimits, SessionRecord } from "../../src/session/mod.ts";

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

/** The durable changes a session recorded since they were last taken, in order (see Session.takeRecords). */
export function takenRecords(session: Session): SessionRecord[] {
  const records: SessionRecord[] = [];
  session.takeRecords({ record: (_clientId, record) => records.push(record) });
  return records;
}
