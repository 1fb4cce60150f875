/**
 * Cancellations (the operation log window's bookkeeping) and its entry table, against plain models: a Map for
 * EntryHeads, and for Cancellations the rules with every message's saves in one list (what it did before
 * messages with many saves went to the entry table), on random sequences that cross the list's limit.
 */
import assert from "node:assert/strict";
import type { MessageRef } from "../../src/storage/port.ts";
import { Cancellations } from "../../src/storage/embedded/cancellations.ts";
import { EntryHeads, NO_NODE } from "../../src/storage/embedded/entry_heads.ts";

const ref = (id: number) => id as MessageRef;

/** A seeded xorshift, so that a failure can be run again. */
function random(seed: number): () => number {
  let state = seed >>> 0 || 1;
  return () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 2 ** 32;
  };
}

/** Many slots with a few entries each (the arena grows), and a few slots with thousands (their regions grow). */
const ENTRY_TABLE_SHAPES = [{ slots: 3000, clients: 200, seed: 7 }, { slots: 6, clients: 5000, seed: 11 }];

for (const { slots, clients, seed } of ENTRY_TABLE_SHAPES) {
  Deno.test(`entry heads: answer as a Map does through growth, forgetting and clears (${slots} slots, ${clients} clients)`, () => {
    const heads = new EntryHeads();
    const expected = new Map<string, number>();
    const next = random(seed);
    for (let generation = 0; generation < 3; generation++) {
      heads.clear();
      expected.clear();
      for (let i = 0; i < 20_000; i++) {
        const slot = Math.floor(next() * slots), client = Math.floor(next() * clients);
        const node = next() < 0.2 ? NO_NODE : i;
        heads.set(slot, client, node);
        expected.set(`${slot}/${client}`, node);
      }
      for (let slot = 0; slot < slots; slot += Math.ceil(slots / 400)) {
        for (let client = 0; client < clients; client += Math.ceil(clients / 60)) {
          assert.equal(
            heads.get(slot, client),
            expected.get(`${slot}/${client}`) ?? NO_NODE,
            `${slot}/${client}`,
          );
        }
      }
    }
  });
}

/** The rules of Cancellations with a list of saves per message, whatever their number. */
class ListModel {
  appends = new Map<number, number>();
  written = new Set<number>();
  saves = new Map<number, { client: number; operation: number }[]>();
  pinned = new Set<number>();
  known = new Set<number>();
  constructor(readonly cancel: (operation: number) => void) {}

  appended(id: number, operation: number): void {
    this.#slot(id);
    this.appends.set(id, operation);
  }

  saved(client: number, id: number, operation: number): void {
    this.#slot(id);
    this.saves.get(id)!.push({ client, operation });
  }

  deleted(client: number, id: number): boolean {
    if (!this.known.has(id)) return true;
    if (this.pinned.has(client)) {
      this.written.add(id);
      return true;
    }
    const saves = this.saves.get(id)!;
    const mine = saves.filter((save) => save.client === client);
    for (const save of mine) this.cancel(save.operation);
    const others = saves.filter((save) => save.client !== client);
    this.saves.set(id, others);
    const append = this.appends.get(id);
    if (append === undefined) return true;
    if (mine.length > 0 && others.length === 0 && !this.written.has(id)) {
      this.cancel(append);
      this.known.delete(id);
    }
    return false;
  }

  unreferenced(id: number): boolean {
    const append = this.appends.get(id);
    if (
      !this.known.has(id) || append === undefined || this.saves.get(id)!.length > 0 || this.written.has(id)
    ) {
      return true;
    }
    this.cancel(append);
    this.known.delete(id);
    return false;
  }

  knows(id: number): boolean {
    return this.known.has(id);
  }

  pin(client: number): void {
    this.pinned.add(client);
  }

  #slot(id: number): void {
    if (this.known.has(id)) return;
    this.known.add(id);
    this.appends.delete(id);
    this.written.delete(id);
    this.saves.set(id, []);
  }
}

Deno.test("cancellations: decide as one list of saves per message would, with messages saved for up to 600 clients", () => {
  for (let seed = 1; seed <= 12; seed++) {
    const next = random(seed);
    const cancelled: number[] = [];
    const modelCancelled: number[] = [];
    const cancellations = new Cancellations((operation) => cancelled.push(operation));
    const model = new ListModel((operation) => modelCancelled.push(operation));
    for (let round = 0; round < 3; round++) {
      cancellations.reset();
      model.appends.clear();
      model.written.clear();
      model.saves.clear();
      model.pinned.clear();
      model.known.clear();
      let operation = 0;
      const steps: string[] = [];
      for (let step = 0; step < 6000; step++) {
        // A few messages with a fan-out past the list's limit, the rest with a few clients each.
        const wide = next() < 0.5;
        const id = wide ? 1 + Math.floor(next() * 2) : 10 + Math.floor(next() * 200);
        const client = Math.floor(next() * (wide ? 600 : 6));
        // Wide messages gain saves faster than they lose them, so that they pass the list's limit.
        const what = wide ? Math.min(next(), 0.9) : next();
        let outcome: unknown, expected: unknown;
        let call: string;
        const before = cancelled.length, modelBefore = modelCancelled.length;
        // Ids are fresh when appended (a store's next id), so only an id the window does not know yet.
        if (what < 0.05 && !model.knows(id)) {
          call = `appended(${id})`;
          cancellations.appended(ref(id), operation);
          model.appended(id, operation);
        } else if (what < 0.6) {
          call = `saved(${client}, ${id})`;
          cancellations.saved(client, ref(id), operation);
          model.saved(client, id, operation);
        } else if (what < 0.95) {
          call = `deleted(${client}, ${id})`;
          outcome = cancellations.deleted(client, ref(id));
          expected = model.deleted(client, id);
        } else if (what < 0.97) {
          call = `unreferenced(${id})`;
          outcome = cancellations.unreferenced(ref(id));
          expected = model.unreferenced(id);
        } else if (what < 0.975) {
          call = `pin(${client})`;
          cancellations.pin(client);
          model.pin(client);
        } else {
          call = `knows(${id})`;
          outcome = cancellations.knows(ref(id));
          expected = model.knows(id);
        }
        operation++;
        steps.push(call);
        const where = `seed ${seed}, round ${round}, step ${step}: ${steps.slice(-3).join(", ")}`;
        assert.equal(outcome, expected, where);
        const sorted = (list: number[], from: number) => list.slice(from).sort((a, b) => a - b);
        assert.deepEqual(sorted(cancelled, before), sorted(modelCancelled, modelBefore), where);
      }
      cancelled.length = modelCancelled.length = 0;
    }
  }
});

Deno.test("cancellations: a message saved for 300 clients and acknowledged by all of them is written not at all", () => {
  const cancelled = new Set<number>();
  const cancellations = new Cancellations((operation) => cancelled.add(operation));
  cancellations.reset();
  let operation = 0;
  const append = operation++;
  cancellations.appended(ref(1), append);
  const saves: number[] = [];
  for (let client = 0; client < 300; client++) {
    saves.push(operation);
    cancellations.saved(client, ref(1), operation++);
  }
  // The first 100 are sent as well: a second save of their entries.
  for (let client = 0; client < 100; client++) {
    saves.push(operation);
    cancellations.saved(client, ref(1), operation++);
  }
  for (let client = 299; client > 0; client--) assert.equal(cancellations.deleted(client, ref(1)), false);
  assert.equal(cancelled.has(append), false, "the append went while client 0's entry was left");
  assert.equal(cancellations.unreferenced(ref(1)), true);
  assert.equal(cancellations.deleted(0, ref(1)), false);
  assert.deepEqual([...cancelled].sort((a, b) => a - b), [append, ...saves].sort((a, b) => a - b));
  // Its slot is gone: a later delete of it is written (the entry may be in the database by then).
  assert.equal(cancellations.knows(ref(1)), false);
  assert.equal(cancellations.deleted(0, ref(1)), true);
});
