/**
 * The state a node streams to a node that joins the cluster: what the cluster layer knows (peers, publish
 * sequences), then the broker's state a part at a time (src/broker/snapshot.ts). Each part is a record of
 * JSON with byte arrays in base64 behind a uint32 length; a session's queue goes in records of at most
 * {@link QUEUE_SLICE_BYTES} of payload each, so no record is much larger than that. The stream of records is
 * cut into pieces of a fixed size regardless of where records end: neither side holds more than a piece,
 * a record, and the one session being sent.
 */
import { decodeBase64, encodeBase64 } from "./base64.ts";
import type { BrokerStatePart, SessionSnapshot } from "../broker/mod.ts";

/** What the cluster layer adds to the broker's parts; sent first, installed once every part is in. */
export interface ClusterPart {
  kind: "cluster";
  peers: [node: string, run: number, lastBeat: number][];
  sequences: [key: string, sequence: number][];
}

export type StatePart = ClusterPart | BrokerStatePart;

type QueueItems = SessionSnapshot["state"]["queue"];

/**
 * What goes in the stream: a part, where a session whose queue is longer than a slice carries the first
 * slice and `more`, and its other slices follow in `queued` records, the last without `more`.
 */
type StateRecord =
  | ClusterPart
  | Exclude<BrokerStatePart, { kind: "session" }>
  | { kind: "session"; session: SessionSnapshot; more?: true }
  | { kind: "queued"; queue: QueueItems; more?: true };

/** Payload bytes of a session's queue per record. */
export const QUEUE_SLICE_BYTES = 256 * 1024;

const BYTES = "$bytes";
const LENGTH_BYTES = 4;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

function encodeRecord(record: StateRecord): Uint8Array {
  return encoder.encode(JSON.stringify(record, function (this: Record<string, unknown>, key, value) {
    if (key === "packet") return undefined; // a decoded frame kept for forwarding; the payload is enough
    // The value before any toJSON: a Node Buffer (a Uint8Array) would otherwise arrive as {type, data}.
    const raw = this[key];
    return raw instanceof Uint8Array ? { [BYTES]: encodeBase64(raw) } : value;
  }));
}

function decodeRecord(bytes: Uint8Array): StateRecord {
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
    if (part.kind !== "session") return await this.#record(part);
    const slices = queueSlices(part.session.state.queue);
    const session = { ...part.session, state: { ...part.session.state, queue: slices[0] } };
    await this.#record(
      slices.length > 1 ? { kind: "session", session, more: true } : { kind: "session", session },
    );
    for (let i = 1; i < slices.length; i++) {
      await this.#record(
        i < slices.length - 1 ? { kind: "queued", queue: slices[i], more: true } : {
          kind: "queued",
          queue: slices[i],
        },
      );
    }
  }

  async #record(record: StateRecord): Promise<void> {
    const bytes = encodeRecord(record);
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

/** A session's queue in slices of about {@link QUEUE_SLICE_BYTES} of payload (at least one, maybe empty). */
function queueSlices(queue: QueueItems): QueueItems[] {
  const slices: QueueItems[] = [];
  let start = 0;
  let bytes = 0;
  for (let i = 0; i < queue.length; i++) {
    bytes += queue[i].delivery.message.payload.byteLength;
    if (bytes < QUEUE_SLICE_BYTES) continue;
    slices.push(queue.slice(start, i + 1));
    start = i + 1;
    bytes = 0;
  }
  if (start < queue.length || slices.length === 0) slices.push(queue.slice(start));
  return slices;
}

/**
 * Reassembles the parts of a stream from its pieces, in order; holds at most one unfinished record and the
 * session whose queue is still arriving.
 */
export class SnapshotReader {
  readonly #length = new Uint8Array(LENGTH_BYTES);
  #lengthFilled = 0;
  #part: Uint8Array | undefined;
  #partFilled = 0;
  /** A session whose queue's later slices are still to come. */
  #session: SessionSnapshot | undefined;

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
      const part = this.#assembled(decodeRecord(this.#part));
      if (part) parts.push(part);
      this.#part = undefined;
    }
    return parts;
  }

  /** The part a record completes, if any. */
  #assembled(record: StateRecord): StatePart | undefined {
    if (record.kind === "queued") {
      if (!this.#session) throw new Error("a slice of a queue without its session");
      for (const item of record.queue) this.#session.state.queue.push(item);
      if (record.more) return undefined;
      const session = this.#session;
      this.#session = undefined;
      return { kind: "session", session };
    }
    if (this.#session) throw new Error(`a ${record.kind} part before the end of a session's queue`);
    if (record.kind !== "session") return record;
    if (!record.more) return { kind: "session", session: record.session };
    this.#session = record.session;
    return undefined;
  }

  /** True when no part is half-read: the stream ended where a part does. */
  get atPartBoundary(): boolean {
    return this.#part === undefined && this.#lengthFilled === 0 && this.#session === undefined;
  }
}
