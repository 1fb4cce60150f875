/**
 * A batch's operations as bytes: how they cross from the broker's thread to the store's worker (the buffer
 * is moved, not cloned) and how the operation log keeps them. Cloned, the kinds and values cost the broker's
 * thread a structured clone per batch, and at durability `sync` a node:v8 serialization more for the log:
 * without them its CPU per durable QoS 1 message went from 2.8–2.9 to 2.2–2.3 µs (durable-q1 10→10).
 *
 * Format: FORMAT (u8), the kind count and the value count (u32 each), the kinds (u8 each; 0–3, with 0x80
 * set when the operation cancelled out), then each value as a tag and its bytes (little endian). A string equal to one of the last {@link RECENT_STRINGS}
 * distinct strings of the batch is written as that string's index instead: a batch names the same few client
 * ids, topics and publishers many times over. (A Map of every string of the batch, emptied after it, grew
 * its tables again for every batch of many distinct client ids, long enough for them to be promoted: 1.4 KB
 * of old-generation garbage per offline session while publishing 10 messages into each of 20,000.)
 */
import type { SQLInputValue } from "node:sqlite";

/**
 * The first byte of an encoded batch. Format 1 left cancelled operations out (and is still read: a log may
 * hold it). node:v8's serialization, which the log held before, starts with 0xFF.
 */
export const BATCH_FORMAT = 2;
const FORMAT_WITHOUT_CANCELLED = 1;
/** Set in the kind byte of an operation that cancelled out (see {@link BatchEncoder.cancel}). */
const CANCELLED_BIT = 0x80;

const NULL = 0, INT32 = 1, FLOAT64 = 2, STRING = 3, STRING_REF = 4, BYTES = 5;
const HEADER_BYTES = 9;
const RECENT_STRINGS = 16;
/** The encoder's buffer starts at this size and goes back to it after a batch that needed more than 16 times. */
const SCRATCH_BYTES = 64 * 1024;
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
  /** The batch's last distinct strings (a ring) and their indexes; `#stringCount` strings written so far. */
  readonly #recent: string[] = new Array(RECENT_STRINGS).fill("");
  readonly #recentIndexes = new Int32Array(RECENT_STRINGS);
  #stringCount = 0;
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
   * worker decodes its kind as `~kind`, which everything there skips.
   */
  cancel(index: number): void {
    this.#kinds[index] |= CANCELLED_BIT;
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
    const recent = this.#recent;
    for (let i = Math.min(this.#stringCount, RECENT_STRINGS) - 1; i >= 0; i--) {
      if (recent[i] !== value) continue;
      this.#reserve(5);
      this.#bytes[this.#at] = STRING_REF;
      this.#view.setUint32(this.#at + 1, this.#recentIndexes[i], true);
      this.#at += 5;
      return;
    }
    const slot = this.#stringCount % RECENT_STRINGS;
    recent[slot] = value;
    this.#recentIndexes[slot] = this.#stringCount++;
    const length = value.length;
    this.#reserve(5 + 3 * length);
    const bytes = this.#bytes;
    const start = this.#at + 5;
    // ASCII (nearly every client id, topic and statement name) without a call into the encoder.
    let written = 0;
    for (; written < length; written++) {
      const code = value.charCodeAt(written);
      if (code >= 0x80) break;
      bytes[start + written] = code;
    }
    if (written < length) written = this.#utf8.encodeInto(value, bytes.subarray(start)).written;
    bytes[this.#at] = STRING;
    this.#view.setUint32(this.#at + 1, written, true);
    this.#at = start + written;
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
    this.#at =
      this.#valueCount =
      this.#kindCount =
      this.#stringCount =
        0;
    if (this.#bytes.byteLength > 16 * SCRATCH_BYTES) this.#resize(SCRATCH_BYTES);
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
 * The kinds and values of `bytes` (see the module comment). Byte values are copies: the bytes are freed
 * once the log has them. Throws on bytes of another format or cut short.
 */
export function decodeOperations(bytes: Uint8Array): Operations {
  if (
    bytes.byteLength < HEADER_BYTES || (bytes[0] !== BATCH_FORMAT && bytes[0] !== FORMAT_WITHOUT_CANCELLED)
  ) {
    throw new RangeError(`not an encoded batch (format ${bytes[0]})`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const kindCount = view.getUint32(1, true);
  const valueCount = view.getUint32(5, true);
  let at = HEADER_BYTES + kindCount;
  if (at > bytes.byteLength) throw new RangeError("encoded batch cut short");
  const kinds: number[] = new Array(kindCount);
  for (let i = 0; i < kindCount; i++) {
    const kind = bytes[HEADER_BYTES + i];
    kinds[i] = kind & CANCELLED_BIT ? ~(kind & ~CANCELLED_BIT) : kind;
  }
  const values: SQLInputValue[] = new Array(valueCount);
  const strings: string[] = [];
  for (let i = 0; i < valueCount; i++) {
    const tag = bytes[at];
    switch (tag) {
      case NULL:
        values[i] = null;
        at += 1;
        break;
      case INT32:
        values[i] = view.getInt32(at + 1, true);
        at += 5;
        break;
      case FLOAT64:
        values[i] = view.getFloat64(at + 1, true);
        at += 9;
        break;
      case STRING: {
        const length = view.getUint32(at + 1, true);
        const text = utf8.decode(bytes.subarray(at + 5, at + 5 + length));
        strings.push(text);
        values[i] = text;
        at += 5 + length;
        break;
      }
      case STRING_REF: {
        const index = view.getUint32(at + 1, true);
        if (index >= strings.length) throw new RangeError(`encoded batch refers to string ${index}`);
        values[i] = strings[index];
        at += 5;
        break;
      }
      case BYTES: {
        const length = view.getUint32(at + 1, true);
        values[i] = bytes.slice(at + 5, at + 5 + length);
        at += 5 + length;
        break;
      }
      default:
        throw new RangeError(`encoded batch has a value of tag ${tag}`);
    }
    if (at > bytes.byteLength) throw new RangeError("encoded batch cut short");
  }
  return { kinds, values };
}
