import assert from "node:assert/strict";
import { createMemoryState, createMemoryStorage } from "../../src/storage/mod.ts";
import { readWholeQueue, runStorageConformance } from "../../src/storage/conformance.ts";
import { sample } from "../../src/storage/conformance_samples.ts";
import { PAYLOAD_NURSERY_MS } from "../../src/storage/memory/mod.ts";
import type { StorageAdapter, StoredMessage } from "../../src/storage/port.ts";
import { allocatedBytes } from "../helpers/allocation.ts";

let state = createMemoryState();
runStorageConformance("memory", {
  open: () => Promise.resolve(createMemoryStorage(state = createMemoryState())),
  reopen: () => Promise.resolve(createMemoryStorage(state)),
  cleanup: () => Promise.resolve(),
});

Deno.test("memory storage: every flush is the one settled promise, so the broker observes it once, not per PUBLISH", async () => {
  const storage = createMemoryStorage();
  await storage.start();
  try {
    const first = storage.flush();
    storage.saveMeta("key", "value");
    assert.equal(storage.dirty, true);
    const second = storage.flush();
    assert.equal(storage.dirty, false);
    assert.equal(second, first, "a flush after a change is the same promise");
    await second;
  } finally {
    await storage.stop();
  }
});

/** The payload the store holds for client "a"'s only queued message. */
async function storedPayload(storage: StorageAdapter): Promise<Uint8Array> {
  const [delivery] = await readWholeQueue(storage, "a");
  return delivery.message.payload;
}

Deno.test("memory storage: a payload stays a view of the caller's block for one to two nursery periods, then the stored message gets a copy of its own", async () => {
  let now = 0;
  const storage = createMemoryStorage(createMemoryState(), { now: () => now });
  await storage.start();
  try {
    const block = Uint8Array.from({ length: 32 * 1024 }, (_, index) => index % 251);
    const payload = block.subarray(64, 128);
    const id = storage.appendMessage(sample.message("kept", { payload }));
    storage.saveQueueEntry(sample.entry("a", id));
    // Acknowledged within the period, most messages to a connected session are never copied.
    assert.equal((await storedPayload(storage)).buffer, block.buffer, "no copy at the append");

    now += PAYLOAD_NURSERY_MS;
    storage.appendMessage(sample.message("next period", { payload: block.subarray(256, 320) }));
    assert.equal((await storedPayload(storage)).buffer, block.buffer, "still a view in the next period");

    now += PAYLOAD_NURSERY_MS;
    storage.appendMessage(sample.message("the period after", { payload: block.subarray(512, 576) }));
    const copied = await storedPayload(storage);
    assert.notEqual(copied.buffer, block.buffer, "the block is no longer held");
    assert.equal(copied.buffer.byteLength, payload.byteLength);
    assert.deepEqual(copied, payload);
  } finally {
    await storage.stop();
  }
});

Deno.test("memory storage: a payload over most of its buffer is kept as it is, across periods and a stop", async () => {
  let now = 0;
  const state = createMemoryState();
  const storage = createMemoryStorage(state, { now: () => now });
  await storage.start();
  // A large frame has a buffer of its own: the payload is all of it but the header and topic.
  const frame = new Uint8Array(2048).fill(9);
  const payload = frame.subarray(40);
  storage.saveQueueEntry(sample.entry("a", storage.appendMessage(sample.message("large", { payload }))));
  const slab = new Uint8Array(32 * 1024);
  for (let period = 0; period < 3; period++) {
    now += PAYLOAD_NURSERY_MS;
    storage.appendMessage(sample.message("tick", { payload: slab.subarray(period * 64, period * 64 + 64) }));
  }
  assert.equal((await storedPayload(storage)).buffer, frame.buffer);
  await storage.stop();
  const reopened = createMemoryStorage(state);
  await reopened.start();
  try {
    assert.equal((await storedPayload(reopened)).buffer, frame.buffer);
  } finally {
    await reopened.stop();
  }
});

Deno.test("memory storage: a wall clock set back does not hold the nursery's buffers until it catches up", async () => {
  const wallClock = Date.now;
  const storage = createMemoryStorage();
  try {
    await storage.start();
    const block = new Uint8Array(32 * 1024).fill(3);
    const id = storage.appendMessage(sample.message("kept", { payload: block.subarray(0, 64) }));
    storage.saveQueueEntry(sample.entry("a", id));
    Date.now = () => wallClock() - 3_600_000; // an NTP step back of an hour, right after the append
    for (let period = 1; period <= 2; period++) {
      await new Promise((resolve) => setTimeout(resolve, PAYLOAD_NURSERY_MS + 20));
      storage.appendMessage(
        sample.message("later", { payload: block.subarray(period * 64, period * 64 + 64) }),
      );
    }
    assert.notEqual((await storedPayload(storage)).buffer, block.buffer, "copied two periods on");
  } finally {
    Date.now = wallClock;
    await storage.stop();
  }
});

Deno.test("memory storage: the broker's appended message, whose payload is a getter, costs no more than a plain one", async () => {
  // Copied by a spread, an object with an accessor took V8's slow path: about 140 B more per append (and
  // some 2.5 µs), at one append per message of a cluster node on the memory store.
  const storage = createMemoryStorage();
  await storage.start();
  try {
    const payload = new Uint8Array(64);
    const plain = sample.message("t", { payload });
    const withGetter: StoredMessage = {
      ...sample.message("t"),
      get payload(): Uint8Array {
        return payload;
      },
      payloadSource: { payloadSize: 64, copyPayloadTo: () => {} },
    };
    const appends = 20_000;
    const perAppend = async (message: StoredMessage) => {
      const run = () => {
        for (let i = 0; i < appends; i++) storage.deleteUnreferencedMessage(storage.appendMessage(message));
      };
      for (let round = 0; round < 3; round++) run(); // the code optimized
      return await allocatedBytes(run) / appends;
    };
    const plainBytes = await perAppend(plain);
    const getterBytes = await perAppend(withGetter);
    assert.ok(
      getterBytes < plainBytes + 32,
      `${getterBytes.toFixed(0)} B per append against ${plainBytes.toFixed(0)} B for a plain message`,
    );
  } finally {
    await storage.stop();
  }
});
