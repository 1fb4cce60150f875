/** A clock for tests: time moves only when the test says so, and timers fire in order as it passes. */
import type { Clock, TimerHandle } from "../../src/broker/mod.ts";

interface Pending {
  at: number;
  order: number;
  callback: (key: string) => void;
  key: string;
  handle: TimerHandle;
}

export class FakeClock implements Clock {
  #now: number;
  #order = 0;
  #seed = 1;
  readonly #timers = new Set<Pending>();

  constructor(start = Date.UTC(2026, 0, 1)) {
    this.#now = start;
  }

  now = (): number => this.#now;

  after = (ms: number, callback: (key: string) => void, key = ""): TimerHandle => {
    const handle = { id: this.#order } as unknown as TimerHandle;
    this.#timers.add({ at: this.#now + Math.max(0, ms), order: this.#order++, callback, key, handle });
    return handle;
  };

  cancel = (handle: TimerHandle | undefined): void => {
    for (const timer of this.#timers) if (timer.handle === handle) this.#timers.delete(timer);
  };

  /** A fixed sequence, so a test that draws numbers draws the same ones every run. */
  random = (): number => {
    this.#seed = (this.#seed * 48271) % 0x7fffffff;
    return this.#seed / 0x7fffffff;
  };

  /** Timers not yet fired. */
  get pending(): number {
    return this.#timers.size;
  }

  /** Moves time forward by `ms`, firing every timer that falls due, earliest first. */
  advance(ms: number): void {
    const end = this.#now + ms;
    for (;;) {
      let next: Pending | undefined;
      for (const timer of this.#timers) {
        if (
          timer.at <= end &&
          (!next || timer.at < next.at || (timer.at === next.at && timer.order < next.order))
        ) {
          next = timer;
        }
      }
      if (!next) break;
      this.#timers.delete(next);
      this.#now = next.at;
      next.callback(next.key);
    }
    this.#now = end;
  }
}
