/** limits.memory_bytes on its own: over at the limit, under again below 90% of it. */
import assert from "node:assert/strict";
import { MemoryBudget } from "../../src/broker/mod.ts";

Deno.test("memory budget: over at the limit, and under again only below 90% of it", () => {
  const budget = new MemoryBudget(1000);
  assert.equal(budget.sample(999), undefined);
  assert.equal(budget.over, false);
  assert.equal(budget.sample(1000), "over");
  assert.equal(budget.over, true);
  assert.equal(budget.sample(950), undefined, "between 90% and the limit it stays over");
  assert.equal(budget.over, true);
  assert.equal(budget.sample(899), "under");
  assert.equal(budget.over, false);
  assert.equal(budget.usedBytes, 899);
});

Deno.test("memory budget: a limit of 0 never turns over", () => {
  const budget = new MemoryBudget(0);
  assert.equal(budget.sample(Number.MAX_SAFE_INTEGER), undefined);
  assert.equal(budget.over, false);
});

Deno.test("memory budget: before turning over it asks for a collection, and turns over only if still over", () => {
  const budget = new MemoryBudget(1000);
  let asked = 0;
  assert.equal(budget.sample(1200, () => (asked++, 600)), undefined, "garbage collected: not over");
  assert.equal(budget.over, false);
  assert.equal(budget.usedBytes, 600);
  assert.equal(budget.sample(1200, () => (asked++, 1100)), "over", "still over once collected");
  assert.equal(budget.usedBytes, 1100);
  assert.equal(budget.sample(1300, () => (asked++, 0)), undefined, "while over it does not ask again");
  assert.equal(asked, 2);
  assert.equal(
    budget.sample(1200, () => undefined),
    undefined,
    "no collection: the sample stands (already over)",
  );
  assert.equal(budget.sample(800), "under");
  assert.equal(budget.sample(1200, () => undefined), "over", "no collection possible: the sample stands");
});
