/** A session's subscriptions by filter: one held inline, more in a Map, always in the order first added. */
import assert from "node:assert/strict";
import { SubscriptionTable } from "../../src/session/subscription_table.ts";
import type { SessionSubscription } from "../../src/session/types.ts";

const subscription = (topicFilter: string, qos: 0 | 1 | 2 = 0): SessionSubscription => ({
  topicFilter,
  qos,
  noLocal: false,
  retainAsPublished: false,
  retainHandling: 0,
});

const filters = (table: SubscriptionTable) => [...table.values()].map((s) => `${s.topicFilter}:${s.qos}`);

Deno.test("subscription table: add, replace, grow past one, delete in any order, and empty", () => {
  const table = new SubscriptionTable();
  assert.deepEqual([table.size, table.has("a"), filters(table)], [0, false, []]);
  table.set(subscription("a"));
  table.set(subscription("a", 1));
  assert.deepEqual([table.size, table.get("a")?.qos, table.has("b"), filters(table)], [1, 1, false, ["a:1"]]);
  table.set(subscription("b"));
  table.set(subscription("c", 2));
  table.set(subscription("a", 2));
  assert.deepEqual(
    [table.size, filters(table)],
    [3, ["a:2", "b:0", "c:2"]],
    "a replaced filter keeps its place",
  );
  assert.equal(table.delete("b"), true);
  assert.equal(table.delete("b"), false);
  assert.deepEqual(filters(table), ["a:2", "c:2"]);
  assert.equal(table.delete("a"), true);
  assert.equal(table.delete("c"), true);
  assert.deepEqual([table.size, filters(table), table.get("c")], [0, [], undefined]);
  table.set(subscription("d"));
  assert.deepEqual(filters(table), ["d:0"]);
});

Deno.test("subscription table: deleting the only subscription empties it; an unknown filter is not deleted", () => {
  const table = new SubscriptionTable();
  assert.equal(table.delete("x"), false);
  table.set(subscription("x"));
  assert.equal(table.delete("y"), false);
  assert.equal(table.delete("x"), true);
  assert.deepEqual([table.size, filters(table)], [0, []]);
});
