/**
 * Slows down password guessing per source address: each failed login from an address doubles the
 * delay (from `baseMs` up to `maxMs`) that the address's next attempts wait before they are
 * answered. A success takes back one failure, not all of them: an attacker who owns one valid account
 * must not be able to reset the count between guesses. Concurrent attempts from one address queue
 * behind each other, one delay apart, so opening many connections at once does not bypass the delay.
 * The caller decides what an address is (`clientAddressKey` in login_guard.ts: IP, IPv6 /64).
 */

/** Time as the throttle sees it; tests substitute a manual clock. */
export interface Clock {
  now(): number;
  sleep(milliseconds: number): Promise<void>;
}

/** The real clock. */
export const systemClock: Clock = {
  now: () => Date.now(),
  sleep: (milliseconds) => new Promise((resolve) => setTimeout(resolve, milliseconds)),
};

/** Bounds of the per-address delay after failed logins. */
export interface FailureDelay {
  baseMs: number;
  maxMs: number;
}

/** An address that has been quiet this long starts afresh, as if it had never failed. */
export const FORGET_AFTER_MS = 10 * 60_000;

/** Addresses remembered at most; the least recently active one is forgotten first. */
export const DEFAULT_THROTTLE_CAPACITY = 10_000;

interface AddressRecord {
  failures: number;
  delayMs: number;
  /** The earliest time the next attempt from this address may be answered. */
  nextAttemptAt: number;
  lastFailureAt: number;
}

/** The per-address failure table, bounded by an LRU. */
export class LoginThrottle {
  readonly #records = new Map<string, AddressRecord>();

  constructor(
    private readonly delay: FailureDelay,
    private readonly clock: Clock = systemClock,
    private readonly capacity: number = DEFAULT_THROTTLE_CAPACITY,
  ) {}

  /** Number of addresses currently remembered. */
  get size(): number {
    return this.#records.size;
  }

  /**
   * Resolves once the address may be answered, with the milliseconds it waited: at once (0) for an
   * address without recent failures.
   */
  async waitTurn(address: string): Promise<number> {
    const record = this.#current(address);
    if (!record) return 0;
    const now = this.clock.now();
    const startAt = Math.max(now, record.nextAttemptAt);
    record.nextAttemptAt = startAt + record.delayMs;
    if (startAt > now) await this.clock.sleep(startAt - now);
    return startAt - now;
  }

  /** Doubles the address's delay, up to the maximum. */
  recordFailure(address: string): void {
    const now = this.clock.now();
    const record = this.#current(address) ??
      { failures: 0, delayMs: 0, nextAttemptAt: now, lastFailureAt: now };
    record.failures += 1;
    record.delayMs = this.#delayAfter(record.failures);
    record.nextAttemptAt = Math.max(record.nextAttemptAt, now + record.delayMs);
    record.lastFailureAt = now;
    this.#records.delete(address); // re-inserting moves it to the most recent end
    this.#records.set(address, record);
    if (this.#records.size > this.capacity) this.#records.delete(this.#records.keys().next().value!);
  }

  /** Takes back one of the address's failures; the address is forgotten when none is left. */
  recordSuccess(address: string): void {
    const record = this.#current(address);
    if (!record) return;
    record.failures -= 1;
    if (record.failures <= 0) this.#records.delete(address);
    else record.delayMs = this.#delayAfter(record.failures);
  }

  #delayAfter(failures: number): number {
    return Math.min(this.delay.maxMs, this.delay.baseMs * 2 ** (failures - 1));
  }

  #current(address: string): AddressRecord | undefined {
    const record = this.#records.get(address);
    if (record && this.clock.now() - record.lastFailureAt > FORGET_AFTER_MS) {
      this.#records.delete(address);
      return undefined;
    }
    return record;
  }
}
