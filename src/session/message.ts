/**
 * A message made from a decoded PUBLISH keeps its frame, not a view of its payload: see FramedMessage.
 */
import { copyWords, wholeBufferWords } from "../codec/bytes.ts";
import { publishFrameLength } from "../codec/encode_publish.ts";
import type { FrameLevel, Properties, QoS } from "../codec/types.ts";
import type { Message } from "./types.ts";

/**
 * A message whose payload is the tail of the frame it came in (see Message.frameBytes), read from it when
 * asked: a view of it kept per message was, with the decoder's view of the frame, 40 % of what the broker
 * allocated per QoS 1 message, and a message lives until its subscribers acknowledge it. The hot path
 * forwards the frame and reads the payload's size with {@link payloadSize}; a spread of this object has
 * no `payload` (it is the prototype's), so copies are made with {@link withoutFrame}.
 */
export class FramedMessage implements Message {
  constructor(
    public topic: string,
    public qos: QoS,
    public retain: boolean,
    public properties: Properties,
    public frameBytes: Uint8Array,
    public frameStart: number,
    public frameLevel: FrameLevel,
    public publisherId: string,
    public expiresAt: number | undefined,
    /** Where the payload starts, counted from the frame's start (it ends with the frame). */
    readonly payloadOffset: number,
  ) {}

  get payload(): Uint8Array {
    const bytes = this.frameBytes;
    const start = this.frameStart;
    return bytes.subarray(start + this.payloadOffset, start + publishFrameLength(bytes, start));
  }
}

/** The size of a message's payload, without a view of it for a {@link FramedMessage}. */
export function payloadSize(message: Message): number {
  if (message instanceof FramedMessage) {
    return publishFrameLength(message.frameBytes, message.frameStart) - message.payloadOffset;
  }
  return message.payload.byteLength;
}

/** Up to this many bytes a payload is copied out of its frame eight bytes at a time (see copyWords). */
const WORD_COPY_MAX = 256;

/**
 * Copies `message`'s payload, of `size` bytes ({@link payloadSize}), into `target` at `at`. A
 * {@link FramedMessage}'s short payload is copied from its frame through the slab's DataView, with no view of
 * it made; a longer one is worth its view.
 */
export function copyPayload(message: Message, size: number, target: DataView, at: number): void {
  if (message instanceof FramedMessage) {
    if (size <= WORD_COPY_MAX) {
      const frame = message.frameBytes;
      const start = frame.byteOffset + message.frameStart + message.payloadOffset;
      copyWords(target, at, wholeBufferWords(frame), start, size);
      return;
    }
  }
  new Uint8Array(target.buffer, target.byteOffset + at, size).set(message.payload);
}

/** A plain copy of `message` with `payload` and no frame. */
export function withoutFrame(message: Message, payload: Uint8Array): Message {
  const { topic, qos, retain, properties, publisherId, expiresAt, origin } = message;
  const copy: Message = { topic, payload, qos, retain, properties, publisherId, expiresAt };
  if (origin !== undefined) copy.origin = origin;
  return copy;
}
