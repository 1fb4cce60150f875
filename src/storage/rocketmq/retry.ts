/**
 * What the two log readers (pop: reader.ts, pull: pull_reader.ts) share: the back-off of their retries, a
 * sleep that stopping cuts short, and applying a batch until it is applied or the reader stops.
 */
import type { LogEntry } from "../cluster_log.ts";
import type { ReadCounters } from "./frames.ts";
import { type ClusterLogLogger, describe } from "./options.ts";

export const FIRST_RETRY_MS = 100;
export const MAX_RETRY_MS = 5000;

/** A reader's stop: once asked, `stopping` is true and a sleep under way ends at once. */
export class ReaderStop {
  stopping = false;
  #wake: (() => void) | undefined;

  stop(): void {
    this.stopping = true;
    this.#wake?.();
  }

  /** Sleeps `ms`, or less when stop() is called. */
  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.#wake = done;
    });
  }

  /**
   * What `promise` settles with, or undefined as soon as stop() is called. Not `Promise.race` with a promise
   * of the stop: every race adds a reaction to that long-lived promise which keeps the race's result, so a
   * reader kept every batch it had read until it stopped (135 MB after a 100 MB join).
   */
  orStopped<T>(promise: Promise<T>): Promise<T | undefined> {
    if (this.stopping) return Promise.resolve(undefined);
    return new Promise((resolve, reject) => {
      const done = () => resolve(undefined);
      this.#wake = done;
      promise.then(resolve, reject).finally(() => {
        if (this.#wake === done) this.#wake = undefined;
      });
    });
  }
}

/**
 * Applies `entries` until `apply` resolves (true) or the reader stops (false), logging each failure and
 * waiting longer after each (an apply fails when this node's storage does; the log keeps the entries).
 */
export async function applyUntilDone(
  apply: (entries: LogEntry[]) => Promise<void>,
  entries: LogEntry[],
  stop: ReaderStop,
  reader: { counters: ReadCounters; logger: ClusterLogLogger },
): Promise<boolean> {
  let delay = FIRST_RETRY_MS;
  for (;;) {
    try {
      await apply(entries);
      reader.counters.entriesApplied += entries.length;
      return true;
    } catch (error) {
      reader.logger.warn("cluster_log_apply_failed", {
        position: String(entries[0].position),
        entries: entries.length,
        error: describe(error),
      });
    }
    if (stop.stopping) return false;
    await stop.sleep(delay);
    if (stop.stopping) return false;
    delay = Math.min(delay * 2, MAX_RETRY_MS);
  }
}
