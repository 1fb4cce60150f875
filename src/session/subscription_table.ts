import type { SessionSubscription } from "./types.ts";

/**
 * A session's subscriptions by topic filter. Most clients hold one (a device's own command topic) and a
 * broker may hold millions of offline sessions, so the first lives in two fields and a Map (about 250 B)
 * is made only for the second.
 */
export class SubscriptionTable {
  #filter: string | undefined;
  #subscription: SessionSubscription | undefined;
  #byFilter: Map<string, SessionSubscription> | undefined;

  get size(): number {
    return this.#byFilter?.size ?? (this.#filter === undefined ? 0 : 1);
  }

  get(filter: string): SessionSubscription | undefined {
    if (this.#byFilter) return this.#byFilter.get(filter);
    return filter === this.#filter ? this.#subscription : undefined;
  }

  has(filter: string): boolean {
    return this.get(filter) !== undefined;
  }

  /** Adds or replaces the subscription to `filter`, keeping the order in which filters were first added. */
  set(filter: string, subscription: SessionSubscription): void {
    if (this.#byFilter) {
      this.#byFilter.set(filter, subscription);
    } else if (this.#filter === undefined || this.#filter === filter) {
      this.#filter = filter;
      this.#subscription = subscription;
    } else {
      this.#byFilter = new Map([[this.#filter, this.#subscription!], [filter, subscription]]);
      this.#filter = this.#subscription = undefined;
    }
  }

  delete(filter: string): boolean {
    if (this.#byFilter) return this.#byFilter.delete(filter);
    if (filter !== this.#filter) return false;
    this.#filter = this.#subscription = undefined;
    return true;
  }

  /** The subscriptions in the order their filters were first added. */
  values(): IterableIterator<SessionSubscription> {
    if (this.#byFilter) return this.#byFilter.values();
    return (this.#subscription ? [this.#subscription] : []).values();
  }
}
