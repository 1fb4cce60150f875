/**
 * A first-in first-out list with O(1) `push` and `shift` and no allocation at a steady length: a ring of
 * slots (a power of two of them), the index of its head and its length. It doubles when full; emptied, a
 * ring of more than `keepWhenEmpty` slots ({@link KEEP_WHEN_EMPTY} unless told) is let go, so an idle
 * session keeps no burst's array.
 * (An array and the index of its head, compacted by `splice` every thousand shifts or so, allocated about
 * 20 bytes per delivery in its growth and compaction; `Array.prototype.shift` is O(1) only while V8 can move
 * the array's start in place, which it cannot during incremental marking.)
 */
export class Fifo<T> {
  #items: (T | undefined)[] = NO_ITEMS;
  #head = 0;
  #length = 0;

  /** `keepWhenEmpty`: the most slots an emptied ring keeps (see the class comment). */
  constructor(private readonly keepWhenEmpty = KEEP_WHEN_EMPTY) {}

  get length(): number {
    return this.#length;
  }

  push(item: T): void {
    const items = this.#items;
    if (this.#length === items.length) return this.#grow(item);
    items[(this.#head + this.#length) & (items.length - 1)] = item;
    this.#length++;
  }

  /** The oldest item, or undefined when empty. */
  peek(): T | undefined {
    return this.#length === 0 ? undefined : this.#items[this.#head];
  }

  /** Removes and returns the oldest item, or undefined when empty. */
  shift(): T | undefined {
    if (this.#length === 0) return undefined;
    const items = this.#items;
    const item = items[this.#head];
    items[this.#head] = undefined; // not kept alive by the list
    this.#head = (this.#head + 1) & (items.length - 1);
    if (--this.#length === 0) {
      this.#head = 0;
      if (items.length > this.keepWhenEmpty) this.#items = NO_ITEMS;
    }
    return item;
  }

  /** The items oldest first, as a new array. */
  toArray(): T[] {
    const items = this.#items;
    const mask = items.length - 1;
    const array: T[] = [];
    for (let i = 0; i < this.#length; i++) array.push(items[(this.#head + i) & mask] as T);
    return array;
  }

  [Symbol.iterator](): Iterator<T> {
    return this.toArray()[Symbol.iterator]();
  }

  /**
   * Twice the slots (at least {@link MIN_SLOTS}), the items moved to the front in order, then `item`. The
   * ring is made at its size and written slot by slot: pushed into, an array's storage grows on the way
   * (1.6× the bytes for 8 slots), and `fill(undefined)` allocates besides (2.4×).
   */
  #grow(item: T): void {
    const items = this.#items;
    const mask = items.length - 1;
    const capacity = Math.max(MIN_SLOTS, items.length * 2);
    const grown = new Array<T | undefined>(capacity);
    for (let i = 0; i < this.#length; i++) grown[i] = items[(this.#head + i) & mask];
    grown[this.#length] = item;
    for (let i = this.#length + 1; i < capacity; i++) grown[i] = undefined;
    this.#items = grown;
    this.#head = 0;
    this.#length++;
  }
}

/** The ring of an empty list that never held anything, or was let go: never written to (push grows first). */
const NO_ITEMS: never[] = [];
const MIN_SLOTS = 8;
/** Emptied, a ring keeps its slots up to this many: a session whose window often empties does not regrow. */
const KEEP_WHEN_EMPTY = 16;
