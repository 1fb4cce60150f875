/**
 * The state a node streams to a node that joins the cluster: what the cluster layer knows (peers, publish
 * sequences), then the broker's state a part at a time (src/broker/snapshot.ts). Each part is JSON with
 * byte arrays in base64 behind a uint32 length; the stream of parts is cut into pieces of a fixed size
 * regardless of where parts end, so neither side ever holds more than a piece and one part.
 */
import { decodeBase64, encodeBase64 } from "./base64.ts";
import type { BrokerStatePart } from "../broker/mod.ts";

/** What the cluster layer adds to the broker's parts; sent first, installed once every part is in. */
export interface ClusterPart {
  kind: "cluster";
  peers: [node: string, run: number, lastBeat: number][];
  sequences: [key: string, sequence: number][];
}

export type StatePart = ClusterPart | BrokerStatePart;

const BYTES = "$bytes";
const LENGTH_BYTES = 4;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function encodePart(part: StatePart): Uint8Array {
  return encoder.encode(JSON.stringify(part, function (this: Record<string, unknown>, key, value) {
    if (key === "packet") return undefined; // a decoded frame kept for forwarding; the payload is enough
    // The value before any toJSON: a Node Buffer (a Uint8Array) would otherwise arrive as {type, data}.
    const raw = this[key];
    return raw instanceof Uint8Array ? { [BYTES]: encodeBase64(raw) } : value;
  }));
}

export function decodePart(bytes: Uint8Array): StatePart {
  return JSON.parse(
    decoder.decode(bytes),
    (_key, value) =>
      typeof value === "object" && value !== null && typeof value[BYTES] === "string"
        ? decodeBase64(value[BYTES])
        : value,
  );
}

/**
 * Cuts a stream of parts into pieces of `pieceBytes`, handing each to `send` as it fills; `send`'s
 * promise is awaited, so a slow log holds the writer back rather than letting pieces pile up in memory.
 */
export class SnapshotWriter {
  #piece: Uint8Array;
  #filled = 0;
  readonly #length = new Uint8Array(LENGTH_BYTES);

  constructor(
    private readonly pieceBytes: number,
    private readonly send: (piece: Uint8Array, last: boolean) => Promise<void>,
  ) {
    this.#piece = new Uint8Array(pieceBytes);
  }

  async write(part: StatePart): Promise<void> {
    const bytes = encodePart(part);
    new DataView(this.#length.buffer).setUint32(0, bytes.byteLength);
    await this.#put(this.#length);
    await this.#put(bytes);
  }

  /** Sends what is left as the last piece (possibly empty). */
  end(): Promise<void> {
    return this.send(this.#piece.subarray(0, this.#filled), true);
  }

  async #put(bytes: Uint8Array): Promise<void> {
    for (let offset = 0; offset < bytes.byteLength;) {
      const taken = Math.min(this.pieceBytes - this.#filled, bytes.byteLength - offset);
      this.#piece.set(bytes.subarray(offset, offset + taken), this.#filled);
      this.#filled += taken;
      offset += taken;
      if (this.#filled < this.pieceBytes) continue;
      const full = this.#piece;
      this.#piece = new Uint8Array(this.pieceBytes);
      this.#filled = 0;
      await this.send(full, false);
    }
  }
}

/** Reassembles the parts of a stream from its pieces, in order; holds at most one unfinished part. */
export class SnapshotReader {
  readonly #length = new Uint8Array(LENGTH_BYTES);
  #lengthFilled = 0;
  #part: Uint8Array | undefined;
  #partFilled = 0;

  /** The parts `piece` completes. */
  push(piece: Uint8Array): StatePart[] {
    const parts: StatePart[] = [];
    for (let offset = 0; offset < piece.byteLength;) {
      if (!this.#part) {
        const taken = Math.min(LENGTH_BYTES - this.#lengthFilled, piece.byteLength - offset);
        this.#length.set(piece.subarray(offset, offset + taken), this.#lengthFilled);
        this.#lengthFilled += taken;
        offset += taken;
        if (this.#lengthFilled < LENGTH_BYTES) break;
        this.#part = new Uint8Array(new DataView(this.#length.buffer).getUint32(0));
        this.#lengthFilled = 0;
        this.#partFilled = 0;
      }
      const taken = Math.min(this.#part.byteLength - this.#partFilled, piece.byteLength - offset);
      this.#part.set(piece.subarray(offset, offset + taken), this.#partFilled);
      this.#partFilled += taken;
      offset += taken;
      if (this.#partFilled < this.#part.byteLength) break;
      parts.push(decodePart(this.#part));
      this.#part = undefined;
    }
    return parts;
  }

  /** True when no part is half-read: the stream ended where a part does. */
  get atPartBoundary(): boolean {
    return this.#part === undefined && this.#lengthFilled === 0;
  }
}
