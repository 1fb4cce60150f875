/**
 * wholeBufferView and wholeBufferWords: the messages decoded from one slab share one view of it, and a
 * buffer larger than a slab is never kept. copyWords copies exactly the bytes asked.
 */
import assert from "node:assert/strict";
import { allocate, copyWords, wholeBufferView, wholeBufferWords } from "../../src/codec/bytes.ts";

Deno.test("views of one slab get the same whole-buffer view, a new slab a new one", () => {
  // Two regions of one slab: the slab in use may have room for one only (others allocated before this
  // test), and then the next two come out of a fresh one.
  let first = allocate(100);
  let second = allocate(100);
  if (first.buffer !== second.buffer) [first, second] = [second, allocate(100)];
  assert.equal(first.buffer, second.buffer, "both carved out of one slab");
  const view = wholeBufferView(first);
  assert.equal(view.buffer, first.buffer);
  assert.equal(view.byteOffset, 0);
  assert.equal(view.length, first.buffer.byteLength);
  assert.equal(wholeBufferView(second), view);
  const elsewhere = new Uint8Array(new ArrayBuffer(64), 8, 16);
  const other = wholeBufferView(elsewhere);
  assert.notEqual(other, view);
  assert.equal(other.buffer, elsewhere.buffer);
});

Deno.test("a buffer larger than a slab gets a view of its own each time", () => {
  const large = new Uint8Array(1 << 20);
  const view = wholeBufferView(large.subarray(10, 20));
  assert.equal(view.buffer, large.buffer);
  assert.equal(view.length, large.length);
  assert.notEqual(wholeBufferView(large.subarray(30, 40)), view);
});

Deno.test("views of one slab get the same whole-buffer DataView, a buffer larger than a slab a new one each time", () => {
  let first = allocate(100);
  let second = allocate(100);
  if (first.buffer !== second.buffer) [first, second] = [second, allocate(100)];
  const words = wholeBufferWords(first);
  assert.equal(words.buffer, first.buffer);
  assert.equal(words.byteOffset, 0);
  assert.equal(words.byteLength, first.buffer.byteLength);
  assert.equal(wholeBufferWords(second), words);
  const large = new Uint8Array(1 << 20);
  const largeWords = wholeBufferWords(large.subarray(10, 20));
  assert.equal(largeWords.byteLength, large.length);
  assert.notEqual(wholeBufferWords(large.subarray(30, 40)), largeWords);
});

Deno.test("copyWords copies exactly the bytes asked, at any offsets and length, touching nothing around them", () => {
  const source = new Uint8Array(128).map((_, i) => (i * 7 + 3) & 0xff);
  for (let length = 0; length <= 40; length++) {
    for (const [start, at] of [[0, 0], [1, 3], [5, 8], [13, 2]]) {
      const target = new Uint8Array(64).fill(0xee);
      copyWords(new DataView(target.buffer), at, new DataView(source.buffer), start, length);
      const expected = new Uint8Array(64).fill(0xee);
      expected.set(source.subarray(start, start + length), at);
      assert.deepStrictEqual(target, expected, `${length} bytes from ${start} to ${at}`);
    }
  }
});
