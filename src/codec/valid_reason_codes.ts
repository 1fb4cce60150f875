/**
 * The reason codes each MQTT 5 packet may carry (spec §2.4 and the packet chapters), plus the 3.1.1
 * CONNACK and SUBACK return codes. A code outside its packet's set breaks "MUST use one of the <packet>
 * Reason Codes" (e.g. [MQTT-3.4.2-1], [MQTT-3.14.2-1]); the spec names no reason code for it, so it is a
 * Protocol Error (0x82): the packet parses and holds a value the protocol does not allow (§1.2), and
 * Mosquitto 2.0 answers PUBACK, PUBREC, PUBREL, PUBCOMP and AUTH codes out of their sets the same way.
 */
import { protocolError } from "./errors.ts";

/** A set of codes written as hex bytes separated by spaces, as the spec's tables list them. */
function codeSet(hexCodes: string): Uint8Array {
  const set = new Uint8Array(256);
  for (const code of hexCodes.split(" ")) set[parseInt(code, 16)] = 1;
  return set;
}

/** Allowed reason codes, indexed by code (1 = allowed). */
export const ValidReasonCodes = {
  connackV3: codeSet("00 01 02 03 04 05"),
  connack: codeSet("00 80 81 82 83 84 85 86 87 88 89 8a 8c 90 95 97 99 9a 9b 9c 9d 9f"),
  pubackPubrec: codeSet("00 10 80 83 87 90 91 97 99"),
  pubrelPubcomp: codeSet("00 92"),
  subackV3: codeSet("00 01 02 80"),
  suback: codeSet("00 01 02 80 83 87 8f 91 97 9e a1 a2"),
  unsuback: codeSet("00 11 80 83 87 8f 91"),
  disconnect: codeSet(
    "00 04 80 81 82 83 87 89 8b 8d 8e 8f 90 93 94 95 96 97 98 99 9a 9b 9c 9d 9e 9f a0 a1 a2",
  ),
  auth: codeSet("00 18 19"),
} as const;

/** Returns `code` when `set` allows it; otherwise throws 0x82. */
export function checkReasonCode(set: Uint8Array, code: number, packet: string): number {
  if (set[code] !== 1) throw protocolError(`Reason code 0x${code.toString(16)} is not valid in ${packet}`);
  return code;
}
