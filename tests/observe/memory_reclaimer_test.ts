/**
 * When MemoryReclaimer collects: only once the broker has been quiet for QUIET_MS and the heap grew, and
 * for the memory budget at most every BUDGET_COLLECTION_SPACING_MS. The samples' heap sizes are given; the
 * collections are V8's own (their log lines say which ran). What a collection gives back is shown by
 * tests/resources/memory_reclaimer_test.ts against a broker process.
 */
import assert from "node:assert/strict";
import { createLogger } from "../../src/observe/log.ts";
import {
  BUDGET_COLLECTION_SPACING_MS,
  BUDGET_SPACING_PER_PAUSE,
  MemoryReclaimer,
  QUIET_ACTIVITY,
  QUIET_MS,
} from "../../src/observe/memory_reclaimer.ts";

const MB = 1 << 20;
const used = () => Deno.memoryUsage().heapUsed + Deno.memoryUsage().external;

/** `collect`: V8's own full collection unless given. */
function reclaimer(activity: () => number, collect?: () => void) {
  const lines: string[] = [];
  const logger = createLogger({ level: "debug", write: (line) => lines.push(line) });
  const collections = () =>
    lines.filter((line) => line.includes('"memory.collected"')).map((line) => JSON.parse(line).reason);
  // An undefined `collect` takes the constructor's default.
  return { reclaimer: new MemoryReclaimer(logger, activity, 0, collect), collections };
}

Deno.test("memory reclaimer: a grown heap is collected once the broker has been quiet for QUIET_MS, not while it is busy", () => {
  let activity = 0;
  const { reclaimer: subject, collections } = reclaimer(() => activity);
  const grown = used() + 64 * MB;
  // Busy: more than QUIET_ACTIVITY in every window.
  for (let now = 0; now <= 3 * QUIET_MS; now += 250) {
    activity += QUIET_ACTIVITY + 1;
    subject.sampled(grown, now);
  }
  assert.deepEqual(collections(), [], "no collection while messages flow");
  // Quiet after the last busy sample: a trickle below QUIET_ACTIVITY.
  const lastBusy = 3 * QUIET_MS;
  for (let now = lastBusy + 250; now < lastBusy + QUIET_MS; now += 250) {
    activity += 1;
    subject.sampled(grown, now);
  }
  assert.deepEqual(collections(), [], "not before QUIET_MS of quiet");
  subject.sampled(grown, lastBusy + QUIET_MS);
  assert.deepEqual(collections(), ["quiet"]);
  // The heap is what the collection left: no growth, no second collection.
  for (let now = lastBusy + QUIET_MS + 250; now < lastBusy + 4 * QUIET_MS; now += 250) {
    subject.sampled(used(), now);
  }
  assert.deepEqual(collections(), ["quiet"]);
});

Deno.test("memory reclaimer: a heap that did not grow is not collected, however quiet", () => {
  const { reclaimer: subject, collections } = reclaimer(() => 0);
  for (let now = 0; now <= 4 * QUIET_MS; now += 250) subject.sampled(used(), now);
  assert.deepEqual(collections(), []);
});

Deno.test("memory reclaimer: the budget's collections are at least BUDGET_COLLECTION_SPACING_MS apart", () => {
  let activity = 0;
  // A collection that takes no time: V8's own took over 100 ms in a loaded full run, and the spacing then
  // rightly became 20 pauses (the next test), not the 2 s floor this one is about.
  const { reclaimer: subject, collections } = reclaimer(() => activity += QUIET_ACTIVITY + 1, () => {});
  const first = subject.collectForBudget(1_000);
  assert.ok(first !== undefined && first > 0, "a collection, and the bytes in use after it");
  assert.equal(
    subject.collectForBudget(1_000 + BUDGET_COLLECTION_SPACING_MS - 1),
    undefined,
    "too soon: none",
  );
  assert.ok(subject.collectForBudget(1_000 + BUDGET_COLLECTION_SPACING_MS) !== undefined);
  assert.deepEqual(collections(), ["budget", "budget"]);
});

Deno.test("memory reclaimer: a long collection spaces the budget's next ones by BUDGET_SPACING_PER_PAUSE times its pause", () => {
  const lines: string[] = [];
  const logger = createLogger({ level: "debug", write: (line) => lines.push(line) });
  const pauseMs = 250; // as a full collection of 100,000 sessions' heap takes (0.2–1 s measured)
  let collections = 0;
  let measuredMs = 0;
  const slowCollection = () => {
    collections++;
    const started = performance.now();
    while (performance.now() < started + pauseMs) { /* the event loop stopped, as in a full collection */ }
    measuredMs = performance.now() - started;
  };
  const subject = new MemoryReclaimer(logger, () => 0, 0, slowCollection);
  assert.ok(subject.collectForBudget(1_000) !== undefined);
  const spacing = BUDGET_SPACING_PER_PAUSE * measuredMs;
  assert.ok(spacing > BUDGET_COLLECTION_SPACING_MS, "the test's pause must matter");
  assert.equal(
    subject.collectForBudget(1_000 + BUDGET_COLLECTION_SPACING_MS),
    undefined,
    "2 s later: too soon",
  );
  assert.equal(subject.collectForBudget(1_000 + spacing - 1), undefined, "just under 20 pauses: too soon");
  // The reclaimer times the call around the collection: a few microseconds more than the collection's own.
  assert.ok(subject.collectForBudget(1_000 + spacing + 10) !== undefined, "20 pauses later: collects");
  assert.equal(collections, 2);
  const logged = lines.filter((line) => line.includes('"memory.collected"')).map((line) =>
    JSON.parse(line).ms
  );
  assert.ok(logged.every((ms) => ms >= pauseMs), `each pause logged: ${logged}`);
});
