/** A pending timer; `cancel` stops it even after it was re-armed for a long delay. */
export interface TimerHandle {
  id: ReturnType<typeof setTimeout>;
}

/**
 * Time and chance behind one interface, injected through `startBroker`: will delays, session expiry and
 * shared-subscription picks can then be driven by a test clock with no real sleeps.
 */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  after(ms: number, callback: () => void): TimerHandle;
  cancel(handle: TimerHandle | undefined): void;
  /** A number in [0, 1). */
  random(): number;
}

/** setTimeout caps delays at 2^31-1 ms; longer ones re-arm so that a 49-day expiry still fires on time. */
const MAX_TIMER_MS = 0x7fffffff;

/** The real clock. */
export const systemClock: Clock = {
  now: Date.now,
  after(ms, callback) {
    const handle = {} as TimerHandle;
    const arm = (remaining: number) => {
      if (remaining <= MAX_TIMER_MS) handle.id = setTimeout(callback, remaining);
      else handle.id = setTimeout(() => arm(remaining - MAX_TIMER_MS), MAX_TIMER_MS);
    };
    arm(ms);
    return handle;
  },
  cancel(handle) {
    if (handle) clearTimeout(handle.id);
  },
  random: Math.random,
};
