/** A session's subscriptions by filter: one held as it is, more in a Map, always in the order first added. */
import assert from "node:assert/strict";
import {
  findSubscription,
  subscriptionCount,
  subscriptionsIn,
  type SubscriptionTable,
  withoutSubscription,
  withSubscription,
} from "../../src/session/subscription_table.ts";
import type { SessionSubscription } from "../../src/session/types.ts";

const subscription = (topicFilter: string, qos: 0 | 1 | 2 = 0): SessionSubscription => ({
  topicFilter,
  qos,
  noLocal: false,
  retainAsPublished: false,
  retainHandling: 0,
});

const filters = (table: SubscriptionTable) =>
  [...subscriptionsIn(table)].map((s) => `${s.topicFilter}:${s.qos}`);

Deno.test("subscription table: add, replace, grow past one, delete in any order, and empty", () => {
  let table: SubscriptionTable = undefined;
  assert.deepEqual([subscriptionCount(table), findSubscription(table, "a"), filters(table)], [
    0,
    undefined,
    [],
  ]);
  table = withSubscription(table, subscription("a"));
  table = withSubscription(table, subscription("a", 1));
  assert.deepEqual(
    [
      subscriptionCount(table),
      findSubscription(table, "a")?.qos,
      findSubscription(table, "b"),
      filters(table),
    ],
    [1, 1, undefined, ["a:1"]],
  );
  table = withSubscription(table, subscription("b"));
  table = withSubscription(table, subscription("c", 2));
  table = withSubscription(table, subscription("a", 2));
  assert.deepEqual(
    [subscriptionCount(table), filters(table)],
    [3, ["a:2", "b:0", "c:2"]],
    "a replaced filter keeps its place",
  );
  table = withoutSubscription(table, "b");
  table = withoutSubscription(table, "b");
  assert.deepEqual(filters(table), ["a:2", "c:2"]);
  table = withoutSubscription(table, "a");
  table = withoutSubscription(table, "c");
  assert.deepEqual([subscriptionCount(table), filters(table), findSubscription(table, "c")], [
    0,
    [],
    undefined,
  ]);
  table = withSubscription(table, subscription("d"));
  assert.deepEqual(filters(table), ["d:0"]);
});

Deno.test("subscription table: deleting the only subscription empties it; an unknown filter is not deleted", () => {
  let table: SubscriptionTable = withoutSubscription(undefined, "x");
  assert.equal(table, undefined);
  table = withSubscription(table, subscription("x"));
  table = withoutSubscription(table, "y");
  assert.deepEqual(filters(table), ["x:0"]);
  table = withoutSubscription(table, "x");
  assert.deepEqual([subscriptionCount(table), filters(table)], [0, []]);
});
