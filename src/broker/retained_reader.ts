import type { QoS } from "../codec/types.ts";
import { Fifo } from "../session/fifo.ts";
import { estimatedBytes } from "../session/outbound.ts";
import type { Delivery, Message } from "../session/types.ts";
import type { RetainedEntry } from "./retained.ts";

/**
 * How many retained messages one read from the store takes for a subscriber, at most: its payloads wait
 * in memory until sent, so the page is also capped by the room the client's socket has
 * (mqtt.max_outbound_bytes), and the next page is read only once the client took this one (see
 * Broker.#sendRetained). `maxPending`: how many matches may wait to be read for one client, whatever the
 * retained count (about 5 MB of records).
 */
export const RETAINED_PAGE = { maxEntries: 1000, maxBytes: 1024 * 1024, maxPending: 100_000 } as const;

/** A retained message a SUBSCRIBE matched, waiting to be read from the store and sent. */
export interface PendingRetained {
  entry: RetainedEntry;
  grantedQos: QoS;
  subscriptionIdentifiers?: number[];
}

/**
 * One session's retained messages that SUBSCRIBEs matched and that are not sent yet, in the order they
 * were matched, while their payloads are read from the store a page at a time. A live message on a topic
 * whose retained message still waits is held back until that one is sent: the retained message is older
 * and must not overtake it. (A live message that replaces or deletes the retained one makes it stale: the
 * broker drops it instead of sending it, see RetainedService.isCurrent.)
 */
export class RetainedReader {
  readonly #pending = new Fifo<PendingRetained>();
  /** Per topic: how many of its retained messages wait (overlapping filters can match one twice). */
  readonly #waiting = new Map<string, number>();
  /** Live deliveries on a waiting topic, in arrival order. */
  readonly #held = new Map<string, Delivery[]>();
  #heldCount = 0;
  /** True while a page is being read (one at a time). */
  reading = false;

  /** True when nothing waits any more: no retained message, no page being read. */
  get done(): boolean {
    return this.#pending.length === 0 && !this.reading;
  }

  add(pending: PendingRetained): void {
    this.#pending.push(pending);
    const topic = pending.entry.topic;
    this.#waiting.set(topic, (this.#waiting.get(topic) ?? 0) + 1);
  }

  /** Retained messages waiting to be read, not counting a page being read. */
  get pendingCount(): number {
    return this.#pending.length;
  }

  /** Whether a live message on `topic` must wait: a retained message of that topic is still to be sent. */
  waits(topic: string): boolean {
    return this.#waiting.has(topic);
  }

  /** Live deliveries held now, over all topics. */
  get heldCount(): number {
    return this.#heldCount;
  }

  /**
   * Holds a live delivery whose topic has a retained message waiting (see {@link waits}). `keep` makes a
   * copy of the message fit to be kept a while (not a view of the decoder's shared blocks). Returns the
   * delivery held: a new one with that copy (other sessions may hold the one given), or the one given.
   */
  hold(delivery: Delivery, keep: (message: Message) => Message): Delivery {
    const topic = delivery.message.topic;
    this.#heldCount++;
    const message = keep(delivery.message);
    const kept = message === delivery.message ? delivery : { ...delivery, message };
    const held = this.#held.get(topic);
    if (held) held.push(kept);
    else this.#held.set(topic, [kept]);
    return kept;
  }

  /** The next page to read: at least one message, then as many as the bounds allow. */
  nextPage(maxEntries: number, maxBytes: number): PendingRetained[] {
    const page: PendingRetained[] = [];
    let bytes = 0;
    for (let next = this.#pending.peek(); next !== undefined; next = this.#pending.peek()) {
      // Counted as the broker counts a message against the socket's room, so that a page fits the room.
      const size = estimatedBytes(next.entry.topic.length, next.entry.payloadBytes);
      if (page.length > 0 && (page.length >= maxEntries || bytes + size > maxBytes)) break;
      page.push(this.#pending.shift()!);
      bytes += size;
    }
    return page;
  }

  /** A page read failed: its messages wait again, first, for the next attempt. */
  putBack(page: PendingRetained[]): void {
    const rest = this.#pending.toArray();
    while (this.#pending.length > 0) this.#pending.shift();
    for (const pending of [...page, ...rest]) this.#pending.push(pending);
  }

  /**
   * A page's retained message was sent (or dropped as stale): the live deliveries held behind it, once no
   * other retained message of its topic waits.
   */
  settle(pending: PendingRetained): Delivery[] | undefined {
    const topic = pending.entry.topic;
    const left = this.#waiting.get(topic)! - 1;
    if (left > 0) {
      this.#waiting.set(topic, left);
      return undefined;
    }
    this.#waiting.delete(topic);
    const held = this.#held.get(topic);
    this.#held.delete(topic);
    if (held) this.#heldCount -= held.length;
    return held;
  }
}
