/**
 * The incremental decoder: splits a byte stream into packets. A packet that lies whole inside a pushed
 * chunk is decoded straight from it; a packet split across chunks is gathered into a buffer of exactly
 * its size, allocated only after the size passed `maxPacketSize`.
 */
import { allocate, copyBytes, copyOf, POOLED_MAX, wholeBufferView } from "./bytes.ts";
import { Cursor } from "./cursor.ts";
import {
  decodeAck,
  decodeAuth,
  decodeDisconnect,
  decodeSuback,
  decodeSubscribe,
  decodeUnsuback,
  decodeUnsubscribe,
} from "./decode_packets.ts";
import { decodeConnack, decodeConnect } from "./decode_connect.ts";
import { DecodedPublish, decodePublish, decodePublishAt } from "./decode_publish.ts";
import { malformed, MqttError, protocolError } from "./errors.ts";
import { NO_PROPERTIES } from "./properties.ts";
import { ReasonCode } from "./reason_codes.ts";
import type { AckPacket, Packet, ProtocolVersion } from "./types.ts";

/** Settings of a {@link Decoder}. */
export interface DecoderOptions {
  /** Largest accepted packet in bytes, fixed header included; larger ones fail with 0x95. */
  maxPacketSize: number;
  /** Level for packets other than CONNECT until a CONNECT sets it; 4 (3.1.1) when absent. */
  protocolVersion?: ProtocolVersion;
  /**
   * The packets come from clients (the broker's side): the types only a server sends (CONNACK, SUBACK,
   * UNSUBACK, PINGRESP) are refused from their first byte with 0x82, before their body is read.
   */
  fromClients?: boolean;
  /**
   * Accept control characters (U+0001..U+001F, U+007F..U+009F) in client identifiers, user names, topic
   * names and topic filters; true when absent. False makes them a Malformed Packet (spec §1.5.4).
   */
  allowControlCharacters?: boolean;
  /**
   * PUBLISH, and PUBACK, PUBREC, PUBREL and PUBCOMP without reason code or properties, come back as objects
   * the decoder reuses (one for PUBLISH, one for the acknowledgements, each made at its first use: a decoder
   * that reads one packet costs no more), valid until the next call to next(): for a caller that handles each
   * packet before it asks for the next and keeps none of them (a connection: one PUBLISH and one or two
   * acknowledgements per QoS 1/2 message). A PUBLISH's frame, payload and strings are its own still; the
   * PUBLISH is a {@link DecodedPublish}, which makes views of its frame and payload only when they are read.
   * False when absent.
   */
  reusePackets?: boolean;
}

const PUBLISH = 3;
const ACK_TYPES = ["puback", "pubrec", "pubrel", "pubcomp"] as const;
/** A PUBACK's first byte: type 4, no flags [MQTT-2.2.2-2]. */
const PUBACK_FIRST_BYTE = 0x40;
/** The fixed-header flags each non-PUBLISH type must carry [MQTT-2.2.2-1]: 0b0010 or 0. */
const REQUIRED_FLAGS = [-1, 0, 0, -1, 0, 0, 2, 0, 2, 0, 2, 0, 0, 0, 0, 0];
/** CONNACK (2), SUBACK (9), UNSUBACK (11), PINGRESP (13): types a client never sends, one bit each. */
const SERVER_ONLY = (1 << 2) | (1 << 9) | (1 << 11) | (1 << 13);

/**
 * Checks the first byte. Where the spec names no reason code the answer is Mosquitto 2.0's: reserved type
 * 0 and a type the sender may not send are Protocol Errors, DUP on QoS 0 is a Malformed Packet.
 */
function checkFirstByte(first: number, version: ProtocolVersion, fromClients: boolean): void {
  const type = first >> 4;
  const flags = first & 0x0f;
  if (type === PUBLISH) {
    const qos = (flags >> 1) & 0x03;
    if (qos === 3) throw malformed("PUBLISH with QoS 3", "[MQTT-3.3.1-4]");
    if (qos === 0 && (flags & 0x08)) throw malformed("PUBLISH with QoS 0 and DUP set", "[MQTT-3.3.1-2]");
    return;
  }
  if (type === 0) throw protocolError("Reserved packet type 0");
  if (flags !== REQUIRED_FLAGS[type]) throw malformed("Invalid fixed header flags", "[MQTT-2.2.2-2]");
  if (type === 15 && version < 5) throw malformed("AUTH before MQTT 5");
  if (fromClients && (SERVER_ONLY >> type) & 1) {
    throw protocolError(`A client may not send packet type ${type}`);
  }
}

/** Remaining Lengths fixed by the packet type, by type; -1 = any. PINGREQ/PINGRESP have no body at all. */
const FIXED_LENGTH_V5 = [-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 0, 0, -1, -1];
/** Below MQTT 5 the acknowledgements are a packet id only, and DISCONNECT is empty. */
const FIXED_LENGTH_V3 = [-1, -1, -1, -1, 2, 2, 2, 2, -1, -1, -1, 2, 0, 0, 0, -1];

/**
 * Refuses, from the fixed header alone, a Remaining Length the packet type cannot have (as Mosquitto's
 * packet__read does): the connection closes at once instead of waiting for a body that may never come.
 */
function checkRemainingLength(first: number, remainingLength: number, version: ProtocolVersion): void {
  const type = first >> 4;
  const fixed = (version === 5 ? FIXED_LENGTH_V5 : FIXED_LENGTH_V3)[type];
  if (fixed >= 0 && remainingLength !== fixed) {
    throw malformed(`Remaining length ${remainingLength} where packet type ${type} has ${fixed}`);
  }
  if (version === 5 && type >= 4 && type <= 7 && remainingLength < 2) {
    throw malformed(`Remaining length ${remainingLength} is too short for a packet identifier`);
  }
}

/** `Decoder.decodeFrame`'s chunk end for a frame that is a buffer of its own. */
const OWNED = -1;
/**
 * How many bytes of a read are copied at once for the frames in them (see `Decoder.#ownedFrame`): at most
 * what bytes.ts carves out of its shared slabs.
 */
const RUN_BYTES = POOLED_MAX;

/** Splits a byte stream into MQTT packets; see {@link Decoder.push} and {@link Decoder.next}. */
export class Decoder {
  /**
   * Level used for all packets except CONNECT; decoding a CONNECT sets it to the CONNECT's level.
   * Settable (a client sets it after sending CONNECT).
   */
  protocolVersion: ProtocolVersion;
  /** Largest accepted packet in bytes, fixed header included. Settable. */
  maxPacketSize: number;
  readonly #fromClients: boolean;
  readonly #allowControls: boolean;
  readonly #reusePackets: boolean;
  /** The packets next() hands out again and again (see DecoderOptions.reusePackets), once made. */
  #ack: AckPacket<typeof ACK_TYPES[number]> | undefined;
  #publish: DecodedPublish | undefined;

  private chunk: Uint8Array | undefined;
  /** Where the current chunk's bytes end (a read fills only the start of its buffer). */
  private chunkEnd = 0;
  private offset = 0;
  /** Chunks pushed while an earlier one is still being read (rare: a caller drains between pushes). */
  private queued: Uint8Array[] | undefined;
  /** A fixed header split across chunks (at most 1 type byte + 4 length bytes). */
  private header: Uint8Array | undefined;
  private headerFilled = 0;
  /** The packet being gathered across chunks, and how much of it has arrived. */
  private frame: Uint8Array | undefined;
  private frameFilled = 0;
  private frameHeaderSize = 0;
  /** Remaining Length of the fixed header parsed last. */
  private remainingLength = 0;
  private failure: unknown;
  /**
   * A copy of the current chunk's bytes from `#runStart` on (see {@link #ownedFrame}): the frames in it are
   * handed out as views of it. `#runSource` is the chunk it copies, until the chunk changes.
   */
  #run: Uint8Array | undefined;
  #runSource: Uint8Array | undefined;
  #runStart = 0;
  /** A view of the copy's whole buffer (see wholeBufferView), and where the copy starts in it. */
  #runBuffer: Uint8Array | undefined;
  #runOffset = 0;
  /** The buffer the frame {@link #ownedAt} placed last is in. */
  #ownedBytes: Uint8Array | undefined;

  constructor(options: DecoderOptions) {
    this.maxPacketSize = options.maxPacketSize;
    this.protocolVersion = options.protocolVersion ?? 4;
    this.#fromClients = options.fromClients ?? false;
    this.#allowControls = options.allowControlCharacters ?? true;
    this.#reusePackets = options.reusePackets ?? false;
  }

  /**
   * Hands over the next chunk: its first `length` bytes (all by default, so that a read buffer is passed
   * without a view of its filled part). The decoder may keep a view of it only until next() returns
   * undefined; by then it has copied any partial packet into its own storage, so the caller may reuse its
   * read buffer.
   */
  push(chunk: Uint8Array, length = chunk.length): void {
    if (length === 0 || this.failure !== undefined) return;
    // A read buffer comes back refilled: a copy of its earlier bytes is no copy of these.
    this.#runSource = undefined;
    if (this.chunk === undefined) {
      this.chunk = chunk;
      this.chunkEnd = length;
      this.offset = 0;
    } else {
      (this.queued ??= []).push(length === chunk.length ? chunk : chunk.subarray(0, length));
    }
  }

  /**
   * The next whole packet, or undefined when more bytes are needed. Throws MqttError (0x81 malformed,
   * 0x82 protocol error, 0x95 packet too large, 0x84 unsupported protocol version, ...). Each returned
   * packet owns its bytes: PUBLISH.frame is a fresh copy of the whole frame and payload/correlationData
   * etc. are subarrays of it. Frames up to 4 KiB share 32 KiB slabs (see bytes.ts): keep a `slice()` of
   * anything stored for long. After a throw the decoder is unusable: every later call throws the same error.
   */
  next(): Packet | undefined {
    if (this.failure !== undefined) throw this.failure;
    try {
      return this.read();
    } catch (error) {
      this.failure = error;
      this.chunk = undefined;
      this.queued = undefined;
      this.frame = undefined;
      this.headerFilled = 0;
      throw error;
    }
  }

  /** Bytes still needed to complete the packet being read (≥1; 2 when idle), once next() returned undefined. */
  get needed(): number {
    if (this.frame !== undefined) return this.frame.length - this.frameFilled;
    return this.headerFilled > 0 ? 1 : 2;
  }

  /**
   * True when the decoder holds no bytes (no chunk, no part of a packet) and has not failed: a new decoder
   * with the same settings and protocol level would go on exactly as this one.
   */
  get empty(): boolean {
    return this.chunk === undefined && this.frame === undefined && this.headerFilled === 0 &&
      this.failure === undefined;
  }

  /** Bytes of an unfinished packet held in the decoder's own storage (never more than maxPacketSize). */
  get buffered(): number {
    return this.frame !== undefined ? this.frameFilled : this.headerFilled;
  }

  private read(): Packet | undefined {
    for (;;) {
      const chunk = this.chunk;
      if (chunk === undefined) return undefined;
      if (this.frame !== undefined) {
        const packet = this.fillFrame(chunk);
        if (packet !== undefined) return packet;
      } else if (this.headerFilled > 0) {
        const packet = this.fillHeader(chunk);
        if (packet !== undefined) return packet;
      } else {
        const start = this.offset;
        const end = this.chunkEnd;
        // A PUBACK with only its packet identifier, one per QoS 1 message a client received, the fixed
        // header's checks all passed by these two bytes (a packet id of 0 goes the common way, to fail).
        if (
          chunk[start] === PUBACK_FIRST_BYTE && chunk[start + 1] === 2 && end - start >= 4 &&
          this.#reusePackets
        ) {
          const packetId = (chunk[start + 2] << 8) | chunk[start + 3];
          if (packetId !== 0 && this.maxPacketSize >= 4) {
            this.advance(4);
            return this.#plainAck("puback", packetId);
          }
        }
        const headerSize = this.parseFixedHeader(chunk, start, end);
        if (headerSize === 0) {
          this.checkPartialHeader(end - start);
          copyBytes(this.header ??= new Uint8Array(5), 0, chunk, start, end);
          this.headerFilled = end - start;
          this.nextChunk();
          continue;
        }
        const frameLength = this.checkedFrameLength(headerSize);
        if (end - start >= frameLength) {
          this.advance(frameLength);
          return this.decodeFrame(chunk, start, headerSize, frameLength, end);
        }
        this.frame = allocate(frameLength);
        copyBytes(this.frame, 0, chunk, start, end);
        this.frameFilled = end - start;
        this.frameHeaderSize = headerSize;
        this.nextChunk();
      }
    }
  }

  private fillFrame(chunk: Uint8Array): Packet | undefined {
    const frame = this.frame as Uint8Array;
    const wanted = frame.length - this.frameFilled;
    const available = this.chunkEnd - this.offset;
    const count = available < wanted ? available : wanted;
    copyBytes(frame, this.frameFilled, chunk, this.offset, this.offset + count);
    this.frameFilled += count;
    this.advance(count);
    return this.frameFilled === frame.length ? this.takeFrame() : undefined;
  }

  private fillHeader(chunk: Uint8Array): Packet | undefined {
    const header = this.header!;
    header[this.headerFilled++] = chunk[this.offset];
    this.advance(1);
    const headerSize = this.parseFixedHeader(header, 0, this.headerFilled);
    if (headerSize === 0) {
      this.checkPartialHeader(this.headerFilled);
      return undefined;
    }
    const frame = allocate(this.checkedFrameLength(headerSize));
    copyBytes(frame, 0, header, 0, headerSize);
    this.headerFilled = 0;
    this.frame = frame;
    this.frameFilled = headerSize;
    this.frameHeaderSize = headerSize;
    return this.frameFilled === frame.length ? this.takeFrame() : undefined;
  }

  private takeFrame(): Packet {
    const frame = this.frame as Uint8Array;
    this.frame = undefined;
    this.frameFilled = 0;
    return this.decodeFrame(frame, 0, this.frameHeaderSize, frame.length, OWNED);
  }

  /**
   * Parses the fixed header at `bytes[start, end)`: returns its size and sets `remainingLength`, or
   * returns 0 when the header is not complete yet.
   */
  private parseFixedHeader(bytes: Uint8Array, start: number, end: number): number {
    checkFirstByte(bytes[start], this.protocolVersion, this.#fromClients);
    let value = 0;
    let multiplier = 1;
    for (let index = 1; index <= 4; index++) {
      if (start + index >= end) return 0;
      const byte = bytes[start + index];
      value += (byte & 0x7f) * multiplier;
      if ((byte & 0x80) === 0) {
        if (byte === 0 && index > 1) {
          throw malformed("Remaining length not minimally encoded", "[MQTT-1.5.5-1]");
        }
        checkRemainingLength(bytes[start], value, this.protocolVersion);
        this.remainingLength = value;
        return index + 1;
      }
      multiplier *= 0x80;
    }
    throw malformed("Remaining length longer than 4 bytes");
  }

  /** The frame length after a fixed header of `headerSize` bytes; throws 0x95 above maxPacketSize. */
  private checkedFrameLength(headerSize: number): number {
    return this.checkPacketSize(headerSize + this.remainingLength);
  }

  /** A fixed header still incomplete after `received` bytes means a packet of at least one byte more. */
  private checkPartialHeader(received: number): void {
    this.checkPacketSize(received + 1);
  }

  private checkPacketSize(frameLength: number): number {
    if (frameLength > this.maxPacketSize) {
      throw new MqttError(
        ReasonCode.PacketTooLarge,
        `Packet of ${frameLength} bytes exceeds the maximum packet size ${this.maxPacketSize}`,
      );
    }
    return frameLength;
  }

  private advance(count: number): void {
    this.offset += count;
    if (this.offset === this.chunkEnd) this.nextChunk();
  }

  private nextChunk(): void {
    this.#runSource = undefined;
    this.chunk = this.queued?.shift();
    this.chunkEnd = this.chunk?.length ?? 0;
    this.offset = 0;
  }

  /**
   * A copy of the frame at `chunk[start, start + length)` that the packet owns: where it starts in
   * `#ownedBytes`. The frame is copied with the chunk's bytes from it on (up to {@link RUN_BYTES}): the
   * frames behind it in the same read are mostly in that copy already, and one copy per run of frames costs
   * less than one per frame (each a buffer view, and a temporary one for the copy of more than a few bytes).
   */
  #ownedAt(chunk: Uint8Array, start: number, length: number, chunkEnd: number): number {
    const at = start - this.#runStart;
    if (this.#runSource === chunk && at >= 0 && at + length <= this.#run!.length) {
      this.#ownedBytes = this.#runBuffer;
      return this.#runOffset + at;
    }
    if (length >= RUN_BYTES) {
      this.#ownedBytes = copyOf(chunk, start, start + length);
      return 0;
    }
    const copied = copyOf(chunk, start, Math.min(chunkEnd, start + RUN_BYTES));
    this.#run = copied;
    this.#runSource = chunk;
    this.#runStart = start;
    this.#runBuffer = this.#ownedBytes = wholeBufferView(copied);
    this.#runOffset = copied.byteOffset;
    return copied.byteOffset;
  }

  /** {@link #ownedAt}'s copy as a view of the frame alone, for the packets that hand out views of it. */
  #ownedFrame(chunk: Uint8Array, start: number, length: number, chunkEnd: number): Uint8Array {
    const at = this.#ownedAt(chunk, start, length, chunkEnd);
    const bytes = this.#ownedBytes!;
    return at === 0 && length === bytes.length ? bytes : new Uint8Array(bytes.buffer, at, length);
  }

  /** The reused acknowledgement packet, as a plain one of `type` (reason 0, no properties). */
  #plainAck(type: typeof ACK_TYPES[number], packetId: number): Packet {
    const ack = this.#ack ??= { type, packetId, reasonCode: 0, properties: NO_PROPERTIES };
    ack.type = type;
    ack.packetId = packetId;
    return ack;
  }

  /**
   * A CONNECT, which sets the protocol level. A method of its own: the closure in {@link decodeFrame} made
   * every frame decoded allocate a context for it.
   */
  private decodeConnect(frame: Uint8Array, headerSize: number, length: number): Packet {
    return decodeConnect(
      frame,
      headerSize,
      length,
      (level) => this.protocolVersion = level,
      this.#allowControls,
    );
  }

  /**
   * Decodes the frame at `buf[start, start + length)`. `chunkEnd`: where the bytes of the chunk `buf` end,
   * or {@link OWNED} when `buf` is the frame, ours to hand out.
   */
  private decodeFrame(
    buf: Uint8Array,
    start: number,
    headerSize: number,
    length: number,
    chunkEnd: number,
  ): Packet {
    const type = buf[start] >> 4;
    const version = this.protocolVersion;
    // Packets that hand out binary views (or the frame itself) must own their bytes.
    if (type === 3 && this.#reusePackets) {
      const into = this.#publish ??= new DecodedPublish();
      if (chunkEnd === OWNED) {
        return decodePublishAt(buf, start, length, headerSize, version, this.#allowControls, into);
      }
      const at = this.#ownedAt(buf, start, length, chunkEnd);
      return decodePublishAt(this.#ownedBytes!, at, length, headerSize, version, this.#allowControls, into);
    }
    if (type === 3 || type === 1 || type === 2 || type === 15) {
      const frame = chunkEnd === OWNED ? buf : this.#ownedFrame(buf, start, length, chunkEnd);
      switch (type) {
        case 3:
          return decodePublish(frame, headerSize, version, this.#allowControls);
        case 1:
          return this.decodeConnect(frame, headerSize, length);
        case 2:
          return decodeConnack(frame, headerSize, length, version);
        default:
          return decodeAuth(new Cursor(frame, headerSize, length));
      }
    }
    if (type >= 4 && type <= 7 && length === headerSize + 2) {
      // PUBACK, PUBREC, PUBREL or PUBCOMP with only a packet identifier: one per QoS 1/2 message, so no
      // cursor and no properties object.
      const packetId = (buf[start + headerSize] << 8) | buf[start + headerSize + 1];
      if (packetId !== 0) {
        const ackType = ACK_TYPES[type - 4];
        if (!this.#reusePackets) return { type: ackType, packetId, reasonCode: 0, properties: NO_PROPERTIES };
        return this.#plainAck(ackType, packetId);
      }
    }
    const cursor = new Cursor(buf, start + headerSize, start + length);
    switch (type) {
      case 4:
        return decodeAck("puback", cursor, version);
      case 5:
        return decodeAck("pubrec", cursor, version);
      case 6:
        return decodeAck("pubrel", cursor, version);
      case 7:
        return decodeAck("pubcomp", cursor, version);
      case 8:
        return decodeSubscribe(cursor, version, this.#allowControls);
      case 9:
        return decodeSuback(cursor, version);
      case 10:
        return decodeUnsubscribe(cursor, version, this.#allowControls);
      case 11:
        return decodeUnsuback(cursor, version);
      case 12:
        cursor.expectEnd("PINGREQ");
        return { type: "pingreq" };
      case 13:
        cursor.expectEnd("PINGRESP");
        return { type: "pingresp" };
      default:
        return decodeDisconnect(cursor, version);
    }
  }
}
