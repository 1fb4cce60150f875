import type { SessionSubscription } from "./types.ts";

/**
 * A session's subscriptions by topic filter, as the session's one field holds them. Most clients hold one (a
 * device's own command topic) and a broker may hold millions of offline sessions, so the first is held as
 * it is (its filter is its own), with no table object around it, and a Map (about 250 B) is made only for
 * the second. The functions below read and change it; those that change it return what the field holds next.
 */
export type SubscriptionTable = SessionSubscription | Map<string, SessionSubscription> | undefined;

export function subscriptionCount(table: SubscriptionTable): number {
  return table instanceof Map ? table.size : table === undefined ? 0 : 1;
}

export function findSubscription(table: SubscriptionTable, filter: string): SessionSubscription | undefined {
  if (table instanceof Map) return table.get(filter);
  return table?.topicFilter === filter ? table : undefined;
}

/** Adds or replaces the subscription to its filter, keeping the order in which filters were first added. */
export function withSubscription(
  table: SubscriptionTable,
  subscription: SessionSubscription,
): SubscriptionTable {
  const filter = subscription.topicFilter;
  if (table instanceof Map) return table.set(filter, subscription);
  if (table === undefined || table.topicFilter === filter) return subscription;
  return new Map([[table.topicFilter, table], [filter, subscription]]);
}

/** Removes the subscription to `filter`, if any. */
export function withoutSubscription(table: SubscriptionTable, filter: string): SubscriptionTable {
  if (table instanceof Map) {
    table.delete(filter);
    return table;
  }
  return table?.topicFilter === filter ? undefined : table;
}

/** The subscriptions in the order their filters were first added. */
export function subscriptionsIn(table: SubscriptionTable): IterableIterator<SessionSubscription> {
  if (table instanceof Map) return table.values();
  return (table ? [table] : []).values();
}
