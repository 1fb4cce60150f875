/** A pending timer; `cancel` stops it even after it was re-armed for a long delay. */
export interface TimerHandle {
  id: ReturnType<typeof setTimeout>;
}

/** Timers behind an interface, so that will delays and session expiry can be driven by a test clock. */
export interface Scheduler {
  after(ms: number, callback: () => void): TimerHandle;
  cancel(handle: TimerHandle | undefined): void;
}

/** setTimeout caps delays at 2^31-1 ms; longer ones re-arm so that a 49-day expiry still fires on time. */
const MAX_TIMER_MS = 0x7fffffff;

/** The real clock. */
export const timerScheduler: Scheduler = {
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
};
