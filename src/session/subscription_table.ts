import type { SessionSubscription } from "./types.ts";

/**
 * A session's subscriptions by topic filter. Most clients hold one (a device's own command topic) and a
 * broker may hold millions of offline sessions, so the first is held as it is (its filter is its own) and a
 * Map (about 250 B) is made only for the second: one field for either, 32 B a table.
 */
export class SubscriptionTable {
  #held: SessionSubscription | Map<string, SessionSubscription> | undefined;

  get size(): number {
    const held = this.#held;
    return held instanceof Map ? held.size : held === undefined ? 0 : 1;
  }

  get(filter: string): SessionSubscription | undefined {
    const held = this.#held;
    if (held instanceof Map) return held.get(filter);
    return held?.topicFilter === filter ? held : undefined;
  }

  has(filter: string): boolean {
    return this.get(filter) !== undefined;
  }

  /** Adds or replaces the subscription to its filter, keeping the order in which filters were first added. */
  set(subscription: SessionSubscription): void {
    const held = this.#held;
    if (held instanceof Map) held.set(subscription.topicFilter, subscription);
    else if (held === undefined || held.topicFilter === subscription.topicFilter) this.#held = subscription;
    else this.#held = new Map([[held.topicFilter, held], [subscription.topicFilter, subscription]]);
  }

  delete(filter: string): boolean {
    const held = this.#held;
    if (held instanceof Map) return held.delete(filter);
    if (held?.topicFilter !== filter) return false;
    this.#held = undefined;
    return true;
  }

  /** The subscriptions in the order their filters were first added. */
  values(): IterableIterator<SessionSubscription> {
    const held = this.#held;
    if (held instanceof Map) return held.values();
    return (held ? [held] : []).values();
  }
}
