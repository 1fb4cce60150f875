import type { Message } from "../session/types.ts";
import type { StoredMessage } from "../storage/port.ts";
import { fromStored, type Persistence } from "./persistence.ts";

/** Caps on what the retained store holds; 0 = unlimited. */
export interface RetainedLimits {
  maxMessages: number;
  /** Payload and topic bytes. */
  maxBytes: number;
}

/** One topic level; `message` is the retained message of the topic that ends here. */
interface TopicNode {
  children?: Map<string, TopicNode>;
  message?: Message;
}

const UNLIMITED: RetainedLimits = { maxMessages: 0, maxBytes: 0 };

/** What a retained message costs the store: the payload copy and its topic. */
function sizeOf(message: Message): number {
  return message.payload.byteLength + message.topic.length;
}

/**
 * Retained messages by topic: a new one replaces the old, an empty payload deletes it [MQTT-3.3.1-10/11].
 * Kept in a tree of topic levels, so a SUBSCRIBE walks only the branches its filter can match: its cost
 * follows what it matches, not how many messages are retained. Bounded by {@link RetainedLimits}. Every
 * change is written through the persistence; `restore` rebuilds it at start.
 */
export class RetainedService {
  readonly #root: TopicNode = {};
  #size = 0;
  #bytes = 0;

  constructor(
    private readonly persistence: Persistence,
    private readonly limits: RetainedLimits = UNLIMITED,
  ) {}

  /** Retained messages held. */
  get size(): number {
    return this.#size;
  }

  /** Payload and topic bytes held. */
  get bytes(): number {
    return this.#bytes;
  }

  /**
   * Whether `set(message)` would store it: a deletion or a replacement that fits always does; a new topic,
   * or a larger payload, only within the limits.
   */
  admits(message: Message): boolean {
    if (message.payload.byteLength === 0) return true;
    const { maxMessages, maxBytes } = this.limits;
    const existing = this.#find(message.topic)?.message;
    if (!existing && maxMessages > 0 && this.#size >= maxMessages) return false;
    const growth = sizeOf(message) - (existing ? sizeOf(existing) : 0);
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
    if (!this.#put(message)) return false;
    if (!stored) this.persistence.retained(message);
    return true;
  }

  /** Rebuilds the store at start; what a lowered limit no longer admits is left out (and counted). */
  restore(stored: StoredMessage[]): number {
    let refused = 0;
    for (const message of stored) if (!this.#put(fromStored(message))) refused++;
    return refused;
  }

  #put(message: Message): boolean {
    if (!this.admits(message)) return false;
    let node = this.#root;
    for (const level of message.topic.split("/")) {
      const children = node.children ??= new Map();
      let child = children.get(level);
      if (!child) children.set(level, child = {});
      node = child;
    }
    if (node.message) {
      this.#bytes -= sizeOf(node.message);
      this.#size--;
    }
    // Its own payload: the received one is a view into a shared decoder block.
    node.message = { ...message, payload: message.payload.slice(), frame: undefined };
    this.#bytes += sizeOf(node.message);
    this.#size++;
    return true;
  }

  /** Every retained message (expired ones included until they are next matched). */
  all(): Message[] {
    const found: Message[] = [];
    const visit = (node: TopicNode) => {
      if (node.message) found.push(node.message);
      node.children?.forEach(visit);
    };
    visit(this.#root);
    return found;
  }

  /** Retained messages whose topic matches `filter`, dropping the expired ones on the way. */
  match(filter: string, now: number): Message[] {
    const found: Message[] = [];
    this.#walk(this.#root, filter.split("/"), 0, now, found);
    return found;
  }

  #walk(node: TopicNode, levels: string[], depth: number, now: number, found: Message[]): void {
    if (depth === levels.length) {
      this.#keepIfLive(node.message, now, found);
      return;
    }
    const level = levels[depth];
    if (level === "#") {
      // "a/#" matches "a" itself too [MQTT-4.7.1-2]; at the top, not the $-topics [MQTT-4.7.2-1].
      if (depth > 0) this.#keepIfLive(node.message, now, found);
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
  #collect(node: TopicNode, skipSystem: boolean, now: number, found: Message[]): void {
    if (!node.children) return;
    for (const [name, child] of node.children) {
      if (skipSystem && name.startsWith("$")) continue;
      this.#keepIfLive(child.message, now, found);
      this.#collect(child, false, now, found);
    }
  }

  #keepIfLive(message: Message | undefined, now: number, found: Message[]): void {
    if (!message) return;
    if (message.expiresAt !== undefined && message.expiresAt <= now) this.#delete(message.topic);
    else found.push(message);
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
    if (!node.message) return;
    this.#bytes -= sizeOf(node.message);
    this.#size--;
    node.message = undefined;
    for (let depth = levels.length; depth > 0; depth--) {
      const child = path[depth];
      if (child.message || child.children?.size) return;
      path[depth - 1].children!.delete(levels[depth - 1]);
    }
  }
}
