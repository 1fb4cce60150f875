import type { Message } from "../session/types.ts";
import type { StoredMessage } from "../storage/port.ts";
import { topicMatches } from "../topic/mod.ts";
import { fromStored, type Persistence } from "./persistence.ts";

/**
 * Retained messages by topic: a new one replaces the old, an empty payload deletes it [MQTT-3.3.1-10/11].
 * Every change is written through the persistence; `restore` rebuilds it at start.
 */
export class RetainedService {
  readonly #byTopic = new Map<string, Message>();

  constructor(private readonly persistence: Persistence) {}

  get size(): number {
    return this.#byTopic.size;
  }

  /** Stores or deletes the retained message of `message.topic`, wherever it was published. */
  set(message: Message): void {
    if (message.payload.byteLength === 0) this.#byTopic.delete(message.topic);
    else {
      // Its own payload: the published one is a view into the decoder's shared blocks.
      this.#byTopic.set(message.topic, { ...message, payload: message.payload.slice(), packet: undefined });
    }
    this.persistence.retained(message);
  }

  /** Every retained message (expired ones included until they are next matched). */
  all(): Message[] {
    return [...this.#byTopic.values()];
  }

  restore(stored: StoredMessage[]): void {
    for (const message of stored) this.#byTopic.set(message.topic, fromStored(message));
  }

  /** Retained messages whose topic matches `filter`, dropping the expired ones on the way. */
  match(filter: string, now: number): Message[] {
    const found: Message[] = [];
    const exact = !filter.includes("+") && !filter.includes("#");
    if (exact) {
      const message = this.#byTopic.get(filter);
      if (message) this.#keepIfLive(message, now, found);
      return found;
    }
    for (const message of this.#byTopic.values()) {
      if (topicMatches(filter, message.topic)) this.#keepIfLive(message, now, found);
    }
    return found;
  }

  #keepIfLive(message: Message, now: number, found: Message[]): void {
    if (message.expiresAt !== undefined && message.expiresAt <= now) this.#byTopic.delete(message.topic);
    else found.push(message);
  }
}
