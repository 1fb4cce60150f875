/** Variable Byte Integer helpers (spec §1.5.5): 7 bits per byte, at most 4 bytes. */

/** Largest value a Variable Byte Integer can hold (four bytes). */
export const MAX_VAR_INT = 268_435_455;

/** Bytes needed to encode `value` (0..MAX_VAR_INT). */
export function varIntLength(value: number): number {
  if (value < 0x80) return 1;
  if (value < 0x4000) return 2;
  if (value < 0x20_0000) return 3;
  return 4;
}

/** Writes `value` at `pos` with the minimum number of bytes [MQTT-1.5.5-1]; returns the next position. */
export function encodeVarInt(buf: Uint8Array, pos: number, value: number): number {
  while (value >= 0x80) {
    buf[pos++] = (value & 0x7f) | 0x80;
    value >>>= 7;
  }
  buf[pos++] = value;
  return pos;
}
