/**
 * The QoS 1/2 deliveries in flight, by packet id, iterated in the order they were sent (as a Map would),
 * each with a small number its owner keeps beside it (its mark: the session's QoS and stage), so that an
 * acknowledgement is checked without reading the entry itself, which may be far off in memory.
 * A Map cost an insert and a delete per message, and V8's hash table reallocates itself every hundred or
 * so of those: about 45 bytes per delivery. Here each entry sits in a slot picked by its packet id's low
 * bits with the number of its send; the send order is found by sorting those numbers when the entries are
 * iterated (a client's reconnect, a session's record), not kept per message: a list of ids in send order
 * cost a fan-out 5 % of its CPU to keep.
 */
export class InflightTable<T> implements ReadonlyMap<number, T> {
  /** By slot (packet id & mask): the entry, its mark, its packet id (0: free), and when it was sent. */
  #entries: (T | undefined)[] = [];
  #marks: number[] = [];
  #ids: number[] = [];
  #sends: number[] = [];
  #mask = -1;
  #size = 0;
  /** The number the next entry's send gets: they only grow. */
  #nextSend = 0;

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

  /** The mark set with the entry under `packetId`, or -1 when there is none. */
  markOf(packetId: number): number {
    return this.has(packetId) ? this.#marks[packetId & this.#mask] : -1;
  }

  /** Changes the mark of the entry under `packetId` (which must be there). */
  setMark(packetId: number, mark: number): void {
    this.#marks[packetId & this.#mask] = mark;
  }

  /**
   * Adds an entry as the last sent, with its mark (a small integer); an entry already under `packetId` is
   * replaced in its place.
   */
  set(packetId: number, entry: T, mark = 0): this {
    if (this.has(packetId)) {
      this.#entries[packetId & this.#mask] = entry;
      this.#marks[packetId & this.#mask] = mark;
      return this;
    }
    // At most half the slots in use: ids taken in turn then never meet an occupied slot.
    while (this.#mask < 0 || (this.#size + 1) * 2 > this.#mask + 1 || !this.canTake(packetId)) this.#grow();
    const slot = packetId & this.#mask;
    this.#entries[slot] = entry;
    this.#marks[slot] = mark;
    this.#ids[slot] = packetId;
    this.#sends[slot] = this.#nextSend++;
    this.#size++;
    return this;
  }

  delete(packetId: number): boolean {
    if (!this.has(packetId)) return false;
    this.#free(packetId & this.#mask);
    return true;
  }

  /**
   * Removes and returns the entry under `packetId` when its mark is `mark`; otherwise changes nothing and
   * returns undefined. (An acknowledgement's one look at the table: its slot's id and mark, then the entry.)
   */
  take(packetId: number, mark: number): T | undefined {
    if (packetId === 0 || this.#mask < 0) return undefined;
    const slot = packetId & this.#mask;
    if (this.#ids[slot] !== packetId || this.#marks[slot] !== mark) return undefined;
    const entry = this.#entries[slot];
    this.#free(slot);
    return entry;
  }

  /** The entries there are when it is called, in send order (the caller may delete while it iterates). */
  *entries(): MapIterator<[number, T]> {
    const slots: number[] = [];
    for (let slot = 0; slot < this.#ids.length; slot++) {
      if (this.#ids[slot] !== 0) slots.push(slot);
    }
    const sends = this.#sends;
    slots.sort((a, b) => sends[a] - sends[b]);
    const live = slots.map((slot): [number, T] => [this.#ids[slot], this.#entries[slot]!]);
    yield* live;
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

  #free(slot: number): void {
    this.#entries[slot] = undefined;
    this.#ids[slot] = 0;
    this.#size--;
  }

  /**
   * Twice the slots (FIRST_SLOTS at first), the entries moved to theirs. Few at first: a client that
   * connects for a message or two (a drain) makes the table's four arrays once, and a table never shrinks.
   */
  #grow(): void {
    const entries = this.#entries;
    const marks = this.#marks;
    const ids = this.#ids;
    const sends = this.#sends;
    const capacity = this.#mask < 0 ? FIRST_SLOTS : (this.#mask + 1) * 2;
    // written slot by slot: fill(undefined) allocates besides the array (fill(0) does not)
    this.#entries = new Array(capacity);
    for (let i = 0; i < capacity; i++) this.#entries[i] = undefined;
    this.#marks = new Array(capacity).fill(0);
    this.#ids = new Array(capacity).fill(0);
    this.#sends = new Array(capacity).fill(0);
    this.#mask = capacity - 1;
    for (let i = 0; i < ids.length; i++) {
      const packetId = ids[i];
      if (packetId === 0) continue;
      const slot = packetId & this.#mask;
      this.#entries[slot] = entries[i];
      this.#marks[slot] = marks[i];
      this.#ids[slot] = packetId;
      this.#sends[slot] = sends[i];
    }
  }
}

/** Slots of a table's first growth: room for two deliveries in flight (at most half the slots are used). */
const FIRST_SLOTS = 4;
