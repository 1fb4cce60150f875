/**
 * A first-in first-out list with O(1) `shift`: an array and the index of its head. `Array.prototype.shift`
 * is O(1) only while V8 can move the array's start in place, which it cannot during incremental marking;
 * a session's queue of a thousand deliveries then cost a copy of the rest per delivery.
 */
export class Fifo<T> {
  #items: (T | undefined)[] = [];
  #head = 0;

  get length(): number {
    return this.#items.length - this.#head;
  }

  push(item: T): void {
    this.#items.push(item);
  }

  /** The oldest item, or undefined when empty. */
  peek(): T | undefined {
    return this.#items[this.#head];
  }

  /** Removes and returns the oldest item, or undefined when empty. */
  shift(): T | undefined {
    const items = this.#items;
    if (this.#head === items.length) return undefined;
    const item = items[this.#head];
    items[this.#head++] = undefined; // not kept alive by the list
    if (this.#head === items.length) {
      // Empty again: start over at the front, keeping the array's storage.
      while (items.length > 0) items.pop();
      this.#head = 0;
    } else if (this.#head >= COMPACT_AT && this.#head * 2 >= items.length) {
      items.splice(0, this.#head); // amortised O(1): at most once per COMPACT_AT shifts
      this.#head = 0;
    }
    return item;
  }

  /** The items oldest first, as a new array. */
  toArray(): T[] {
    return this.#items.slice(this.#head) as T[];
  }

  [Symbol.iterator](): Iterator<T> {
    return (this.#items.slice(this.#head) as T[])[Symbol.iterator]();
  }
}

/** Shifted slots are dropped from the front once there are this many and they are half the array. */
const COMPACT_AT = 1024;
