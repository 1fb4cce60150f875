import { Fifo } from "./fifo.ts";

/**
 * The QoS 1/2 deliveries in flight, by packet id, iterated in the order they were sent (as a Map would).
 * A Map cost an insert and a delete per message, and V8's hash table reallocates itself every hundred or
 * so of those: about 45 bytes per delivery. Here each entry sits in a slot picked by its packet id's low
 * bits, and the order of sends is a list of numbers whose stale ones (acknowledged) are skipped, and
 * dropped once at the front or once they outnumber the live ones.
 */
export class InflightTable<T> implements ReadonlyMap<number, T> {
  /** By slot (packet id & mask): the entry, its packet id (0: free) and its send number. */
  #entries: (T | undefined)[] = [];
  #ids: number[] = [];
  #sends: number[] = [];
  #mask = -1;
  #size = 0;
  #sendCount = 0;
  /** `send number * 65536 + packet id` of every entry set, in send order. */
  #order = new Fifo<number>();

  get size(): number {
    return this.#size;
  }

  /**
   * Whether a new delivery may take `packetId`: it is not in use, and its slot is free. Packet ids are
   * taken in turn, so a slot is taken by another id only while a delivery waits for its acknowledgement
   * for as many sends as there are slots; the caller takes the next id then.
   */
  canTake(packetId: number): boolean {
    return this.#mask < 0 || this.#ids[packetId & this.#mask] === 0;
  }

  has(packetId: number): boolean {
    // 0 marks a free slot: it is no packet id [MQTT-2.2.1-3]
    return packetId !== 0 && this.#mask >= 0 && this.#ids[packetId & this.#mask] === packetId;
  }

  get(packetId: number): T | undefined {
    return this.has(packetId) ? this.#entries[packetId & this.#mask] : undefined;
  }

  /** Adds an entry as the last sent; an entry already under `packetId` is replaced in its place. */
  set(packetId: number, entry: T): this {
    if (this.has(packetId)) {
      this.#entries[packetId & this.#mask] = entry;
      return this;
    }
    // At most half the slots in use: ids taken in turn then never meet an occupied slot.
    while (this.#mask < 0 || (this.#size + 1) * 2 > this.#mask + 1 || !this.canTake(packetId)) this.#grow();
    const slot = packetId & this.#mask;
    const send = ++this.#sendCount;
    this.#entries[slot] = entry;
    this.#ids[slot] = packetId;
    this.#sends[slot] = send;
    this.#order.push(send * 65536 + packetId);
    this.#size++;
    return this;
  }

  delete(packetId: number): boolean {
    if (!this.has(packetId)) return false;
    const slot = packetId & this.#mask;
    this.#entries[slot] = undefined;
    this.#ids[slot] = 0;
    this.#size--;
    const order = this.#order;
    while (order.length > 0 && !this.#live(order.peek()!)) order.shift();
    if (order.length > 2 * this.#size + 64) this.#compact();
    return true;
  }

  *entries(): MapIterator<[number, T]> {
    // Fifo iterates a copy: the caller may delete entries while it iterates (as a Map allows).
    for (const key of this.#order) {
      if (this.#live(key)) {
        const packetId = key % 65536;
        yield [packetId, this.#entries[packetId & this.#mask]!];
      }
    }
  }

  [Symbol.iterator](): MapIterator<[number, T]> {
    return this.entries();
  }

  *keys(): MapIterator<number> {
    for (const [packetId] of this.entries()) yield packetId;
  }

  *values(): MapIterator<T> {
    for (const [, entry] of this.entries()) yield entry;
  }

  forEach(callback: (entry: T, packetId: number, map: ReadonlyMap<number, T>) => void): void {
    for (const [packetId, entry] of this.entries()) callback(entry, packetId, this);
  }

  /** Whether an order key still names the entry in its slot (not acknowledged, its id not taken again). */
  #live(key: number): boolean {
    const packetId = key % 65536;
    const slot = packetId & this.#mask;
    return this.#ids[slot] === packetId && this.#sends[slot] === (key - packetId) / 65536;
  }

  /** Drops the stale keys of the order. */
  #compact(): void {
    const order = new Fifo<number>();
    for (const key of this.#order) if (this.#live(key)) order.push(key);
    this.#order = order;
  }

  /** Twice the slots (16 at first), the entries moved to theirs. */
  #grow(): void {
    const old = { entries: this.#entries, ids: this.#ids, sends: this.#sends };
    const capacity = this.#mask < 0 ? 16 : (this.#mask + 1) * 2;
    this.#entries = new Array(capacity).fill(undefined);
    this.#ids = new Array(capacity).fill(0);
    this.#sends = new Array(capacity).fill(0);
    this.#mask = capacity - 1;
    for (let i = 0; i < old.ids.length; i++) {
      const packetId = old.ids[i];
      if (packetId === 0) continue;
      const slot = packetId & this.#mask;
      this.#entries[slot] = old.entries[i];
      this.#ids[slot] = packetId;
      this.#sends[slot] = old.sends[i];
    }
  }
}
