/**
 * The embedded store's batch encoding (src/storage/embedded/batch_codec.ts): every value a batch holds comes
 * back as it went in, a string is written once per batch, bytes of another format or cut short are refused,
 * and an operation log written before the format (node:v8's serialization) is still replayed.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { serialize } from "node:v8";
import type { SQLInputValue } from "node:sqlite";
import { DatabaseSync } from "node:sqlite";
import { BATCH_FORMAT, BatchEncoder, decodeOperations } from "../../src/storage/embedded/batch_codec.ts";
import { appliedSeq } from "../../src/storage/embedded/apply_window.ts";
import { LOG_SUFFIXES, recordPieces } from "../../src/storage/embedded/operation_log.ts";
import { APPEND, DELETE_ENTRY, SAVE_ENTRY, SINGLE } from "../../src/storage/embedded/operations.ts";
import { StoreEngine } from "../../src/storage/embedded/store_engine.ts";
import { StorageError } from "../../src/storage/port.ts";
import { sample } from "../../src/storage/conformance_samples.ts";
import { embeddedStore, STORE_FILE, withTempDir } from "./embedded_helpers.ts";

const VALUES: SQLInputValue[] = [
  null,
  0,
  1,
  -1,
  2 ** 31 - 1,
  -(2 ** 31),
  2 ** 31,
  2 ** 53 - 1,
  1_796_491_989_649,
  0.5,
  -0,
  "",
  "client-1",
  "topic/é/🚀",
  "client-1",
  new Uint8Array(0),
  new Uint8Array([1, 2, 255]),
  "x".repeat(70_000),
  null,
];

/** The batch of these kinds and values, as OperationBatch writes them (operations begun, then values). */
function encode(encoder: BatchEncoder, kinds: number[], values: SQLInputValue[]) {
  for (const kind of kinds) encoder.begin(kind);
  for (const value of values) encoder.value(value);
  return encoder.finish();
}

function roundTrip(encoder: BatchEncoder, kinds: number[], values: SQLInputValue[]) {
  return decodeOperations(encode(encoder, kinds, values));
}

Deno.test("batch codec: every kind of value comes back as it went in, -0 and non-ASCII strings included", () => {
  const decoded = roundTrip(new BatchEncoder(), [0, 1, 2, 3], VALUES);
  assert.deepEqual(decoded.kinds, [0, 1, 2, 3]);
  assert.deepEqual(decoded.values, VALUES);
  assert.ok(Object.is(decoded.values[10], -0));
});

Deno.test("batch codec: a cancelled operation comes back as ~kind with its values, and a batch holds nothing of the one before", () => {
  const encoder = new BatchEncoder();
  encode(encoder, [SINGLE], ["left behind"]);
  encoder.reset();
  encoder.begin(APPEND);
  encoder.begin(SAVE_ENTRY);
  encoder.begin(DELETE_ENTRY);
  encoder.cancel(1);
  encoder.cancel(1);
  encoder.string("kept");
  encoder.number(7);
  const decoded = decodeOperations(encoder.finish());
  assert.deepEqual(decoded, { kinds: [APPEND, ~SAVE_ENTRY, DELETE_ENTRY], values: ["kept", 7] });
  assert.deepEqual(decodeOperations(encode(encoder, [SINGLE], ["next"])), {
    kinds: [SINGLE],
    values: ["next"],
  });
});

Deno.test("batch codec: a batch of the format before cancelled operations were carried (1) is still read", () => {
  const encoded = encode(new BatchEncoder(), [SINGLE], ["saveMeta", 0, 2, "key", "value"]);
  encoded[0] = 1;
  assert.deepEqual(decodeOperations(encoded), {
    kinds: [SINGLE],
    values: ["saveMeta", 0, 2, "key", "value"],
  });
});

Deno.test("batch codec: a string repeated among the batch's recent ones is written once, and a batch decodes without the ones before", () => {
  const encoder = new BatchEncoder();
  const clientId = "a-client-id-of-some-length";
  const once = encode(encoder, [], [clientId]).byteLength;
  const repeated = Array.from({ length: 1000 }, () => clientId);
  const many = encode(encoder, [], repeated);
  // Each repeat is a 5-byte reference, not the 26 bytes of the string again.
  assert.equal(many.byteLength, once + 999 * 5);
  // The next batch writes the string in full again: it decodes on its own.
  assert.deepEqual(decodeOperations(encode(encoder, [], [clientId])).values, [clientId]);
  // Many distinct strings between two uses: each comes back, referred to or written again.
  const mixed = Array.from({ length: 200 }, (_, i) => `client-${i % 37}`);
  assert.deepEqual(decodeOperations(encode(encoder, [], mixed)).values, mixed);
});

Deno.test("batch codec: a batch larger than the encoder's buffer, then small ones, each its own buffer", () => {
  const encoder = new BatchEncoder();
  const big = new Uint8Array(3 * 1024 * 1024).fill(7);
  const first = encode(encoder, [SINGLE], ["saveRetained", big]);
  const second = encode(encoder, [SINGLE], ["deleteRetained", "t"]);
  assert.equal(first.byteOffset, 0);
  assert.equal(first.byteLength, first.buffer.byteLength, "a buffer of its own, to move to the worker");
  assert.deepEqual(decodeOperations(first).values, ["saveRetained", big]);
  assert.deepEqual(decodeOperations(second).values, ["deleteRetained", "t"]);
});

Deno.test("batch codec: another format, a cut-short batch and an unknown tag are refused", () => {
  const encoded = encode(new BatchEncoder(), [SINGLE], ["saveMeta", 0, 2, "key", "value"]);
  assert.equal(encoded[0], BATCH_FORMAT);
  assert.throws(() => decodeOperations(serialize({ kinds: [], values: [] })), /not an encoded batch/);
  for (const cut of [3, 12, encoded.byteLength - 1]) {
    assert.throws(() => decodeOperations(encoded.subarray(0, cut)), RangeError, `cut at ${cut}`);
  }
  const damaged = encoded.slice();
  damaged[10] = 99; // the first value's tag
  assert.throws(() => decodeOperations(damaged), /tag 99/);
  assert.throws(() => new BatchEncoder().value(10n), /cannot be bigint/);
});

Deno.test("batch codec: an operation log written before the format (node:v8's serialization) is replayed", async () => {
  await withTempDir(async (dir) => {
    const live = join(dir, "live");
    const storage = embeddedStore(live);
    await storage.start();
    storage.saveSession(sample.session("before"));
    await storage.flush();
    await storage.stop();

    // The record a broker of the earlier format logged and did not apply before it was killed.
    const db = new DatabaseSync(join(live, STORE_FILE));
    const seq = appliedSeq(db) + 1;
    db.close();
    const { clientId, expiryInterval, epoch } = sample.session("from-the-old-log");
    const operations = new Uint8Array(serialize({
      kinds: [SINGLE],
      values: ["saveSession", 0, 6, clientId, expiryInterval, null, epoch, null, null],
    }));
    const pieces = recordPieces(seq, [{ operations, payloads: new Uint8Array(0) }]);
    const log = await Deno.open(join(live, STORE_FILE + LOG_SUFFIXES[0]), { write: true, truncate: true });
    for (const piece of pieces) await log.write(piece);
    log.close();

    const reopened = embeddedStore(live);
    const snapshot = await reopened.start();
    try {
      assert.deepEqual(snapshot.sessions.map((session) => session.clientId).sort(), ["before", clientId]);
    } finally {
      await reopened.stop();
    }
  });
});

Deno.test("batch codec: the store's engine fails a batch of bytes it cannot decode and takes the next one", async () => {
  await withTempDir(async (dir) => {
    const silent = { info() {}, warn() {}, error() {} };
    const { engine } = await StoreEngine.open(
      { dir, durability: "sync", batchIntervalMs: 10 },
      silent,
      () => {},
    );
    try {
      const payloads = () => new Uint8Array(0);
      await assert.rejects(
        engine.add({ operations: new Uint8Array([BATCH_FORMAT, 1, 0, 0]), payloads: payloads() }),
        (error: unknown) =>
          error instanceof StorageError && /cut short|not an encoded batch/.test(error.message),
      );
      const saveMeta = encode(new BatchEncoder(), [SINGLE], ["saveMeta", 0, 2, "key", "value"]);
      await engine.add({ operations: saveMeta, payloads: payloads() });
    } finally {
      await engine.close();
    }
  });
});
