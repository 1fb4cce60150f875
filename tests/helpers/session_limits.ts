/** Session limits for tests that build brokers or sessions without a config file. */
import type { SessionLimits } from "../../src/session/mod.ts";

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
