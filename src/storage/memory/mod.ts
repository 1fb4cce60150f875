/** The storage adapter that keeps everything in memory: for tests and for `storage.type=memory`. */
export {
  createMemoryState,
  createMemoryStorage,
  type MemoryState,
  type MemoryStorageOptions,
  PAYLOAD_NURSERY_MS,
} from "./memory_storage.ts";
