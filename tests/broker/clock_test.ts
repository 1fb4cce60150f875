/** The system clock's timers: one runtime timer for all of them, in due order, cancellable at any time. */
import assert from "node:assert/strict";
import { systemClock } from "../../src/broker/clock.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

Deno.test("system clock: timers fire in due order, same-millisecond ones in the order they were set", async () => {
  const fired: string[] = [];
  const done = Promise.withResolvers<void>();
  systemClock.after(30, () => fired.push("30"));
  systemClock.after(10, () => fired.push("10a"));
  systemClock.after(10, () => fired.push("10b"));
  systemClock.after(0, () => fired.push("0"));
  systemClock.after(40, () => done.resolve());
  await done.promise;
  assert.deepEqual(fired, ["0", "10a", "10b", "30"]);
});

Deno.test("system clock: a cancelled timer never fires, whether it was first, in the middle or last", async () => {
  const fired: number[] = [];
  const handles = [5, 10, 15, 20, 25].map((ms) => systemClock.after(ms, () => fired.push(ms)));
  systemClock.cancel(handles[0]);
  systemClock.cancel(handles[2]);
  systemClock.cancel(handles[4]);
  systemClock.cancel(handles[4]);
  await sleep(40);
  assert.deepEqual(fired, [10, 20]);
});

Deno.test("system clock: a timer set by a callback for 0 ms fires on a later pass, not in the same one", async () => {
  const fired: string[] = [];
  const done = Promise.withResolvers<void>();
  systemClock.after(0, () => {
    fired.push("first");
    systemClock.after(0, () => {
      fired.push("second");
      done.resolve();
    });
    queueMicrotask(() => fired.push("microtask after first"));
  });
  await done.promise;
  assert.deepEqual(fired, ["first", "microtask after first", "second"]);
});

Deno.test("system clock: an earlier timer set after a later one re-arms the queue for itself", async () => {
  const fired: number[] = [];
  const late = systemClock.after(60_000, () => fired.push(60_000));
  const done = Promise.withResolvers<void>();
  systemClock.after(5, () => {
    fired.push(5);
    done.resolve();
  });
  await done.promise;
  systemClock.cancel(late);
  assert.deepEqual(fired, [5]);
});
