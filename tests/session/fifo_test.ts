/** The session queue's FIFO: order, length and peek across many pushes and shifts, and its compaction. */
import assert from "node:assert/strict";
import { Fifo } from "../../src/session/fifo.ts";

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
