/**
 * A small binary format for cluster events: unsigned integers as LEB128, strings and byte arrays with a
 * length prefix, numbers that may exceed 32 bits (timestamps, epochs) as float64. The writer grows its
 * buffer; the reader checks every length against the end, so a damaged entry throws instead of reading
 * past it.
 */
const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });
/** Strings up to this many bytes are decoded in JavaScript when they are ASCII. */
const SHORT_ASCII = 64;

export class WireWriter {
  #buf = new Uint8Array(256);
  #view = new DataView(this.#buf.buffer);
  #pos = 0;

  /** The bytes written so far (a copy-free view). */
  bytes(): Uint8Array {
    return this.#buf.subarray(0, this.#pos);
  }

  /** Starts over, keeping the buffer (a view from bytes() then sees what is written next). */
  reset(): this {
    this.#pos = 0;
    return this;
  }

  #reserve(count: number): void {
    if (this.#pos + count <= this.#buf.byteLength) return;
    let size = this.#buf.byteLength * 2;
    while (size < this.#pos + count) size *= 2;
    const grown = new Uint8Array(size);
    grown.set(this.#buf.subarray(0, this.#pos));
    this.#buf = grown;
    this.#view = new DataView(grown.buffer);
  }

  byte(value: number): this {
    this.#reserve(1);
    this.#buf[this.#pos++] = value;
    return this;
  }

  bool(value: boolean): this {
    return this.byte(value ? 1 : 0);
  }

  /** A non-negative integer below 2^53. */
  uint(value: number): this {
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new RangeError(`not a safe unsigned integer: ${value}`);
    }
    this.#reserve(8);
    while (value >= 0x80) {
      this.#buf[this.#pos++] = (value % 0x80) | 0x80;
      value = Math.floor(value / 0x80);
    }
    this.#buf[this.#pos++] = value;
    return this;
  }

  float(value: number): this {
    this.#reserve(8);
    this.#view.setFloat64(this.#pos, value);
    this.#pos += 8;
    return this;
  }

  bytesField(value: Uint8Array): this {
    this.uint(value.byteLength);
    this.#reserve(value.byteLength);
    this.#buf.set(value, this.#pos);
    this.#pos += value.byteLength;
    return this;
  }

  string(value: string): this {
    const length = value.length;
    if (length <= SHORT_ASCII) {
      // Topics, client and node ids are short and mostly ASCII: copied here rather than through a call out
      // to the native encoder and a new array for each (three per publish event, on its node's hot path).
      const start = this.#pos;
      this.#reserve(1 + length);
      const buf = this.#buf;
      let pos = start;
      buf[pos++] = length; // below 0x80: the whole LEB128 length in one byte
      for (let i = 0; i < length; i++) {
        const code = value.charCodeAt(i);
        if (code >= 0x80) return this.bytesField(encoder.encode(value)); // written again from `start`
        buf[pos++] = code;
      }
      this.#pos = pos;
      return this;
    }
    return this.bytesField(encoder.encode(value));
  }

  /** Writes a presence flag, then the value with `write` when it is defined. */
  optional<T>(value: T | undefined, write: (value: T) => void): this {
    this.bool(value !== undefined);
    if (value !== undefined) write(value);
    return this;
  }
}

/** A read that ran past the entry's end or found an impossible value. */
export class WireError extends Error {
  override readonly name = "WireError";
}

/** Eight bytes to read a float64 through (readers are made per entry: no DataView of their own). */
const FLOAT_BYTES = new Uint8Array(8);
const FLOAT_VIEW = new DataView(FLOAT_BYTES.buffer);

/** Short strings read recently, by a hash of their bytes (see WireReader.string). */
const RECENT_SLOTS = 512;
const recentBytes: (Uint8Array | undefined)[] = new Array(RECENT_SLOTS);
const recentStrings: string[] = new Array(RECENT_SLOTS).fill("");

/** The slot of a short string's bytes in the recent strings (FNV-1a); exported for tests. */
export function recentSlot(buf: Uint8Array, start: number, length: number): number {
  let hash = 0x811c9dc5 ^ length;
  for (let i = start; i < start + length; i++) hash = Math.imul(hash ^ buf[i], 0x01000193);
  return (hash >>> 0) & (RECENT_SLOTS - 1);
}

export class WireReader {
  #pos = 0;

  constructor(private readonly buf: Uint8Array) {}

  get done(): boolean {
    return this.#pos === this.buf.byteLength;
  }

  #need(count: number): void {
    if (this.#pos + count > this.buf.byteLength) throw new WireError("entry ends early");
  }

  byte(): number {
    this.#need(1);
    return this.buf[this.#pos++];
  }

  bool(): boolean {
    const value = this.byte();
    if (value > 1) throw new WireError(`not a boolean: ${value}`);
    return value === 1;
  }

  uint(): number {
    let value = 0;
    let scale = 1;
    for (let i = 0; i < 8; i++) {
      const byte = this.byte();
      value += (byte & 0x7f) * scale;
      if ((byte & 0x80) === 0) return value;
      scale *= 0x80;
    }
    throw new WireError("integer too long");
  }

  float(): number {
    this.#need(8);
    const buf = this.buf;
    const pos = this.#pos;
    for (let i = 0; i < 8; i++) FLOAT_BYTES[i] = buf[pos + i];
    this.#pos = pos + 8;
    return FLOAT_VIEW.getFloat64(0);
  }

  /** A view into the entry (not a copy). */
  bytesField(): Uint8Array {
    const length = this.uint();
    this.#need(length);
    const value = this.buf.subarray(this.#pos, this.#pos + length);
    this.#pos += length;
    return value;
  }

  /** Passes over a length-prefixed field without looking at it. */
  skipField(): void {
    const length = this.uint();
    this.#need(length);
    this.#pos += length;
  }

  string(): string {
    const length = this.uint();
    this.#need(length);
    const buf = this.buf;
    const start = this.#pos;
    this.#pos = start + length;
    if (length > SHORT_ASCII) return decoder.decode(buf.subarray(start, start + length));
    // Node and client ids and topics repeat entry after entry, and every node reads every entry: a string
    // read recently is found again by its bytes rather than built anew (building one was most of what a
    // node allocated to read the log: 40% of the bytes sampled under load).
    const slot = recentSlot(buf, start, length);
    const known = recentBytes[slot];
    if (known !== undefined && known.length === length) {
      let same = true;
      for (let i = 0; i < length && same; i++) same = known[i] === buf[start + i];
      if (same) return recentStrings[slot];
    }
    const bytes = buf.subarray(start, start + length);
    // Short and mostly ASCII: built here, cheaper than a call out to the native decoder for each.
    let text = "";
    for (let i = 0; i < length; i++) {
      const byte = bytes[i];
      if (byte >= 0x80) {
        text = decoder.decode(bytes);
        break;
      }
      text += String.fromCharCode(byte);
    }
    recentBytes[slot] = new Uint8Array(bytes); // a copy also of a Node Buffer, whose slice() is a view
    recentStrings[slot] = text;
    return text;
  }

  optional<T>(read: () => T): T | undefined {
    return this.bool() ? read() : undefined;
  }
}
