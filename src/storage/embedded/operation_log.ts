/**
 * The operation log in front of SQLite: each group of batches the worker takes is appended to a log file as
 * one record, fdatasynced before its `flush()` resolves at durability `sync` (at `batch`, written before it
 * resolves and fdatasynced every batch interval); SQLite receives the records later, in bulk (see
 * apply_window.ts). Two files take turns, `store.db-log0` and `store.db-log1`:
 * after an apply, appends go to the other file, and the applied one is emptied once SQLite's WAL is
 * fsynced. Both exist from the start, so a turn needs no directory fsync.
 *
 * A record is a 16-byte header — the body's length (u32), the CRC-32 of the sequence and body (u32), the
 * sequence (f64) — then the body: for each batch, its operations as the adapter encoded them (batch_codec.ts;
 * records written before that format hold node:v8's serialization instead, still replayed), then its
 * payloads, each after its length (u32). The worker writes them as they came.
 */
import { deserialize } from "node:v8";
import { crc32 } from "node:zlib";
import { indexBatch } from "./batch_codec.ts";
import type { FlatBatch, WireBatch } from "./operations.ts";

/** The two log files, as suffixes of the store file's path. */
export const LOG_SUFFIXES = ["-log0", "-log1"] as const;

const HEADER_BYTES = 16;

/** One logged group of batches. */
export interface LogRecord {
  seq: number;
  batches: FlatBatch[];
  /** Its size in the log file. */
  bytes: number;
  /** The buffer its batches are views of (freed by the replay once they are applied). */
  body: ArrayBuffer;
}

/** Where a batch's payloads lie in the log files (see {@link OperationLog.readPayloads}). */
export interface PayloadsAt {
  file: number;
  offset: number;
  bytes: number;
}

/** A torn or damaged end of a log file, left out of the replay. */
export interface DroppedTail {
  file: string;
  offset: number;
  bytes: number;
}

/** The buffer small parts are gathered in, with the header and the lengths. */
const WRITE_BUFFER_BYTES = 64 * 1024;
/** A part this large is written as it is, not copied into the buffer. */
const DIRECT_WRITE_BYTES = 4 * 1024;

/**
 * Writes records through a buffer it keeps: the header, then each part's length and bytes, small parts
 * copied into the buffer, large ones written as they are. A record of a few messages is one write call, where
 * written piece by piece it took one per piece (five for a batch); a record copied whole into a buffer of its
 * own would leave as much garbage as a group of large messages.
 */
export class RecordWriter {
  readonly #buffer = new Uint8Array(WRITE_BUFFER_BYTES);
  readonly #view = new DataView(this.#buffer.buffer);
  readonly #length = new Uint8Array(4);
  readonly #lengthView = new DataView(this.#length.buffer);
  #at = 0;

  /** Writes the batches to `file` as one record with sequence `seq`; returns the record's size. */
  write(file: Deno.FsFile, seq: number, batches: readonly WireBatch[]): number {
    const view = this.#view;
    view.setFloat64(8, seq, true);
    let crc = crc32(this.#buffer.subarray(8, HEADER_BYTES));
    let bodyBytes = 0;
    for (const { operations, payloads } of batches) {
      crc = crc32(operations, crc32(this.#lengthOf(operations), crc));
      crc = crc32(payloads, crc32(this.#lengthOf(payloads), crc));
      bodyBytes += 8 + operations.byteLength + payloads.byteLength;
    }
    view.setUint32(0, bodyBytes, true);
    view.setUint32(4, crc, true);
    this.#at = HEADER_BYTES;
    try {
      for (const { operations, payloads } of batches) {
        this.#part(file, operations);
        this.#part(file, payloads);
      }
      this.#flush(file);
    } finally {
      this.#at = 0;
    }
    return HEADER_BYTES + bodyBytes;
  }

  #lengthOf(part: Uint8Array): Uint8Array {
    this.#lengthView.setUint32(0, part.byteLength, true);
    return this.#length;
  }

  /** A part's length, then its bytes: copied into the buffer if small, else written as they are. */
  #part(file: Deno.FsFile, part: Uint8Array): void {
    if (this.#at + 4 > WRITE_BUFFER_BYTES) this.#flush(file);
    this.#view.setUint32(this.#at, part.byteLength, true);
    this.#at += 4;
    if (part.byteLength >= DIRECT_WRITE_BYTES) {
      this.#flush(file);
      return writeFully(file, part);
    }
    if (this.#at + part.byteLength > WRITE_BUFFER_BYTES) this.#flush(file);
    this.#buffer.set(part, this.#at);
    this.#at += part.byteLength;
  }

  #flush(file: Deno.FsFile): void {
    writeFully(file, this.#buffer.subarray(0, this.#at));
    this.#at = 0;
  }
}

/** The batches of a record's body. */
function decodeBody(body: Uint8Array<ArrayBuffer>): FlatBatch[] {
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  const part = (at: number) => body.subarray(at + 4, at + 4 + view.getUint32(at, true));
  const batches: FlatBatch[] = [];
  for (let at = 0; at < body.byteLength;) {
    const operations = part(at);
    const payloads = part(at + 4 + operations.byteLength);
    // node:v8's serialization (the log's format before batch_codec.ts) starts with 0xFF.
    batches.push(indexBatch(operations[0] === 0xff ? deserialize(operations) : operations, payloads));
    at += 8 + operations.byteLength + payloads.byteLength;
  }
  return batches;
}

/**
 * One log file's records, read one at a time up to its first record that is incomplete or fails its checksum
 * (a write torn by a crash); the rest of the file is reported to `dropped`.
 */
function* fileRecords(file: string, dropped: (tail: DroppedTail) => void): Generator<LogRecord> {
  let handle: Deno.FsFile;
  try {
    handle = Deno.openSync(file, { read: true });
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return;
    throw error;
  }
  try {
    const size = handle.statSync().size;
    const header = new Uint8Array(HEADER_BYTES);
    const view = new DataView(header.buffer);
    for (let offset = 0; offset < size;) {
      const bodyBytes = offset + HEADER_BYTES <= size && readFully(handle, header)
        ? view.getUint32(0, true)
        : Infinity;
      // A torn length can claim more than the file holds; nothing is allocated for it.
      const body = offset + HEADER_BYTES + bodyBytes <= size ? new Uint8Array(bodyBytes) : undefined;
      if (
        !body || !readFully(handle, body) ||
        crc32(body, crc32(header.subarray(8))) !== view.getUint32(4, true)
      ) {
        dropped({ file, offset, bytes: size - offset });
        return;
      }
      yield {
        seq: view.getFloat64(8, true),
        batches: decodeBody(body),
        bytes: HEADER_BYTES + bodyBytes,
        body: body.buffer,
      };
      offset += HEADER_BYTES + bodyBytes;
    }
  } finally {
    handle.close();
  }
}

function writeFully(file: Deno.FsFile, bytes: Uint8Array): void {
  for (let written = 0; written < bytes.byteLength;) written += file.writeSync(bytes.subarray(written));
}

/** Fills `buffer` from the file's position; false at the end of the file. */
function readFully(handle: Deno.FsFile, buffer: Uint8Array): boolean {
  for (let filled = 0; filled < buffer.byteLength;) {
    const read = handle.readSync(buffer.subarray(filled));
    if (read === null || read === 0) return false;
    filled += read;
  }
  return true;
}

/**
 * The complete records of the log files of `storePath`, in sequence order, read as they are taken (a
 * record at a time from each file: a replay holds what it applies, not the whole log). Each file's torn or
 * damaged tail is reported to `dropped`.
 */
export function* readLog(storePath: string, dropped: (tail: DroppedTail) => void): Generator<LogRecord> {
  // Each file's records are in sequence order: taking the lower head each time orders both.
  const files = LOG_SUFFIXES.map((suffix) => fileRecords(storePath + suffix, dropped));
  try {
    const heads = files.map((records) => records.next());
    for (;;) {
      let next = -1;
      for (let index = 0; index < heads.length; index++) {
        const head = heads[index];
        if (!head.done && (next < 0 || head.value.seq < (heads[next].value as LogRecord).seq)) next = index;
      }
      if (next < 0) return;
      yield heads[next].value as LogRecord;
      heads[next] = files[next].next();
    }
  } finally {
    for (const records of files) records.return(undefined);
  }
}

/** The log being written; see the module comment. */
export class OperationLog {
  readonly #files: Deno.FsFile[];
  readonly #writer = new RecordWriter();
  readonly #lengths = [0, 0];
  readonly #unsynced = [false, false];
  /** The sequence of the last record in each file. */
  readonly #lastSeqs = [0, 0];
  #current = 0;
  /** The other file is waiting for SQLite to be durable before it is emptied. */
  #retiring: Promise<void> | undefined;
  #nextSeq: number;

  private constructor(files: Deno.FsFile[], nextSeq: number) {
    this.#files = files;
    this.#nextSeq = nextSeq;
  }

  /**
   * Creates or empties both files of `storePath` (their records are applied and SQLite is durable: the
   * caller replayed them). The caller fsyncs the directory.
   */
  static open(storePath: string, nextSeq: number): OperationLog {
    const files: Deno.FsFile[] = [];
    try {
      for (const suffix of LOG_SUFFIXES) {
        files.push(
          Deno.openSync(storePath + suffix, { read: true, write: true, create: true, truncate: true }),
        );
      }
    } catch (error) {
      for (const file of files) file.close();
      throw error;
    }
    return new OperationLog(files, nextSeq);
  }

  /** The sequence the next record gets; the last appended is one less. */
  get nextSeq(): number {
    return this.#nextSeq;
  }

  /** Bytes in both files. */
  get bytes(): number {
    return this.#lengths[0] + this.#lengths[1];
  }

  /**
   * Appends the batches as one record (not yet durable: see {@link sync}); returns its size and where each
   * batch's payloads are in it. On failure (a full disk) the file is cut back to where it was, so no partial
   * record precedes the next one.
   */
  append(batches: readonly WireBatch[]): { bytes: number; payloadsAt: PayloadsAt[] } {
    const current = this.#current;
    const file = this.#files[current];
    const start = this.#lengths[current];
    let bytes: number;
    try {
      bytes = this.#writer.write(file, this.#nextSeq, batches);
    } catch (error) {
      file.truncateSync(start);
      file.seekSync(start, Deno.SeekMode.Start);
      throw error;
    }
    this.#lengths[current] = start + bytes;
    this.#unsynced[current] = true;
    this.#lastSeqs[current] = this.#nextSeq++;
    const payloadsAt: PayloadsAt[] = [];
    // Each batch is its operations' length and bytes, then its payloads' length and bytes (RecordWriter).
    let offset = start + HEADER_BYTES;
    for (const { operations, payloads } of batches) {
      offset += 8 + operations.byteLength;
      payloadsAt.push({ file: current, offset, bytes: payloads.byteLength });
      offset += payloads.byteLength;
    }
    return { bytes, payloadsAt };
  }

  /**
   * Reads back a batch's payloads from a record not yet applied (a file is emptied only once all its records
   * are applied). Appends continue where they were.
   */
  readPayloads({ file, offset, bytes }: PayloadsAt): Uint8Array<ArrayBuffer> {
    const handle = this.#files[file];
    const payloads = new Uint8Array(bytes);
    try {
      handle.seekSync(offset, Deno.SeekMode.Start);
      if (!readFully(handle, payloads)) throw new Error(`operation log ended before ${offset + bytes}`);
    } finally {
      handle.seekSync(this.#lengths[file], Deno.SeekMode.Start);
    }
    return payloads;
  }

  /** Makes every appended record durable (fdatasync of each file written since its last one). */
  async sync(): Promise<void> {
    const syncs: Promise<void>[] = [];
    for (let index = 0; index < this.#files.length; index++) {
      if (!this.#unsynced[index]) continue;
      this.#unsynced[index] = false;
      syncs.push(this.#files[index].syncData());
    }
    await Promise.all(syncs);
  }

  /**
   * After the records up to `appliedSeq` are applied to SQLite: appends go to the other file if it is empty,
   * and the file not written to is emptied once `durable()` (SQLite's fsync) resolves, if every record in it
   * is applied. Until then a file keeps its applied records, which a replay skips.
   */
  applied(appliedSeq: number, durable: () => Promise<void>, onError: (error: unknown) => void): void {
    if (this.#retiring) return;
    if (this.#lengths[1 - this.#current] === 0) this.#current = 1 - this.#current;
    const old = 1 - this.#current;
    if (this.#lengths[old] === 0 || this.#lastSeqs[old] > appliedSeq) return;
    // On failure the file keeps its applied records; it is emptied after a later apply.
    this.#retiring = durable().then(() => this.#empty(old), onError).finally(() =>
      this.#retiring = undefined
    );
  }

  /** Waits for a file being retired. */
  async settled(): Promise<void> {
    await this.#retiring;
  }

  /** Empties both files: everything in them is applied and SQLite is durable. */
  clear(): void {
    for (let index = 0; index < this.#files.length; index++) this.#empty(index);
  }

  #empty(index: number): void {
    this.#files[index].truncateSync(0);
    this.#files[index].seekSync(0, Deno.SeekMode.Start);
    this.#lengths[index] = 0;
  }

  close(): void {
    for (const file of this.#files) file.close();
  }
}
