/**
 * A ballast file (`<dir>/reserve`) that keeps room for deletes on a full disk. In WAL mode even a
 * DELETE must append to the WAL, so on a full file system acknowledgements could never be stored and
 * the store could never drain. When a write fails for lack of space, the reserve is freed and the store
 * enters low-disk mode: it stores deletes and updates, refuses new messages (reason 0x97), and leaves
 * the mode once the file system has room to re-create the reserve.
 */
import { statfsSync } from "node:fs";
import { join } from "node:path";
import type { StorageLogger } from "./open_store.ts";

/** The ballast file inside the data directory. */
const RESERVE_FILE = "reserve";

/** See the module comment. */
export class DiskReserve {
  readonly #path: string;
  #present = false;

  constructor(
    private readonly dir: string,
    /** The reserve's size. */
    readonly bytes: number,
    private readonly logger: StorageLogger,
  ) {
    this.#path = join(dir, RESERVE_FILE);
  }

  /** True while the reserve is freed: only deletes and updates are stored. */
  get lowDisk(): boolean {
    return !this.#present;
  }

  /**
   * Writes the ballast at start and fsyncs it, so its blocks are allocated now rather than flushed along
   * with the first commits. Without room for it the store starts in low-disk mode.
   */
  async create(): Promise<void> {
    if (this.#fileSize() !== this.bytes && !this.#write()) {
      this.logger.warn("storage.disk_full", {
        dir: this.dir,
        freeBytes: this.#freeBytes(),
        reserveBytes: this.bytes,
      });
      return;
    }
    this.#present = true;
    const file = await Deno.open(this.#path, { read: true });
    try {
      await file.syncData();
    } finally {
      file.close();
    }
  }

  /** After a write failed for lack of space: frees the reserve if the file system (not a quota) is full. */
  releaseIfDiskFull(): void {
    if (!this.#present || this.#freeBytes() >= this.bytes) return;
    removeIfPresent(this.#path);
    this.#present = false;
    this.logger.warn("storage.disk_full", {
      dir: this.dir,
      freeBytes: this.#freeBytes(),
      reserveBytes: this.bytes,
    });
  }

  /** In low-disk mode, re-creates the reserve once there is room for it and some to spare; true when done. */
  restore(): boolean {
    if (this.#present) return true;
    if (this.#freeBytes() < 2 * this.bytes || !this.#write()) return false;
    this.logger.info("storage.disk_recovered", { dir: this.dir, freeBytes: this.#freeBytes() });
    return true;
  }

  #write(): boolean {
    try {
      // Written, not just truncated to size: a sparse file would hold no blocks back.
      Deno.writeFileSync(this.#path, new Uint8Array(this.bytes));
      this.#present = true;
    } catch {
      removeIfPresent(this.#path);
    }
    return this.#present;
  }

  #fileSize(): number | undefined {
    try {
      return Deno.statSync(this.#path).size;
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return undefined;
      throw error;
    }
  }

  #freeBytes(): number {
    const stats = statfsSync(this.dir);
    return stats.bavail * stats.bsize;
  }
}

/** The size of the file system `dir` is on, or undefined when it cannot be told. */
export function volumeBytes(dir: string): number | undefined {
  try {
    const stats = statfsSync(dir);
    return stats.blocks * stats.bsize;
  } catch {
    return undefined;
  }
}

function removeIfPresent(path: string): void {
  try {
    Deno.removeSync(path);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
}
