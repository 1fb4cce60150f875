/** cancelAcross: operations that cancel out across the batches of the operation log's window. */
import assert from "node:assert/strict";
import { cancelAcross } from "../../src/storage/embedded/apply_window.ts";
import {
  APPEND,
  DELETE_ENTRY,
  type FlatBatch,
  OperationBatch,
  SAVE_ENTRY,
} from "../../src/storage/embedded/operations.ts";
import type { MessageRef } from "../../src/storage/port.ts";
import { sample } from "../../src/storage/conformance_samples.ts";
import { decoded } from "./embedded_helpers.ts";

const ref = (id: number) => id as MessageRef;

/** Three batches: message 1 queued for a; then its delete, message 2 queued for b; then message 2's delete. */
function window(): FlatBatch[] {
  const batch = new OperationBatch();
  const take = () => {
    const encoded = decoded(batch.encode());
    batch.reset();
    return encoded;
  };
  batch.appendMessage(ref(1), sample.message("one"));
  batch.saveQueueEntry(sample.entry("a", ref(1)), 1);
  const first = take();
  batch.deleteQueueEntry("a", ref(1));
  batch.appendMessage(ref(2), sample.message("two"));
  batch.saveQueueEntry(sample.entry("b", ref(2)), 2);
  const second = take();
  batch.deleteQueueEntry("b", ref(2));
  return [first, second, take()];
}

Deno.test("cancel across: applied together, both messages cancel out entirely", () => {
  const batches = window();
  cancelAcross(batches);
  assert.deepEqual(batches.map((batch) => [...batch.kinds]), [
    [~APPEND, ~SAVE_ENTRY],
    [~DELETE_ENTRY, ~APPEND, ~SAVE_ENTRY],
    [~DELETE_ENTRY],
  ]);
});

Deno.test("cancel across: applying the first batch, a message first seen in the kept ones is left for the next apply", () => {
  const batches = window();
  cancelAcross(batches, 1);
  assert.deepEqual(batches.map((batch) => [...batch.kinds]), [
    [~APPEND, ~SAVE_ENTRY],
    [~DELETE_ENTRY, APPEND, SAVE_ENTRY],
    [DELETE_ENTRY],
  ], "message 1 goes from the applied batch and from the kept one; message 2 is untouched");
  // The next apply (the two kept batches, the first gone) sees all of message 2.
  const next = batches.slice(1);
  cancelAcross(next);
  assert.deepEqual(next.map((batch) => [...batch.kinds]), [[~DELETE_ENTRY, ~APPEND, ~SAVE_ENTRY], [
    ~DELETE_ENTRY,
  ]]);
});

Deno.test("cancel across: within a single batch too (the broker's thread leaves it to this)", () => {
  const batch = new OperationBatch();
  batch.appendMessage(ref(1), sample.message("one"));
  batch.saveQueueEntry(sample.entry("a", ref(1)), 1);
  batch.saveQueueEntry(sample.entry("a", ref(1), { stage: "sent", packetId: 1 }), 2);
  batch.deleteQueueEntry("a", ref(1));
  const batches = [decoded(batch.encode())];
  cancelAcross(batches);
  assert.deepEqual([...batches[0].kinds], [~APPEND, ~SAVE_ENTRY, ~SAVE_ENTRY, ~DELETE_ENTRY]);
});
