/** The embedded durable store (SQLite in WAL mode with group commit), the broker's default storage. */
export {
  createEmbeddedStorage,
  type EmbeddedStorage,
  type EmbeddedStorageOptions,
} from "./embedded_storage.ts";
export type { EmbeddedStats } from "./embedded_storage.ts";
export type { CommitStats } from "./group_commit.ts";
export type { StorageLogger } from "./open_store.ts";
