/**
 * Message ids to small integers (Cancellations' slots), for one window at a time: open
 * addressing over typed arrays kept from batch to batch, emptied by starting a new generation. A Map emptied
 * with clear() every batch went back to its smallest table and rehashed its way up again each time, and its
 * sets were the largest single cost of the bookkeeping on both the broker's thread and the store's worker.
 *
 * A store's ids only grow, and those a window names are nearly consecutive: from the first id of a
 * generation on, ids go straight to a cell of their own in a direct range (id − base), in order, and only
 * the others (older messages; ids past the range, which makes it larger for the next generation) to the
 * hash. With every id hashed, the window's bookkeeping cost the worker ~10 % more CPU per durable QoS 1
 * message: the hash scatters consecutive ids over the table, and the window's table is larger than caches.
 */
import type { MessageRef } from "../port.ts";

/** What {@link MessageSlots.get} returns for an id with no slot. */
export const NO_SLOT = -1;
/** Marks an id whose slot was deleted; its cell stays taken until the next {@link MessageSlots.clear}. */
const DELETED = -2;
const FIRST_CAPACITY = 1024;
const FIRST_DIRECT = 4096, MAX_DIRECT = 1 << 18;

export class MessageSlots {
  /** The direct range's first id: the generation's first id set, NaN before it. */
  #base = NaN;
  /**
   * The highest id set in this generation: an id above it has no slot, found without a probe (a window's
   * newer half names mostly messages of its own, past the older half's ids).
   */
  #highest = -Infinity;
  /** By id − base: the slot, or {@link DELETED}; taken when its generation is the current one. */
  #direct = new Int32Array(FIRST_DIRECT);
  #directGenerations = new Uint32Array(FIRST_DIRECT);
  #directGeneration = 1;
  /** An id past the direct range was set in this generation. */
  #beyond = false;
  #ids = new Float64Array(FIRST_CAPACITY);
  #slots = new Int32Array(FIRST_CAPACITY);
  /** A cell is taken when its generation is the current one. */
  #generations = new Uint32Array(FIRST_CAPACITY);
  #generation = 1;
  /** Cells taken, deleted ones included. */
  #taken = 0;
  /** The hash's top bits index the table: 32 − log2(capacity). */
  #shift = 32 - Math.log2(FIRST_CAPACITY);

  /** The id's slot, or {@link NO_SLOT}. */
  get(id: MessageRef): number {
    if (id > this.#highest) return NO_SLOT;
    const offset = id - this.#base;
    if (offset >= 0 && offset < this.#direct.length) {
      if (this.#directGenerations[offset] !== this.#directGeneration) return NO_SLOT;
      const slot = this.#direct[offset];
      return slot === DELETED ? NO_SLOT : slot;
    }
    const cell = this.#find(id);
    if (this.#generations[cell] !== this.#generation) return NO_SLOT;
    const slot = this.#slots[cell];
    return slot === DELETED ? NO_SLOT : slot;
  }

  set(id: MessageRef, slot: number): void {
    if (Number.isNaN(this.#base)) this.#base = id;
    if (id > this.#highest) this.#highest = id;
    const offset = id - this.#base;
    if (offset >= 0 && offset < this.#direct.length) {
      this.#directGenerations[offset] = this.#directGeneration;
      this.#direct[offset] = slot;
      return;
    }
    if (offset > 0) this.#beyond = true;
    // At most half full, so that probes stay short.
    if (2 * (this.#taken + 1) > this.#ids.length) this.#grow();
    const cell = this.#find(id);
    if (this.#generations[cell] !== this.#generation) {
      this.#generations[cell] = this.#generation;
      this.#ids[cell] = id;
      this.#taken++;
    }
    this.#slots[cell] = slot;
  }

  delete(id: MessageRef): void {
    const offset = id - this.#base;
    if (offset >= 0 && offset < this.#direct.length) {
      if (this.#directGenerations[offset] === this.#directGeneration) this.#direct[offset] = DELETED;
      return;
    }
    const cell = this.#find(id);
    if (this.#generations[cell] === this.#generation) this.#slots[cell] = DELETED;
  }

  /** Forgets every id, keeping the table's size. */
  clear(): void {
    this.#taken = 0;
    if (this.#generation === 0xffffffff) {
      this.#generations.fill(0);
      this.#generation = 0;
    }
    this.#generation++;
    this.#base = NaN;
    this.#highest = -Infinity;
    if (this.#beyond && this.#direct.length < MAX_DIRECT) {
      const length = 2 * this.#direct.length;
      this.#direct = new Int32Array(length);
      this.#directGenerations = new Uint32Array(length);
      this.#directGeneration = 0;
    } else if (this.#directGeneration === 0xffffffff) {
      this.#directGenerations.fill(0);
      this.#directGeneration = 0;
    }
    this.#directGeneration++;
    this.#beyond = false;
  }

  /** The cell holding `id`, or the free cell where it would go. */
  #find(id: number): number {
    const ids = this.#ids, generations = this.#generations, generation = this.#generation;
    const mask = ids.length - 1;
    let cell = Math.imul(id | 0, 0x9e3779b1) >>> this.#shift;
    while (generations[cell] === generation && ids[cell] !== id) cell = (cell + 1) & mask;
    return cell;
  }

  #grow(): void {
    const ids = this.#ids, slots = this.#slots;
    const generations = this.#generations, generation = this.#generation;
    const capacity = 2 * ids.length;
    this.#ids = new Float64Array(capacity);
    this.#slots = new Int32Array(capacity);
    this.#generations = new Uint32Array(capacity);
    this.#generation = 1;
    this.#shift--;
    this.#taken = 0;
    for (let cell = 0; cell < ids.length; cell++) {
      if (generations[cell] === generation && slots[cell] !== DELETED) {
        this.set(ids[cell] as MessageRef, slots[cell]);
      }
    }
  }
}
