/** LazyMap and LazySet behave as Map and Set for everything the session uses, empty or not. */
import assert from "node:assert/strict";
import { LazyMap, LazySet } from "../../src/session/lazy_collections.ts";

Deno.test("LazyMap: empty, then filled, iterated in insertion order, deleted while iterating, cleared", () => {
  const map = new LazyMap<number, string>();
  assert.equal(map.size, 0);
  assert.equal(map.get(1), undefined);
  assert.equal(map.has(1), false);
  assert.equal(map.delete(1), false);
  assert.deepEqual([...map], []);
  assert.deepEqual([...map.values()], []);
  map.set(3, "c").set(1, "a").set(2, "b");
  assert.deepEqual([...map], [[3, "c"], [1, "a"], [2, "b"]]);
  assert.deepEqual([...map.keys()], [3, 1, 2]);
  for (const [key] of map) if (key === 1) map.delete(key);
  assert.deepEqual([...map.entries()], [[3, "c"], [2, "b"]]);
  assert.equal(map.get(2), "b");
  map.clear();
  assert.equal(map.size, 0);
  assert.deepEqual([...map], []);
  map.set(7, "g");
  assert.deepEqual([...map], [[7, "g"]]);
});

Deno.test("LazySet: empty, then filled, spread in insertion order, deleted, cleared", () => {
  const set = new LazySet<number>();
  assert.equal(set.size, 0);
  assert.equal(set.has(5), false);
  assert.equal(set.delete(5), false);
  assert.deepEqual([...set], []);
  set.add(5).add(1).add(5);
  assert.equal(set.size, 2);
  assert.deepEqual([...set], [5, 1]);
  assert.equal(set.delete(5), true);
  assert.deepEqual([...set.values()], [1]);
  set.clear();
  assert.deepEqual([...set], []);
});
