/**
 * Bounded reads of MQTT data types from one packet's bytes. Every read checks `end`, so a length
 * field that points past the packet is a Malformed Packet (0x81) rather than a read into the next one.
 */
import { malformed, protocolError } from "./errors.ts";
import { decodeUtf8 } from "./utf8.ts";

/** A read position inside `buf[.., end)`. */
export class Cursor {
  constructor(readonly buf: Uint8Array, public pos: number, public end: number) {}

  get remaining(): number {
    return this.end - this.pos;
  }

  private need(count: number, what: string): void {
    if (this.end - this.pos < count) throw malformed(`Packet too short for ${what}`);
  }

  byte(what = "byte"): number {
    this.need(1, what);
    return this.buf[this.pos++];
  }

  twoBytes(what = "two-byte integer"): number {
    this.need(2, what);
    const pos = this.pos;
    this.pos = pos + 2;
    return (this.buf[pos] << 8) | this.buf[pos + 1];
  }

  fourBytes(what = "four-byte integer"): number {
    this.need(4, what);
    const buf = this.buf;
    const pos = this.pos;
    this.pos = pos + 4;
    return buf[pos] * 0x100_0000 + ((buf[pos + 1] << 16) | (buf[pos + 2] << 8) | buf[pos + 3]);
  }

  /** A Variable Byte Integer of at most 4 bytes in minimal form [MQTT-1.5.5-1]. */
  varInt(what = "variable byte integer"): number {
    let value = 0;
    let multiplier = 1;
    for (let count = 1; count <= 4; count++) {
      const byte = this.byte(what);
      value += (byte & 0x7f) * multiplier;
      if ((byte & 0x80) === 0) {
        if (byte === 0 && count > 1) throw malformed(`${what} is not minimally encoded`, "[MQTT-1.5.5-1]");
        return value;
      }
      multiplier *= 0x80;
    }
    throw malformed(`${what} is longer than 4 bytes`);
  }

  /** A two-byte Packet Identifier, which must be non-zero [MQTT-2.2.1-3]. */
  packetId(): number {
    const id = this.twoBytes("packet identifier");
    if (id === 0) throw protocolError("Packet identifier 0", "[MQTT-2.2.1-3]");
    return id;
  }

  /** A UTF-8 Encoded String; control characters refused (0x81) unless `allowControls`. */
  string(what = "string", allowControls = true): string {
    const start = this.lengthPrefixed(what);
    return decodeUtf8(this.buf, start, this.pos, allowControls, what);
  }

  /** Binary Data, as a view: callers decode from buffers the packet owns. */
  binary(what = "binary data"): Uint8Array {
    const start = this.lengthPrefixed(what);
    return this.buf.subarray(start, this.pos);
  }

  /** Skips a two-byte length and the bytes it counts; returns where those bytes start. */
  private lengthPrefixed(what: string): number {
    this.need(2, what);
    const length = (this.buf[this.pos] << 8) | this.buf[this.pos + 1];
    this.pos += 2;
    this.need(length, what);
    const start = this.pos;
    this.pos = start + length;
    return start;
  }

  /** Rejects bytes after the packet's defined content. */
  expectEnd(what: string): void {
    if (this.pos !== this.end) throw malformed(`${this.end - this.pos} unexpected trailing bytes in ${what}`);
  }
}
