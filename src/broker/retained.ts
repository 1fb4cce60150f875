import type { Properties, QoS } from "../codec/types.ts";
import type { Message } from "../session/types.ts";
import type { RetainedStore, StoredRetained } from "../storage/port.ts";
import type { Persistence } from "./persistence.ts";

/** Caps on what the retained store holds; 0 = unlimited. */
export interface RetainedLimits {
  maxMessages: number;
  /** Payload and topic bytes. */
  maxBytes: number;
}

/**
 * A retained message as memory holds it: what matching and sending need, and its payload only where
 * memory keeps payloads (see {@link RetainedService}); the rest is read from the store when sent.
 */
export interface RetainedEntry {
  readonly topic: string;
  readonly qos: QoS;
  readonly properties: Properties;
  readonly publisherId: string;
  readonly expiresAt?: number;
  readonly payloadBytes: number;
  /** Absent while the payload is only in the store. */
  payload?: Uint8Array;
}

/** One topic level; `entry` is the retained message of the topic that ends here. */
interface TopicNode {
  children?: Map<string, TopicNode>;
  entry?: RetainedEntry;
}

const UNLIMITED: RetainedLimits = { maxMessages: 0, maxBytes: 0 };

/** What a retained message costs the store: its payload and its topic. */
function sizeOf(entry: { topic: string; payloadBytes: number }): number {
  return entry.payloadBytes + entry.topic.length;
}

/**
 * Where payloads live in the store, memory still keeps small ones, up to this many bytes in all: a
 * SUBSCRIBE whose matches are all kept (and fit the client's socket) sends them in its own turn, without a
 * read from the store (0.12–0.22 ms against 0.48–0.63 ms from SUBSCRIBE to its one retained message, median
 * of 2000). Kept as they are published or first read, while the budget lasts; not evicted.
 */
export const RETAINED_CACHE = { maxBytes: 16 * 1024 * 1024, maxPayloadBytes: 64 * 1024 } as const;

/** At most this many retained payloads are asked of the store at once ({@link RetainedService.readInBatches}). */
const READ_BATCH = 1000;

/**
 * Retained messages by topic: a new one replaces the old, an empty payload deletes it [MQTT-3.3.1-10/11].
 * Kept in a tree of topic levels, so a SUBSCRIBE walks only the branches its filter can match: its cost
 * follows what it matches, not how many messages are retained. Bounded by {@link RetainedLimits}. Every
 * change is written through the persistence; `restore` rebuilds it at start.
 *
 * With `payloadsInStore` (a durable store on a single node) memory holds no payload: a start reads none,
 * and a SUBSCRIBE's matches are read from the store a page at a time as the client takes them (see the
 * broker's RetainedReads). Otherwise (the memory store, a cluster, whose nodes must all send a SUBSCRIBE's
 * retained messages in the same turn) every payload stays in memory, as `$SYS` ones always do (they are
 * not stored).
 */
export class RetainedService {
  readonly #root: TopicNode = {};
  #size = 0;
  #bytes = 0;
  /** Payload bytes memory keeps of messages the store has too (see {@link RETAINED_CACHE}). */
  #cachedBytes = 0;

  constructor(
    private readonly persistence: Persistence,
    private readonly store: RetainedStore,
    private readonly limits: RetainedLimits = UNLIMITED,
    readonly payloadsInStore = false,
  ) {}

  /** Retained messages held. */
  get size(): number {
    return this.#size;
  }

  /** Payload and topic bytes of the retained messages (in memory or in the store). */
  get bytes(): number {
    return this.#bytes;
  }

  /**
   * Whether `set(message)` would store it: a deletion or a replacement that fits always does; a new topic,
   * or a larger payload, only within the limits.
   */
  admits(message: Message): boolean {
    if (message.payload.byteLength === 0) return true;
    return this.#admits(message.topic, message.payload.byteLength);
  }

  #admits(topic: string, payloadBytes: number): boolean {
    const { maxMessages, maxBytes } = this.limits;
    const existing = this.#find(topic)?.entry;
    if (!existing && maxMessages > 0 && this.#size >= maxMessages) return false;
    const growth = payloadBytes + topic.length - (existing ? sizeOf(existing) : 0);
    return maxBytes === 0 || growth <= 0 || this.#bytes + growth <= maxBytes;
  }

  /**
   * Stores or deletes the retained message of `message.topic`, wherever it was published; false (nothing
   * changed) when over the limits. `stored`: the persistence already has it (see Broker.stage).
   */
  set(message: Message, stored = false): boolean {
    if (message.payload.byteLength === 0) {
      this.#delete(message.topic);
      if (!stored) this.persistence.retained(message);
      return true;
    }
    if (!this.admits(message)) return false;
    const { topic, qos, properties, publisherId, expiresAt, payload } = message;
    const entry: RetainedEntry = {
      topic,
      qos,
      properties,
      publisherId,
      expiresAt,
      payloadBytes: payload.byteLength,
    };
    this.#put(entry);
    // Its own payload: the received one is a view into a shared decoder block.
    if (this.#keepsPayload(entry)) entry.payload = payload.slice();
    if (!stored) this.persistence.retained(message);
    return true;
  }

  /** Whether memory keeps the payload of an entry just put: every one, or (see {@link RETAINED_CACHE}) a small one. */
  #keepsPayload(entry: RetainedEntry): boolean {
    if (!this.payloadsInStore || entry.topic.startsWith("$SYS/")) return true; // $SYS: not stored
    const bytes = entry.payloadBytes;
    if (bytes > RETAINED_CACHE.maxPayloadBytes || this.#cachedBytes + bytes > RETAINED_CACHE.maxBytes) {
      return false;
    }
    this.#cachedBytes += bytes;
    return true;
  }

  /** An entry leaves the tree (replaced or deleted): the payload it kept leaves the cache. */
  #forget(entry: RetainedEntry): void {
    this.#bytes -= sizeOf(entry);
    this.#size--;
    if (entry.payload && this.payloadsInStore && !entry.topic.startsWith("$SYS/")) {
      this.#cachedBytes -= entry.payloadBytes;
    }
  }

  /** Payload bytes kept in memory of retained messages the store has too. */
  get cachedBytes(): number {
    return this.#cachedBytes;
  }

  /**
   * Rebuilds the retained messages at start from the snapshot's, which carry no payload: with payloads kept
   * in memory, they are read from the store now. What a lowered limit no longer admits is left out (and
   * counted).
   */
  async restore(stored: StoredRetained[]): Promise<number> {
    let refused = 0;
    const restored: RetainedEntry[] = [];
    for (const { topic, qos, properties, publisherId, expiresAt, payloadBytes } of stored) {
      if (!this.#admits(topic, payloadBytes)) {
        refused++;
        continue;
      }
      const entry: RetainedEntry = { topic, qos, properties, publisherId, expiresAt, payloadBytes };
      this.#put(entry);
      restored.push(entry);
    }
    if (!this.payloadsInStore) await this.#readPayloads(restored);
    return refused;
  }

  /** Reads the payloads of entries from the store, where it still has them, into the entries. */
  async #readPayloads(entries: RetainedEntry[]): Promise<void> {
    for (let start = 0; start < entries.length; start += READ_BATCH) {
      const batch = entries.slice(start, start + READ_BATCH);
      const read = await this.store.readRetained(batch.map((entry) => entry.topic));
      batch.forEach((entry, i) => {
        const payload = read[i]?.payload;
        if (payload) entry.payload = payload;
        else if (this.isCurrent(entry)) this.#delete(entry.topic); // gone from the store meanwhile
      });
    }
  }

  #put(entry: RetainedEntry): void {
    let node = this.#root;
    for (const level of entry.topic.split("/")) {
      const children = node.children ??= new Map();
      let child = children.get(level);
      if (!child) children.set(level, child = {});
      node = child;
    }
    if (node.entry) this.#forget(node.entry);
    node.entry = entry;
    this.#bytes += sizeOf(entry);
    this.#size++;
  }

  /** True while `entry` is its topic's retained message: not replaced or deleted since it was matched. */
  isCurrent(entry: RetainedEntry): boolean {
    return this.#find(entry.topic)?.entry === entry;
  }

  /**
   * The messages of `entries`, payloads read from the store where memory has none, in the same order;
   * undefined for one the store no longer has (replaced or deleted since it was matched: see
   * {@link isCurrent}). A payload read is the caller's own when the store's reads are (readsOwnPayloads).
   */
  async read(entries: RetainedEntry[]): Promise<(Message | undefined)[]> {
    const kept = entries.map((entry) => entry.payload);
    const missing = entries.filter((entry) => entry.payload === undefined);
    const read = missing.length === 0
      ? []
      : await this.store.readRetained(missing.map((entry) => entry.topic));
    let next = 0;
    return entries.map((entry, i) => {
      const payload = kept[i] ?? read[next++]?.payload;
      if (!payload) return undefined;
      // Kept if small and still current: the next SUBSCRIBE that matches it needs no read.
      if (!kept[i] && !entry.payload && this.isCurrent(entry) && this.#keepsPayload(entry)) {
        entry.payload = payload;
      }
      return messageOf(entry, payload);
    });
  }

  /**
   * Every retained message with its payload (expired ones included until they are next matched), in
   * batches of at most {@link READ_BATCH}.
   */
  async *readInBatches(): AsyncGenerator<Message[]> {
    const entries = this.#entries();
    for (let start = 0; start < entries.length; start += READ_BATCH) {
      const messages = await this.read(entries.slice(start, start + READ_BATCH));
      yield messages.filter((message) => message !== undefined);
    }
  }

  /** Deletes every retained message but the broker's own `$SYS` ones, publishing nothing. */
  clear(): void {
    for (const { topic } of this.#entries()) {
      if (topic.startsWith("$SYS/")) continue;
      this.set({ topic, payload: new Uint8Array(0), qos: 0, retain: true, properties: {}, publisherId: "" });
    }
  }

  #entries(): RetainedEntry[] {
    const entries: RetainedEntry[] = [];
    const visit = (node: TopicNode) => {
      if (node.entry) entries.push(node.entry);
      node.children?.forEach(visit);
    };
    visit(this.#root);
    return entries;
  }

  /** Retained messages whose topic matches `filter`, dropping the expired ones on the way. */
  match(filter: string, now: number): RetainedEntry[] {
    const found: RetainedEntry[] = [];
    this.#walk(this.#root, filter.split("/"), 0, now, found);
    return found;
  }

  #walk(node: TopicNode, levels: string[], depth: number, now: number, found: RetainedEntry[]): void {
    if (depth === levels.length) {
      this.#keepIfLive(node.entry, now, found);
      return;
    }
    const level = levels[depth];
    if (level === "#") {
      // "a/#" matches "a" itself too [MQTT-4.7.1-2]; at the top, not the $-topics [MQTT-4.7.2-1].
      if (depth > 0) this.#keepIfLive(node.entry, now, found);
      this.#collect(node, depth === 0, now, found);
      return;
    }
    if (level === "+") {
      if (!node.children) return;
      for (const [name, child] of node.children) {
        if (depth === 0 && name.startsWith("$")) continue;
        this.#walk(child, levels, depth + 1, now, found);
      }
      return;
    }
    const child = node.children?.get(level);
    if (child) this.#walk(child, levels, depth + 1, now, found);
  }

  /** Every message below `node`. */
  #collect(node: TopicNode, skipSystem: boolean, now: number, found: RetainedEntry[]): void {
    if (!node.children) return;
    for (const [name, child] of node.children) {
      if (skipSystem && name.startsWith("$")) continue;
      this.#keepIfLive(child.entry, now, found);
      this.#collect(child, false, now, found);
    }
  }

  #keepIfLive(entry: RetainedEntry | undefined, now: number, found: RetainedEntry[]): void {
    if (!entry) return;
    if (entry.expiresAt !== undefined && entry.expiresAt <= now) this.#delete(entry.topic);
    else found.push(entry);
  }

  #find(topic: string): TopicNode | undefined {
    let node: TopicNode | undefined = this.#root;
    for (const level of topic.split("/")) {
      node = node.children?.get(level);
      if (!node) return undefined;
    }
    return node;
  }

  /** Removes the topic's message and the levels that no longer lead to any. */
  #delete(topic: string): void {
    const path: TopicNode[] = [this.#root];
    const levels = topic.split("/");
    for (const level of levels) {
      const next = path[path.length - 1].children?.get(level);
      if (!next) return;
      path.push(next);
    }
    const node = path[path.length - 1];
    if (!node.entry) return;
    this.#forget(node.entry);
    node.entry = undefined;
    for (let depth = levels.length; depth > 0; depth--) {
      const child = path[depth];
      if (child.entry || child.children?.size) return;
      path[depth - 1].children!.delete(levels[depth - 1]);
    }
  }
}

/** The message to send for a retained entry: retained, with the payload given. */
export function messageOf(entry: RetainedEntry, payload: Uint8Array): Message {
  const { topic, qos, properties, publisherId, expiresAt } = entry;
  const message: Message = { topic, payload, qos, retain: true, properties, publisherId };
  if (expiresAt !== undefined) message.expiresAt = expiresAt;
  return message;
}
