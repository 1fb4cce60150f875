/**
 * A Map and a Set that allocate their hash table on the first insert. V8 allocates an empty Map's or Set's
 * table up front (about 200 bytes with the object), and most sessions hold nothing in these for most of their
 * life: an offline session has no message in flight, few clients ever leave an inbound QoS 2 id unreleased.
 * For 100,000 offline sessions the two below save about 40 MB (docs/benchmarks.md, "Big queues").
 * The table is kept once allocated (until `clear`), so a busy session does not allocate it again and again.
 */

const EMPTY_MAP: ReadonlyMap<unknown, unknown> = new Map<unknown, unknown>();
const EMPTY_SET: ReadonlySet<unknown> = new Set<unknown>();

export class LazyMap<K, V> implements Iterable<[K, V]> {
  #map: Map<K, V> | undefined;

  get size(): number {
    return this.#map?.size ?? 0;
  }

  get(key: K): V | undefined {
    return this.#map?.get(key);
  }

  has(key: K): boolean {
    return this.#map?.has(key) ?? false;
  }

  set(key: K, value: V): this {
    (this.#map ??= new Map()).set(key, value);
    return this;
  }

  delete(key: K): boolean {
    return this.#map?.delete(key) ?? false;
  }

  /** Empties the map and frees its table. */
  clear(): void {
    this.#map = undefined;
  }

  keys(): MapIterator<K> {
    return (this.#map ?? (EMPTY_MAP as ReadonlyMap<K, V>)).keys();
  }

  values(): MapIterator<V> {
    return (this.#map ?? (EMPTY_MAP as ReadonlyMap<K, V>)).values();
  }

  entries(): MapIterator<[K, V]> {
    return (this.#map ?? (EMPTY_MAP as ReadonlyMap<K, V>)).entries();
  }

  [Symbol.iterator](): MapIterator<[K, V]> {
    return this.entries();
  }
}

export class LazySet<T> implements Iterable<T> {
  #set: Set<T> | undefined;

  get size(): number {
    return this.#set?.size ?? 0;
  }

  has(value: T): boolean {
    return this.#set?.has(value) ?? false;
  }

  add(value: T): this {
    (this.#set ??= new Set()).add(value);
    return this;
  }

  delete(value: T): boolean {
    return this.#set?.delete(value) ?? false;
  }

  /** Empties the set and frees its table. */
  clear(): void {
    this.#set = undefined;
  }

  values(): SetIterator<T> {
    return (this.#set ?? (EMPTY_SET as ReadonlySet<T>)).values();
  }

  [Symbol.iterator](): SetIterator<T> {
    return this.values();
  }
}
