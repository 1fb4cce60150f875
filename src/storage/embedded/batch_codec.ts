/**
 * A batch's operations as bytes: how they cross from the broker's thread to the store's worker (the buffer
 * is moved, not cloned) and how the operation log keeps them. Cloned, the kinds and values cost the broker's
 * thread a structured clone per batch, and at durability `sync` a node:v8 serialization more for the log:
 * without them its CPU per durable QoS 1 message went from 2.8–2.9 to 2.2–2.3 µs (durable-q1 10→10).
 *
 * Format: FORMAT (u8), the kind count and the value count (u32 each), the kinds (u8 each; 0–3), then each
 * value as a tag and its bytes (little endian). A string equal to one of the last {@link RECENT_STRINGS}
 * distinct strings of the batch is written as that string's index instead: a batch names the same few client
 * ids, topics and publishers many times over. (A Map of every string of the batch, emptied after it, grew
 * its tables again for every batch of many distinct client ids, long enough for them to be promoted: 1.4 KB
 * of old-generation garbage per offline session while publishing 10 messages into each of 20,000.)
 */
import type { SQLInputValue } from "node:sqlite";

/** The first byte of an encoded batch. node:v8's serialization, which the log held before, starts with 0xFF. */
export const BATCH_FORMAT = 1;

const NULL = 0, INT32 = 1, FLOAT64 = 2, STRING = 3, STRING_REF = 4, BYTES = 5;
const HEADER_BYTES = 9;
const RECENT_STRINGS = 16;
/** The encoder's buffer starts at this size and goes back to it after a batch that needed more than 16 times. */
const SCRATCH_BYTES = 64 * 1024;

/** The kinds and values of a batch, as OperationBatch lays them out. */
export interface Operations {
  kinds: number[];
  values: SQLInputValue[];
}

/** Encodes batches into bytes of their own; keeps its buffer from batch to batch. */
export class BatchEncoder {
  #bytes = new Uint8Array(SCRATCH_BYTES);
  #view = new DataView(this.#bytes.buffer);
  #at = 0;
  /** The batch's last distinct strings (a ring) and their indexes; `#stringCount` strings written so far. */
  readonly #recent: string[] = new Array(RECENT_STRINGS).fill("");
  readonly #recentIndexes = new Int32Array(RECENT_STRINGS);
  #stringCount = 0;
  readonly #utf8 = new TextEncoder();

  /** The first `kindCount` kinds and `valueCount` values, in a buffer of their own (transferable). */
  encode(
    kinds: readonly number[],
    kindCount: number,
    values: readonly SQLInputValue[],
    valueCount: number,
  ): Uint8Array<ArrayBuffer> {
    this.#at = 0;
    this.#stringCount = 0;
    this.#reserve(HEADER_BYTES + kindCount);
    const bytes = this.#bytes;
    bytes[0] = BATCH_FORMAT;
    this.#view.setUint32(1, kindCount, true);
    this.#view.setUint32(5, valueCount, true);
    for (let i = 0; i < kindCount; i++) bytes[HEADER_BYTES + i] = kinds[i];
    this.#at = HEADER_BYTES + kindCount;
    for (let i = 0; i < valueCount; i++) this.#value(values[i]);
    const encoded = this.#bytes.slice(0, this.#at);
    if (this.#bytes.byteLength > 16 * SCRATCH_BYTES) this.#resize(SCRATCH_BYTES);
    return encoded;
  }

  #value(value: SQLInputValue): void {
    if (value === null) {
      this.#reserve(1);
      this.#bytes[this.#at++] = NULL;
    } else if (typeof value === "number") {
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
    } else if (typeof value === "string") {
      this.#string(value);
    } else if (value instanceof Uint8Array) {
      this.#reserve(5 + value.byteLength);
      const at = this.#at;
      this.#bytes[at] = BYTES;
      this.#view.setUint32(at + 1, value.byteLength, true);
      this.#bytes.set(value, at + 5);
      this.#at = at + 5 + value.byteLength;
    } else {
      throw new TypeError(`a stored operation's value cannot be ${typeof value}`);
    }
  }

  #string(value: string): void {
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
  if (bytes.byteLength < HEADER_BYTES || bytes[0] !== BATCH_FORMAT) {
    throw new RangeError(`not an encoded batch (format ${bytes[0]})`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const kindCount = view.getUint32(1, true);
  const valueCount = view.getUint32(5, true);
  let at = HEADER_BYTES + kindCount;
  if (at > bytes.byteLength) throw new RangeError("encoded batch cut short");
  const kinds: number[] = new Array(kindCount);
  for (let i = 0; i < kindCount; i++) kinds[i] = bytes[HEADER_BYTES + i];
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
