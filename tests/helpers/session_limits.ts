/** Session limits for tests that build brokers or sessions without a config file. */
import type { Attachment, SessionLimits } from "../../src/session/mod.ts";

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
