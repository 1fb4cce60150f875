/**
 * A comparable form of a packet: bytes as hex, no `frame`, no undefined fields. With
 * `groupUserProperties`, user properties become key → values in order, sorted by key: mqtt-packet keeps
 * them as an object, which loses the order between different keys (not within one key).
 */
import type { Packet } from "../../../src/codec/mod.ts";

function hex(bytes: Uint8Array): string {
  return `bytes:${Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("")}`;
}

function groupPairs(pairs: readonly (readonly [string, string])[]): [string, string[]][] {
  const groups = new Map<string, string[]>();
  for (const [name, value] of pairs) {
    const values = groups.get(name) ?? [];
    values.push(value);
    groups.set(name, values);
  }
  return [...groups].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

function canonicalValue(value: unknown, key: string, groupUserProperties: boolean): unknown {
  if (value instanceof Uint8Array) return hex(value);
  if (key === "userProperties" && groupUserProperties) {
    return groupPairs(value as [string, string][]);
  }
  if (Array.isArray(value)) return value.map((item) => canonicalValue(item, "", groupUserProperties));
  if (typeof value === "object" && value !== null) {
    const result: Record<string, unknown> = {};
    for (const [name, inner] of Object.entries(value)) {
      if (inner === undefined || name === "frame") continue;
      result[name] = canonicalValue(inner, name, groupUserProperties);
    }
    return result;
  }
  return value;
}

/** `packet` as plain data for `assert.deepStrictEqual`. */
export function canonical(packet: Packet, options: { groupUserProperties: boolean }): unknown {
  return canonicalValue(packet, "", options.groupUserProperties);
}
