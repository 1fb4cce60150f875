/**
 * The embedded store keeps one OperationBatch and empties it after each send: what it encodes after a reset
 * holds the new operations only, the cancelled ones marked as such, and nothing of the batch before.
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

Deno.test("operation batch: after a reset it encodes only the operations added since, cancelled ones marked", () => {
  const batch = new OperationBatch();
  batch.appendMessage(ref(1), sample.message("first"));
  batch.saveQueueEntry(sample.entry("a", ref(1)), 1);
  batch.saveQueueEntry(sample.entry("a", ref(1), { stage: "sent", packetId: 7 }), 2);
  batch.deleteQueueEntry("a", ref(1));
  assert.equal(batch.size, 0, "the message, its entry, its stage and its delete cancel out");
  assert.equal(batch.cancelled, 4);
  batch.reset();

  // Message 1 is in the database now, as far as this batch knows: its entry's delete must be written.
  batch.saveQueueEntry(sample.entry("a", ref(1), { stage: "sent", packetId: 7 }), 3);
  batch.deleteQueueEntry("a", ref(1));
  batch.saveMeta("key", "value");
  assert.equal(batch.size, 2);
  assert.equal(batch.cancelled, 1, "only the stage");
  const second = valuesOf(batch.encode());
  assert.deepEqual(second.kinds, [~SAVE_ENTRY, DELETE_ENTRY, SINGLE], "the stage carried, marked cancelled");
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
  assert.equal(batch.cancelled, 0, "nothing of the earlier batches counts");
});

Deno.test("operation batch: a message of an earlier batch keeps its append out of this one's cancellations", () => {
  const batch = new OperationBatch();
  batch.appendMessage(ref(1), sample.message());
  batch.saveQueueEntry(sample.entry("a", ref(1)), 1);
  batch.encode();
  batch.reset();

  // A new message gets the first slot again; the old one's delete must not cancel the new append.
  batch.appendMessage(ref(2), sample.message("new"));
  batch.saveQueueEntry(sample.entry("a", ref(2)), 2);
  batch.deleteQueueEntry("a", ref(1));
  assert.deepEqual(valuesOf(batch.encode()).kinds, [APPEND, SAVE_ENTRY, DELETE_ENTRY]);
});
