/**
 * The storage adapter without persistence: every concern in maps. A {@link MemoryState} outlives the
 * adapter, so a second adapter over the same state behaves like the store after a restart (recovery
 * rules included); that is how the conformance suite runs against it.
 */
import type {
  DeferredWrites,
  MessageRef,
  QueueEntry,
  QueuePage,
  QueuePosition,
  QueueRead,
  QueueTotals,
  StorageAdapter,
  StorageHealth,
  StorageSnapshot,
  StoredDelivery,
  StoredMessage,
  StoredSession,
  StoredSubscription,
  StoredWill,
} from "../port.ts";

/** What the memory adapter holds; pass it to another adapter to simulate a restart in-process. */
export interface MemoryState {
  sessions: Map<string, StoredSession>;
  /** Per client, per topic filter. */
  subscriptions: Map<string, Map<string, StoredSubscription>>;
  messages: Map<MessageRef, StoredMessage>;
  nextMessageId: number;
  /** Per client, per message id; a Map keeps first-insertion order, which is the delivery order. */
  queues: Map<string, Map<MessageRef, PositionedEntry>>;
  /** The next entry's position: grows with every entry added, so a paged read can go on after one. */
  nextPosition: number;
  /** Number of queue entries referring to each message. */
  references: Map<MessageRef, number>;
  awaitingRelease: Map<string, Set<number>>;
  retained: Map<string, StoredMessage>;
  wills: Map<string, StoredWill>;
  meta: Map<string, string>;
}

/** An empty state, to share between the adapters of one simulated broker lifetime and its restarts. */
export function createMemoryState(): MemoryState {
  return {
    sessions: new Map(),
    subscriptions: new Map(),
    messages: new Map(),
    nextMessageId: 1,
    queues: new Map(),
    nextPosition: 1,
    references: new Map(),
    awaitingRelease: new Map(),
    retained: new Map(),
    wills: new Map(),
    meta: new Map(),
  };
}

/** Creates an adapter over `state` (a fresh one by default); `flush()` resolves at once. */
export function createMemoryStorage(
  state: MemoryState = createMemoryState(),
  options: MemoryStorageOptions = {},
): StorageAdapter {
  return new MemoryStorage(state, options.now ?? (() => Date.now()));
}

export interface MemoryStorageOptions {
  /** The payload nursery's clock, in ms (the wall clock by default); tests pass their own. */
  now?: () => number;
}

/**
 * How long an appended payload may stay a view of the caller's buffer before it gets a copy of its own.
 * Most messages to a connected persistent session are acknowledged within milliseconds and are never
 * copied (a buffer per message was about a quarter of the broker's CPU on QoS 1 10→10 to persistent
 * sessions). Appends are grouped by periods of this length; at the first append of a period, the messages of
 * the one before last that are still stored get their copy (all of them at stop). A message so stays a view
 * for one to two periods, and what the stored ones hold of the caller's buffers (32 KiB slabs of the
 * codec's, see codec/bytes.ts) is at most two periods' input.
 */
export const PAYLOAD_NURSERY_MS = 100;

/**
 * The fields of `message` the store keeps, read one by one: not its payload's source, which is the caller's
 * to reuse (see StoredMessage.payloadSource), and not by a spread, which V8 runs on a slow path for the
 * broker's message, whose `payload` is a getter (about 2.5 µs and 140 B more per append).
 */
function keptCopy(message: StoredMessage): StoredMessage {
  const { topic, payload, qos, retain, properties, publisherId, expiresAt } = message;
  const kept: StoredMessage = { topic, payload, qos, retain, properties, publisherId };
  if (expiresAt !== undefined) kept.expiresAt = expiresAt;
  return kept;
}

/** A payload over at least half of its buffer is kept as it is: a copy would save less than it costs. */
const ownsMostOf = (payload: Uint8Array): boolean => payload.byteLength * 2 >= payload.buffer.byteLength;

/**
 * What every `flush()` returns: nothing is ever pending. One promise, not a new one per call: the broker
 * observes each distinct flush (its latency metric, the acknowledgements waiting for it), which a new
 * promise per PUBLISH to a persistent session made a cost per message.
 */
const FLUSHED: Promise<void> = Promise.resolve();

/** A message whose Message Expiry Interval has run out is never delivered, so recovery drops it. */
const isExpired = (message: StoredMessage, now: number): boolean =>
  message.expiresAt !== undefined && message.expiresAt <= now;

// The broker may keep mutating the objects it passes in, so the state keeps copies of its own.
const copyEntry = (entry: QueueEntry): QueueEntry =>
  entry.subscriptionIdentifiers
    ? { ...entry, subscriptionIdentifiers: [...entry.subscriptionIdentifiers] }
    : { ...entry };

/** A queue entry and where it stands in its queue (kept when the entry is saved again). */
interface PositionedEntry {
  entry: QueueEntry;
  position: QueuePosition;
}

class MemoryStorage implements StorageAdapter {
  #phase: "new" | "started" | "stopped" = "new";
  #dirty = false;
  /** Messages of this period and the one before whose payload is a view of the caller's buffer. */
  #young: MessageRef[] = [];
  #older: MessageRef[] = [];
  #periodStart = -Infinity;

  constructor(private readonly state: MemoryState, private readonly now: () => number) {}

  get dirty(): boolean {
    return this.#dirty;
  }

  start(): Promise<StorageSnapshot> {
    if (this.#phase !== "new") {
      return Promise.reject(new Error(`memory storage cannot start when ${this.#phase}`));
    }
    this.#phase = "started";
    this.#recover(Date.now());
    return Promise.resolve(this.#snapshot());
  }

  stop(): Promise<void> {
    this.#ownPayloads(this.#older);
    this.#ownPayloads(this.#young);
    this.#phase = "stopped";
    this.#dirty = false;
    return Promise.resolve();
  }

  health(): StorageHealth {
    if (this.#phase === "started") return { ok: true, detail: "memory storage (nothing persists a restart)" };
    return { ok: false, detail: this.#phase === "new" ? "not started" : "stopped" };
  }

  flush(): Promise<void> {
    this.#dirty = false;
    return FLUSHED;
  }

  /** Nothing here is written later: the deferred mutations are issued at once. */
  defer(writes: DeferredWrites): void {
    writes.write();
  }

  saveSession(session: StoredSession): void {
    this.#mutate().sessions.set(session.clientId, { ...session });
  }

  deleteSession(clientId: string): void {
    const state = this.#mutate();
    state.sessions.delete(clientId);
    state.subscriptions.delete(clientId);
    state.awaitingRelease.delete(clientId);
    for (const messageId of state.queues.get(clientId)?.keys() ?? []) this.#release(messageId);
    state.queues.delete(clientId);
  }

  saveSubscription(subscription: StoredSubscription): void {
    const state = this.#mutate();
    const byFilter = state.subscriptions.get(subscription.clientId) ?? new Map<string, StoredSubscription>();
    byFilter.set(subscription.topicFilter, { ...subscription });
    state.subscriptions.set(subscription.clientId, byFilter);
  }

  deleteSubscription(clientId: string, topicFilter: string): void {
    this.#mutate().subscriptions.get(clientId)?.delete(topicFilter);
  }

  appendMessage(message: StoredMessage): MessageRef {
    const state = this.#mutate();
    const id = state.nextMessageId++ as MessageRef;
    const kept = keptCopy(message);
    state.messages.set(id, kept);
    if (!ownsMostOf(kept.payload)) {
      // A clock set back starts a period too: the nursery would otherwise wait for it to catch up. (Not
      // performance.now(): a call into the runtime, 4 % of the broker's CPU at one append per message.)
      const now = this.now();
      const elapsed = now - this.#periodStart;
      if (elapsed >= PAYLOAD_NURSERY_MS || elapsed < 0) this.#nextPeriod(now);
      this.#young.push(id);
    }
    return id;
  }

  saveQueueEntry(entry: QueueEntry): void {
    const state = this.#mutate();
    let queue = state.queues.get(entry.clientId);
    if (!queue) state.queues.set(entry.clientId, queue = new Map());
    const existing = queue.get(entry.messageId);
    if (existing) {
      existing.entry = copyEntry(entry);
      return;
    }
    state.references.set(entry.messageId, (state.references.get(entry.messageId) ?? 0) + 1);
    queue.set(entry.messageId, { entry: copyEntry(entry), position: state.nextPosition++ as QueuePosition });
  }

  deleteQueueEntry(clientId: string, messageId: MessageRef): void {
    this.#mutate();
    this.#removeEntry(clientId, messageId);
  }

  deleteUnreferencedMessage(messageId: MessageRef): void {
    const state = this.#mutate();
    if (!state.references.get(messageId)) state.messages.delete(messageId);
  }

  deleteOldestQueued(clientId: string): void {
    this.#mutate();
    for (const { entry } of this.state.queues.get(clientId)?.values() ?? []) {
      if (entry.stage !== "queued") continue;
      this.#removeEntry(clientId, entry.messageId);
      return;
    }
  }

  readQueue(clientId: string, { after, maxEntries, maxBytes }: QueueRead): Promise<QueuePage> {
    const now = Date.now();
    const deliveries: StoredDelivery[] = [];
    let last: QueuePosition | undefined;
    let looked = 0;
    let bytes = 0;
    // Positions grow in insertion order, so the entries before `after` are the ones skipped here.
    for (const { entry, position } of this.state.queues.get(clientId)?.values() ?? []) {
      if (after !== undefined && position <= after) continue;
      const message = this.state.messages.get(entry.messageId);
      if (!message) continue; // an entry whose message is gone is dropped at the next start
      const size = storedSize(message);
      if (looked === maxEntries || (deliveries.length > 0 && bytes + size > maxBytes)) {
        return Promise.resolve({ deliveries, last, more: true });
      }
      looked++;
      last = position;
      if (entry.stage !== "queued" || !isExpired(message, now)) {
        bytes += size;
        // The stored payload itself: no copy per read (readsOwnPayloads is unset, so nothing frees it).
        deliveries.push({ entry: copyEntry(entry), message: { ...message } });
      }
    }
    return Promise.resolve(
      last === undefined ? { deliveries, more: false } : { deliveries, last, more: false },
    );
  }

  saveMeta(key: string, value: string): void {
    this.#mutate().meta.set(key, value);
  }

  addAwaitingRelease(clientId: string, packetId: number): void {
    const state = this.#mutate();
    const packetIds = state.awaitingRelease.get(clientId) ?? new Set<number>();
    packetIds.add(packetId);
    state.awaitingRelease.set(clientId, packetIds);
  }

  deleteAwaitingRelease(clientId: string, packetId: number): void {
    this.#mutate().awaitingRelease.get(clientId)?.delete(packetId);
  }

  saveRetained(message: StoredMessage): void {
    this.#mutate().retained.set(message.topic, { ...message });
  }

  deleteRetained(topic: string): void {
    this.#mutate().retained.delete(topic);
  }

  readRetained(topics: string[]): Promise<(StoredMessage | undefined)[]> {
    const { retained } = this.state;
    return Promise.resolve(topics.map((topic) => {
      const message = retained.get(topic);
      return message && { ...message };
    }));
  }

  saveWill(will: StoredWill): void {
    this.#mutate().wills.set(will.clientId, { ...will });
  }

  deleteWill(clientId: string): void {
    this.#mutate().wills.delete(clientId);
  }

  #mutate(): MemoryState {
    if (this.#phase !== "started") {
      throw new Error(`memory storage is ${this.#phase}: start it before writing`);
    }
    this.#dirty = true;
    return this.state;
  }

  /** A new nursery period (see {@link PAYLOAD_NURSERY_MS}): the one before last's messages are copied. */
  #nextPeriod(now: number): void {
    const older = this.#older;
    this.#ownPayloads(older);
    this.#older = this.#young;
    this.#young = older;
    this.#periodStart = now;
  }

  /** The messages of `ids` still stored get a payload of their own; `ids` is emptied. */
  #ownPayloads(ids: MessageRef[]): void {
    const { messages } = this.state;
    for (const id of ids) {
      const message = messages.get(id);
      if (message) message.payload = message.payload.slice();
    }
    ids.length = 0;
  }

  #removeEntry(clientId: string, messageId: MessageRef): void {
    if (this.state.queues.get(clientId)?.delete(messageId)) this.#release(messageId);
  }

  /** Drops one reference to a message, and the message with the last one. */
  #release(messageId: MessageRef): void {
    const remaining = (this.state.references.get(messageId) ?? 1) - 1;
    if (remaining > 0) {
      this.state.references.set(messageId, remaining);
      return;
    }
    this.state.references.delete(messageId);
    this.state.messages.delete(messageId);
  }

  /**
   * The embedded store's recovery rules: expired messages go with their entries not yet sent (one sent
   * stays in flight), entries whose message is gone go, and so do messages no entry refers to.
   */
  #recover(now: number): void {
    const { messages, queues, retained } = this.state;
    for (const [id, message] of messages) {
      if (!isExpired(message, now)) continue;
      for (const [clientId, queue] of queues) {
        if (queue.get(id)?.entry.stage === "queued") this.#removeEntry(clientId, id);
      }
    }
    const references = this.state.references;
    for (const [clientId, queue] of queues) {
      for (const id of queue.keys()) if (!messages.has(id)) this.#removeEntry(clientId, id);
    }
    for (const id of messages.keys()) if (!references.has(id)) messages.delete(id);
    for (const [topic, message] of retained) if (isExpired(message, now)) retained.delete(topic);
  }

  #snapshot(): StorageSnapshot {
    const state = this.state;
    return {
      sessions: [...state.sessions.values()].map((session) => ({ ...session })),
      subscriptions: [...state.subscriptions.values()].flatMap((byFilter) =>
        [...byFilter.values()].map((subscription) => ({ ...subscription }))
      ),
      queueTotals: this.#queueTotals(),
      storedMessages: state.messages.size,
      awaitingRelease: [...state.awaitingRelease].flatMap(([clientId, packetIds]) =>
        [...packetIds].map((packetId) => ({ clientId, packetId }))
      ),
      retained: [...state.retained.values()].map(({ payload, ...summary }) => ({
        ...summary,
        payloadBytes: payload.byteLength,
      })),
      wills: [...state.wills.values()].map((will) => ({ ...will })),
      meta: new Map(state.meta),
    };
  }

  #queueTotals(): Map<string, QueueTotals> {
    const totals = new Map<string, QueueTotals>();
    for (const [clientId, queue] of this.state.queues) {
      let entries = 0;
      let bytes = 0;
      for (const { entry } of queue.values()) {
        if (entry.stage !== "queued") continue;
        entries++;
        bytes += storedSize(this.state.messages.get(entry.messageId)!);
      }
      if (entries > 0) totals.set(clientId, { entries, bytes });
    }
    return totals;
  }
}

/** The size a queue counts for a message: what the session's queue limit in bytes measures. */
export function storedSize(message: StoredMessage): number {
  return message.payload.byteLength + message.topic.length;
}
