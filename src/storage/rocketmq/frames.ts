/**
 * The body of one RocketMQ message of the cluster log: many log entries packed together, because the
 * client sends one message per call at ~3–4k calls/s per process, so batching is the throughput.
 *
 *   byte 0        format version (1)
 *   then, per entry: uint32 big-endian length, that many bytes
 *
 * The version byte also keeps the body non-empty (RocketMQ refuses empty bodies) when the only entry is.
 */

export const FORMAT_VERSION = 1;
const HEADER_BYTES = 1;
const LENGTH_BYTES = 4;
/** Entries per message: the index within a message is the low 16 bits of an entry's position. */
export const MAX_ENTRIES_PER_MESSAGE = 1 << 16;

/** Bytes one entry of `length` bytes adds to a message. */
export function frameBytes(length: number): number {
  return LENGTH_BYTES + length;
}

/** Bytes of a message that holds nothing yet. */
export const EMPTY_MESSAGE_BYTES = HEADER_BYTES;

/**
 * Builds one message body entry by entry: each entry is copied once, at `add`, into a buffer that grows
 * by doubling (a quiet log sends small messages without allocating a full batch each time).
 */
export class MessageBuilder {
  #buffer = new Uint8Array(4096);
  #view = new DataView(this.#buffer.buffer);
  #length = HEADER_BYTES;
  /** Entries added. */
  count = 0;

  constructor() {
    this.#buffer[0] = FORMAT_VERSION;
  }

  /** Bytes of the message so far. */
  get bytes(): number {
    return this.#length;
  }

  add(entry: Uint8Array): void {
    const end = this.#length + frameBytes(entry.length);
    if (end > this.#buffer.length) {
      let size = this.#buffer.length * 2;
      while (size < end) size *= 2;
      const grown = new Uint8Array(size);
      grown.set(this.#buffer.subarray(0, this.#length));
      this.#buffer = grown;
      this.#view = new DataView(grown.buffer);
    }
    this.#view.setUint32(this.#length, entry.length);
    this.#buffer.set(entry, this.#length + LENGTH_BYTES);
    this.#length = end;
    this.count++;
  }

  /** The message body (a view of the builder's buffer: add nothing after this). */
  finish(): Uint8Array {
    return this.#buffer.subarray(0, this.#length);
  }
}

/** Packs entries into one message body. */
export function packEntries(entries: readonly Uint8Array[]): Uint8Array {
  const builder = new MessageBuilder();
  for (const entry of entries) builder.add(entry);
  return builder.finish();
}

/** Unpacks a message body; throws on anything that is not exactly a sequence of frames of this format. */
export function unpackEntries(body: Uint8Array): Uint8Array[] {
  if (body.length < HEADER_BYTES || body[0] !== FORMAT_VERSION) {
    throw new Error(`not a cluster log message (format byte ${body[0]}, ${body.length} bytes)`);
  }
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  const entries: Uint8Array[] = [];
  let offset = HEADER_BYTES;
  while (offset < body.length) {
    if (offset + LENGTH_BYTES > body.length) throw new Error(`truncated frame header at byte ${offset}`);
    const length = view.getUint32(offset);
    const start = offset + LENGTH_BYTES;
    if (start + length > body.length) throw new Error(`frame at byte ${offset} overruns the message`);
    entries.push(body.subarray(start, start + length));
    offset = start + length;
  }
  if (entries.length > MAX_ENTRIES_PER_MESSAGE) throw new Error(`${entries.length} entries in one message`);
  return entries;
}
