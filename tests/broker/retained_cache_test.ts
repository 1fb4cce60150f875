/**
 * Where retained payloads live in the store, memory keeps the small ones within RETAINED_CACHE: what a
 * SUBSCRIBE matching only those needs is in memory; the rest is read from the store, and a small payload
 * read is kept for the next SUBSCRIBE. A replaced or deleted message gives its bytes back.
 */
import assert from "node:assert/strict";
import { Persistence } from "../../src/broker/persistence.ts";
import { RETAINED_CACHE, RetainedService } from "../../src/broker/retained.ts";
import type { Message } from "../../src/session/types.ts";
import { createMemoryState, createMemoryStorage } from "../../src/storage/memory/mod.ts";

function message(topic: string, bytes: number, fill = 1): Message {
  return {
    topic,
    payload: new Uint8Array(bytes).fill(fill),
    qos: 1,
    retain: true,
    properties: {},
    publisherId: "p",
  };
}

async function started(state = createMemoryState()) {
  const storage = createMemoryStorage(state);
  const snapshot = await storage.start();
  const retained = new RetainedService(
    new Persistence(storage),
    storage,
    { maxMessages: 0, maxBytes: 0 },
    true,
  );
  await retained.restore(snapshot.retained);
  return { retained, storage, state };
}

Deno.test("retained cache: small payloads are kept as published, large ones only in the store; replacing or deleting gives the bytes back", async () => {
  const { retained } = await started();
  retained.set(message("small", 1024));
  retained.set(message("large", RETAINED_CACHE.maxPayloadBytes + 1));
  retained.set(message("$SYS/broker/uptime", RETAINED_CACHE.maxPayloadBytes + 1));
  const [small, large, system] = ["small", "large", "$SYS/broker/uptime"].map((topic) =>
    retained.match(topic, 0)[0]
  );
  assert.equal(small.payload?.byteLength, 1024);
  assert.equal(large.payload, undefined);
  assert.ok(system.payload, "a $SYS payload is not stored, so memory keeps it");
  assert.equal(retained.cachedBytes, 1024);
  retained.set(message("small", 2048));
  assert.equal(retained.cachedBytes, 2048);
  retained.set(message("small", 0));
  assert.equal(retained.cachedBytes, 0);
  const [read] = await retained.read([large]);
  assert.equal(read?.payload.byteLength, RETAINED_CACHE.maxPayloadBytes + 1);
  assert.equal(large.payload, undefined, "too large to keep");
});

Deno.test("retained cache: kept payloads stay within their budget", async () => {
  const { retained } = await started();
  const fits = RETAINED_CACHE.maxBytes / RETAINED_CACHE.maxPayloadBytes;
  for (let i = 0; i <= fits; i++) retained.set(message(`t/${i}`, RETAINED_CACHE.maxPayloadBytes));
  assert.equal(retained.cachedBytes, RETAINED_CACHE.maxBytes);
  assert.equal(retained.match(`t/${fits}`, 0)[0].payload, undefined, "past the budget");
  retained.set(message("t/0", 0));
  retained.set(message(`t/${fits}`, RETAINED_CACHE.maxPayloadBytes, 2)); // room again: kept
  assert.equal(retained.match(`t/${fits}`, 0)[0].payload?.[0], 2);
  assert.equal(retained.cachedBytes, RETAINED_CACHE.maxBytes);
});

Deno.test("retained cache: after a restart nothing is kept; a small payload read is kept for the next SUBSCRIBE, a stale read is not", async () => {
  const first = await started();
  first.retained.set(message("a", 10, 7));
  first.retained.set(message("b", 10, 8));
  await first.storage.stop();
  const { retained } = await started(first.state);
  const [a, b] = [retained.match("a", 0)[0], retained.match("b", 0)[0]];
  assert.equal(a.payload, undefined);
  assert.equal(a.payloadBytes, 10);
  const reading = retained.read([a, b]);
  retained.set(message("b", 20, 9)); // replaced while the read runs
  const [readA, readB] = await reading;
  assert.deepEqual(readA?.payload, new Uint8Array(10).fill(7));
  assert.deepEqual(a.payload, new Uint8Array(10).fill(7), "kept");
  assert.equal(retained.isCurrent(b), false);
  assert.equal(b.payload, undefined, "a replaced entry keeps nothing");
  assert.equal(readB?.payload.byteLength, 10, "the memory store's read reflects the writes before it");
  assert.equal(retained.cachedBytes, 30);
});
