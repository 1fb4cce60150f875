/** The inflight table against a Map, the structure it replaces: same answers, same order. */
import assert from "node:assert/strict";
import { InflightTable } from "../../src/session/inflight_table.ts";
import { Random } from "../codec/support/random.ts";

function assertSame(table: InflightTable<string>, model: Map<number, string>): void {
  assert.equal(table.size, model.size);
  assert.deepEqual([...table], [...model]);
  for (const packetId of model.keys()) {
    assert.ok(table.has(packetId));
    assert.equal(table.get(packetId), model.get(packetId));
  }
}

Deno.test("InflightTable answers as a Map under random sets and deletes, ids taken in turn or restored", () => {
  for (let seed = 1; seed <= 20; seed++) {
    const random = new Random(seed);
    const table = new InflightTable<string>();
    const model = new Map<number, string>();
    let next = 60_000 + random.int(0, 5000); // wraps past 65535 within the run
    for (let step = 0; step < 3000; step++) {
      const roll = random.int(0, 99);
      if (roll < 45 && model.size < 300) {
        // a new delivery: the next id the table lets it take, as the session allocates them
        let id = next;
        while (!table.canTake(id)) id = id === 65535 ? 1 : id + 1;
        next = id === 65535 ? 1 : id + 1;
        assert.ok(!model.has(id), "a free slot means an unused id");
        table.set(id, `m${step}`);
        model.set(id, `m${step}`);
      } else if (roll < 50) {
        // restored from storage: any id, also one whose slot is taken
        const id = random.int(1, 65535);
        table.set(id, `r${step}`);
        model.set(id, `r${step}`);
      } else if (model.size > 0) {
        // acknowledged, mostly the oldest first
        const ids = [...model.keys()];
        const id = roll < 85 ? ids[0] : ids[random.int(0, ids.length - 1)];
        assert.equal(table.delete(id), model.delete(id));
      }
      assert.equal(table.delete(0), false);
    }
    assertSame(table, model);
  }
});

Deno.test("InflightTable: deleting while iterating, and a stuck entry kept in its place", () => {
  const table = new InflightTable<string>();
  table.set(1, "stuck");
  for (let id = 2; id < 5000; id++) {
    table.set(id, `m${id}`);
    table.delete(id);
  }
  table.set(7000, "last");
  table.set(2, "again"); // an id whose old place in the order is stale: it is where it was set last
  table.set(7000, "replaced"); // set again: replaced in its place
  assert.deepEqual([...table], [[1, "stuck"], [7000, "replaced"], [2, "again"]]);
  for (const [id] of table) table.delete(id);
  assert.equal(table.size, 0);
  assert.deepEqual([...table], []);
});
