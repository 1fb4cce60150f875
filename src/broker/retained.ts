import type { Message } from "../session/types.ts";
import { topicMatches } from "../topic/mod.ts";

/** Retained messages by topic: a new one replaces the old, an empty payload deletes it [MQTT-3.3.1-10/11]. */
export class RetainedStore {
  readonly #byTopic = new Map<string, Message>();

  get size(): number {
    return this.#byTopic.size;
  }

  /** Stores or deletes the retained message of `message.topic`. */
  set(message: Message): void {
    if (message.payload.byteLength === 0) this.#byTopic.delete(message.topic);
    else {this.#byTopic.set(message.topic, {
        ...message,
        payload: message.payload.slice(),
        packet: undefined,
      });}
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
