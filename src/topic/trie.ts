/**
 * The subscription tree: topic filters split into levels, with `+` and `#` as child slots.
 * Each node holds the plain subscribers of its filter (subscriber → value) and its shared groups. A
 * subscriber is whatever the caller names one with (a client id, or the client's session itself: then the
 * trie holds the session and its subscription as they are, with no object pairing them per subscription).
 * Matching walks only the branches a topic can reach, so its cost grows with the topic's depth and the
 * number of matching filters, not with the number of subscriptions.
 */

/** A `$share/<group>/<filter>` group: its members and a cursor for round-robin selection. */
export class SharedGroup<K, T> {
  readonly members = new Map<K, T>();
  /** Members in join order; the round-robin cursor indexes this array. */
  memberKeys: K[] = [];
  cursor = 0;
  constructor(readonly name: string, readonly filter: string) {}
}

/** Receives the matches of one topic. */
export interface MatchVisitor<K, T> {
  subscriber(key: K, value: T): void;
  sharedGroup(group: SharedGroup<K, T>): void;
}

/**
 * What few nodes have: `+` and `#` children (also in TrieNode.children: matching asks for both at every
 * level of every topic, and a field spares a Map lookup that finds nothing) and shared groups. One field
 * of every node for the three, made for the first of them: 16 B less per node, and a node with none of them
 * (most) is passed over with one check instead of three.
 */
class RareParts<K, T> {
  plus: TrieNode<K, T> | undefined = undefined;
  hash: TrieNode<K, T> | undefined = undefined;
  groups: Map<string, SharedGroup<K, T>> | undefined = undefined;

  isEmpty(): boolean {
    return this.plus === undefined && this.hash === undefined && !this.groups?.size;
  }
}

class TrieNode<K, T> {
  children: Map<string, TrieNode<K, T>> | undefined;
  rare: RareParts<K, T> | undefined;
  /**
   * A filter's only plain subscriber is held in two fields, a Map (about 250 B) only from the second on:
   * most filters have one subscriber (a device's own topics), and there may be millions of them. While
   * {@link soleKey} is set, {@link subscribers} is that subscriber's value; otherwise it is the Map, if any
   * (one field for either: 8 B per node).
   */
  soleKey: K | undefined;
  subscribers: T | Map<K, T> | undefined;

  isEmpty(): boolean {
    return this.soleKey === undefined && !this.children?.size && !this.subscriberMap()?.size &&
      this.rare === undefined;
  }

  /** Lets go of {@link rare} once it holds nothing. */
  pruneRare(): void {
    if (this.rare?.isEmpty()) this.rare = undefined;
  }

  /** The Map of two or more subscribers (see {@link subscribers}), if this node has one. */
  subscriberMap(): Map<K, T> | undefined {
    return this.soleKey === undefined ? this.subscribers as Map<K, T> | undefined : undefined;
  }

  /** Adds or replaces a plain subscriber; returns true when it is new. */
  setSubscriber(key: K, value: T): boolean {
    const map = this.subscriberMap();
    if (map) {
      const isNew = !map.has(key);
      map.set(key, value);
      return isNew;
    }
    if (this.soleKey === undefined || this.soleKey === key) {
      const isNew = this.soleKey === undefined;
      this.soleKey = key;
      this.subscribers = value;
      return isNew;
    }
    this.subscribers = new Map([[this.soleKey, this.subscribers as T], [key, value]]);
    this.soleKey = undefined;
    return true;
  }

  deleteSubscriber(key: K): boolean {
    if (this.soleKey === key) {
      this.soleKey = this.subscribers = undefined;
      return true;
    }
    return this.subscriberMap()?.delete(key) ?? false;
  }
}

const SPLIT_CACHE_SIZE = 4096;
/** Misses a full split cache takes before it is emptied and refilled with the topics seen next. */
const SPLIT_CACHE_MISSES_BEFORE_REFILL = 8 * SPLIT_CACHE_SIZE;

function visitSubscriber<K, T>(this: MatchVisitor<K, T>, value: T, key: K): void {
  this.subscriber(key, value);
}

function visitGroup<K, T>(this: MatchVisitor<K, T>, group: SharedGroup<K, T>): void {
  this.sharedGroup(group);
}

export class SubscriptionTrie<K, T> {
  #root = new TrieNode<K, T>();
  readonly #splitTopics = new Map<string, string[]>();
  #splitMissesWhileFull = 0;
  #count = 0;

  /** Number of (filter, subscriber) pairs, shared memberships included. */
  get size(): number {
    return this.#count;
  }

  /** Adds or replaces a subscription; returns true when it is new. */
  add(filter: string, key: K, value: T, group?: string): boolean {
    let node = this.#root;
    let start = 0;
    for (;;) {
      const slash = filter.indexOf("/", start);
      const end = slash === -1 ? filter.length : slash;
      const level = filter.slice(start, end);
      node.children ??= new Map();
      let child = node.children.get(level);
      if (!child) {
        child = new TrieNode<K, T>();
        node.children.set(level, child);
        if (level === "+") (node.rare ??= new RareParts()).plus = child;
        else if (level === "#") (node.rare ??= new RareParts()).hash = child;
      }
      node = child;
      if (slash === -1) break;
      start = slash + 1;
    }
    let isNew: boolean;
    if (group === undefined) {
      isNew = node.setSubscriber(key, value);
    } else {
      const groups = (node.rare ??= new RareParts()).groups ??= new Map();
      let shared = groups.get(group);
      if (!shared) {
        shared = new SharedGroup<K, T>(group, filter);
        groups.set(group, shared);
      }
      isNew = !shared.members.has(key);
      if (isNew) shared.memberKeys.push(key);
      shared.members.set(key, value);
    }
    if (isNew) this.#count++;
    return isNew;
  }

  /** Removes a subscription; returns true when it existed. Empty branches are pruned. */
  remove(filter: string, key: K, group?: string): boolean {
    const levels = filter.split("/");
    const path: TrieNode<K, T>[] = [this.#root];
    let node: TrieNode<K, T> | undefined = this.#root;
    for (const level of levels) {
      node = node.children?.get(level);
      if (!node) return false;
      path.push(node);
    }
    let removed: boolean;
    if (group === undefined) {
      removed = node.deleteSubscriber(key);
    } else {
      const shared = node.rare?.groups?.get(group);
      removed = shared?.members.delete(key) ?? false;
      if (shared && removed) {
        shared.memberKeys = shared.memberKeys.filter((member) => member !== key);
        if (shared.members.size === 0) {
          node.rare!.groups!.delete(group);
          node.pruneRare();
        }
      }
    }
    if (!removed) return false;
    this.#count--;
    for (let i = path.length - 1; i > 0 && path[i].isEmpty(); i--) {
      const parent = path[i - 1];
      const level = levels[i - 1];
      parent.children!.delete(level);
      if (level === "+") parent.rare!.plus = undefined;
      else if (level === "#") parent.rare!.hash = undefined;
      parent.pruneRare();
    }
    return true;
  }

  /** Calls the visitor for every subscription whose filter matches `topic` [MQTT-4.7.2-1]. */
  match(topic: string, visitor: MatchVisitor<K, T>): void {
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

  #walk(
    node: TrieNode<K, T>,
    levels: string[],
    depth: number,
    dollar: boolean,
    visitor: MatchVisitor<K, T>,
  ): void {
    const children = node.children;
    if (depth === levels.length) {
      this.#visit(node, visitor);
      // "sport/#" also matches "sport" [MQTT-4.7.1-2].
      const hash = node.rare?.hash;
      if (hash) this.#visit(hash, visitor);
      return;
    }
    if (!children) return;
    const exact = children.get(levels[depth]);
    if (exact) this.#walk(exact, levels, depth + 1, dollar, visitor);
    const rare = node.rare;
    // Wildcards in the first level never match `$` topics [MQTT-4.7.2-1].
    if (rare === undefined || (depth === 0 && dollar)) return;
    const plus = rare.plus;
    if (plus) this.#walk(plus, levels, depth + 1, dollar, visitor);
    const hash = rare.hash;
    if (hash) this.#visit(hash, visitor);
  }

  #visit(node: TrieNode<K, T>, visitor: MatchVisitor<K, T>): void {
    // forEach with a `this` instead of for…of: no iterator and no entry pair per subscriber per message.
    if (node.soleKey !== undefined) visitor.subscriber(node.soleKey, node.subscribers as T);
    else if (node.subscribers) (node.subscribers as Map<K, T>).forEach(visitSubscriber<K, T>, visitor);
    const groups = node.rare?.groups;
    if (groups) groups.forEach(visitGroup<K, T>, visitor);
  }
}
