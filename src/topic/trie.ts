/**
 * The subscription tree: topic filters split into levels, with `+` and `#` as child slots.
 * Each node holds the plain subscribers of its filter (client id → value) and its shared groups.
 * Matching walks only the branches a topic can reach, so its cost grows with the topic's depth and the
 * number of matching filters, not with the number of subscriptions.
 */

/** A `$share/<group>/<filter>` group: its members and a cursor for round-robin selection. */
export class SharedGroup<T> {
  readonly members = new Map<string, T>();
  /** Member ids in join order; the round-robin cursor indexes this array. */
  memberIds: string[] = [];
  cursor = 0;
  constructor(readonly name: string, readonly filter: string) {}
}

/** Receives the matches of one topic. */
export interface MatchVisitor<T> {
  subscriber(clientId: string, value: T, filter: string): void;
  sharedGroup(group: SharedGroup<T>): void;
}

class TrieNode<T> {
  children: Map<string, TrieNode<T>> | undefined;
  /**
   * The `+` and `#` children, also in {@link children}: matching asks for both at every level of every
   * topic, and most nodes have neither, so a field spares a Map lookup that finds nothing.
   */
  plus: TrieNode<T> | undefined;
  hash: TrieNode<T> | undefined;
  /**
   * A filter's only plain subscriber is held in these two fields, a Map (about 250 B) only from the second
   * on: most filters have one subscriber (a device's own topics), and there may be millions of them.
   */
  soleId: string | undefined;
  soleValue: T | undefined;
  subscribers: Map<string, T> | undefined;
  groups: Map<string, SharedGroup<T>> | undefined;
  constructor(readonly filter: string) {}

  isEmpty(): boolean {
    return this.soleId === undefined && !this.children?.size && !this.subscribers?.size && !this.groups?.size;
  }

  /** Adds or replaces a plain subscriber; returns true when it is new. */
  setSubscriber(clientId: string, value: T): boolean {
    if (this.subscribers) {
      const isNew = !this.subscribers.has(clientId);
      this.subscribers.set(clientId, value);
      return isNew;
    }
    if (this.soleId === undefined || this.soleId === clientId) {
      const isNew = this.soleId === undefined;
      this.soleId = clientId;
      this.soleValue = value;
      return isNew;
    }
    this.subscribers = new Map([[this.soleId, this.soleValue as T], [clientId, value]]);
    this.soleId = this.soleValue = undefined;
    return true;
  }

  deleteSubscriber(clientId: string): boolean {
    if (this.soleId === clientId) {
      this.soleId = this.soleValue = undefined;
      return true;
    }
    return this.subscribers?.delete(clientId) ?? false;
  }
}

const SPLIT_CACHE_SIZE = 4096;
/** Misses a full split cache takes before it is emptied and refilled with the topics seen next. */
const SPLIT_CACHE_MISSES_BEFORE_REFILL = 8 * SPLIT_CACHE_SIZE;

interface VisitState<T> {
  visitor: MatchVisitor<T> | undefined;
  filter: string;
}

function visitSubscriber<T>(this: VisitState<T>, value: T, clientId: string): void {
  this.visitor!.subscriber(clientId, value, this.filter);
}

function visitGroup<T>(this: MatchVisitor<T>, group: SharedGroup<T>): void {
  this.sharedGroup(group);
}

export class SubscriptionTrie<T> {
  #root = new TrieNode<T>("");
  readonly #splitTopics = new Map<string, string[]>();
  #splitMissesWhileFull = 0;
  /** The `this` of visitSubscriber: matching never runs inside a visitor, so one will do. */
  readonly #visitState: VisitState<T> = { visitor: undefined, filter: "" };
  #count = 0;

  /** Number of (filter, subscriber) pairs, shared memberships included. */
  get size(): number {
    return this.#count;
  }

  /** Adds or replaces a subscription; returns true when it is new. */
  add(filter: string, clientId: string, value: T, group?: string): boolean {
    let node = this.#root;
    let start = 0;
    for (;;) {
      const slash = filter.indexOf("/", start);
      const end = slash === -1 ? filter.length : slash;
      const level = filter.slice(start, end);
      node.children ??= new Map();
      let child = node.children.get(level);
      if (!child) {
        // The filter itself for the last level: no new string for most nodes.
        child = new TrieNode<T>(end === filter.length ? filter : filter.slice(0, end));
        node.children.set(level, child);
        if (level === "+") node.plus = child;
        else if (level === "#") node.hash = child;
      }
      node = child;
      if (slash === -1) break;
      start = slash + 1;
    }
    let isNew: boolean;
    if (group === undefined) {
      isNew = node.setSubscriber(clientId, value);
    } else {
      node.groups ??= new Map();
      let shared = node.groups.get(group);
      if (!shared) {
        shared = new SharedGroup<T>(group, filter);
        node.groups.set(group, shared);
      }
      isNew = !shared.members.has(clientId);
      if (isNew) shared.memberIds.push(clientId);
      shared.members.set(clientId, value);
    }
    if (isNew) this.#count++;
    return isNew;
  }

  /** Removes a subscription; returns true when it existed. Empty branches are pruned. */
  remove(filter: string, clientId: string, group?: string): boolean {
    const levels = filter.split("/");
    const path: TrieNode<T>[] = [this.#root];
    let node: TrieNode<T> | undefined = this.#root;
    for (const level of levels) {
      node = node.children?.get(level);
      if (!node) return false;
      path.push(node);
    }
    let removed: boolean;
    if (group === undefined) {
      removed = node.deleteSubscriber(clientId);
    } else {
      const shared = node.groups?.get(group);
      removed = shared?.members.delete(clientId) ?? false;
      if (shared && removed) {
        shared.memberIds = shared.memberIds.filter((id) => id !== clientId);
        if (shared.members.size === 0) node.groups!.delete(group);
      }
    }
    if (!removed) return false;
    this.#count--;
    for (let i = path.length - 1; i > 0 && path[i].isEmpty(); i--) {
      const parent = path[i - 1];
      const level = levels[i - 1];
      parent.children!.delete(level);
      if (level === "+") parent.plus = undefined;
      else if (level === "#") parent.hash = undefined;
    }
    return true;
  }

  /** Calls the visitor for every subscription whose filter matches `topic` [MQTT-4.7.2-1]. */
  match(topic: string, visitor: MatchVisitor<T>): void {
    this.#walk(this.#root, this.#levels(topic), 0, topic.charCodeAt(0) === 0x24, visitor);
  }

  /**
   * A topic's levels, remembered for the first topics seen (and, after many misses, the ones seen then):
   * devices publish to the same topics again and again, and splitting allocates on every message. A full
   * cache is not emptied at each miss: with more topics than it holds (100,000 sessions each on a topic of
   * its own) that made every message's levels and the cache's tables live long enough to be promoted, most
   * of what publishing into offline sessions left in the old generation; a miss's levels die young.
   */
  #levels(topic: string): string[] {
    const cache = this.#splitTopics;
    let levels = cache.get(topic);
    if (levels !== undefined) return levels;
    levels = topic.split("/");
    if (cache.size < SPLIT_CACHE_SIZE) cache.set(topic, levels);
    else if (++this.#splitMissesWhileFull >= SPLIT_CACHE_MISSES_BEFORE_REFILL) {
      cache.clear();
      this.#splitMissesWhileFull = 0;
    }
    return levels;
  }

  #walk(node: TrieNode<T>, levels: string[], depth: number, dollar: boolean, visitor: MatchVisitor<T>): void {
    const children = node.children;
    if (depth === levels.length) {
      this.#visit(node, visitor);
      // "sport/#" also matches "sport" [MQTT-4.7.1-2].
      const hash = node.hash;
      if (hash) this.#visit(hash, visitor);
      return;
    }
    if (!children) return;
    const exact = children.get(levels[depth]);
    if (exact) this.#walk(exact, levels, depth + 1, dollar, visitor);
    // Wildcards in the first level never match `$` topics [MQTT-4.7.2-1].
    if (depth === 0 && dollar) return;
    const plus = node.plus;
    if (plus) this.#walk(plus, levels, depth + 1, dollar, visitor);
    const hash = node.hash;
    if (hash) this.#visit(hash, visitor);
  }

  #visit(node: TrieNode<T>, visitor: MatchVisitor<T>): void {
    // forEach with a `this` instead of for…of: no iterator and no entry pair per subscriber per message.
    if (node.soleId !== undefined) visitor.subscriber(node.soleId, node.soleValue as T, node.filter);
    else if (node.subscribers) {
      const state = this.#visitState;
      state.visitor = visitor;
      state.filter = node.filter;
      node.subscribers.forEach(visitSubscriber<T>, state);
    }
    if (node.groups) node.groups.forEach(visitGroup<T>, visitor);
  }
}
