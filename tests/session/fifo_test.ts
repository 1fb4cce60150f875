/** The session queue's FIFO: order, length and peek across many pushes and shifts, growth, wrap-around and emptying. */
import assert from "node:assert/strict";
import { Fifo } from "../../src/session/fifo.ts";
import { Random } from "../codec/support/random.ts";

Deno.test("fifo: items come out in the order they went in, across compactions and emptying", () => {
  const fifo = new Fifo<number>();
  const model: number[] = [];
  let next = 0;
  // Interleave bursts of pushes with bursts of shifts, long enough to pass the compaction threshold often.
  for (let round = 0; round < 200; round++) {
    const pushes = (round * 37) % 900;
    for (let i = 0; i < pushes; i++) {
      fifo.push(next);
      model.push(next++);
    }
    const shifts = (round * 53) % 1000;
    for (let i = 0; i < shifts; i++) {
      assert.equal(fifo.peek(), model[0]);
      assert.equal(fifo.shift(), model.shift());
      assert.equal(fifo.length, model.length);
    }
    assert.deepEqual(fifo.toArray(), model);
  }
  assert.deepEqual([...fifo], model);
});

Deno.test("fifo: shift and peek on an empty queue give undefined", () => {
  const fifo = new Fifo<string>();
  assert.equal(fifo.shift(), undefined);
  assert.equal(fifo.peek(), undefined);
  fifo.push("a");
  assert.equal(fifo.shift(), "a");
  assert.equal(fifo.shift(), undefined);
  assert.equal(fifo.length, 0);
});

Deno.test("fifo: random pushes and shifts give what an array does (growth while wrapped, emptying, regrowth)", () => {
  for (let seed = 1; seed <= 20; seed++) {
    const random = new Random(seed);
    const fifo = new Fifo<number>();
    const model: number[] = [];
    let next = 0;
    for (let step = 0; step < 4000; step++) {
      // Phases that lean to pushing or to shifting: the ring fills while its head is anywhere, and empties.
      const pushShare = Math.floor(step / 250) % 2 === 0 ? 0.6 : 0.35;
      if (random.bool(pushShare)) {
        const count = random.int(1, 40);
        for (let i = 0; i < count; i++) {
          fifo.push(next);
          model.push(next++);
        }
      } else {
        const count = random.int(1, 40);
        for (let i = 0; i < count; i++) {
          assert.equal(fifo.peek(), model[0], `seed ${seed}, step ${step}`);
          assert.equal(fifo.shift(), model.shift(), `seed ${seed}, step ${step}`);
        }
      }
      assert.equal(fifo.length, model.length, `seed ${seed}, step ${step}`);
      if (step % 97 === 0) assert.deepEqual(fifo.toArray(), model, `seed ${seed}, step ${step}`);
    }
    assert.deepEqual([...fifo], model);
  }
});
