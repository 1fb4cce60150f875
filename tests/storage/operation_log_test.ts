/** The operation log's record writer: the bytes of a record, how many write calls they take, and a replay. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { crc32 } from "node:zlib";
import { BatchEncoder } from "../../src/storage/embedded/batch_codec.ts";
import { type DroppedTail, readLog, RecordWriter } from "../../src/storage/embedded/operation_log.ts";
import { SINGLE } from "../../src/storage/embedded/operations.ts";
import { withTempDir } from "./embedded_helpers.ts";

const BUFFER_BYTES = 64 * 1024;

/** The parts, one after the other, in one array. */
function concat(parts: Uint8Array[]): Uint8Array {
  const all = new Uint8Array(parts.reduce((sum, part) => sum + part.byteLength, 0));
  let at = 0;
  for (const part of parts) {
    all.set(part, at);
    at += part.byteLength;
  }
  return all;
}

/** A file that keeps what is written to it, one entry per write call, taking at most `most` bytes a call. */
function recordingFile(most = Infinity) {
  const calls: number[] = [];
  const chunks: Uint8Array[] = [];
  const file = {
    writeSync(bytes: Uint8Array): number {
      const taken = Math.min(bytes.byteLength, most);
      calls.push(taken);
      chunks.push(bytes.slice(0, taken));
      return taken;
    },
  } as unknown as Deno.FsFile;
  return { file, calls, written: () => concat(chunks) };
}

/** A record as the log's format defines it, built independently of the writer. */
function expectedRecord(
  seq: number,
  batches: { operations: Uint8Array; payloads: Uint8Array }[],
): Uint8Array {
  const parts: Uint8Array[] = [new Uint8Array(16)];
  for (const { operations, payloads } of batches) {
    for (const part of [operations, payloads]) {
      const length = new Uint8Array(4);
      new DataView(length.buffer).setUint32(0, part.byteLength, true);
      parts.push(length, part);
    }
  }
  const record = concat(parts);
  const view = new DataView(record.buffer);
  view.setFloat64(8, seq, true);
  view.setUint32(0, record.byteLength - 16, true);
  view.setUint32(4, crc32(record.subarray(8)), true);
  return record;
}

const bytesOf = (length: number, seed: number) =>
  Uint8Array.from({ length }, (_, index) => (index * 31 + seed) % 251);

/** Valid encoded operations: one saveMeta, so that a replay can index the batch. */
function metaOperations(key: string): Uint8Array<ArrayBuffer> {
  const encoder = new BatchEncoder();
  encoder.begin(SINGLE);
  encoder.string("saveMeta");
  encoder.number(0);
  encoder.number(2);
  encoder.string(key);
  encoder.string("value");
  return encoder.finish();
}

Deno.test("operation log: a record of one small batch is one write call, byte for byte the log's format", () => {
  const { file, calls, written } = recordingFile();
  const batches = [{ operations: bytesOf(140, 1), payloads: bytesOf(64, 2) }];
  const size = new RecordWriter().write(file, 7, batches);
  assert.deepEqual(calls, [16 + 4 + 140 + 4 + 64], "header, lengths and parts in one call");
  assert.equal(size, calls[0]);
  assert.deepEqual(written(), expectedRecord(7, batches));
});

Deno.test("operation log: large parts are written as they are, small ones gathered in calls of at most the buffer", () => {
  const small = (seed: number) => ({ operations: bytesOf(3000, seed), payloads: bytesOf(4000, seed + 1) });
  const shapes = [
    // Small parts that fill the buffer more than once; parts of the buffer's size and larger; empty ones.
    Array.from({ length: 20 }, (_, index) => small(index)),
    [{ operations: bytesOf(100, 3), payloads: bytesOf(BUFFER_BYTES - 110, 4) }, {
      operations: bytesOf(30, 5),
      payloads: bytesOf(50, 6),
    }],
    [{ operations: bytesOf(10, 7), payloads: bytesOf(BUFFER_BYTES, 8) }],
    [{ operations: bytesOf(20, 9), payloads: bytesOf(3 * BUFFER_BYTES + 5, 10) }, {
      operations: bytesOf(0, 0),
      payloads: bytesOf(0, 0),
    }],
  ];
  const writer = new RecordWriter();
  for (const [index, batches] of shapes.entries()) {
    const { file, calls, written } = recordingFile();
    const size = writer.write(file, 100 + index, batches);
    assert.deepEqual(written(), expectedRecord(100 + index, batches), `shape ${index}`);
    assert.equal(size, written().byteLength);
    const large = batches.flatMap(({ operations, payloads }) => [operations, payloads])
      .filter((part) => part.byteLength >= 4096).map((part) => part.byteLength);
    for (const call of calls) {
      assert.ok(call <= BUFFER_BYTES || large.includes(call), `shape ${index}: a call of ${call} bytes`);
    }
    for (const partBytes of large) {
      assert.ok(calls.includes(partBytes), `shape ${index}: a part of ${partBytes} B in one call`);
    }
  }
});

Deno.test("operation log: a file that takes part of a write at a time still gets the whole record", () => {
  const { file, calls, written } = recordingFile(1000);
  const batches = [{ operations: bytesOf(3000, 11), payloads: bytesOf(2500, 12) }];
  new RecordWriter().write(file, 3, batches);
  assert.ok(calls.length > 1);
  assert.deepEqual(written(), expectedRecord(3, batches));
});

Deno.test("operation log: records written through the buffer, small and larger than it, replay whole and in order", async () => {
  await withTempDir((dir) => {
    const storePath = join(dir, "store.db");
    // Each batch: the key its saveMeta writes, and its payloads.
    const records: [string, Uint8Array<ArrayBuffer>][][] = [
      [["a", bytesOf(64, 13)]],
      [["b", bytesOf(BUFFER_BYTES - 8, 14)], ["c", bytesOf(300, 15)]],
      [["d", bytesOf(2 * BUFFER_BYTES + 1, 16)]],
    ];
    const file = Deno.openSync(storePath + "-log0", { write: true, create: true, truncate: true });
    const writer = new RecordWriter();
    try {
      for (const [index, batches] of records.entries()) {
        writer.write(
          file,
          index + 1,
          batches.map(([key, payloads]) => ({ operations: metaOperations(key), payloads })),
        );
      }
    } finally {
      file.close();
    }
    const dropped: DroppedTail[] = [];
    const replayed = [...readLog(storePath, (tail) => dropped.push(tail))];
    assert.deepEqual(dropped, []);
    assert.deepEqual(replayed.map((record) => record.seq), [1, 2, 3]);
    for (const [index, record] of replayed.entries()) {
      assert.deepEqual(
        record.batches.map((batch) => [batch.singles[0], batch.payloads]),
        records[index].map(([key, payloads]) => [["saveMeta", 0, 2, key, "value"], payloads]),
      );
    }
    return Promise.resolve();
  });
});
