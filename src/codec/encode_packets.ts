/**
 * The encoder: every packet is measured first, then written into one buffer of exactly that size.
 * Below level 5, properties and ack reason codes are left out; at level 5 the acks, DISCONNECT and AUTH
 * use their short forms when the reason is 0 and there are no properties (as Mosquitto does).
 */
import { allocate } from "./bytes.ts";
import { encodePublishFields } from "./encode_publish.ts";
import { malformed, MqttError, protocolError } from "./errors.ts";
import { emitProperties, hasProperties, PropertyScope } from "./properties.ts";
import { ReasonCode } from "./reason_codes.ts";
import { Sink } from "./sink.ts";
import {
  type AckPacket,
  type ConnectPacket,
  type Packet,
  PacketType,
  type ProtocolVersion,
  type QoS,
} from "./types.ts";
import { encodeVarInt, MAX_VAR_INT, varIntLength } from "./var_int.ts";

function checkQoS(qos: number, what: string): QoS {
  if (qos !== 0 && qos !== 1 && qos !== 2) throw malformed(`${what} must be 0, 1 or 2, got ${qos}`);
  return qos;
}

function emitPacketId(sink: Sink, packetId: number | undefined): void {
  if (packetId === undefined || packetId === 0) {
    throw protocolError("A packet identifier in 1..65535 is required", "[MQTT-2.2.1-3]");
  }
  sink.twoBytes(packetId, "packet identifier");
}

function firstByte(packet: Packet): number {
  const type = PacketType[packet.type] << 4;
  switch (packet.type) {
    case "publish": {
      const qos = checkQoS(packet.qos, "PUBLISH QoS");
      return type | (packet.dup && qos > 0 ? 0x08 : 0) | (qos << 1) | (packet.retain ? 0x01 : 0);
    }
    case "pubrel":
    case "subscribe":
    case "unsubscribe":
      return type | 0x02;
    default:
      return type;
  }
}

function emitConnect(sink: Sink, packet: ConnectPacket): void {
  const level = packet.protocolVersion;
  const { will, username, password } = packet;
  if (level < 5 && password !== undefined && username === undefined) {
    throw malformed("A password needs a user name before MQTT 5", "[MQTT-3.1.2-22]");
  }
  let flags = packet.cleanStart ? 0x02 : 0;
  if (will !== undefined) flags |= 0x04 | (checkQoS(will.qos, "Will QoS") << 3) | (will.retain ? 0x20 : 0);
  if (password !== undefined) flags |= 0x40;
  if (username !== undefined) flags |= 0x80;
  sink.string(packet.protocolName, "protocol name");
  sink.byte(level, "protocol level");
  sink.byte(flags);
  sink.twoBytes(packet.keepAlive, "keep alive");
  if (level === 5) emitProperties(sink, packet.properties, PropertyScope.connect);
  sink.string(packet.clientId, "client identifier");
  if (will !== undefined) {
    if (level === 5) emitProperties(sink, will.properties, PropertyScope.will);
    sink.string(will.topic, "will topic");
    sink.binary(will.payload, "will payload");
  }
  if (username !== undefined) sink.string(username, "user name");
  if (password !== undefined) sink.binary(password, "password");
}

function emitAck(
  sink: Sink,
  packet: AckPacket<"puback" | "pubrec" | "pubrel" | "pubcomp">,
  version: ProtocolVersion,
): void {
  emitPacketId(sink, packet.packetId);
  if (version < 5) return;
  const withProperties = hasProperties(packet.properties);
  if (packet.reasonCode === 0 && !withProperties) return;
  sink.byte(packet.reasonCode, "reason code");
  if (withProperties) emitProperties(sink, packet.properties, PropertyScope.publishAck);
}

/** Reason codes as bytes; below level 5 every failure is the single SUBACK failure code 0x80. */
function emitReasonCodes(sink: Sink, reasonCodes: readonly number[], version: ProtocolVersion): void {
  if (reasonCodes.length === 0) throw protocolError("At least one reason code is required");
  for (const code of reasonCodes) sink.byte(version < 5 && code >= 0x80 ? 0x80 : code, "reason code");
}

function emitBody(sink: Sink, packet: Packet, version: ProtocolVersion): void {
  const v5 = version === 5;
  switch (packet.type) {
    case "connect":
      return emitConnect(sink, packet);
    case "connack":
      sink.byte(packet.sessionPresent ? 1 : 0);
      sink.byte(packet.reasonCode, "reason code");
      if (v5) emitProperties(sink, packet.properties, PropertyScope.connack);
      return;
    case "publish":
      sink.string(packet.topic, "topic name");
      if (packet.qos > 0) emitPacketId(sink, packet.packetId);
      if (v5) emitProperties(sink, packet.properties, PropertyScope.publish);
      sink.raw(packet.payload);
      return;
    case "puback":
    case "pubrec":
    case "pubrel":
    case "pubcomp":
      return emitAck(sink, packet, version);
    case "subscribe":
      emitPacketId(sink, packet.packetId);
      if (v5) emitProperties(sink, packet.properties, PropertyScope.subscribe);
      if (packet.subscriptions.length === 0) {
        throw protocolError("SUBSCRIBE needs a topic filter", "[MQTT-3.8.3-3]");
      }
      for (const subscription of packet.subscriptions) {
        sink.string(subscription.topicFilter, "topic filter");
        let options = checkQoS(subscription.qos, "Subscription QoS");
        if (v5) {
          if (subscription.retainHandling > 2) throw protocolError("Retain handling must be 0, 1 or 2");
          options |= (subscription.noLocal ? 0x04 : 0) | (subscription.retainAsPublished ? 0x08 : 0) |
            (subscription.retainHandling << 4);
        }
        sink.byte(options);
      }
      return;
    case "suback":
      emitPacketId(sink, packet.packetId);
      if (v5) emitProperties(sink, packet.properties, PropertyScope.suback);
      return emitReasonCodes(sink, packet.reasonCodes, version);
    case "unsubscribe":
      emitPacketId(sink, packet.packetId);
      if (v5) emitProperties(sink, packet.properties, PropertyScope.unsubscribe);
      if (packet.topicFilters.length === 0) {
        throw protocolError("UNSUBSCRIBE needs a topic filter", "[MQTT-3.10.3-2]");
      }
      for (const topicFilter of packet.topicFilters) sink.string(topicFilter, "topic filter");
      return;
    case "unsuback":
      emitPacketId(sink, packet.packetId);
      if (!v5) return;
      emitProperties(sink, packet.properties, PropertyScope.unsuback);
      return emitReasonCodes(sink, packet.reasonCodes, version);
    case "pingreq":
    case "pingresp":
      return;
    case "disconnect": {
      if (!v5) return;
      const withProperties = hasProperties(packet.properties);
      if (packet.reasonCode === 0 && !withProperties) return;
      sink.byte(packet.reasonCode, "reason code");
      if (withProperties) emitProperties(sink, packet.properties, PropertyScope.disconnect);
      return;
    }
    case "auth":
      if (!v5) throw protocolError("AUTH exists only in MQTT 5");
      // Unlike DISCONNECT, AUTH has no form with a reason code but no property length.
      if (packet.reasonCode === 0 && !hasProperties(packet.properties)) return;
      sink.byte(packet.reasonCode, "reason code");
      return emitProperties(sink, packet.properties, PropertyScope.auth);
  }
}

function remainingLength(packet: Packet, version: ProtocolVersion): number {
  const measure = new Sink(undefined);
  emitBody(measure, packet, version);
  if (measure.pos > MAX_VAR_INT) {
    throw new MqttError(ReasonCode.PacketTooLarge, `Remaining length ${measure.pos} exceeds ${MAX_VAR_INT}`);
  }
  return measure.pos;
}

/**
 * Bytes `encode(packet, version)` produces. A CONNECT is always sized at its own `protocolVersion`.
 */
export function encodedLength(packet: Packet, version: ProtocolVersion): number {
  const length = remainingLength(packet, version);
  return 1 + varIntLength(length) + length;
}

/**
 * Encodes `packet` at protocol level `version` into one exactly-sized buffer. A CONNECT is encoded at
 * its own `protocolVersion`. A PUBLISH is encoded from its fields (its `frame` is ignored; see
 * `encodePublish` for forwarding). Throws MqttError for packets that would be malformed (0x81), break a
 * protocol rule (0x82, e.g. a missing packet identifier), or exceed the largest remaining length (0x95).
 */
export function encode(packet: Packet, version: ProtocolVersion): Uint8Array {
  if (packet.type === "publish") {
    const { topic, payload, qos, dup, retain, packetId, properties } = packet;
    return encodePublishFields(topic, payload, qos, dup, retain, packetId, properties, version);
  }
  const length = remainingLength(packet, version);
  const buf = allocate(1 + varIntLength(length) + length);
  buf[0] = firstByte(packet);
  const sink = new Sink(buf, encodeVarInt(buf, 1, length));
  emitBody(sink, packet, version);
  return buf;
}
