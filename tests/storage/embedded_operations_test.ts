/**
 * The embedded store keeps one OperationBatch and empties it after each send: what it encodes after a reset
 * holds the new operations only, and nothing of the batch before.
 */
import assert from "node:assert/strict";
import type { MessageRef } from "../../src/storage/port.ts";
import {
  APPEND,
  DELETE_ENTRY,
  OperationBatch,
  SAVE_ENTRY,
  SINGLE,
} from "../../src/storage/embedded/operations.ts";
import { sample } from "../../src/storage/conformance_samples.ts";
import { decodeOperations } from "../../src/storage/embedded/batch_codec.ts";
import type { WireBatch } from "../../src/storage/embedded/operations.ts";

/** An encoded batch's kinds and every value, as the worker reads them, and its payloads. */
const valuesOf = ({ operations, payloads }: WireBatch) => ({ ...decodeOperations(operations), payloads });

const ref = (id: number) => id as MessageRef;
const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

Deno.test("operation batch: after a reset it encodes only the operations added since, every one of them", () => {
  const batch = new OperationBatch();
  batch.appendMessage(ref(1), sample.message("first"));
  batch.saveQueueEntry(sample.entry("a", ref(1)), 1);
  batch.saveQueueEntry(sample.entry("a", ref(1), { stage: "sent", packetId: 7 }), 2);
  batch.deleteQueueEntry("a", ref(1));
  const first = valuesOf(batch.encode());
  assert.deepEqual(
    first.kinds,
    [APPEND, SAVE_ENTRY, SAVE_ENTRY, DELETE_ENTRY],
    "nothing cancels out here: the store's window does (apply_window.ts)",
  );
  assert.equal(text(first.payloads), "payload of first");
  batch.reset();

  batch.saveQueueEntry(sample.entry("a", ref(1), { stage: "sent", packetId: 7 }), 3);
  batch.deleteQueueEntry("a", ref(1));
  batch.saveMeta("key", "value");
  const second = valuesOf(batch.encode());
  assert.deepEqual(second.kinds, [SAVE_ENTRY, DELETE_ENTRY, SINGLE]);
  assert.deepEqual(second.values, ["a", 1, 3, 1, 0, null, 1, 7, "a", 1, "saveMeta", 0, 2, "key", "value"]);
  assert.equal(second.payloads.byteLength, 0);
  batch.reset();

  batch.appendMessage(ref(2), sample.message("second"));
  batch.saveQueueEntry(sample.entry("b", ref(2)), 4);
  const third = valuesOf(batch.encode());
  assert.deepEqual(third.kinds, [APPEND, SAVE_ENTRY]);
  assert.deepEqual(third.values, [
    2,
    "second",
    0,
    "payload of second".length,
    1,
    0,
    null,
    "publisher",
    null,
    "b",
    2,
    4,
    1,
    0,
    null,
    0,
    null,
  ]);
  assert.equal(text(third.payloads), "payload of second");
});
