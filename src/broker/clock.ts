import { type HeapItem, IndexedHeap } from "./indexed_heap.ts";

/** A pending timer; `cancel` stops it whenever it is called, even for a long delay. */
// deno-lint-ignore no-empty-interface
export interface TimerHandle {}

/**
 * Time and chance behind one interface, injected through `startBroker`: will delays, session expiry and
 * shared-subscription picks can then be driven by a test clock with no real sleeps.
 */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  after(ms: number, callback: () => void): TimerHandle;
  /** A timer for one client (`key`), with no closure to hold it. */
  after(ms: number, callback: (key: string) => void, key: string): TimerHandle;
  cancel(handle: TimerHandle | undefined): void;
  /** A number in [0, 1). */
  random(): number;
}

/** setTimeout caps delays at 2^31-1 ms; a later timer wakes the queue on the way, so a 49-day expiry still fires on time. */
const MAX_TIMER_MS = 0x7fffffff;

interface Timer extends TimerHandle, HeapItem {
  /** On the monotonic clock (performance.now), as setTimeout's delays are: a wall-clock step moves no timer. */
  due: number;
  /** Creation order: timers due at the same millisecond fire in the order they were set, as setTimeout's do. */
  order: number;
  callback: (key: string) => void;
  key: string;
}

const earlier = (a: Timer, b: Timer) => a.due < b.due || (a.due === b.due && a.order < b.order);

/**
 * Every timer of the system clock in one binary heap behind a single setTimeout, armed for the earliest:
 * as runtime timers, thousands of them (wills, a cluster's timers) would cost about 450 bytes and 4 µs
 * each to arm; here a timer is one small object. (Offline sessions' expiries are not timers: the registry
 * keeps them in a heap of its own, see registry.ts.)
 */
class TimerQueue {
  readonly #heap = new IndexedHeap<Timer>(earlier);
  #order = 0;
  #timeout: ReturnType<typeof setTimeout> | undefined;
  #armedFor = Infinity;

  add(ms: number, callback: (key: string) => void, key: string): TimerHandle {
    const timer: Timer = {
      due: performance.now() + Math.max(0, ms),
      order: this.#order++,
      callback,
      key,
      heapIndex: -1,
    };
    this.#heap.push(timer);
    if (timer.due < this.#armedFor) this.#arm();
    return timer;
  }

  cancel(handle: TimerHandle): void {
    if (!this.#heap.remove(handle as Timer)) return;
    if (this.#heap.size === 0) this.#disarm();
  }

  #fire = (): void => {
    this.#timeout = undefined;
    this.#armedFor = Infinity;
    const now = performance.now();
    // Only timers set before this pass: one that sets a timer for 0 ms waits for the next pass, as it would
    // with setTimeout.
    const lastOrder = this.#order;
    try {
      for (let timer = this.#heap.peek(); timer && timer.due <= now && timer.order < lastOrder;) {
        this.#heap.remove(timer);
        timer.callback(timer.key);
        timer = this.#heap.peek();
      }
    } finally {
      if (this.#heap.size > 0) this.#arm();
    }
  };

  #arm(): void {
    if (this.#timeout !== undefined) clearTimeout(this.#timeout);
    const due = this.#heap.peek()!.due;
    this.#armedFor = due;
    this.#timeout = setTimeout(
      this.#fire,
      Math.min(MAX_TIMER_MS, Math.max(0, Math.ceil(due - performance.now()))),
    );
  }

  #disarm(): void {
    if (this.#timeout !== undefined) clearTimeout(this.#timeout);
    this.#timeout = undefined;
    this.#armedFor = Infinity;
  }
}

const timers = new TimerQueue();

/** The real clock. */
export const systemClock: Clock = {
  now: Date.now,
  after: (ms: number, callback: (key: string) => void, key: string = "") => timers.add(ms, callback, key),
  cancel(handle) {
    if (handle) timers.cancel(handle);
  },
  random: Math.random,
};
