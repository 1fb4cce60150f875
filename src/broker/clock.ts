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
  /** A timer for one client (`key`), with no closure to hold it: 100,000 offline sessions each have one. */
  after(ms: number, callback: (key: string) => void, key: string): TimerHandle;
  cancel(handle: TimerHandle | undefined): void;
  /** A number in [0, 1). */
  random(): number;
}

/** setTimeout caps delays at 2^31-1 ms; a later timer wakes the queue on the way, so a 49-day expiry still fires on time. */
const MAX_TIMER_MS = 0x7fffffff;

interface Timer extends TimerHandle {
  /** On the monotonic clock (performance.now), as setTimeout's delays are: a wall-clock step moves no timer. */
  due: number;
  /** Creation order: timers due at the same millisecond fire in the order they were set, as setTimeout's do. */
  order: number;
  callback: (key: string) => void;
  key: string;
  /** Position in the heap; -1 once fired or cancelled. */
  index: number;
}

const earlier = (a: Timer, b: Timer) => a.due < b.due || (a.due === b.due && a.order < b.order);

/**
 * Every timer of the system clock in one binary heap behind a single setTimeout, armed for the earliest.
 * A broker holds a timer per offline session (its expiry): 100,000 of them as runtime timers cost about 450
 * bytes and 4 µs each to arm; here a timer is one small object (measured in docs/benchmarks.md, "Big queues").
 */
class TimerQueue {
  readonly #heap: Timer[] = [];
  #order = 0;
  #timeout: ReturnType<typeof setTimeout> | undefined;
  #armedFor = Infinity;

  add(ms: number, callback: (key: string) => void, key: string): TimerHandle {
    const timer: Timer = {
      due: performance.now() + Math.max(0, ms),
      order: this.#order++,
      callback,
      key,
      index: -1,
    };
    this.#push(timer);
    if (timer.due < this.#armedFor) this.#arm();
    return timer;
  }

  cancel(handle: TimerHandle): void {
    const timer = handle as Timer;
    if (timer.index < 0) return;
    this.#removeAt(timer.index);
    if (this.#heap.length === 0) this.#disarm();
  }

  #fire = (): void => {
    this.#timeout = undefined;
    this.#armedFor = Infinity;
    const now = performance.now();
    // Only timers set before this pass: one that sets a timer for 0 ms waits for the next pass, as it would
    // with setTimeout.
    const lastOrder = this.#order;
    try {
      while (this.#heap.length > 0 && this.#heap[0].due <= now && this.#heap[0].order < lastOrder) {
        const timer = this.#heap[0];
        this.#removeAt(0);
        timer.callback(timer.key);
      }
    } finally {
      if (this.#heap.length > 0) this.#arm();
    }
  };

  #arm(): void {
    if (this.#timeout !== undefined) clearTimeout(this.#timeout);
    const due = this.#heap[0].due;
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

  #push(timer: Timer): void {
    timer.index = this.#heap.length;
    this.#heap.push(timer);
    this.#up(timer.index);
  }

  #removeAt(index: number): void {
    const heap = this.#heap;
    const removed = heap[index];
    removed.index = -1;
    const last = heap.pop()!;
    if (last === removed) return;
    heap[index] = last;
    last.index = index;
    this.#up(index);
    this.#down(last.index);
  }

  #up(index: number): void {
    const heap = this.#heap;
    while (index > 0) {
      const parent = (index - 1) >> 1;
      if (!earlier(heap[index], heap[parent])) break;
      this.#swap(index, parent);
      index = parent;
    }
  }

  #down(index: number): void {
    const heap = this.#heap;
    for (;;) {
      const left = 2 * index + 1, right = left + 1;
      let first = index;
      if (left < heap.length && earlier(heap[left], heap[first])) first = left;
      if (right < heap.length && earlier(heap[right], heap[first])) first = right;
      if (first === index) return;
      this.#swap(index, first);
      index = first;
    }
  }

  #swap(a: number, b: number): void {
    const heap = this.#heap;
    [heap[a], heap[b]] = [heap[b], heap[a]];
    heap[a].index = a;
    heap[b].index = b;
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
