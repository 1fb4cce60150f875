/**
 * Operations that cancel out before they are written to SQLite, across the batches of the operation log's
 * window that one apply writes (apply_window.ts; the store's worker). A queue entry's saves are needless once
 * the entry is deleted among them; and an entry of a message appended among them cannot exist in SQLite (its
 * id is new), so its delete goes too, and a message whose every entry went that way is never written. With
 * durable QoS 1 to a connected subscriber the PUBACK arrives well within the window: the message, its entry,
 * the entry's "sent" stage and its delete then cost no row at all, and when it arrives later the "sent"
 * stage is still not written.
 *
 * The result is what writing every operation would leave, with one exception kept out: after
 * `deleteOldestQueued` or `deleteSession` for a client, which delete entries the database chooses (by their
 * stage), that client's entries in this batch are written as they come.
 */
import type { MessageRef } from "../port.ts";
import { EntryHeads, NO_NODE } from "./entry_heads.ts";
import { MessageSlots, NO_SLOT } from "./message_slots.ts";

/** Marks a message slot with no append in this batch, and the end of a list or chain of saves. */
const NONE = NO_NODE;
/** A slot's first save when its saves are by entry, in {@link EntryHeads}. */
const BY_ENTRY = -2;
/**
 * The most saves a message keeps in its list; past it they go to {@link EntryHeads} by entry. A delete
 * looks through its message's list, which for a message saved for many clients (a durable fan-out) made the
 * window's bookkeeping quadratic in the fan-out. Measured per delivery with a window of many messages: a
 * list of 20 costs 0.04 µs, of 40 0.06, of 100 0.11 and of 1,000 1.1; the entry table 0.06 whatever the
 * fan-out (when it was one table for the whole window, 0.15–0.25: a cache miss per lookup).
 */
const LIST_LIMIT = 32;

/**
 * The bookkeeping is flat and kept from batch to batch (see {@link reset}): a slot per message in
 * parallel arrays, its saves in a list through pooled nodes (by entry in {@link EntryHeads} past
 * {@link LIST_LIMIT}). An object and an array per message lived until the batch left, long enough to be
 * promoted, and were a tenth of what a durable message allocated.
 */
export class Cancellations {
  readonly #slots = new MessageSlots();
  #slotCount = 0;
  /** By slot: the index of its append operation in this batch, or {@link NONE}. */
  readonly #appends: number[] = [];
  /** By slot: an operation about it is written, so its append must be too. */
  readonly #written: boolean[] = [];
  /** By slot: its saves not cancelled. */
  readonly #liveSaves: number[] = [];
  /**
   * By slot: its first save node while its saves are in a list, or {@link NONE}; once it had more than
   * {@link LIST_LIMIT}, {@link BY_ENTRY}: its saves are in {@link #entries}.
   */
  readonly #firstSave: number[] = [];
  /**
   * Save nodes: the client, the index of the save operation, the next node of the same message (in a list)
   * or of the same entry (in {@link #entries}).
   */
  readonly #saveClients: number[] = [];
  readonly #saveOperations: number[] = [];
  readonly #nextSave: number[] = [];
  #saveCount = 0;
  /** By (slot, client): the first node of that entry's saves, for messages with many. */
  readonly #entries = new EntryHeads();
  /** Clients whose entries the database picks by itself in this batch (see the module comment). */
  #pinned: Set<number> | undefined;

  constructor(private readonly cancel: (operation: number) => void) {}

  /** Forgets this batch, keeping the storage for the next. */
  reset(): void {
    this.#slots.clear();
    this.#slotCount = 0;
    this.#saveCount = 0;
    this.#entries.clear();
    this.#pinned = undefined;
  }

  appended(id: MessageRef, operation: number): void {
    this.#appends[this.#slot(id)] = operation;
  }

  /** A save of the entry of `client` (a number the caller gives each client in this batch). */
  saved(client: number, id: MessageRef, operation: number): void {
    let slot = this.#slots.get(id);
    if (slot === NO_SLOT) slot = this.#slot(id);
    const node = this.#saveCount++;
    this.#saveClients[node] = client;
    this.#saveOperations[node] = operation;
    const live = ++this.#liveSaves[slot];
    const first = this.#firstSave[slot];
    if (first === BY_ENTRY) {
      this.#toEntry(slot, node);
    } else if (live > LIST_LIMIT) {
      this.#firstSave[slot] = BY_ENTRY;
      for (let listed = first; listed !== NONE;) {
        const next = this.#nextSave[listed];
        this.#toEntry(slot, listed);
        listed = next;
      }
      this.#toEntry(slot, node);
    } else {
      this.#nextSave[node] = first;
      this.#firstSave[slot] = node;
    }
  }

  /**
   * Cancels what a delete of the entry makes needless: the entry's saves in this batch, and for a message
   * appended in this batch its append when this was its last entry. Returns whether the delete itself must be
   * written (the entry may exist in the database).
   */
  deleted(client: number, id: MessageRef): boolean {
    const slot = this.#slots.get(id);
    if (slot === NO_SLOT) return true;
    if (this.#pinned?.has(client)) {
      this.#written[slot] = true;
      return true;
    }
    const cancelled = this.#firstSave[slot] === BY_ENTRY
      ? this.#cancelEntry(slot, client)
      : this.#cancelListed(slot, client);
    const append = this.#appends[slot];
    if (append === NONE) return true;
    // Only the delete of an entry that existed takes the message with it, as in the database.
    if (cancelled && this.#liveSaves[slot] === 0 && !this.#written[slot]) {
      this.cancel(append);
      this.#slots.delete(id);
    }
    return false;
  }

  /** Cancels the append a delete-if-unreferenced makes needless; returns whether it must be written. */
  unreferenced(id: MessageRef): boolean {
    const slot = this.#slots.get(id);
    if (
      slot === NO_SLOT || this.#appends[slot] === NONE || this.#liveSaves[slot] > 0 ||
      this.#written[slot]
    ) {
      return true;
    }
    this.cancel(this.#appends[slot]);
    this.#slots.delete(id);
    return false;
  }

  /** Whether an operation on the message was seen (and its bookkeeping still runs). */
  knows(id: MessageRef): boolean {
    return this.#slots.get(id) !== NO_SLOT;
  }

  /** The database picks which of the client's entries an operation deletes: write its entries as they come. */
  pin(client: number): void {
    (this.#pinned ??= new Set()).add(client);
  }

  /** A new slot for the message: no append, not written, no saves. */
  #slot(id: MessageRef): number {
    const slot = this.#slotCount++;
    this.#slots.set(id, slot);
    this.#appends[slot] = NONE;
    this.#written[slot] = false;
    this.#liveSaves[slot] = 0;
    this.#firstSave[slot] = NONE;
    return slot;
  }

  /** Cancels the client's saves in the slot's list, unlinking them; whether there were any. */
  #cancelListed(slot: number, client: number): boolean {
    let cancelled = false;
    let previous = NONE;
    for (let node = this.#firstSave[slot]; node !== NONE; node = this.#nextSave[node]) {
      if (this.#saveClients[node] === client) {
        this.cancel(this.#saveOperations[node]);
        this.#liveSaves[slot]--;
        cancelled = true;
        if (previous === NONE) this.#firstSave[slot] = this.#nextSave[node];
        else this.#nextSave[previous] = this.#nextSave[node];
      } else {
        previous = node;
      }
    }
    return cancelled;
  }

  /** Cancels the saves of the slot's entry for the client (its saves by entry); whether there were any. */
  #cancelEntry(slot: number, client: number): boolean {
    let node = this.#entries.get(slot, client);
    if (node === NO_NODE) return false;
    for (; node !== NONE; node = this.#nextSave[node]) {
      this.cancel(this.#saveOperations[node]);
      this.#liveSaves[slot]--;
    }
    this.#entries.set(slot, client, NO_NODE);
    return true;
  }

  /** Puts a save node first among its entry's saves. */
  #toEntry(slot: number, node: number): void {
    const client = this.#saveClients[node];
    this.#nextSave[node] = this.#entries.get(slot, client);
    this.#entries.set(slot, client, node);
  }
}
