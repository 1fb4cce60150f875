/**
 * The encoder's output. Every packet is emitted twice by the same code: once into a measuring sink
 * (no buffer) to learn its exact size, then into a writing sink over a buffer allocated once at that
 * size, so sizing and writing can never disagree.
 */
import { copyBytes } from "./bytes.ts";
import { malformed } from "./errors.ts";
import { MAX_STRING_BYTES, utf8Length, writeUtf8 } from "./utf8.ts";
import { encodeVarInt, MAX_VAR_INT, varIntLength } from "./var_int.ts";

function checkInteger(value: number, max: number, what: string): void {
  if (!Number.isInteger(value) || value < 0 || value > max) {
    throw malformed(`${what} must be an integer in 0..${max}, got ${value}`);
  }
}

/** Writes MQTT data types at `pos`, or only advances `pos` when it has no buffer. */
export class Sink {
  pos: number;

  constructor(readonly buf: Uint8Array | undefined, pos = 0) {
    this.pos = pos;
  }

  byte(value: number, what = "byte"): void {
    checkInteger(value, 0xff, what);
    if (this.buf) this.buf[this.pos] = value;
    this.pos += 1;
  }

  twoBytes(value: number, what = "two-byte integer"): void {
    checkInteger(value, 0xffff, what);
    if (this.buf) {
      this.buf[this.pos] = value >>> 8;
      this.buf[this.pos + 1] = value & 0xff;
    }
    this.pos += 2;
  }

  fourBytes(value: number, what = "four-byte integer"): void {
    checkInteger(value, 0xffff_ffff, what);
    const buf = this.buf;
    if (buf) {
      const pos = this.pos;
      buf[pos] = value >>> 24;
      buf[pos + 1] = (value >>> 16) & 0xff;
      buf[pos + 2] = (value >>> 8) & 0xff;
      buf[pos + 3] = value & 0xff;
    }
    this.pos += 4;
  }

  varInt(value: number, what = "variable byte integer"): void {
    checkInteger(value, MAX_VAR_INT, what);
    this.pos = this.buf ? encodeVarInt(this.buf, this.pos, value) : this.pos + varIntLength(value);
  }

  /** A UTF-8 Encoded String: two-byte length, then the bytes. */
  string(text: string, what = "string"): void {
    const length = utf8Length(text);
    if (length > MAX_STRING_BYTES) throw malformed(`${what} is longer than ${MAX_STRING_BYTES} bytes`);
    this.twoBytes(length);
    this.pos = this.buf ? writeUtf8(this.buf, this.pos, text, length) : this.pos + length;
  }

  /** Binary Data: two-byte length, then the bytes. */
  binary(data: Uint8Array, what = "binary data"): void {
    if (data.length > MAX_STRING_BYTES) throw malformed(`${what} is longer than ${MAX_STRING_BYTES} bytes`);
    this.twoBytes(data.length);
    this.raw(data);
  }

  /** Bytes without a length prefix (a PUBLISH payload, SUBACK reason codes). */
  raw(data: Uint8Array): void {
    if (this.buf) copyBytes(this.buf, this.pos, data, 0, data.length);
    this.pos += data.length;
  }
}
