import { createMemoryState, createMemoryStorage } from "../../src/storage/mod.ts";
import { runStorageConformance } from "../../src/storage/conformance.ts";

let state = createMemoryState();
runStorageConformance("memory", {
  open: () => Promise.resolve(createMemoryStorage(state = createMemoryState())),
  reopen: () => Promise.resolve(createMemoryStorage(state)),
  cleanup: () => Promise.resolve(),
});
