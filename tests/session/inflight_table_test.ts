/** The inflight table against a Map, the structure it replaces: same answers, same order. */
import assert from "node:assert/strict";
import { InflightTable } from "../../src/session/inflight_table.ts";
import { Random } from "../codec/support/random.ts";

function assertSame(
  table: InflightTable<string>,
  model: Map<number, string>,
  marks?: Map<number, number>,
): void {
  assert.equal(table.size, model.size);
  assert.deepEqual([...table], [...model]);
  for (const packetId of model.keys()) {
    assert.ok(table.has(packetId));
    assert.equal(table.get(packetId), model.get(packetId));
    if (marks) assert.equal(table.markOf(packetId), marks.get(packetId), `mark of ${packetId}`);
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
      if (step % 100 === 0) assertSame(table, model);
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

Deno.test("InflightTable keeps each entry's mark through growth, replacement and marking, -1 for none", () => {
  for (let seed = 1; seed <= 20; seed++) {
    const random = new Random(seed);
    const table = new InflightTable<string>();
    const model = new Map<number, string>();
    const marks = new Map<number, number>();
    let next = random.int(1, 65535);
    for (let step = 0; step < 2000; step++) {
      const where = `seed ${seed}, step ${step}`;
      const roll = random.int(0, 99);
      const mark = random.int(0, 7);
      if (roll < 40 && model.size < 200) {
        let id = next;
        while (!table.canTake(id)) id = id === 65535 ? 1 : id + 1;
        next = id === 65535 ? 1 : id + 1;
        table.set(id, `m${step}`, mark);
        model.set(id, `m${step}`);
        marks.set(id, mark);
      } else if (roll < 50 && model.size > 0) {
        // replaced in its place, with a new mark
        const id = random.pick([...model.keys()]);
        table.set(id, `r${step}`, mark);
        model.set(id, `r${step}`);
        marks.set(id, mark);
      } else if (roll < 65 && model.size > 0) {
        const id = random.pick([...model.keys()]);
        table.setMark(id, mark);
        marks.set(id, mark);
      } else if (model.size > 0) {
        const id = roll < 90 ? [...model.keys()][0] : random.pick([...model.keys()]);
        table.delete(id);
        model.delete(id);
        marks.delete(id);
        assert.equal(table.markOf(id), -1, where);
      }
      assertSame(table, model, marks);
    }
  }
});

Deno.test("InflightTable.take removes an entry only under its id and mark, as a Map's get and delete would", () => {
  for (let seed = 1; seed <= 10; seed++) {
    const random = new Random(seed);
    const table = new InflightTable<string>();
    const model = new Map<number, string>();
    const marks = new Map<number, number>();
    // Before anything was set: nothing to take, not even under id 0.
    assert.equal(table.take(random.int(0, 65535), 0), undefined);
    let next = random.int(1, 65535);
    for (let step = 0; step < 1500; step++) {
      const where = `seed ${seed}, step ${step}`;
      const roll = random.int(0, 99);
      if (roll < 45 && model.size < 150) {
        let id = next;
        while (!table.canTake(id)) id = id === 65535 ? 1 : id + 1;
        next = id === 65535 ? 1 : id + 1;
        const mark = random.int(0, 7);
        table.set(id, `m${step}`, mark);
        model.set(id, `m${step}`);
        marks.set(id, mark);
      } else {
        // Mostly the oldest (acknowledgements in order), else any id in flight, an id sharing a slot with
        // one in flight, one never used, or 0; asked with the right mark or another.
        const ids = [...model.keys()];
        const kind = random.int(0, 9);
        const id = ids.length === 0 || kind === 9
          ? random.int(0, 65535)
          : kind < 6
          ? ids[0]
          : kind < 8
          ? random.pick(ids)
          : (random.pick(ids) + 1024 * random.int(1, 63)) % 65536;
        const mark = marks.has(id) && random.int(0, 3) > 0 ? marks.get(id)! : random.int(0, 7);
        const expected = marks.get(id) === mark ? model.get(id) : undefined;
        assert.equal(table.take(id, mark), expected, where);
        if (expected !== undefined) {
          model.delete(id);
          marks.delete(id);
        }
        assert.equal(table.markOf(id), marks.get(id) ?? -1, where);
      }
      assertSame(table, model, marks);
    }
    // Emptied by takes, it takes new ids as a fresh one would.
    for (const [id, mark] of [...marks]) assert.equal(table.take(id, mark), model.get(id));
    assert.equal(table.size, 0);
    assert.deepEqual([...table], []);
  }
});
