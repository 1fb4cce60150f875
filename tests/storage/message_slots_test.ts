/** MessageSlots, the id → slot table of Cancellations: what a Map would answer, through growth and clears. */
import assert from "node:assert/strict";
import type { MessageRef } from "../../src/storage/port.ts";
import { MessageSlots, NO_SLOT } from "../../src/storage/embedded/message_slots.ts";

const ref = (id: number) => id as MessageRef;

Deno.test("message slots: answer as a Map does through growth, deletes and clears", () => {
  const slots = new MessageSlots();
  const expected = new Map<number, number>();
  // Ids past 2^32 too (an id is any safe integer): those with equal low bits must not be confused.
  const ids = (batch: number) =>
    Array.from({ length: 5000 }, (_, i) => (i % 3 === 0 ? 2 ** 32 + i : 7 * i + batch * 100_000));
  for (let batch = 0; batch < 4; batch++) {
    slots.clear();
    expected.clear();
    ids(batch).forEach((id, slot) => {
      slots.set(ref(id), slot);
      expected.set(id, slot);
      if (slot % 5 === 0) {
        slots.delete(ref(id));
        expected.delete(id);
      }
    });
    slots.set(ref(ids(batch)[10]), 99_999);
    expected.set(ids(batch)[10], 99_999);
    for (const id of [...ids(batch), ...ids(batch + 1), 2 ** 33 + 3, 0]) {
      assert.equal(slots.get(ref(id)), expected.get(id) ?? NO_SLOT, `batch ${batch}, id ${id}`);
    }
  }
});

Deno.test("message slots: a deleted id can be given a slot again", () => {
  const slots = new MessageSlots();
  slots.set(ref(42), 1);
  slots.delete(ref(42));
  assert.equal(slots.get(ref(42)), NO_SLOT);
  slots.set(ref(42), 2);
  assert.equal(slots.get(ref(42)), 2);
  slots.clear();
  assert.equal(slots.get(ref(42)), NO_SLOT);
});

Deno.test("message slots: consecutive ids after an older first one, past the direct range and back, as a Map answers", () => {
  const slots = new MessageSlots();
  const expected = new Map<number, number>();
  for (let generation = 0; generation < 8; generation++) {
    slots.clear();
    expected.clear();
    // The first id is an old message's; then a run of new ones longer than the direct range was so far, and
    // ids below the first.
    const first = 1_000_000 + 10_000 * generation;
    const ids = [first, ...Array.from({ length: 20_000 }, (_, i) => first + 500 + i), first - 1, 7];
    ids.forEach((id, slot) => {
      slots.set(ref(id), slot);
      expected.set(id, slot);
      if (slot % 7 === 3) {
        slots.delete(ref(id));
        expected.delete(id);
      }
    });
    for (let id = first - 600; id < first + 21_000; id++) {
      assert.equal(slots.get(ref(id)), expected.get(id) ?? NO_SLOT, `generation ${generation}, id ${id}`);
    }
    assert.equal(slots.get(ref(7)), expected.get(7) ?? NO_SLOT);
  }
});
