/** Helpers for rejection tests: build packets byte by byte and expect a reason code. */
import assert from "node:assert/strict";
import { Decoder, MqttError, type Packet, type ProtocolVersion } from "../../../src/codec/mod.ts";

/** A packet with the given first byte and body; the remaining length (< 128) is filled in. */
export function frame(firstByte: number, body: number[]): Uint8Array {
  return new Uint8Array([firstByte, body.length, ...body]);
}

/** A two-byte length followed by the UTF-8 bytes of `text`. */
export function str(text: string): number[] {
  const bytes = new TextEncoder().encode(text);
  return [bytes.length >> 8, bytes.length & 0xff, ...bytes];
}

/** The protocol name "MQTT" as a string field. */
export const MQTT = str("MQTT");
export const ALL: ProtocolVersion[] = [3, 4, 5];
export const V3: ProtocolVersion[] = [3, 4];

/** Decodes the first packet of `bytes` at `version`. */
export function decode(bytes: Uint8Array, version: ProtocolVersion): Packet | undefined {
  const decoder = new Decoder({ maxPacketSize: 1 << 16, protocolVersion: version });
  decoder.push(bytes);
  return decoder.next();
}

export interface RejectionCase {
  name: string;
  versions: ProtocolVersion[];
  bytes: Uint8Array;
  reasonCode: number;
}

/** Registers one test per case and level: decoding must throw MqttError with the case's reason code. */
export function testRejections(cases: RejectionCase[]): void {
  for (const { name, versions, bytes, reasonCode } of cases) {
    for (const version of versions) {
      Deno.test(`rejects ${name} at level ${version} with 0x${reasonCode.toString(16)}`, () => {
        assert.throws(
          () => decode(bytes, version),
          (error: unknown) => {
            assert.ok(error instanceof MqttError, `expected MqttError, got ${error}`);
            assert.equal(error.reasonCode, reasonCode, `reason code for: ${error.message}`);
            return true;
          },
        );
      });
    }
  }
}
