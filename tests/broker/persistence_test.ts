/**
 * Persistence keeps a persistent session's delivery changes until storage writes its group
 * (StorageAdapter.defer): a delivery acknowledged before then is never written. Here the memory store is
 * held by hand (its `defer` keeps the writes until the test releases them, as the embedded store keeps them
 * until its worker is free); tests/storage/ has the adapters' own side, tests/broker/crash_test.ts the
 * embedded store across kill -9.
 */
import assert from "node:assert/strict";
import { Persistence } from "../../src/broker/persistence.ts";
import type { Delivery, Message } from "../../src/session/types.ts";
import { createMemoryStorage } from "../../src/storage/memory/memory_storage.ts";
import type { DeferredWrites, StorageAdapter } from "../../src/storage/port.ts";

interface Held {
  persistence: Persistence;
  /** The mutations storage received, in order. */
  calls: string[];
  /** What storage was last asked to write later (undefined once written). */
  deferred(): DeferredWrites | undefined;
  /** Lets storage write what it holds, as the embedded store does when its worker is free. */
  release(): void;
}

async function heldStorage(): Promise<Held> {
  const storage = createMemoryStorage();
  await storage.start();
  const calls: string[] = [];
  const recorded = storage as unknown as Record<string, (...args: unknown[]) => unknown>;
  for (
    const name of [
      "appendMessage",
      "saveQueueEntry",
      "deleteQueueEntry",
      "saveMeta",
      "deleteUnreferencedMessage",
    ]
  ) {
    const original = recorded[name].bind(storage);
    recorded[name] = (...args: unknown[]) => {
      const first = args[0];
      const label = typeof first === "object" && first !== null
        ? (first as { clientId?: string; topic?: string }).clientId ?? (first as { topic: string }).topic
        : String(first);
      calls.push(`${name} ${label}`);
      return original(...args);
    };
  }
  let held: DeferredWrites | undefined;
  (storage as StorageAdapter).defer = (writes) => {
    held = writes;
  };
  return {
    persistence: new Persistence(storage),
    calls,
    deferred: () => held,
    release() {
      const writes = held;
      held = undefined;
      writes?.write();
    },
  };
}

const message = (topic: string): Message => ({
  topic,
  payload: new TextEncoder().encode(topic),
  qos: 1,
  retain: false,
  properties: {},
  publisherId: "publisher",
});

const deliveryOf = (of: Message): Delivery => ({
  message: of,
  grantedQos: 1,
  retain: false,
  subscriptionIdentifiers: undefined,
  storedRef: undefined,
});

Deno.test("persistence: a delivery acknowledged before storage writes is written neither as sent nor as deleted, nor its message", async () => {
  const { persistence, calls, deferred, release } = await heldStorage();
  const delivery = deliveryOf(message("a"));
  persistence.saveDelivery("sub", delivery, 1, "sent", 1);
  assert.equal(deferred()?.awaited, 1, "a sent delivery is awaited");
  persistence.deleteDelivery("sub", delivery);
  assert.equal(deferred()?.awaited, 0, "its acknowledgement is not awaited any more");
  release();
  assert.deepEqual(calls, []);
});

Deno.test("persistence: a delivery acknowledged after storage wrote it is saved, then deleted", async () => {
  const { persistence, calls, release } = await heldStorage();
  const delivery = deliveryOf(message("a"));
  persistence.saveDelivery("sub", delivery, 1, "sent", 1);
  release();
  assert.deepEqual(calls, ["appendMessage a", "saveQueueEntry sub"]);
  persistence.deleteDelivery("sub", delivery);
  assert.equal(calls.length, 2, "the delete waits for storage's next write too");
  release();
  assert.deepEqual(calls, ["appendMessage a", "saveQueueEntry sub", "deleteQueueEntry sub"]);
});

Deno.test("persistence: a write of its own first writes the kept changes, so that none overtakes them", async () => {
  const { persistence, calls, release } = await heldStorage();
  persistence.saveDelivery("sub", deliveryOf(message("a")), 1, "queued", undefined);
  persistence.saveMeta("key", "value");
  assert.deepEqual(calls, ["appendMessage a", "saveQueueEntry sub", "saveMeta key"]);
  release();
  assert.equal(calls.length, 3, "nothing written twice");
});

Deno.test("persistence: a message several sessions receive is appended once, and its deliveries written even if acknowledged first", async () => {
  const { persistence, calls, deferred, release } = await heldStorage();
  const shared = message("a");
  const first = deliveryOf(shared);
  persistence.saveDelivery("one", first, 1, "sent", 1);
  persistence.saveDelivery("two", deliveryOf(shared), 1, "sent", 1);
  assert.equal(deferred()?.awaited, 0, "a shared message's deliveries are not waited for");
  persistence.deleteDelivery("one", first);
  assert.deepEqual(calls, ["appendMessage a", "saveQueueEntry one", "saveQueueEntry two"]);
  release();
  assert.deepEqual(calls, [
    "appendMessage a",
    "saveQueueEntry one",
    "saveQueueEntry two",
    "deleteQueueEntry one",
  ]);
});

Deno.test("persistence: a staged QoS 2 message's deliveries refer to it, written before it leaves the staging", async () => {
  const { persistence, calls } = await heldStorage();
  const staged = { ...message("q2"), qos: 2 as const };
  persistence.stageMessage(staged);
  persistence.saveDelivery("sub", deliveryOf(staged), 2, "sent", 1);
  persistence.unstageMessage(staged);
  assert.deepEqual(calls, ["appendMessage q2", "saveQueueEntry sub", "deleteUnreferencedMessage 1"]);
});
