/**
 * The embedded store's batch encoding (src/storage/embedded/batch_codec.ts): every value a batch holds comes
 * back as it went in, the delivery kinds' in their fixed layouts too, a string is written once per batch,
 * bytes of another format or cut short are refused, and batches of the formats before (1 and 2, and
 * node:v8's serialization in an operation log) are still read.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { serialize } from "node:v8";
import type { SQLInputValue } from "node:sqlite";
import { DatabaseSync } from "node:sqlite";
import {
  BATCH_FORMAT,
  BatchEncoder,
  decodeOperations,
  indexBatch,
} from "../../src/storage/embedded/batch_codec.ts";
import { appliedSeq } from "../../src/storage/embedded/apply_window.ts";
import { LOG_SUFFIXES, RecordWriter } from "../../src/storage/embedded/operation_log.ts";
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

/** A batch of one single operation taking these arguments, as OperationBatch writes it. */
function encode(encoder: BatchEncoder, statement: string, args: SQLInputValue[]) {
  encoder.begin(SINGLE);
  encoder.string(statement);
  encoder.number(0);
  encoder.number(args.length);
  for (const value of args) encoder.value(value);
  return encoder.finish();
}

/** Values as OperationBatch writes them for a single operation of these arguments. */
function single(statement: string, args: SQLInputValue[]): SQLInputValue[] {
  return [statement, 0, args.length, ...args];
}

/** A batch of these kinds and values as format 2 wrote it: every value tagged, in order after the kinds. */
function encodeAllTagged(kinds: number[], values: SQLInputValue[]) {
  const encoder = new BatchEncoder();
  for (const kind of kinds) encoder.begin(kind);
  for (const value of values) encoder.value(value);
  const encoded = encoder.finish();
  encoded[0] = 2;
  return encoded;
}

Deno.test("batch codec: every kind of value comes back as it went in, -0 and non-ASCII strings included", () => {
  const decoded = decodeOperations(encode(new BatchEncoder(), "saveMeta", VALUES));
  assert.deepEqual(decoded.kinds, [SINGLE]);
  assert.deepEqual(decoded.values, single("saveMeta", VALUES));
  assert.ok(Object.is(decoded.values[13], -0));
});

Deno.test("batch codec: an indexed batch counts what its decoding keeps beyond its bytes: strings by their characters, singles by their values", () => {
  const ascii = indexBatch(
    encode(new BatchEncoder(), "saveMeta", ["k", "x".repeat(10_000)]),
    new Uint8Array(0),
  );
  const wide = indexBatch(
    encode(new BatchEncoder(), "saveMeta", ["k", "é".repeat(10_000)]),
    new Uint8Array(0),
  );
  const many = indexBatch(
    encode(new BatchEncoder(), "saveMeta", Array.from({ length: 1000 }, (_, index) => index + 0.5)),
    new Uint8Array(0),
  );
  // A character of ASCII is a byte in the heap, any other counted at two; the statement's name and "k" add a little.
  assert.ok(ascii.decodedBytes >= 10_000 && ascii.decodedBytes < 10_400, `ASCII: ${ascii.decodedBytes}`);
  assert.ok(wide.decodedBytes >= 20_000 && wide.decodedBytes < 20_400, `non-ASCII: ${wide.decodedBytes}`);
  // 1,000 doubles: each a slot and a heap number (8 and 16 B) in the single's array.
  assert.ok(many.decodedBytes >= 24_000, `a single of 1,000 values: ${many.decodedBytes}`);
});

Deno.test("batch codec: the delivery kinds' fixed layouts come back as their values, nulls, large ids and references included", () => {
  const encoder = new BatchEncoder();
  const id = 2 ** 53 - 1;
  encoder.append(id, "topic/é/🚀", 0, 64, 1, 0, undefined, "publisher", undefined);
  encoder.saveEntry("client-1", id, 2 ** 40, 1, 1, "[1,268435455]", 1, 65535);
  encoder.begin(SINGLE);
  for (const value of single("saveMeta", ["client-1", "topic/é/🚀"])) encoder.value(value);
  encoder.append(7, "topic/é/🚀", 64, 0, 2, 1, '{"contentType":"x"}', "client-1", 1_796_491_989_649);
  encoder.saveEntry("client-2", 7, 0, 0, 0, null, 0, null);
  encoder.deleteEntry("client-1", id);
  encoder.deleteEntry("client-🚀", 0);
  assert.deepEqual(decodeOperations(encoder.finish()), {
    kinds: [APPEND, SAVE_ENTRY, SINGLE, APPEND, SAVE_ENTRY, DELETE_ENTRY, DELETE_ENTRY],
    values: [
      ...[id, "topic/é/🚀", 0, 64, 1, 0, null, "publisher", null],
      ...["client-1", id, 2 ** 40, 1, 1, "[1,268435455]", 1, 65535],
      ...single("saveMeta", ["client-1", "topic/é/🚀"]),
      ...[7, "topic/é/🚀", 64, 0, 2, 1, '{"contentType":"x"}', "client-1", 1_796_491_989_649],
      ...["client-2", 7, 0, 0, 0, null, 0, null],
      ...["client-1", id],
      ...["client-🚀", 0],
    ],
  });
});

Deno.test("batch codec: runs of the same topic, publisher and client, and many distinct ones between, come back in the fixed layouts", () => {
  const encoder = new BatchEncoder();
  const expected: SQLInputValue[] = [];
  for (let i = 0; i < 600; i++) {
    // Runs of 5 operations of one connection; 40 distinct connections, more than the recent strings.
    const n = Math.floor(i / 5) % 40,
      topic = `topic/${n}`,
      publisher = `pub-${n}`,
      client = `sub-${(n * 7) % 40}`;
    encoder.append(i, topic, 0, 0, 1, 0, undefined, publisher, undefined);
    encoder.saveEntry(client, i, i, 1, 0, undefined, 0, undefined);
    encoder.deleteEntry(i % 3 === 0 ? publisher : client, i);
    expected.push(i, topic, 0, 0, 1, 0, null, publisher, null, client, i, i, 1, 0, null, 0, null);
    expected.push(i % 3 === 0 ? publisher : client, i);
  }
  const encoded = encoder.finish();
  assert.deepEqual(decodeOperations(encoded).values, expected);
  // The next batch names them again in full, the last client included.
  const lastClient = expected[expected.length - 2] as string;
  encoder.deleteEntry(lastClient, 1);
  assert.deepEqual(decodeOperations(encoder.finish()).values, [lastClient, 1]);
});

Deno.test("batch codec: a cancelled operation comes back as ~kind with its values, and a batch holds nothing of the one before", () => {
  const encoder = new BatchEncoder();
  encoder.begin(SINGLE);
  encoder.string("left behind");
  encoder.reset();
  encoder.append(1, "t", 0, 0, 1, 0, undefined, "p", undefined);
  const save = encoder.saveEntry("c", 1, 0, 1, 0, undefined, 0, undefined);
  encoder.deleteEntry("c", 1);
  encoder.cancel(save);
  encoder.cancel(save);
  const decoded = decodeOperations(encoder.finish());
  assert.deepEqual(decoded, {
    kinds: [APPEND, ~SAVE_ENTRY, DELETE_ENTRY],
    values: [1, "t", 0, 0, 1, 0, null, "p", null, "c", 1, 0, 1, 0, null, 0, null, "c", 1],
  });
  assert.deepEqual(decodeOperations(encode(encoder, "deleteRetained", ["next"])), {
    kinds: [SINGLE],
    values: single("deleteRetained", ["next"]),
  });
});

/** A batch of each delivery kind and a single operation, its save cancelled, and its bytes in format 2. */
function earlierBatch() {
  const kinds = [APPEND, ~SAVE_ENTRY, DELETE_ENTRY, SINGLE];
  const values: SQLInputValue[] = [
    ...[1, "t", 0, 3, 1, 0, null, "p", null],
    ...["c", 1, 0, 1, 0, null, 1, 9],
    ...["c", 1],
    ...single("saveMeta", ["key", "value"]),
  ];
  const format2 = encodeAllTagged([APPEND, SAVE_ENTRY, DELETE_ENTRY, SINGLE], values);
  format2[9 + 1] |= 0x80; // the save, cancelled
  return { kinds, values, format2 };
}

Deno.test("batch codec: batches of the formats before (1: no cancelled operations; 2: every value tagged) are still read", () => {
  const { kinds, values, format2 } = earlierBatch();
  assert.deepEqual(decodeOperations(format2), { kinds, values });
  const format1 = encodeAllTagged([SINGLE], single("saveMeta", ["key", "value"]));
  format1[0] = 1;
  assert.deepEqual(decodeOperations(format1), {
    kinds: [SINGLE],
    values: single("saveMeta", ["key", "value"]),
  });
});

Deno.test("batch codec: a batch of an earlier format is indexed as one of this format, its cancelled operations still marked", () => {
  const { kinds, values, format2 } = earlierBatch();
  // node:v8's serialization, as the log held it before batch_codec.ts, reaches indexBatch deserialized.
  for (const earlier of [format2, { kinds, values }]) {
    const payloads = new Uint8Array([7, 8, 9]);
    const batch = indexBatch(earlier, payloads);
    assert.equal(batch.bytes[0], BATCH_FORMAT);
    assert.deepEqual([...batch.kinds], kinds);
    assert.deepEqual([...batch.ids], [1, 1, 1, NaN]);
    assert.deepEqual([batch.client(1), batch.client(2)], ["c", "c"]);
    assert.deepEqual(batch.single(3), single("saveMeta", ["key", "value"]));
    assert.deepEqual(decodeOperations(batch.bytes), { kinds, values });
    assert.equal(batch.payloads, payloads);
  }
});

Deno.test("batch codec: a string repeated among the batch's recent ones is written once, and a batch decodes without the ones before", () => {
  const encoder = new BatchEncoder();
  const clientId = "a-client-id-of-some-length";
  const once = encode(encoder, "s", [clientId]).byteLength;
  const repeated = Array.from({ length: 1000 }, () => clientId);
  const many = encode(encoder, "s", repeated);
  // Each repeat is a 5-byte reference, not the 26 bytes of the string again.
  assert.equal(many.byteLength, once + 999 * 5);
  // The next batch writes the string in full again: it decodes on its own.
  assert.deepEqual(decodeOperations(encode(encoder, "s", [clientId])).values, single("s", [clientId]));
  // Many distinct strings between two uses: each comes back, referred to or written again.
  const mixed = Array.from({ length: 200 }, (_, i) => `client-${i % 37}`);
  assert.deepEqual(decodeOperations(encode(encoder, "s", mixed)).values, single("s", mixed));
  // The same in the fixed layouts: a repeat is a 4-byte reference.
  for (let i = 0; i < 1000; i++) encoder.deleteEntry(clientId, i);
  assert.equal(encoder.finish().byteLength, 9 + 1000 + (4 + clientId.length + 8) + 999 * (4 + 8));
  for (let i = 0; i < 200; i++) encoder.deleteEntry(`client-${i % 37}`, i);
  assert.deepEqual(
    decodeOperations(encoder.finish()).values,
    mixed.flatMap((client, i) => [client, i]),
  );
});

Deno.test("batch codec: a batch larger than the encoder's buffer, then small ones, each its own buffer", () => {
  const encoder = new BatchEncoder();
  const big = new Uint8Array(3 * 1024 * 1024).fill(7);
  const first = encode(encoder, "saveRetained", [big]);
  const second = encode(encoder, "deleteRetained", ["t"]);
  assert.equal(first.byteOffset, 0);
  assert.equal(first.byteLength, first.buffer.byteLength, "a buffer of its own, to move to the worker");
  assert.deepEqual(decodeOperations(first).values, single("saveRetained", [big]));
  assert.deepEqual(decodeOperations(second).values, single("deleteRetained", ["t"]));
  // Fixed layouts past the buffer's end: a topic of 100,000 characters, many times.
  const topic = "t".repeat(100_000);
  for (let i = 0; i < 20; i++) encoder.append(i, `${topic}${i}`, 0, 0, 1, 0, undefined, "p", undefined);
  assert.equal(decodeOperations(encoder.finish()).values[9 * 19 + 1], `${topic}19`);
});

Deno.test("batch codec: another format, a cut-short batch, an unknown tag or kind and a wrong count are refused", () => {
  const encoded = encode(new BatchEncoder(), "saveMeta", ["key", "value"]);
  assert.equal(encoded[0], BATCH_FORMAT);
  assert.throws(() => decodeOperations(serialize({ kinds: [], values: [] })), /not an encoded batch/);
  for (const cut of [3, 12, encoded.byteLength - 1]) {
    assert.throws(() => decodeOperations(encoded.subarray(0, cut)), RangeError, `cut at ${cut}`);
  }
  const damaged = encoded.slice();
  damaged[10] = 99; // the first value's tag
  assert.throws(() => decodeOperations(damaged), /tag 99/);
  assert.throws(() => new BatchEncoder().value(10n), /cannot be bigint/);

  const encoder = new BatchEncoder();
  encoder.saveEntry("client", 1, 2, 1, 0, "[1]", 1, 3);
  encoder.deleteEntry("client", 1);
  const fixed = encoder.finish();
  for (let cut = 11; cut < fixed.byteLength; cut += 3) {
    assert.throws(() => decodeOperations(fixed.subarray(0, cut)), RangeError, `fixed cut at ${cut}`);
  }
  const unknownKind = fixed.slice();
  unknownKind[9] = 5;
  assert.throws(() => decodeOperations(unknownKind), /kind 5/);
  const miscounted = fixed.slice();
  miscounted[5] = 11; // 11 values counted, 10 held
  assert.throws(() => decodeOperations(miscounted), /counts 11 values, holds 10/);
  miscounted[5] = 9;
  assert.throws(() => decodeOperations(miscounted), /more values than it counts/);
});

/** A store that finds in its log a record of `operations` (saving the session `clientId`) it had not applied. */
async function replayedSessions(
  clientId: string,
  operations: (values: SQLInputValue[]) => Uint8Array<ArrayBuffer>,
): Promise<string[]> {
  let sessions: string[] = [];
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
    const { expiryInterval, epoch } = sample.session(clientId);
    const values = single("saveSession", [clientId, expiryInterval, null, epoch, null, null]);
    const log = Deno.openSync(join(live, STORE_FILE + LOG_SUFFIXES[0]), { write: true, truncate: true });
    new RecordWriter().write(log, seq, [{ operations: operations(values), payloads: new Uint8Array(0) }]);
    log.close();

    const reopened = embeddedStore(live);
    const snapshot = await reopened.start();
    try {
      sessions = snapshot.sessions.map((session) => session.clientId).sort();
    } finally {
      await reopened.stop();
    }
  });
  return sessions;
}

Deno.test("batch codec: an operation log written before the format (node:v8's serialization) is replayed", async () => {
  const sessions = await replayedSessions(
    "from-the-v8-log",
    (values) => new Uint8Array(serialize({ kinds: [SINGLE], values })),
  );
  assert.deepEqual(sessions, ["before", "from-the-v8-log"]);
});

Deno.test("batch codec: an operation log of format 2 (every value tagged) is replayed", async () => {
  const sessions = await replayedSessions(
    "from-a-format-2-log",
    (values) => encodeAllTagged([SINGLE], values),
  );
  assert.deepEqual(sessions, ["before", "from-a-format-2-log"]);
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
      const saveMeta = encode(new BatchEncoder(), "saveMeta", ["key", "value"]);
      await engine.add({ operations: saveMeta, payloads: payloads() });
    } finally {
      await engine.close();
    }
  });
});
