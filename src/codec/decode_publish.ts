/**
 * PUBLISH decoding, the broker's hot path: plain index arithmetic over the frame, properties only at
 * level 5, and the payload as a view of the frame.
 */
import { Cursor } from "./cursor.ts";
import { malformed, protocolError } from "./errors.ts";
import { decodeProperties, NO_PROPERTIES, PropertyScope } from "./properties.ts";
import type { Properties, ProtocolVersion, PublishPacket, QoS } from "./types.ts";
import { decodeTopicName } from "./utf8.ts";

const PublishFlag = { retain: 0x01, qos: 0x06, dup: 0x08 } as const;

/**
 * Decodes the PUBLISH in `frame` (the whole packet, owned by the result), whose variable header starts
 * at `bodyStart`. The fixed-header flags were validated with the fixed header. A topic name with a
 * control character is a Malformed Packet unless `allowControls`. With `into`, the packet is written into
 * that object (see DecoderOptions.reusePackets) instead of a new one.
 */
export function decodePublish(
  frame: Uint8Array,
  bodyStart: number,
  version: ProtocolVersion,
  allowControls = true,
  into?: PublishPacket,
): PublishPacket {
  const flags = frame[0];
  const end = frame.length;
  let pos = bodyStart;
  if (end - pos < 2) throw malformed("Packet too short for topic name length");
  const topicLength = (frame[pos] << 8) | frame[pos + 1];
  pos += 2;
  const topicEnd = pos + topicLength;
  if (topicEnd > end) throw malformed("Packet too short for topic name");
  const topic = decodeTopicName(frame, pos, topicEnd, allowControls);
  pos = topicEnd;
  const qos = ((flags & PublishFlag.qos) >> 1) as QoS;
  let packetId = 0;
  if (qos > 0) {
    if (end - pos < 2) throw malformed("Packet too short for packet identifier");
    packetId = (frame[pos] << 8) | frame[pos + 1];
    if (packetId === 0) throw protocolError("Packet identifier 0", "[MQTT-2.2.1-3]");
    pos += 2;
  }
  let properties: Properties;
  if (version < 5) {
    properties = NO_PROPERTIES;
  } else if (pos < end && frame[pos] === 0) {
    properties = NO_PROPERTIES;
    pos += 1;
  } else {
    const cursor = new Cursor(frame, pos, end);
    properties = decodeProperties(cursor, PropertyScope.publish);
    pos = cursor.pos;
  }
  if (topicLength === 0 && properties.topicAlias === undefined) {
    throw protocolError("Empty topic name without a topic alias", "[MQTT-3.3.2-1] [MQTT-4.7.3-1]");
  }
  const payload = frame.subarray(pos, end);
  const retain = (flags & PublishFlag.retain) !== 0;
  const dup = (flags & PublishFlag.dup) !== 0;
  if (into !== undefined) {
    into.topic = topic;
    into.payload = payload;
    into.qos = qos;
    into.retain = retain;
    into.dup = dup;
    into.packetId = qos === 0 ? undefined : packetId;
    into.properties = properties;
    into.frame = frame;
    return into;
  }
  if (qos === 0) return { type: "publish", topic, payload, qos, retain, dup, properties, frame };
  return { type: "publish", topic, payload, qos, retain, dup, packetId, properties, frame };
}
