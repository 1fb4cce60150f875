import assert from "node:assert/strict";
import { createMemoryState, createMemoryStorage } from "../../src/storage/mod.ts";
import { runStorageConformance } from "../../src/storage/conformance.ts";

let state = createMemoryState();
runStorageConformance("memory", {
  open: () => Promise.resolve(createMemoryStorage(state = createMemoryState())),
  reopen: () => Promise.resolve(createMemoryStorage(state)),
  cleanup: () => Promise.resolve(),
});

Deno.test("memory storage: every flush is the one settled promise, so the broker observes it once, not per PUBLISH", async () => {
  const storage = createMemoryStorage();
  await storage.start();
  try {
    const first = storage.flush();
    storage.saveMeta("key", "value");
    assert.equal(storage.dirty, true);
    const second = storage.flush();
    assert.equal(storage.dirty, false);
    assert.equal(second, first, "a flush after a change is the same promise");
    await second;
  } finally {
    await storage.stop();
  }
});
