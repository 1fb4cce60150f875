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
