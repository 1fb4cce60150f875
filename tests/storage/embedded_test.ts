import { createEmbeddedStorage } from "../../src/storage/mod.ts";
import { runStorageConformance, type StorageFactory } from "../../src/storage/conformance.ts";

/** A factory over one temporary data directory per test, at the given durability. */
function embeddedFactory(durability: "sync" | "batch"): StorageFactory {
  let dir = "";
  const create = () => Promise.resolve(createEmbeddedStorage({ dir, durability, batchIntervalMs: 5 }));
  return {
    open: async () => {
      dir = await Deno.makeTempDir({ prefix: "mqtt-storage-" });
      return create();
    },
    reopen: create,
    cleanup: () => Deno.remove(dir, { recursive: true }),
  };
}

runStorageConformance("embedded, durability sync", embeddedFactory("sync"));
runStorageConformance("embedded, durability batch", embeddedFactory("batch"));
