import type { Clock } from "../broker/mod.ts";

/** The log's clock during an apply: every node uses the event's time and the entry's position. */
export class LogClock implements Clock {
  #at: number | undefined;
  #seed = 0;

  constructor(private readonly real: Clock) {}

  now = (): number => this.#at ?? this.real.now();
  after = (ms: number, callback: (key: string) => void, key = "") => this.real.after(ms, callback, key);
  cancel = (handle: Parameters<Clock["cancel"]>[0]) => this.real.cancel(handle);

  /** Chance derived from the log position while applying, so every node draws the same number. */
  random = (): number => {
    if (this.#at === undefined) return this.real.random();
    this.#seed = (Math.imul(this.#seed ^ (this.#seed >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) | 0;
    return (this.#seed >>> 0) / 0x1_0000_0000;
  };

  /**
   * From now until {@link settle}, "now" is the log time of the entry being applied and chance comes from
   * its position. (Local work that runs while an apply waits for storage sees the log's time too; it is a
   * few milliseconds old at most.)
   */
  enter(at: number, position: bigint): void {
    this.#at = at;
    this.#seed = Number(position & 0xffff_ffffn) | 0;
  }

  settle(): void {
    this.#at = undefined;
  }
}
