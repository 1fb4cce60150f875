/** Runs byte-exact test vectors: each decodes to its packet, and the packet encodes to its bytes. */
import assert from "node:assert/strict";
import { encode, encodedLength, type Packet, type ProtocolVersion } from "../../../src/codec/mod.ts";
import { canonical } from "./canonical.ts";
import { decodeOne } from "./decode_all.ts";

export interface Vector {
  name: string;
  /** Levels at which these bytes mean this packet. */
  versions: ProtocolVersion[];
  bytes: number[];
  packet: Packet;
  /** A valid long form that we accept but never produce (we emit the short form). */
  decodeOnly?: boolean;
}

const exact = (packet: Packet) => canonical(packet, { groupUserProperties: false });

/** Registers a decode test and (unless decodeOnly) an encode test per vector and level. */
export function testVectors(vectors: Vector[]): void {
  for (const vector of vectors) {
    for (const version of vector.versions) {
      Deno.test(`vector ${vector.name} at level ${version}: decodes`, () => {
        const decoded = decodeOne(new Uint8Array(vector.bytes), version);
        assert.deepStrictEqual(exact(decoded), exact(vector.packet));
        if (decoded.type === "publish") assert.deepStrictEqual(Array.from(decoded.frame ?? []), vector.bytes);
      });
      if (vector.decodeOnly) continue;
      Deno.test(`vector ${vector.name} at level ${version}: encodes`, () => {
        assert.deepStrictEqual(Array.from(encode(vector.packet, version)), vector.bytes);
        assert.equal(encodedLength(vector.packet, version), vector.bytes.length);
      });
    }
  }
}

/** UTF-8 bytes of `text`, for payloads and binary data in expected packets. */
export function utf8(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}
