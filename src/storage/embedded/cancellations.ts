/**
 * Operations of one batch that cancel out before the batch leaves for the worker. A queue entry's saves are
 * needless once the entry is deleted in the same batch; and an entry of a message appended in this batch
 * cannot exist in any earlier one (its id is new), so its delete goes too, and a message whose every entry went
 * that way is never written. With durable QoS 1 to a connected subscriber, the PUBACK often arrives while the
 * previous batch is being written: the message, its entry, the entry's "sent" stage and its delete then cost
 * no row at all, and when it arrives later the "sent" stage is still not written.
 *
 * The result is what writing every operation would leave, with one exception kept out: after
 * `deleteOldestQueued` or `deleteSession` for a client, which delete entries the database chooses (by their
 * stage), that client's entries in this batch are written as they come.
 */
import type { MessageRef } from "../port.ts";

interface Message {
  /** The index of its append operation in this batch, if it was appended in this batch. */
  append: number | undefined;
  /** Pairs of client id and the index of a save operation of that client's entry. */
  saves: (string | number)[];
  /** An operation about it is written, so its append must be too. */
  written: boolean;
}

export class Cancellations {
  readonly #messages = new Map<MessageRef, Message>();
  /** Clients whose entries the database picks by itself in this batch (see the module comment). */
  #pinned: Set<string> | undefined;

  constructor(private readonly cancel: (operation: number) => void) {}

  appended(id: MessageRef, operation: number): void {
    this.#messages.set(id, { append: operation, saves: [], written: false });
  }

  saved(clientId: string, id: MessageRef, operation: number): void {
    let message = this.#messages.get(id);
    if (!message) this.#messages.set(id, message = { append: undefined, saves: [], written: false });
    message.saves.push(clientId, operation);
  }

  /**
   * Cancels what a delete of the entry makes needless: the entry's saves in this batch, and for a message
   * appended in this batch its append when this was its last entry. Returns whether the delete itself must be
   * written (the entry may exist in the database).
   */
  deleted(clientId: string, id: MessageRef): boolean {
    const message = this.#messages.get(id);
    if (!message) return true;
    if (this.#pinned?.has(clientId)) {
      message.written = true;
      return true;
    }
    const saves = message.saves;
    let kept = 0;
    let cancelled = false;
    for (let i = 0; i < saves.length; i += 2) {
      if (saves[i] === clientId) {
        this.cancel(saves[i + 1] as number);
        cancelled = true;
      } else {
        saves[kept++] = saves[i];
        saves[kept++] = saves[i + 1];
      }
    }
    saves.length = kept;
    if (message.append === undefined) return true;
    // Only the delete of an entry that existed takes the message with it, as in the database.
    if (cancelled && kept === 0 && !message.written) {
      this.cancel(message.append);
      this.#messages.delete(id);
    }
    return false;
  }

  /** Cancels the append a delete-if-unreferenced makes needless; returns whether it must be written. */
  unreferenced(id: MessageRef): boolean {
    const message = this.#messages.get(id);
    if (message?.append === undefined || message.saves.length > 0 || message.written) return true;
    this.cancel(message.append);
    this.#messages.delete(id);
    return false;
  }

  /** The database picks which of the client's entries an operation deletes: write its entries as they come. */
  pin(clientId: string): void {
    (this.#pinned ??= new Set()).add(clientId);
  }
}
