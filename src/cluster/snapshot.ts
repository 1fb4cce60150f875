/**
 * The state a node sends a node that joins the cluster: the broker's state (src/broker/snapshot.ts) plus
 * what the cluster layer knows (peers, publish sequences), as JSON with byte arrays in base64, cut into
 * log entries of a bounded size.
 */
import { decodeBase64, encodeBase64 } from "./base64.ts";
import type { BrokerState } from "../broker/mod.ts";

export interface ClusterState {
  broker: BrokerState;
  peers: [node: string, run: number, lastBeat: number][];
  sequences: [key: string, sequence: number][];
}

const BYTES = "$bytes";
const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function encodeState(state: ClusterState): Uint8Array {
  return encoder.encode(JSON.stringify(state, function (this: Record<string, unknown>, key, value) {
    if (key === "packet") return undefined; // a decoded frame kept for forwarding; the payload is enough
    // The value before any toJSON: a Node Buffer (a Uint8Array) would otherwise arrive as {type, data}.
    const raw = this[key];
    return raw instanceof Uint8Array ? { [BYTES]: encodeBase64(raw) } : value;
  }));
}

export function decodeState(bytes: Uint8Array): ClusterState {
  return JSON.parse(
    decoder.decode(bytes),
    (_key, value) =>
      typeof value === "object" && value !== null && typeof value[BYTES] === "string"
        ? decodeBase64(value[BYTES])
        : value,
  );
}

/** `bytes` in pieces of at most `size` bytes (at least one piece, possibly empty). */
export function chunks(bytes: Uint8Array, size: number): Uint8Array[] {
  const pieces: Uint8Array[] = [];
  for (let offset = 0; offset < bytes.byteLength; offset += size) {
    pieces.push(bytes.subarray(offset, offset + size));
  }
  return pieces.length > 0 ? pieces : [bytes];
}
