/**
 * (message slot, client number) → a node (Cancellations' first save of that queue entry), for one window
 * at a time. Cancellations keeps a message's saves in a list while they are few; this table finds an entry's
 * saves among many (a durable fan-out to 1,000 clients: in a list, each delete looked through the saves of
 * all of them).
 *
 * Each slot has a region of its own, open addressing by client number in an arena of typed arrays kept
 * from apply to apply, emptied by starting a new generation. A message's saves sit together: the fan-out's
 * deliveries of one message are looked up in one small region rather than at random places of a table
 * as large as the window (each a cache miss: about 0.2 µs per delivery, as much as walking a list of 100).
 */

/** What {@link EntryHeads.get} returns for an entry with no node. */
export const NO_NODE = -1;
/** A free cell's client. */
const FREE = -1;
const FIRST_ARENA = 4096;
/**
 * A region's first size. A region is at most half full, so that probes stay short, and Cancellations moves a
 * message here once it has more than 32 saves: 128 cells take those without growing at once.
 */
const FIRST_REGION = 128;

export class EntryHeads {
  /** The arena: by cell, its client (or {@link FREE}) and that entry's node. */
  #clients = new Int32Array(FIRST_ARENA);
  #heads = new Int32Array(FIRST_ARENA);
  /** The arena's first cell not in a region of this generation. */
  #top = 0;
  /** By slot: the generation its region belongs to; the region is the slot's only in that generation. */
  readonly #regionGenerations: number[] = [];
  /** By slot: where its region starts, its size (a power of two) and its clients. */
  readonly #starts: number[] = [];
  readonly #sizes: number[] = [];
  readonly #counts: number[] = [];
  #generation = 1;

  /** The entry's node, or {@link NO_NODE}. */
  get(slot: number, client: number): number {
    if (this.#regionGenerations[slot] !== this.#generation) return NO_NODE;
    const cell = this.#find(slot, client);
    return this.#clients[cell] === client ? this.#heads[cell] : NO_NODE;
  }

  /** Sets the entry's node ({@link NO_NODE} forgets it; the cell stays taken until its region grows). */
  set(slot: number, client: number, node: number): void {
    if (this.#regionGenerations[slot] !== this.#generation) {
      if (node === NO_NODE) return;
      this.#open(slot, FIRST_REGION);
    }
    let cell = this.#find(slot, client);
    if (this.#clients[cell] !== client) {
      if (node === NO_NODE) return;
      if (2 * (this.#counts[slot] + 1) > this.#sizes[slot]) {
        this.#grow(slot);
        cell = this.#find(slot, client);
      }
      this.#clients[cell] = client;
      this.#counts[slot]++;
    }
    this.#heads[cell] = node;
  }

  /** Forgets every entry, keeping the arena's size. */
  clear(): void {
    this.#top = 0;
    this.#generation = this.#generation === Number.MAX_SAFE_INTEGER ? 1 : this.#generation + 1;
    if (this.#generation === 1) this.#regionGenerations.fill(0);
  }

  /**
   * The cell holding the client's entry in the slot's region, or the free cell where it would go. Client
   * numbers are given in the order clients are first seen, so a fan-out's are consecutive: the number itself
   * places them without collisions.
   */
  #find(slot: number, client: number): number {
    const clients = this.#clients;
    const start = this.#starts[slot], mask = this.#sizes[slot] - 1;
    let offset = client & mask;
    for (
      let cell = clients[start + offset];
      cell !== client && cell !== FREE;
      cell = clients[start + offset]
    ) {
      offset = (offset + 1) & mask;
    }
    return start + offset;
  }

  /** A new empty region of `size` cells for the slot, at the arena's top. */
  #open(slot: number, size: number): void {
    const start = this.#top;
    if (start + size > this.#clients.length) {
      let capacity = 2 * this.#clients.length;
      while (capacity < start + size) capacity *= 2;
      const clients = new Int32Array(capacity), heads = new Int32Array(capacity);
      clients.set(this.#clients.subarray(0, start));
      heads.set(this.#heads.subarray(0, start));
      this.#clients = clients;
      this.#heads = heads;
    }
    this.#clients.fill(FREE, start, start + size);
    this.#top = start + size;
    this.#regionGenerations[slot] = this.#generation;
    this.#starts[slot] = start;
    this.#sizes[slot] = size;
    this.#counts[slot] = 0;
  }

  /** Moves the slot's entries that still have a node to a region twice the size (the old one is left). */
  #grow(slot: number): void {
    const from = this.#starts[slot], size = this.#sizes[slot];
    this.#open(slot, 2 * size);
    const clients = this.#clients, heads = this.#heads;
    for (let cell = from; cell < from + size; cell++) {
      const client = clients[cell];
      if (client === FREE || heads[cell] === NO_NODE) continue;
      const to = this.#find(slot, client);
      clients[to] = client;
      heads[to] = heads[cell];
      this.#counts[slot]++;
    }
  }
}
