/**
 * Gives memory a burst left behind back to the system, and keeps garbage from counting against the memory
 * budget. Two things keep it resident once traffic stops:
 * - V8 collects when JavaScript allocates, so the garbage of a burst (decoded packets, payloads read back
 *   from the store, grown batch buffers) stays in the heap of a broker that went quiet, together with the
 *   C memory behind its ArrayBuffers: after a big queue drained, 328 MB of heap were in use and 152 MB
 *   after a full collection. So when the broker has been quiet for {@link QUIET_MS} and the heap and the
 *   buffers outside it have grown by a quarter (at least {@link GROWTH_FLOOR_BYTES}) since the last collection, it collects once. Not
 *   under load: a full collection stops the event loop for 0.2–1 s at 120–150 MB of live heap. Tried on the
 *   big-queue benchmark (collect whenever the heap doubled past 256 MB), it took the publishing peak from
 *   871 to 737 MB and the draining peak from 873 to 695 MB at the cost of a dozen such pauses.
 * - glibc keeps freed small blocks inside its main heap and returns only the top of it: after 200,000 queued
 *   messages the main heap held 143 MB, of which `malloc_trim(0)` gave back 130. A trim walks the free lists
 *   (0.2–2 ms at 100–450 MB resident under load), so once every {@link RECLAIM_INTERVAL_MS} costs nothing
 *   measurable; after a collection it runs on the next sample, once V8 has swept the freed buffers.
 *
 * The memory budget (limits.memory_bytes) counts the heap in use, garbage included: before it turns over,
 * {@link MemoryReclaimer.collectForBudget} collects, so that only what is live refuses messages.
 *
 * The trim needs `--allow-ffi` and glibc; without them it is off, and says so once. The collection is
 * V8's `gc()` made reachable at run time (a flag and a fresh context), so it needs no command-line flag;
 * a runtime that does not give it turns collections off (`memory.collect_unavailable`), never the broker.
 */
import v8 from "node:v8";
import vm from "node:vm";
import type { Logger } from "./log.ts";

/** The allocator is trimmed this often. */
export const RECLAIM_INTERVAL_MS = 10_000;
/** The broker is quiet once it has done at most {@link QUIET_ACTIVITY} (messages received and sent, connects) for this long. */
export const QUIET_MS = 5_000;
export const QUIET_ACTIVITY = 500;
export const GROWTH_FLOOR_BYTES = 8 << 20;
/** A collection asked for by the memory budget comes at least this long after the previous one... */
export const BUDGET_COLLECTION_SPACING_MS = 2_000;
/**
 * ...and at least this many times the previous collection's pause after it, so that a broker whose live
 * data hovers at its budget spends at most 1/20 of its time stopped in them: at 100,000 sessions one
 * pause was 0.2–1 s, which every 2 s would have stopped it a third of the time or more.
 */
export const BUDGET_SPACING_PER_PAUSE = 20;

type MallocTrim = (pad: bigint) => number;

/** glibc's malloc_trim and V8's gc, each looked up once per process (brokers started in one process share them). */
let libcTrim: MallocTrim | undefined;
let collect: (() => void) | undefined;

/** V8's gc(), or undefined (logged once per broker) where the runtime does not give it. */
function fullCollection(logger: Logger): (() => void) | undefined {
  try {
    if (!collect) {
      v8.setFlagsFromString("--expose-gc");
      const found: unknown = vm.runInNewContext("typeof gc === 'function' ? gc : undefined");
      if (typeof found !== "function") throw new Error("gc() is not exposed");
      collect = found as () => void;
    }
    return collect;
  } catch (error) {
    logger.info("memory.collect_unavailable", {
      reason: error instanceof Error ? error.message : String(error),
    });
    return undefined;
  }
}

/** The heap in use and the buffers outside it. */
function usedBytes(): number {
  const { heapUsed, external } = Deno.memoryUsage();
  return heapUsed + external;
}

function openTrim(logger: Logger): MallocTrim | undefined {
  if (Deno.build.os !== "linux" || Deno.permissions.querySync({ name: "ffi" }).state !== "granted") {
    logger.info("memory.trim_unavailable", { reason: "needs Linux and --allow-ffi" });
    return undefined;
  }
  try {
    if (!libcTrim) {
      const libc = Deno.dlopen("libc.so.6", { malloc_trim: { parameters: ["usize"], result: "i32" } });
      libcTrim = (pad) => libc.symbols.malloc_trim(pad);
    }
    return libcTrim;
  } catch (error) {
    logger.info("memory.trim_unavailable", {
      reason: error instanceof Error ? error.message : String(error),
    });
    return undefined;
  }
}

export class MemoryReclaimer {
  readonly #collect: (() => void) | undefined;
  readonly #trim: MallocTrim | undefined;
  #lastTrimAt: number;
  /** Since when the broker has done at most {@link QUIET_ACTIVITY}, and its activity count then. */
  #quietSince: number;
  #activityAtQuietStart: number;
  /**
   * An upper bound of what is live: the heap and the buffers outside it (payloads, read slabs: what the
   * trim gives back once they are freed) in use after the last collection, or less seen since.
   */
  #liveBytes: number;
  #trimOnNextSample = false;
  #lastCollectionAt = -Infinity;
  #lastPauseMs = 0;

  /**
   * `activity` counts what the broker did since start (messages received and sent, connects): a collection
   * pauses the event loop (0.2–1 s at 120–150 MB of live heap), so it waits for {@link QUIET_MS} without much.
   */
  constructor(
    private readonly logger: Logger,
    private readonly activity: () => number,
    now: number,
    /** A full collection; V8's gc() unless a test gives one. */
    collect: (() => void) | undefined = fullCollection(logger),
  ) {
    this.#collect = collect;
    this.#trim = openTrim(logger);
    this.#lastTrimAt = now;
    this.#quietSince = now;
    this.#activityAtQuietStart = activity();
    this.#liveBytes = usedBytes();
  }

  /** Called with each memory sample: `usedBytes` is the heap and the buffers outside it in use. */
  sampled(usedBytes: number, now: number): void {
    this.#liveBytes = Math.min(this.#liveBytes, usedBytes);
    const activity = this.activity();
    if (activity - this.#activityAtQuietStart > QUIET_ACTIVITY) {
      this.#quietSince = now;
      this.#activityAtQuietStart = activity;
    }
    const growth = usedBytes - this.#liveBytes;
    const quiet = now - this.#quietSince >= QUIET_MS;
    if (this.#collect && quiet && growth >= Math.max(GROWTH_FLOOR_BYTES, this.#liveBytes / 4)) {
      this.#collectNow(this.#collect, "quiet", usedBytes, now);
    } else if (this.#trimOnNextSample || now - this.#lastTrimAt >= RECLAIM_INTERVAL_MS) {
      this.#trimOnNextSample = false;
      this.#lastTrimAt = now;
      this.#trimNow();
    }
  }

  /**
   * For the memory budget about to turn over: collects (unless the last collection, which the sample
   * already shows, was less than {@link BUDGET_COLLECTION_SPACING_MS} or {@link BUDGET_SPACING_PER_PAUSE}
   * times its pause ago) and returns the heap and outside buffers in use after it, so that garbage does
   * not make the broker refuse messages.
   */
  collectForBudget(now: number): number | undefined {
    const spacing = Math.max(BUDGET_COLLECTION_SPACING_MS, BUDGET_SPACING_PER_PAUSE * this.#lastPauseMs);
    if (!this.#collect || now - this.#lastCollectionAt < spacing) return undefined;
    this.#collectNow(this.#collect, "budget", usedBytes(), now);
    return this.#liveBytes;
  }

  #collectNow(collect: () => void, reason: "quiet" | "budget", usedBefore: number, now: number): void {
    this.#lastCollectionAt = now;
    const started = performance.now();
    collect();
    this.#lastPauseMs = performance.now() - started;
    this.#liveBytes = usedBytes();
    this.#trimOnNextSample = true;
    this.logger.debug("memory.collected", {
      reason,
      usedBefore,
      usedAfter: this.#liveBytes,
      ms: Math.round(this.#lastPauseMs),
    });
  }

  #trimNow(): void {
    if (!this.#trim) return;
    const residentBefore = Deno.memoryUsage().rss;
    const started = performance.now();
    this.#trim(0n);
    this.logger.debug("memory.trimmed", {
      residentBefore,
      residentAfter: Deno.memoryUsage().rss,
      ms: Math.round((performance.now() - started) * 10) / 10,
    });
  }
}
