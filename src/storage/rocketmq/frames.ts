/**
 * The body of one RocketMQ message of the cluster log: many log entries packed together, because the
 * client sends one message per call at ~3–4k calls/s per process, so batching is the throughput.
 *
 *   byte 0        format version (2)
 *   bytes 1–8     writer: random, one per appender (a process's run of the log)
 *   bytes 9–16    the message's sequence number within its writer, from 1, uint64 big-endian
 *   then, per entry: uint32 big-endian length, that many bytes
 *
 * A send whose receipt was lost (the proxy died after storing it) is sent again and lands twice, at two
 * offsets; the stamp is what lets a reader drop the second copy (ResendFilter). Version 1 (no stamp) is
 * still read, never filtered. The header also keeps the body non-empty (RocketMQ refuses empty bodies).
 */

export const FORMAT_VERSION = 2;
const UNSTAMPED_VERSION = 1;
const WRITER_BYTES = 8;
const HEADER_BYTES = 1 + WRITER_BYTES + 8;
const LENGTH_BYTES = 4;

/** Who wrote a message and its place in that writer's sequence. */
export interface Stamp {
  /** Hex of the writer's 8 random bytes; "" for an unstamped (version 1) message. */
  writer: string;
  sequence: number;
}

/** A new random writer id (8 bytes). */
export function newWriter(): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(WRITER_BYTES));
}
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

  constructor(writer: Uint8Array, sequence: number) {
    this.#buffer[0] = FORMAT_VERSION;
    this.#buffer.set(writer, 1);
    this.#view.setBigUint64(1 + WRITER_BYTES, BigInt(sequence));
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

/** Packs entries into one message body (by default as the first message of a writer of its own). */
export function packEntries(entries: readonly Uint8Array[], writer = newWriter(), sequence = 1): Uint8Array {
  const builder = new MessageBuilder(writer, sequence);
  for (const entry of entries) builder.add(entry);
  return builder.finish();
}

/** Unpacks a message body; throws on anything that is not exactly a sequence of frames of this format. */
export function unpackMessage(body: Uint8Array): { stamp: Stamp; entries: Uint8Array[] } {
  const version = body[0];
  const headerBytes = version === FORMAT_VERSION ? HEADER_BYTES : 1;
  if (body.length < headerBytes || (version !== FORMAT_VERSION && version !== UNSTAMPED_VERSION)) {
    throw new Error(`not a cluster log message (format byte ${body[0]}, ${body.length} bytes)`);
  }
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  const stamp = version === FORMAT_VERSION
    ? {
      writer: Array.from(body.subarray(1, 1 + WRITER_BYTES), (byte) => byte.toString(16).padStart(2, "0"))
        .join(""),
      sequence: Number(view.getBigUint64(1 + WRITER_BYTES)),
    }
    : { writer: "", sequence: 0 };
  const entries: Uint8Array[] = [];
  let offset = headerBytes;
  while (offset < body.length) {
    if (offset + LENGTH_BYTES > body.length) throw new Error(`truncated frame header at byte ${offset}`);
    const length = view.getUint32(offset);
    const start = offset + LENGTH_BYTES;
    if (start + length > body.length) throw new Error(`frame at byte ${offset} overruns the message`);
    entries.push(body.subarray(start, start + length));
    offset = start + length;
  }
  if (entries.length > MAX_ENTRIES_PER_MESSAGE) throw new Error(`${entries.length} entries in one message`);
  return { stamp, entries };
}

/** The entries of a message body (its stamp ignored). */
export function unpackEntries(body: Uint8Array): Uint8Array[] {
  return unpackMessage(body).entries;
}

/** What a reader of the log counts, for the log's stats. */
export interface ReadCounters {
  entriesApplied: number;
  resendsDropped: number;
}

/** How many writers a ResendFilter remembers: far more processes than append to one log at a time. */
const REMEMBERED_WRITERS = 4096;

/**
 * Drops the second copy of a message the log service stored twice (a re-send after a lost receipt, at a
 * later offset), and only that: a message read again at the offset it was first read at (a redelivery,
 * a retried read, a look back after a restart) is passed on, for the applier skips positions it applied.
 * A writer's sends land in the order it made them (one in flight at a time), so a later offset with a
 * sequence number no higher than the last seen is a copy.
 */
export class ResendFilter {
  readonly #last = new Map<string, { sequence: number; offset: number }>();

  /** True unless the message at `offset` is a later copy of one already seen. */
  fresh(stamp: Stamp, offset: number): boolean {
    if (stamp.writer === "") return true;
    const last = this.#last.get(stamp.writer);
    if (last && stamp.sequence <= last.sequence && offset > last.offset) return false;
    if (last && stamp.sequence <= last.sequence) return true; // read again where it was: not news
    this.#last.delete(stamp.writer); // most recently seen last, so the oldest writer is forgotten first
    this.#last.set(stamp.writer, { sequence: stamp.sequence, offset });
    if (this.#last.size > REMEMBERED_WRITERS) this.#last.delete(this.#last.keys().next().value!);
    return true;
  }
}
