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
import { MessageSlots, NO_SLOT } from "./message_slots.ts";

/** Marks a message slot with no append in this batch, and the end of a list of saves. */
const NONE = -1;

/**
 * The bookkeeping is flat and kept from batch to batch (see {@link reset}): a slot per message in
 * parallel arrays, its saves in a list through pooled nodes. An object and an array per message lived until
 * the batch left, long enough to be promoted, and were a tenth of what a durable message allocated.
 */
export class Cancellations {
  readonly #slots = new MessageSlots();
  #slotCount = 0;
  /** By slot: the index of its append operation in this batch, or {@link NONE}. */
  readonly #appends: number[] = [];
  /** By slot: an operation about it is written, so its append must be too. */
  readonly #written: boolean[] = [];
  /** By slot: its first save node, or {@link NONE}. */
  readonly #firstSave: number[] = [];
  /** Save nodes: the client, the index of the save operation, the next node of the same message. */
  readonly #saveClients: string[] = [];
  readonly #saveOperations: number[] = [];
  readonly #nextSave: number[] = [];
  #saveCount = 0;
  /** Clients whose entries the database picks by itself in this batch (see the module comment). */
  #pinned: Set<string> | undefined;

  constructor(private readonly cancel: (operation: number) => void) {}

  /** Forgets this batch, keeping the storage for the next. */
  reset(): void {
    this.#slots.clear();
    this.#slotCount = 0;
    this.#saveClients.fill("", 0, this.#saveCount);
    this.#saveCount = 0;
    this.#pinned = undefined;
  }

  appended(id: MessageRef, operation: number): void {
    this.#appends[this.#slot(id)] = operation;
  }

  saved(clientId: string, id: MessageRef, operation: number): void {
    let slot = this.#slots.get(id);
    if (slot === NO_SLOT) slot = this.#slot(id);
    const node = this.#saveCount++;
    this.#saveClients[node] = clientId;
    this.#saveOperations[node] = operation;
    this.#nextSave[node] = this.#firstSave[slot];
    this.#firstSave[slot] = node;
  }

  /**
   * Cancels what a delete of the entry makes needless: the entry's saves in this batch, and for a message
   * appended in this batch its append when this was its last entry. Returns whether the delete itself must be
   * written (the entry may exist in the database).
   */
  deleted(clientId: string, id: MessageRef): boolean {
    const slot = this.#slots.get(id);
    if (slot === NO_SLOT) return true;
    if (this.#pinned?.has(clientId)) {
      this.#written[slot] = true;
      return true;
    }
    let cancelled = false;
    let kept = false;
    let previous = NONE;
    for (let node = this.#firstSave[slot]; node !== NONE; node = this.#nextSave[node]) {
      if (this.#saveClients[node] === clientId) {
        this.cancel(this.#saveOperations[node]);
        cancelled = true;
        if (previous === NONE) this.#firstSave[slot] = this.#nextSave[node];
        else this.#nextSave[previous] = this.#nextSave[node];
      } else {
        kept = true;
        previous = node;
      }
    }
    const append = this.#appends[slot];
    if (append === NONE) return true;
    // Only the delete of an entry that existed takes the message with it, as in the database.
    if (cancelled && !kept && !this.#written[slot]) {
      this.cancel(append);
      this.#slots.delete(id);
    }
    return false;
  }

  /** Cancels the append a delete-if-unreferenced makes needless; returns whether it must be written. */
  unreferenced(id: MessageRef): boolean {
    const slot = this.#slots.get(id);
    if (
      slot === NO_SLOT || this.#appends[slot] === NONE || this.#firstSave[slot] !== NONE ||
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
  pin(clientId: string): void {
    (this.#pinned ??= new Set()).add(clientId);
  }

  /** A new slot for the message: no append, not written, no saves. */
  #slot(id: MessageRef): number {
    const slot = this.#slotCount++;
    this.#slots.set(id, slot);
    this.#appends[slot] = NONE;
    this.#written[slot] = false;
    this.#firstSave[slot] = NONE;
    return slot;
  }
}
