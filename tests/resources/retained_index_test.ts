/**
 * The retained store is indexed by topic level: a SUBSCRIBE costs what its filter matches, not how many
 * messages are retained (50,000 retained messages made 100 small wildcard SUBSCRIBEs stall every client
 * for 4.5 s when each one scanned them all). The cost is compared with the same store holding 100 times
 * fewer messages, not with a clock, so a busy machine slows both sides alike.
 */
import assert from "node:assert/strict";
import { Persistence } from "../../src/broker/persistence.ts";
import { RetainedService } from "../../src/broker/retained.ts";
import type { Message } from "../../src/session/types.ts";
import { createMemoryStorage } from "../../src/storage/memory/mod.ts";

function message(topic: string, payload = "v", expiresAt?: number): Message {
  return {
    topic,
    payload: new TextEncoder().encode(payload),
    qos: 0,
    retain: true,
    properties: {},
    publisherId: "p",
    expiresAt,
  };
}

/** Retained messages are written through to a store; here one in memory, for the store's sake only. */
const storage = createMemoryStorage();
await storage.start();

function retainedService(): RetainedService {
  return new RetainedService(new Persistence(storage), storage);
}

function storeWith(others: number): RetainedService {
  const store = retainedService();
  for (let i = 0; i < others; i++) store.set(message(`fleet/${i}/state`));
  for (let i = 0; i < 10; i++) store.set(message(`small/${i}/x`));
  return store;
}

/** One timed batch of matches, in ms. */
function timedBatch(store: RetainedService, filter: string): number {
  const started = performance.now();
  for (let i = 0; i < 20; i++) assert.equal(store.match(filter, 0).length, 10);
  return performance.now() - started;
}

/**
 * The fastest of many timed batches on each store, taken in turns: whatever else runs meanwhile (another
 * process, or a collection in this one, which a store of 50,000 messages makes longer) slows both alike.
 */
function fastestInTurns(large: RetainedService, small: RetainedService, filter: string) {
  let bestLarge = Infinity;
  let bestSmall = Infinity;
  for (let sample = 0; sample < 200; sample++) {
    bestLarge = Math.min(bestLarge, timedBatch(large, filter));
    bestSmall = Math.min(bestSmall, timedBatch(small, filter));
  }
  return { large: bestLarge, small: bestSmall };
}

Deno.test("retained index: a wildcard SUBSCRIBE over 50,000 retained messages costs what it matches, like over 500", () => {
  const large = storeWith(50_000);
  const small = storeWith(500);
  for (const filter of ["small/+/x", "small/#"]) {
    const best = fastestInTurns(large, small, filter);
    const ratio = best.large / Math.max(best.small, 0.01);
    assert.ok(ratio < 10, `${filter}: ${ratio.toFixed(1)}× slower with 100× more retained messages`);
  }
});

Deno.test("retained index: wildcards, the parent level of #, $-topics and replacement keep their meaning", () => {
  const store = retainedService();
  for (const topic of ["a", "a/b", "a/b/c", "a/x/c", "/lead", "$SYS/uptime", "b/$x"]) {
    store.set(message(topic));
  }
  const topics = (filter: string) => store.match(filter, 0).map((m) => m.topic).sort();
  assert.deepEqual(topics("a/#"), ["a", "a/b", "a/b/c", "a/x/c"]); // [MQTT-4.7.1-2]
  assert.deepEqual(topics("a/+/c"), ["a/b/c", "a/x/c"]);
  assert.deepEqual(topics("a/+"), ["a/b"]);
  assert.deepEqual(topics("+"), ["a"]);
  assert.deepEqual(topics("+/+"), ["/lead", "a/b", "b/$x"]);
  assert.deepEqual(topics("#"), ["/lead", "a", "a/b", "a/b/c", "a/x/c", "b/$x"]); // no $SYS [MQTT-4.7.2-1]
  assert.deepEqual(topics("$SYS/#"), ["$SYS/uptime"]);
  assert.deepEqual(topics("a/b"), ["a/b"]);
  assert.equal(store.size, 7);
  store.set(message("a/b", "new"));
  assert.equal(store.size, 7);
  assert.equal(new TextDecoder().decode(store.match("a/b", 0)[0].payload), "new");
  store.set(message("a/b", ""));
  assert.deepEqual(topics("a/#"), ["a", "a/b/c", "a/x/c"]);
  assert.equal(store.size, 6);
  assert.equal(store.bytes, ["a", "a/b/c", "a/x/c", "/lead", "$SYS/uptime", "b/$x"].join("").length + 6);
});

Deno.test("retained index: an expired message is dropped when a match finds it", () => {
  const store = retainedService();
  store.set(message("e/1", "old", 1000));
  store.set(message("e/2", "lasting"));
  assert.deepEqual(store.match("e/+", 999).map((m) => m.topic).sort(), ["e/1", "e/2"]);
  assert.deepEqual(store.match("e/#", 1000).map((m) => m.topic), ["e/2"]);
  assert.equal(store.size, 1);
});
