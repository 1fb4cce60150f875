/**
 * PUBLISH decoding, the broker's hot path: plain index arithmetic over the frame, properties only at
 * level 5, and the payload as a view of the frame (or, for the decoder's reused packet, its place in it).
 */
import { Cursor } from "./cursor.ts";
import { malformed, protocolError } from "./errors.ts";
import { decodeProperties, NO_PROPERTIES, PropertyScope } from "./properties.ts";
import type { FrameLevel, Properties, ProtocolVersion, PublishPacket, QoS } from "./types.ts";
import { decodeTopicName } from "./utf8.ts";

const PublishFlag = { retain: 0x01, qos: 0x06, dup: 0x08 } as const;

/**
 * The PUBLISH a decoder with DecoderOptions.reusePackets writes every one into. It keeps where its frame
 * and payload sit in `frameBytes` (a view of the whole buffer the decoder copied the frame into, shared by
 * the frames of that buffer; see wholeBufferView) and makes a view of either only when it is read: the two
 * views were 40 % of what the broker allocated per QoS 1 message, and a message made from the packet reads
 * the offsets instead (see the session's FramedMessage).
 */
export class DecodedPublish implements PublishPacket {
  readonly type = "publish";
  topic = "";
  qos: QoS = 0;
  retain = false;
  dup = false;
  packetId: number | undefined = undefined;
  properties: Properties = NO_PROPERTIES;
  frameBytes: Uint8Array = new Uint8Array(0);
  frameStart = 0;
  frameLength = 0;
  /** Where the payload starts, counted from the frame's start. */
  payloadOffset = 0;
  /** The layout of the frame (see FrameLevel): 5 when it has a properties field. */
  frameLevel: FrameLevel = 4;

  get frame(): Uint8Array {
    return this.frameBytes.subarray(this.frameStart, this.frameStart + this.frameLength);
  }

  get payload(): Uint8Array {
    return this.frameBytes.subarray(this.frameStart + this.payloadOffset, this.frameStart + this.frameLength);
  }
}

/** The size of a PUBLISH's payload, without a view of it for the decoder's packet. */
export function publishPayloadLength(packet: PublishPacket): number {
  if (packet instanceof DecodedPublish) return packet.frameLength - packet.payloadOffset;
  return packet.payload.byteLength;
}

/**
 * Decodes the PUBLISH in `frame` (the whole packet, owned by the result), whose variable header starts
 * at `bodyStart`. The fixed-header flags were validated with the fixed header. A topic name with a
 * control character is a Malformed Packet unless `allowControls`.
 */
export function decodePublish(
  frame: Uint8Array,
  bodyStart: number,
  version: ProtocolVersion,
  allowControls = true,
): PublishPacket {
  return decodePublishAt(frame, 0, frame.length, bodyStart, version, allowControls);
}

/**
 * {@link decodePublish} for the frame at `bytes[start, start + length)`, owned by the result. With `into`,
 * the packet is written into that object instead of a new one, and no view is made.
 */
export function decodePublishAt(
  bytes: Uint8Array,
  start: number,
  length: number,
  bodyStart: number,
  version: ProtocolVersion,
  allowControls = true,
  into?: DecodedPublish,
): PublishPacket {
  const flags = bytes[start];
  const end = start + length;
  let pos = start + bodyStart;
  if (end - pos < 2) throw malformed("Packet too short for topic name length");
  const topicLength = (bytes[pos] << 8) | bytes[pos + 1];
  pos += 2;
  const topicEnd = pos + topicLength;
  if (topicEnd > end) throw malformed("Packet too short for topic name");
  const topic = decodeTopicName(bytes, pos, topicEnd, allowControls);
  pos = topicEnd;
  const qos = ((flags & PublishFlag.qos) >> 1) as QoS;
  let packetId = 0;
  if (qos > 0) {
    if (end - pos < 2) throw malformed("Packet too short for packet identifier");
    packetId = (bytes[pos] << 8) | bytes[pos + 1];
    if (packetId === 0) throw protocolError("Packet identifier 0", "[MQTT-2.2.1-3]");
    pos += 2;
  }
  const afterPacketId = pos;
  let properties: Properties;
  if (version < 5) {
    properties = NO_PROPERTIES;
  } else if (pos < end && bytes[pos] === 0) {
    properties = NO_PROPERTIES;
    pos += 1;
  } else {
    const cursor = new Cursor(bytes, pos, end);
    properties = decodeProperties(cursor, PropertyScope.publish);
    pos = cursor.pos;
  }
  if (topicLength === 0 && properties.topicAlias === undefined) {
    throw protocolError("Empty topic name without a topic alias", "[MQTT-3.3.2-1] [MQTT-4.7.3-1]");
  }
  const retain = (flags & PublishFlag.retain) !== 0;
  const dup = (flags & PublishFlag.dup) !== 0;
  if (into !== undefined) {
    into.topic = topic;
    into.qos = qos;
    into.retain = retain;
    into.dup = dup;
    into.packetId = qos === 0 ? undefined : packetId;
    into.properties = properties;
    into.frameBytes = bytes;
    into.frameStart = start;
    into.frameLength = length;
    into.payloadOffset = pos - start;
    into.frameLevel = pos > afterPacketId ? 5 : 4;
    return into;
  }
  const frame = start === 0 && length === bytes.length ? bytes : bytes.subarray(start, end);
  const payload = frame.subarray(pos - start);
  if (qos === 0) return { type: "publish", topic, payload, qos, retain, dup, properties, frame };
  return { type: "publish", topic, payload, qos, retain, dup, packetId, properties, frame };
}
