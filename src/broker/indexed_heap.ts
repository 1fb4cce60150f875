/** An item of an {@link IndexedHeap}: it carries its own position, so it can be removed without a search. */
export interface HeapItem {
  /** Position in the heap; -1 while not in it. */
  heapIndex: number;
}

/** A binary min-heap whose items know their place: removing any item is O(log n), with no map beside it. */
export class IndexedHeap<T extends HeapItem> {
  readonly #items: T[] = [];

  /** `earlier(a, b)`: a comes out before b. */
  constructor(private readonly earlier: (a: T, b: T) => boolean) {}

  get size(): number {
    return this.#items.length;
  }

  /** The item that comes out first, if any. */
  peek(): T | undefined {
    return this.#items[0];
  }

  push(item: T): void {
    item.heapIndex = this.#items.length;
    this.#items.push(item);
    this.#up(item.heapIndex);
  }

  /** Takes `item` out; false when it was not in. */
  remove(item: T): boolean {
    const index = item.heapIndex;
    if (index < 0 || this.#items[index] !== item) return false;
    const items = this.#items;
    item.heapIndex = -1;
    const last = items.pop()!;
    if (last === item) return true;
    items[index] = last;
    last.heapIndex = index;
    this.#up(index);
    this.#down(last.heapIndex);
    return true;
  }

  #up(index: number): void {
    const items = this.#items;
    while (index > 0) {
      const parent = (index - 1) >> 1;
      if (!this.earlier(items[index], items[parent])) break;
      this.#swap(index, parent);
      index = parent;
    }
  }

  #down(index: number): void {
    const items = this.#items;
    for (;;) {
      const left = 2 * index + 1, right = left + 1;
      let first = index;
      if (left < items.length && this.earlier(items[left], items[first])) first = left;
      if (right < items.length && this.earlier(items[right], items[first])) first = right;
      if (first === index) return;
      this.#swap(index, first);
      index = first;
    }
  }

  #swap(a: number, b: number): void {
    const items = this.#items;
    const item = items[a];
    items[a] = items[b];
    items[b] = item;
    items[a].heapIndex = a;
    items[b].heapIndex = b;
  }
}
