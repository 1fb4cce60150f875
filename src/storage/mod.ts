/**
 * Storage: the port the broker is written against, and its adapters. Only the composition root
 * chooses an adapter; everything else imports the port's types.
 */
export * from "./port.ts";
export { createMemoryState, createMemoryStorage, type MemoryState } from "./memory/mod.ts";
export {
  type CommitStats,
  createEmbeddedStorage,
  type EmbeddedStorage,
  type EmbeddedStorageOptions,
  type StorageLogger,
} from "./embedded/mod.ts";
