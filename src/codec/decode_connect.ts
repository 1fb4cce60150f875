/** Decoding of CONNECT and CONNACK bodies. */
import { Cursor } from "./cursor.ts";
import { malformed, MqttError, protocolError, UnsupportedProtocolError } from "./errors.ts";
import { decodeProperties, PropertyScope } from "./properties.ts";
import { ReasonCode } from "./reason_codes.ts";
import type { ConnackPacket, ConnectPacket, ProtocolVersion, QoS, Will } from "./types.ts";
import { decodeTopicName } from "./utf8.ts";
import { checkReasonCode, ValidReasonCodes } from "./valid_reason_codes.ts";

const ConnectFlag = {
  reserved: 0x01,
  cleanStart: 0x02,
  will: 0x04,
  willQoS: 0x18,
  willRetain: 0x20,
  password: 0x40,
  username: 0x80,
} as const;

/**
 * The protocol level announced by a CONNECT. A name that is neither "MQTT" nor 3.1's "MQIsdp" is not
 * MQTT at all: closed without a CONNACK [MQTT-3.1.2-1], as Mosquitto does. A known name with a level we
 * do not speak is refused with a CONNACK [MQTT-3.1.2-2]: in the v5 form for "MQTT" level 5 clients, in
 * the 3.1 form for every "MQIsdp" client whatever level it names (what Mosquitto sends it).
 */
function protocolLevel(name: string, level: number): ProtocolVersion {
  if (name === "MQTT" && (level === 4 || level === 5)) return level;
  if (name === "MQIsdp" && level === 3) return 3;
  if (name !== "MQTT" && name !== "MQIsdp") {
    throw protocolError(`Protocol name ${JSON.stringify(name)} is not MQTT`, "[MQTT-3.1.2-1]");
  }
  throw new UnsupportedProtocolError(
    `Unsupported protocol ${JSON.stringify(name)} level ${level}`,
    name === "MQTT" ? level : 3,
  );
}

function readWillTopic(cursor: Cursor, allowControls: boolean): string {
  const length = cursor.twoBytes("will topic length");
  if (length > cursor.remaining) throw malformed("Packet too short for will topic");
  if (length === 0) throw new MqttError(ReasonCode.TopicNameInvalid, "Empty will topic", "[MQTT-4.7.3-1]");
  const start = cursor.pos;
  cursor.pos += length;
  return decodeTopicName(cursor.buf, start, start + length, allowControls);
}

function readWill(cursor: Cursor, flags: number, level: ProtocolVersion, allowControls: boolean): Will {
  const properties = level === 5 ? decodeProperties(cursor, PropertyScope.will) : {};
  const topic = readWillTopic(cursor, allowControls);
  const payload = cursor.binary("will payload");
  const qos = ((flags & ConnectFlag.willQoS) >> 3) as QoS;
  return { topic, payload, qos, retain: (flags & ConnectFlag.willRetain) !== 0, properties };
}

function checkConnectFlags(flags: number, level: ProtocolVersion): void {
  if (flags & ConnectFlag.reserved) throw malformed("CONNECT reserved flag is set", "[MQTT-3.1.2-3]");
  const willQoS = (flags & ConnectFlag.willQoS) >> 3;
  if ((flags & ConnectFlag.will) === 0) {
    if (willQoS !== 0) throw malformed("Will QoS set without will flag", "[MQTT-3.1.2-11]");
    if (flags & ConnectFlag.willRetain) {
      throw malformed("Will retain set without will flag", "[MQTT-3.1.2-13]");
    }
  } else if (willQoS === 3) {
    throw malformed("Will QoS 3", "[MQTT-3.1.2-12]");
  }
  if (level < 5 && (flags & ConnectFlag.password) && (flags & ConnectFlag.username) === 0) {
    throw malformed("Password flag without user name flag", "[MQTT-3.1.2-22]");
  }
}

/**
 * Decodes a CONNECT body in `buf[start, end)`, which the packet will own. `onLevel` learns the protocol
 * level as soon as it is known, so that a later error can still be answered at the client's level.
 * Unless `allowControls`, a control character in the client identifier, will topic or user name makes
 * the CONNECT a Malformed Packet.
 */
export function decodeConnect(
  buf: Uint8Array,
  start: number,
  end: number,
  onLevel: (level: ProtocolVersion) => void,
  allowControls = true,
): ConnectPacket {
  const cursor = new Cursor(buf, start, end);
  const protocolName = cursor.string("protocol name");
  const protocolVersion = protocolLevel(protocolName, cursor.byte("protocol level"));
  onLevel(protocolVersion);
  const flags = cursor.byte("connect flags");
  checkConnectFlags(flags, protocolVersion);
  const keepAlive = cursor.twoBytes("keep alive");
  const properties = protocolVersion === 5 ? decodeProperties(cursor, PropertyScope.connect) : {};
  const clientId = cursor.string("client identifier", allowControls);
  const packet: ConnectPacket = {
    type: "connect",
    protocolName,
    protocolVersion,
    cleanStart: (flags & ConnectFlag.cleanStart) !== 0,
    keepAlive,
    clientId,
    properties,
  };
  if (flags & ConnectFlag.will) packet.will = readWill(cursor, flags, protocolVersion, allowControls);
  if (flags & ConnectFlag.username) packet.username = cursor.string("user name", allowControls);
  if (flags & ConnectFlag.password) packet.password = cursor.binary("password");
  cursor.expectEnd("CONNECT");
  return packet;
}

/** Decodes a CONNACK body in `buf[start, end)`, which the packet will own. */
export function decodeConnack(
  buf: Uint8Array,
  start: number,
  end: number,
  version: ProtocolVersion,
): ConnackPacket {
  const cursor = new Cursor(buf, start, end);
  const acknowledgeFlags = cursor.byte("acknowledge flags");
  if (acknowledgeFlags > 1) throw malformed("CONNACK reserved flags are set", "[MQTT-3.2.2-1]");
  const sessionPresent = acknowledgeFlags === 1;
  const code = cursor.byte("reason code");
  let properties = {};
  if (version === 5) {
    checkReasonCode(ValidReasonCodes.connack, code, "CONNACK");
    properties = decodeProperties(cursor, PropertyScope.connack);
  } else {
    checkReasonCode(ValidReasonCodes.connackV3, code, "CONNACK");
  }
  cursor.expectEnd("CONNACK");
  if (sessionPresent && code !== 0) {
    throw protocolError("Session present with a refusing CONNACK", "[MQTT-3.2.2-6]");
  }
  return { type: "connack", sessionPresent, reasonCode: code, properties };
}
