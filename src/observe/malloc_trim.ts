/**
 * Gives the C allocator's free memory back to the system. glibc keeps freed small blocks inside its main heap
 * and returns only the top of it, so after a burst (messages published into offline queues, a queue drained)
 * the process keeps the burst's size: buffers that crossed to the storage worker, decoder slabs and clone
 * buffers were all freed, but their pages stay resident (after 200,000 queued messages the main heap held
 * 143 MB, of which `malloc_trim(0)` gave back 130). A trim walks the free lists: 0.2–2 ms at 100–450 MB
 * resident under load, so once every {@link TRIM_INTERVAL_MS} costs nothing measurable and catches the end
 * of a burst within that time.
 *
 * Needs `--allow-ffi` and glibc; without them it is off, and says so once.
 */
import type { Logger } from "./log.ts";

export const TRIM_INTERVAL_MS = 10_000;

type MallocTrim = (pad: bigint) => number;

/** glibc's malloc_trim, looked up once per process (brokers started in one process share it). */
let libcTrim: MallocTrim | undefined;

export class MallocTrimmer {
  #lastTrimAt: number;

  private constructor(private readonly trim: MallocTrim, private readonly logger: Logger, now: number) {
    this.#lastTrimAt = now;
  }

  /** The trimmer, or undefined where the C library cannot be reached (no FFI permission, not glibc). */
  static open(logger: Logger, now: number): MallocTrimmer | undefined {
    if (Deno.build.os !== "linux" || Deno.permissions.querySync({ name: "ffi" }).state !== "granted") {
      logger.info("memory.trim_unavailable", { reason: "needs Linux and --allow-ffi" });
      return undefined;
    }
    try {
      if (!libcTrim) {
        const libc = Deno.dlopen("libc.so.6", { malloc_trim: { parameters: ["usize"], result: "i32" } });
        libcTrim = (pad) => libc.symbols.malloc_trim(pad);
      }
      return new MallocTrimmer(libcTrim, logger, now);
    } catch (error) {
      logger.info("memory.trim_unavailable", {
        reason: error instanceof Error ? error.message : String(error),
      });
      return undefined;
    }
  }

  /** Called with each memory sample; trims once the interval has passed. */
  sampled(residentBytes: number, now: number): void {
    if (now - this.#lastTrimAt < TRIM_INTERVAL_MS) return;
    this.#lastTrimAt = now;
    const started = performance.now();
    this.trim(0n);
    this.logger.debug("memory.trimmed", {
      residentBefore: residentBytes,
      residentAfter: Deno.memoryUsage().rss,
      ms: Math.round((performance.now() - started) * 10) / 10,
    });
  }
}
