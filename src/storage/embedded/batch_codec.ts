/**
 * A batch's operations as bytes: how they cross from the broker's thread to the store's worker (the buffer
 * is moved, not cloned) and how the operation log keeps them. Cloned, the kinds and values cost the broker's
 * thread a structured clone per batch, and at durability `sync` a node:v8 serialization more for the log:
 * without them its CPU per durable QoS 1 message went from 2.8–2.9 to 2.2–2.3 µs (durable-q1 10→10).
 *
 * Format: FORMAT (u8), the kind count and the value count (u32 each), the kinds (u8 each; 0–3, with 0x80
 * set when the operation cancelled out), then each operation's values (little endian). The three kinds of the
 * delivery path have a fixed layout, no tag per value (see {@link BatchEncoder.append}); a single operation's
 * values are each a tag and its bytes. A string the batch already wrote is written as that string's index
 * instead: a batch names the same client ids, topics and publishers many times over (see
 * BatchEncoder's #stringIndex).
 */
import type { SQLInputValue } from "node:sqlite";

/**
 * The first byte of an encoded batch. Formats 1 and 2 tagged every value (1 also left cancelled operations
 * out); both are still read: a log may hold them. node:v8's serialization, which the log held before, starts
 * with 0xFF.
 */
export const BATCH_FORMAT = 3;
const FORMAT_WITHOUT_CANCELLED = 1, FORMAT_ALL_TAGGED = 2;

/**
 * Operation kinds; one that cancelled out is `~kind`. The three mutations of the delivery path take a fixed
 * number of values: an append the `messages` row's (id, topic, the payload's offset and length in the
 * batch's payloads, qos, retain, properties, publisher id, expiry), a save the `queue_entries` row's (client,
 * message, seq, qos, retain, subscription ids, stage, packet id), a delete the entry's client and message. A
 * single operation takes its statement's name, 1 if it adds payload bytes (else 0), its argument count, then
 * its arguments.
 */
export const APPEND = 0, SAVE_ENTRY = 1, DELETE_ENTRY = 2, SINGLE = 3;
export const APPEND_VALUES = 9, SAVE_VALUES = 8, DELETE_VALUES = 2;
/** Set in the kind byte of an operation that cancelled out (see {@link BatchEncoder.cancel}). */
const CANCELLED_BIT = 0x80;

/**
 * A string in the fixed layout is a u32: {@link NO_STRING} for null, a reference to the batch's string of
 * that index when {@link STRING_REF_BIT} is set, else the UTF-8 length, the bytes following.
 */
const NO_STRING = 0xFFFF_FFFF, STRING_REF_BIT = 0x8000_0000;
/** Upper bounds of a fixed layout's bytes, its strings' aside (4 + 3 bytes per UTF-16 unit each). */
const APPEND_FIXED_BYTES = 8 + 4 + 4 + 1 + 1 + 8 + 3 * 4,
  SAVE_FIXED_BYTES = 8 + 8 + 1 + 1 + 1 + 8 + 2 * 4,
  DELETE_FIXED_BYTES = 8 + 4;

const NULL = 0, INT32 = 1, FLOAT64 = 2, STRING = 3, STRING_REF = 4, BYTES = 5;
const HEADER_BYTES = 9;
/**
 * The most strings BatchEncoder remembers across batches; past it, it starts again. Remembering costs a Map
 * entry each (some 30 bytes).
 */
const MAX_REMEMBERED_STRINGS = 1 << 16;
/**
 * The string fields of the fixed layouts whose last string is remembered (see {@link BatchEncoder.#lastStrings});
 * OTHER, none.
 */
const TOPIC = 0, PUBLISHER = 1, CLIENT = 2, OTHER = 3;
/** The encoder's buffer starts at this size, and never goes below it. */
const SCRATCH_BYTES = 64 * 1024;
/**
 * A batch that used less than this share of the buffer shrinks it to twice what it used: one large batch
 * does not keep its buffer, and batches of a steady size keep theirs. (It used to go back to its first size
 * after any batch past 1 MiB: a durable fan-out to 100 sends batches of a few MiB, and each grew it again
 * in five steps, copying what it held.)
 */
const SHRINK_RATIO = 8;
const FIRST_KINDS = 1024;

/** The kinds and values of a batch, as OperationBatch lays them out; a cancelled operation's kind is `~kind`. */
export interface Operations {
  kinds: number[];
  values: SQLInputValue[];
}

/**
 * Encodes a batch as its operations come, value by value, into buffers kept from batch to batch; {@link finish}
 * hands over the batch's bytes in a buffer of their own (transferable). Written as they come, the values
 * need no list of their own to be read back, nor a type test each: OperationBatch knows what it writes.
 */
export class BatchEncoder {
  #bytes = new Uint8Array(SCRATCH_BYTES);
  #view = new DataView(this.#bytes.buffer);
  #at = 0;
  #valueCount = 0;
  #kinds = new Uint8Array(FIRST_KINDS);
  #kindCount = 0;
  /**
   * The strings written in full in this batch, by index (`#stringCount` so far), and for every string
   * written in some batch the index it had there: an index is this batch's string only if
   * `#written` holds that string there. The Map is kept from batch to batch: emptied after each, it grew its
   * tables again for every batch of many distinct client ids, long enough for them to be promoted (1.4 KB of
   * old-generation garbage per offline session while publishing 10 messages into each of 20,000). Until the
   * twenty-fifth session only the batch's last 16 distinct strings were looked at: a durable fan-out to 100
   * persistent subscribers wrote every client id in full, and the store's worker decoded each of them.
   */
  readonly #written: string[] = [];
  readonly #indexes = new Map<string, number>();
  #stringCount = 0;
  /**
   * By field (TOPIC, PUBLISHER, CLIENT): the last string written there and its index in the batch (-1: none
   * yet). A connection's operations come in runs naming the same topic, publisher and client: one comparison
   * instead of a walk through the recent strings (which cost the broker's thread more than the rest of the
   * fixed layouts' encoding).
   */
  readonly #lastStrings: string[] = ["", "", ""];
  readonly #lastIndexes = new Int32Array(3).fill(-1);
  readonly #utf8 = new TextEncoder();

  /** Operations begun in this batch, cancelled ones included. */
  get operationCount(): number {
    return this.#kindCount;
  }

  /** Starts an operation of `kind` (0–3); its values follow. Returns its index in the batch. */
  begin(kind: number): number {
    if (this.#kindCount === this.#kinds.length) {
      const grown = new Uint8Array(2 * this.#kinds.length);
      grown.set(this.#kinds);
      this.#kinds = grown;
    }
    this.#kinds[this.#kindCount] = kind;
    return this.#kindCount++;
  }

  /**
   * Marks operation `index` as cancelled out: its values stay (a later one may refer to its strings), and the
   * worker decodes its kind as `~kind`, which everything there skips. For a batch of an earlier format encoded
   * again (its cancelled operations stay marked); the broker's thread cancels nothing.
   */
  cancel(index: number): void {
    this.#kinds[index] |= CANCELLED_BIT;
  }

  /**
   * An append (see {@link APPEND}), in the fixed layout: id (f64), topic, offset and length (u32 each), qos and
   * retain (u8 each), properties, publisher id, expiry (f64, NaN for none). Returns its index in the batch.
   */
  append(
    id: number,
    topic: string,
    offset: number,
    length: number,
    qos: number,
    retain: number,
    properties: string | null | undefined,
    publisherId: string,
    expiresAt: number | null | undefined,
  ): number {
    const index = this.begin(APPEND);
    this.#valueCount += APPEND_VALUES;
    this.#reserve(
      APPEND_FIXED_BYTES + 3 * (topic.length + (properties?.length ?? 0) + publisherId.length),
    );
    const view = this.#view;
    let at = this.#at;
    view.setFloat64(at, id, true);
    at = this.#fixedString(topic, at + 8, TOPIC);
    view.setUint32(at, offset, true);
    view.setUint32(at + 4, length, true);
    this.#bytes[at + 8] = qos;
    this.#bytes[at + 9] = retain;
    at = this.#fixedString(properties, at + 10, OTHER);
    at = this.#fixedString(publisherId, at, PUBLISHER);
    view.setFloat64(at, expiresAt ?? NaN, true);
    this.#at = at + 8;
    return index;
  }

  /**
   * A queue entry's save (see {@link SAVE_ENTRY}), in the fixed layout: client, message id and seq (f64 each),
   * qos, retain and stage (u8 each), subscription ids, packet id (f64, NaN for none). Returns its index.
   */
  saveEntry(
    clientId: string,
    messageId: number,
    sequence: number,
    qos: number,
    retain: number,
    subscriptionIdentifiers: string | null | undefined,
    stage: number,
    packetId: number | null | undefined,
  ): number {
    const index = this.begin(SAVE_ENTRY);
    this.#valueCount += SAVE_VALUES;
    this.#reserve(SAVE_FIXED_BYTES + 3 * (clientId.length + (subscriptionIdentifiers?.length ?? 0)));
    const view = this.#view;
    let at = this.#fixedString(clientId, this.#at, CLIENT);
    view.setFloat64(at, messageId, true);
    view.setFloat64(at + 8, sequence, true);
    const bytes = this.#bytes;
    bytes[at + 16] = qos;
    bytes[at + 17] = retain;
    bytes[at + 18] = stage;
    at = this.#fixedString(subscriptionIdentifiers, at + 19, OTHER);
    view.setFloat64(at, packetId ?? NaN, true);
    this.#at = at + 8;
    return index;
  }

  /** A queue entry's delete (see {@link DELETE_ENTRY}), in the fixed layout: client, message id (f64). */
  deleteEntry(clientId: string, messageId: number): number {
    const index = this.begin(DELETE_ENTRY);
    this.#valueCount += DELETE_VALUES;
    this.#reserve(DELETE_FIXED_BYTES + 3 * clientId.length);
    const at = this.#fixedString(clientId, this.#at, CLIENT);
    this.#view.setFloat64(at, messageId, true);
    this.#at = at + 8;
    return index;
  }

  null(): void {
    this.#reserve(1);
    this.#bytes[this.#at++] = NULL;
    this.#valueCount++;
  }

  number(value: number): void {
    this.#reserve(9);
    const at = this.#at;
    if ((value | 0) === value && !Object.is(value, -0)) {
      this.#bytes[at] = INT32;
      this.#view.setInt32(at + 1, value, true);
      this.#at = at + 5;
    } else {
      this.#bytes[at] = FLOAT64;
      this.#view.setFloat64(at + 1, value, true);
      this.#at = at + 9;
    }
    this.#valueCount++;
  }

  /** A number, or null for undefined and null. */
  optionalNumber(value: number | null | undefined): void {
    if (value === undefined || value === null) this.null();
    else this.number(value);
  }

  /** A string, or null for undefined and null. */
  optionalString(value: string | null | undefined): void {
    if (value === undefined || value === null) this.null();
    else this.string(value);
  }

  string(value: string): void {
    this.#valueCount++;
    const reference = this.#stringIndex(value);
    if (reference >= 0) {
      this.#reserve(5);
      this.#bytes[this.#at] = STRING_REF;
      this.#view.setUint32(this.#at + 1, reference, true);
      this.#at += 5;
      return;
    }
    this.#reserve(5 + 3 * value.length);
    const at = this.#at;
    const written = this.#utf8Into(value, at + 5);
    this.#bytes[at] = STRING;
    this.#view.setUint32(at + 1, written, true);
    this.#at = at + 5 + written;
  }

  bytes(value: Uint8Array): void {
    this.#reserve(5 + value.byteLength);
    const at = this.#at;
    this.#bytes[at] = BYTES;
    this.#view.setUint32(at + 1, value.byteLength, true);
    this.#bytes.set(value, at + 5);
    this.#at = at + 5 + value.byteLength;
    this.#valueCount++;
  }

  /** Any value a statement takes. */
  value(value: SQLInputValue): void {
    if (value === null) this.null();
    else if (typeof value === "number") this.number(value);
    else if (typeof value === "string") this.string(value);
    else if (value instanceof Uint8Array) this.bytes(value);
    else throw new TypeError(`a stored operation's value cannot be ${typeof value}`);
  }

  /** The batch's bytes, in a buffer of their own; the encoder starts the next batch. */
  finish(): Uint8Array<ArrayBuffer> {
    const kindCount = this.#kindCount;
    const encoded = new Uint8Array(HEADER_BYTES + kindCount + this.#at);
    const view = new DataView(encoded.buffer);
    encoded[0] = BATCH_FORMAT;
    view.setUint32(1, kindCount, true);
    view.setUint32(5, this.#valueCount, true);
    encoded.set(this.#kinds.subarray(0, kindCount), HEADER_BYTES);
    encoded.set(this.#bytes.subarray(0, this.#at), HEADER_BYTES + kindCount);
    this.reset();
    return encoded;
  }

  /** Drops what was written since the last {@link finish}. */
  reset(): void {
    const used = this.#at;
    this.#written.fill("", 0, this.#stringCount);
    this.#at =
      this.#valueCount =
      this.#kindCount =
      this.#stringCount =
        0;
    this.#lastIndexes.fill(-1);
    if (used > 0 && this.#bytes.byteLength > SCRATCH_BYTES && SHRINK_RATIO * used < this.#bytes.byteLength) {
      this.#resize(Math.max(SCRATCH_BYTES, 2 * used));
    }
  }

  /**
   * The index of `value` among the strings this batch wrote, or -1 after noting it as the next: the caller
   * then writes it in full.
   */
  #stringIndex(value: string): number {
    const indexes = this.#indexes;
    const index = indexes.get(value);
    if (index !== undefined && index < this.#stringCount && this.#written[index] === value) return index;
    if (index === undefined && indexes.size >= MAX_REMEMBERED_STRINGS) indexes.clear();
    const next = this.#stringCount++;
    indexes.set(value, next);
    this.#written[next] = value;
    return -1;
  }

  /** Writes `value` as UTF-8 at `start` (room reserved); returns the bytes written. */
  #utf8Into(value: string, start: number): number {
    const bytes = this.#bytes;
    const length = value.length;
    // ASCII (nearly every client id, topic and statement name) without a call into the encoder.
    let written = 0;
    for (; written < length; written++) {
      const code = value.charCodeAt(written);
      if (code >= 0x80) break;
      bytes[start + written] = code;
    }
    if (written < length) written = this.#utf8.encodeInto(value, bytes.subarray(start)).written;
    return written;
  }

  /** A string (or none) of the fixed layout at `at`, room reserved; returns where the next value goes. */
  #fixedString(value: string | null | undefined, at: number, field: number): number {
    if (value === undefined || value === null) {
      this.#view.setUint32(at, NO_STRING, true);
      return at + 4;
    }
    let reference: number;
    if (field === OTHER) {
      reference = this.#stringIndex(value);
    } else if (this.#lastStrings[field] === value && this.#lastIndexes[field] >= 0) {
      reference = this.#lastIndexes[field];
    } else {
      reference = this.#stringIndex(value);
      this.#lastStrings[field] = value;
      this.#lastIndexes[field] = reference >= 0 ? reference : this.#stringCount - 1;
    }
    if (reference >= 0) {
      this.#view.setUint32(at, (reference | STRING_REF_BIT) >>> 0, true);
      return at + 4;
    }
    const written = this.#utf8Into(value, at + 4);
    this.#view.setUint32(at, written, true);
    return at + 4 + written;
  }

  #reserve(bytes: number): void {
    const needed = this.#at + bytes;
    if (needed > this.#bytes.byteLength) this.#resize(Math.max(2 * this.#bytes.byteLength, needed));
  }

  #resize(size: number): void {
    const resized = new Uint8Array(size);
    resized.set(this.#bytes.subarray(0, Math.min(this.#at, size)));
    this.#bytes = resized;
    this.#view = new DataView(resized.buffer);
  }
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * Estimates of what the worker's decoding keeps in V8's heap (Deno's V8 has no pointer compression: 8 B a
 * reference; measured with heap snapshots): a string's header, its slot in a batch's strings, a single
 * operation's array and its elements' header, each of its values (a slot, and a heap number for a double),
 * and the view a byte value is.
 */
const STRING_HEAP_BYTES = 16;
const STRING_SLOT_BYTES = 8;
const SINGLE_HEAP_BYTES = 48;
const SINGLE_VALUE_HEAP_BYTES = 24;
const VIEW_HEAP_BYTES = 104;

/**
 * A batch as the store's worker holds it until it is in SQLite: its bytes, read once on arrival into an index
 * of typed arrays (by operation: kind, message id, where its values start, its client), its strings, and
 * its single operations' values; a fixed layout's other values are read when it is written, which most
 * never are (they cancel out, see apply_window.ts). Decoded into arrays of values, a window of some 50,000
 * durable messages was over a million values that the worker's scavenges copied until applied.
 */
export class IndexedBatch {
  /** By operation: its kind, `~kind` once it cancelled out. */
  readonly kinds: Int8Array;
  /** By operation of the delivery path: its message id. */
  readonly ids: Float64Array;
  /** By operation: a save's or delete's client (its index in {@link strings}), a single's index in {@link singles}. */
  readonly refs: Int32Array;
  /** By operation: where its values start in {@link bytes}. */
  readonly offsets: Uint32Array;
  /** The strings written in full, in the order written (a reference names one by index). */
  readonly strings: string[] = [];
  /** Each single operation's values: its statement, 1 if it adds payload bytes (else 0), its argument count, its arguments. */
  readonly singles: SQLInputValue[][] = [];
  /**
   * An estimate of the heap that {@link strings} and {@link singles} take, beyond {@link bytes}: what the
   * window's memory bound counts besides the batch's bytes and index (store_engine.ts).
   */
  readonly decodedBytes: number;
  #reader: ValueReader | undefined;

  /**
   * Indexes `bytes` (format 3; see {@link indexBatch} for the others); throws on bytes cut short or damaged.
   * `payloads` are the appends' payloads; a batch in the operation log's window drops them (they are in the
   * log, read back when it is applied: store_engine.ts).
   */
  constructor(readonly bytes: Uint8Array<ArrayBuffer>, public payloads: Uint8Array<ArrayBuffer>) {
    if (bytes.byteLength < HEADER_BYTES) throw new RangeError("encoded batch cut short");
    const reader = new ValueReader(bytes, this.strings);
    const kindCount = reader.u32(1);
    const valueCount = reader.u32(5);
    reader.at = HEADER_BYTES + kindCount;
    if (reader.at > bytes.byteLength) throw new RangeError("encoded batch cut short");
    // One buffer for the four columns, the widest first so that each is aligned.
    const columns = new ArrayBuffer(17 * kindCount);
    this.ids = new Float64Array(columns, 0, kindCount);
    this.offsets = new Uint32Array(columns, 8 * kindCount, kindCount);
    this.refs = new Int32Array(columns, 12 * kindCount, kindCount);
    this.kinds = new Int8Array(columns, 16 * kindCount, kindCount);
    let values = 0;
    let singleBytes = 0;
    for (let k = 0; k < kindCount; k++) {
      const byte = bytes[HEADER_BYTES + k];
      const kind = byte & ~CANCELLED_BIT;
      this.kinds[k] = byte & CANCELLED_BIT ? ~kind : kind;
      this.offsets[k] = reader.at;
      const least = kind === APPEND
        ? APPEND_VALUES
        : kind === SAVE_ENTRY
        ? SAVE_VALUES
        : kind === DELETE_ENTRY
        ? DELETE_VALUES
        : 3;
      if (values + least > valueCount) throw new RangeError("encoded batch holds more values than it counts");
      if (kind === APPEND) {
        this.ids[k] = reader.f64();
        reader.string();
        reader.at += 10;
        reader.string();
        reader.string();
        reader.at += 8;
        this.refs[k] = -1;
        values += APPEND_VALUES;
      } else if (kind === SAVE_ENTRY) {
        this.refs[k] = reader.stringIndex();
        this.ids[k] = reader.f64();
        reader.at += 11;
        reader.string();
        reader.at += 8;
        values += SAVE_VALUES;
      } else if (kind === DELETE_ENTRY) {
        this.refs[k] = reader.stringIndex();
        this.ids[k] = reader.f64();
        values += DELETE_VALUES;
      } else if (kind === SINGLE) {
        const single = [reader.tagged(), reader.tagged(), reader.tagged()];
        const argumentCount = single[2];
        if (typeof argumentCount !== "number" || values + 3 + argumentCount > valueCount) {
          throw new RangeError(`encoded batch has a single operation of ${argumentCount} arguments`);
        }
        for (let i = 0; i < argumentCount; i++) {
          const value = reader.tagged();
          if (value instanceof Uint8Array) singleBytes += VIEW_HEAP_BYTES;
          single.push(value);
        }
        singleBytes += SINGLE_HEAP_BYTES + SINGLE_VALUE_HEAP_BYTES * single.length;
        this.refs[k] = this.singles.push(single) - 1;
        this.ids[k] = NaN;
        values += 3 + argumentCount;
      } else {
        throw new RangeError(`encoded batch has an operation of kind ${kind}`);
      }
      if (reader.at > bytes.byteLength) throw new RangeError("encoded batch cut short");
    }
    if (values !== valueCount) {
      throw new RangeError(`encoded batch counts ${valueCount} values, holds ${values}`);
    }
    this.decodedBytes = reader.keptBytes + singleBytes;
  }

  /** The client of operation `k`, a save or a delete. */
  client(k: number): string {
    return this.strings[this.refs[k]];
  }

  /** The values of operation `k`, a single one (see {@link singles}). */
  single(k: number): SQLInputValue[] {
    return this.singles[this.refs[k]];
  }

  /**
   * Reads the values of operation `k`, of a fixed layout, into `into` from `at` (in the order of
   * {@link decodeOperations}); returns how many.
   */
  readFixed(k: number, into: SQLInputValue[], at: number): number {
    const reader = this.#reader ??= new ValueReader(this.bytes, this.strings, false);
    reader.at = this.offsets[k];
    const kind = this.kinds[k] < 0 ? ~this.kinds[k] : this.kinds[k];
    if (kind === APPEND) {
      into[at] = reader.f64();
      into[at + 1] = reader.string();
      into[at + 2] = reader.u32(reader.at);
      into[at + 3] = reader.u32(reader.at + 4);
      reader.at += 8;
      into[at + 4] = reader.u8();
      into[at + 5] = reader.u8();
      into[at + 6] = reader.string();
      into[at + 7] = reader.string();
      into[at + 8] = reader.optionalF64();
      return APPEND_VALUES;
    }
    if (kind === SAVE_ENTRY) {
      into[at] = reader.string();
      into[at + 1] = reader.f64();
      into[at + 2] = reader.f64();
      into[at + 3] = reader.u8();
      into[at + 4] = reader.u8();
      const stage = reader.u8();
      into[at + 5] = reader.string();
      into[at + 6] = stage;
      into[at + 7] = reader.optionalF64();
      return SAVE_VALUES;
    }
    into[at] = this.client(k);
    into[at + 1] = this.ids[k];
    return DELETE_VALUES;
  }
}

/**
 * Indexes an encoded batch for the worker; a batch of an earlier format (a log may hold them; node:v8's
 * serialization, which the log held before, as its `Operations`) is encoded again in this one first.
 */
export function indexBatch(
  operations: Uint8Array<ArrayBuffer> | Operations,
  payloads: Uint8Array<ArrayBuffer>,
): IndexedBatch {
  if (operations instanceof Uint8Array && operations[0] === BATCH_FORMAT) {
    return new IndexedBatch(operations, payloads);
  }
  return new IndexedBatch(
    encodeAgain(operations instanceof Uint8Array ? decodeOperations(operations) : operations),
    payloads,
  );
}

/** Operations of an earlier format, encoded in this one. */
function encodeAgain({ kinds, values }: Operations): Uint8Array<ArrayBuffer> {
  const encoder = new BatchEncoder();
  const number = (value: SQLInputValue) => value as number;
  const string = (value: SQLInputValue) => value as string | null;
  for (let k = 0, at = 0; k < kinds.length; k++) {
    const kind = kinds[k] < 0 ? ~kinds[k] : kinds[k];
    // The values of a fixed layout (of APPEND_VALUES at most), from `at`.
    const v = values.slice(at, at + APPEND_VALUES);
    let index: number;
    if (kind === APPEND) {
      index = encoder.append(
        number(v[0]),
        v[1] as string,
        number(v[2]),
        number(v[3]),
        number(v[4]),
        number(v[5]),
        string(v[6]),
        v[7] as string,
        v[8] as number | null,
      );
      at += APPEND_VALUES;
    } else if (kind === SAVE_ENTRY) {
      index = encoder.saveEntry(
        v[0] as string,
        number(v[1]),
        number(v[2]),
        number(v[3]),
        number(v[4]),
        string(v[5]),
        number(v[6]),
        v[7] as number | null,
      );
      at += SAVE_VALUES;
    } else if (kind === DELETE_ENTRY) {
      index = encoder.deleteEntry(v[0] as string, number(v[1]));
      at += DELETE_VALUES;
    } else {
      index = encoder.begin(SINGLE);
      const end = at + 3 + number(v[2]);
      for (; at < end; at++) encoder.value(values[at]);
    }
    if (kinds[k] < 0) encoder.cancel(index);
  }
  return encoder.finish();
}

/**
 * The kinds and values of `bytes`, of any format (see the module comment); byte values are copies. Throws on
 * bytes of another format or cut short.
 */
export function decodeOperations(bytes: Uint8Array): Operations {
  const format = bytes[0];
  if (
    bytes.byteLength < HEADER_BYTES ||
    (format !== BATCH_FORMAT && format !== FORMAT_ALL_TAGGED && format !== FORMAT_WITHOUT_CANCELLED)
  ) {
    throw new RangeError(`not an encoded batch (format ${format})`);
  }
  if (format === BATCH_FORMAT) {
    const batch = new IndexedBatch(bytes as Uint8Array<ArrayBuffer>, new Uint8Array(0));
    const kinds = Array.from(batch.kinds);
    const values: SQLInputValue[] = [];
    for (let k = 0; k < kinds.length; k++) {
      if ((kinds[k] < 0 ? ~kinds[k] : kinds[k]) === SINGLE) values.push(...batch.single(k));
      else batch.readFixed(k, values, values.length);
    }
    return { kinds, values };
  }
  const reader = new ValueReader(bytes, []);
  const kindCount = reader.u32(1);
  const valueCount = reader.u32(5);
  reader.at = HEADER_BYTES + kindCount;
  if (reader.at > bytes.byteLength) throw new RangeError("encoded batch cut short");
  const kinds: number[] = new Array(kindCount);
  for (let i = 0; i < kindCount; i++) {
    const kind = bytes[HEADER_BYTES + i];
    kinds[i] = kind & CANCELLED_BIT ? ~(kind & ~CANCELLED_BIT) : kind;
  }
  const values: SQLInputValue[] = new Array(valueCount);
  for (let i = 0; i < valueCount; i++) values[i] = reader.tagged();
  return { kinds, values };
}

/**
 * Reads an encoded batch's values from `at` on. Reading it through the first time (`indexing`), it keeps the
 * strings written in full, for references; read again, it finds them there.
 */
class ValueReader {
  readonly #view: DataView;
  at = 0;
  /** The heap the strings kept when indexing take, slots included (an estimate: IndexedBatch.decodedBytes). */
  keptBytes = 0;

  constructor(
    readonly bytes: Uint8Array,
    private readonly strings: string[],
    private readonly indexing = true,
  ) {
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  u32(at: number): number {
    return this.#view.getUint32(at, true);
  }

  u8(): number {
    return this.bytes[this.at++];
  }

  f64(): number {
    const value = this.#view.getFloat64(this.at, true);
    this.at += 8;
    return value;
  }

  /** A number of the fixed layout, NaN standing for none. */
  optionalF64(): number | null {
    const value = this.f64();
    return Number.isNaN(value) ? null : value;
  }

  /** A string (or null) of the fixed layout. */
  string(): string | null {
    const word = this.u32(this.at);
    this.at += 4;
    if (word === NO_STRING) return null;
    if (word & STRING_REF_BIT) return this.strings[this.#reference((word & ~STRING_REF_BIT) >>> 0)];
    return this.#text(word);
  }

  /** A string of the fixed layout as its index among the batch's strings (-1 for null); when indexing. */
  stringIndex(): number {
    const word = this.u32(this.at);
    if (word !== NO_STRING && !(word & STRING_REF_BIT)) {
      this.string();
      return this.strings.length - 1;
    }
    this.at += 4;
    return word === NO_STRING ? -1 : this.#reference((word & ~STRING_REF_BIT) >>> 0);
  }

  /** A tagged value (formats 1 and 2, and single operations'). */
  tagged(): SQLInputValue {
    const at = this.at;
    const tag = this.bytes[at];
    this.at = at + 1;
    switch (tag) {
      case NULL:
        return null;
      case INT32:
        this.at = at + 5;
        return this.#view.getInt32(at + 1, true);
      case FLOAT64:
        this.at = at + 9;
        return this.#view.getFloat64(at + 1, true);
      case STRING:
        this.at = at + 5;
        return this.#text(this.u32(at + 1));
      case STRING_REF:
        this.at = at + 5;
        return this.strings[this.#reference(this.u32(at + 1))];
      case BYTES: {
        const length = this.u32(at + 1);
        this.at = at + 5 + length;
        if (this.at > this.bytes.byteLength) throw new RangeError("encoded batch cut short");
        return this.bytes.subarray(at + 5, this.at);
      }
      default:
        throw new RangeError(`encoded batch has a value of tag ${tag}`);
    }
  }

  /** The string written in full here; kept when indexing (read again, it is decoded again: rare). */
  #text(length: number): string {
    const start = this.at;
    this.at = start + length;
    if (this.at > this.bytes.byteLength) throw new RangeError("encoded batch cut short");
    const text = utf8.decode(this.bytes.subarray(start, this.at));
    if (this.indexing) {
      this.strings.push(text);
      // ASCII is a byte per character in V8's heap; anything else is counted at two (at most that).
      this.keptBytes += STRING_SLOT_BYTES + STRING_HEAP_BYTES +
        (text.length === length ? length : 2 * text.length);
    }
    return text;
  }

  #reference(index: number): number {
    if (index >= this.strings.length) throw new RangeError(`encoded batch refers to string ${index}`);
    return index;
  }
}
