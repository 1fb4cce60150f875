/**
 * (message slot, client number) → a node (Cancellations' first save of that queue entry), for one window
 * at a time: open addressing over typed arrays kept from apply to apply, emptied by starting a new
 * generation, as MessageSlots does for message ids. Cancellations keeps a message's saves in a list while
 * they are few; this table finds an entry's saves among many (a durable fan-out to 1,000 clients: in a list,
 * each delete looked through the saves of all of them).
 */

/** What {@link EntryHeads.get} returns for an entry with no node. */
export const NO_NODE = -1;
const FIRST_CAPACITY = 1024;

export class EntryHeads {
  #slots = new Int32Array(FIRST_CAPACITY);
  #clients = new Int32Array(FIRST_CAPACITY);
  #heads = new Int32Array(FIRST_CAPACITY);
  /** A cell is taken when its generation is the current one. */
  #generations = new Uint32Array(FIRST_CAPACITY);
  #generation = 1;
  #taken = 0;
  /** The hash's top bits index the table: 32 − log2(capacity). */
  #shift = 32 - Math.log2(FIRST_CAPACITY);

  /** The entry's node, or {@link NO_NODE}. */
  get(slot: number, client: number): number {
    const cell = this.#find(slot, client);
    return this.#generations[cell] === this.#generation ? this.#heads[cell] : NO_NODE;
  }

  /** Sets the entry's node ({@link NO_NODE} forgets it; its cell stays taken until {@link clear}). */
  set(slot: number, client: number, node: number): void {
    // At most half full, so that probes stay short.
    if (2 * (this.#taken + 1) > this.#slots.length) this.#grow();
    const cell = this.#find(slot, client);
    if (this.#generations[cell] !== this.#generation) {
      this.#generations[cell] = this.#generation;
      this.#slots[cell] = slot;
      this.#clients[cell] = client;
      this.#taken++;
    }
    this.#heads[cell] = node;
  }

  /** Forgets every entry, keeping the table's size. */
  clear(): void {
    this.#taken = 0;
    if (this.#generation === 0xffffffff) {
      this.#generations.fill(0);
      this.#generation = 0;
    }
    this.#generation++;
  }

  /** The cell holding the entry, or the free cell where it would go. */
  #find(slot: number, client: number): number {
    const slots = this.#slots, clients = this.#clients;
    const generations = this.#generations, generation = this.#generation;
    const mask = slots.length - 1;
    let cell = Math.imul(Math.imul(slot, 0x9e3779b1) ^ client, 0x85ebca6b) >>> this.#shift;
    while (generations[cell] === generation && (slots[cell] !== slot || clients[cell] !== client)) {
      cell = (cell + 1) & mask;
    }
    return cell;
  }

  #grow(): void {
    const slots = this.#slots, clients = this.#clients, heads = this.#heads;
    const generations = this.#generations, generation = this.#generation;
    const capacity = 2 * slots.length;
    this.#slots = new Int32Array(capacity);
    this.#clients = new Int32Array(capacity);
    this.#heads = new Int32Array(capacity);
    this.#generations = new Uint32Array(capacity);
    this.#generation = 1;
    this.#shift--;
    this.#taken = 0;
    for (let cell = 0; cell < slots.length; cell++) {
      if (generations[cell] === generation && heads[cell] !== NO_NODE) {
        this.set(slots[cell], clients[cell], heads[cell]);
      }
    }
  }
}
