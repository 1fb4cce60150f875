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
