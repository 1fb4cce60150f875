/** The storage adapter that keeps everything in memory: for tests and for `storage.type=memory`. */
export { createMemoryState, createMemoryStorage, type MemoryState } from "./memory_storage.ts";
