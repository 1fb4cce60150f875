/** Decoding of the bodies of every packet except CONNECT, CONNACK and PUBLISH. */
import { Cursor } from "./cursor.ts";
import { malformed, protocolError } from "./errors.ts";
import { decodeProperties, PropertyScope } from "./properties.ts";
import type {
  AckPacket,
  AuthPacket,
  DisconnectPacket,
  Properties,
  ProtocolVersion,
  QoS,
  SubackPacket,
  SubscribePacket,
  Subscription,
  UnsubackPacket,
  UnsubscribePacket,
} from "./types.ts";
import { checkReasonCode, ValidReasonCodes } from "./valid_reason_codes.ts";

type AckType = "puback" | "pubrec" | "pubrel" | "pubcomp";

/**
 * PUBACK, PUBREC, PUBREL, PUBCOMP. At level 5 a remaining length of 2 means reason 0 without
 * properties and 3 means a reason code without properties (spec §3.4.2.1).
 */
export function decodeAck<T extends AckType>(
  type: T,
  cursor: Cursor,
  version: ProtocolVersion,
): AckPacket<T> {
  const packetId = cursor.packetId();
  let reasonCode = 0;
  let properties: Properties = {};
  if (version === 5 && cursor.remaining > 0) {
    const codes = type === "puback" || type === "pubrec"
      ? ValidReasonCodes.pubackPubrec
      : ValidReasonCodes.pubrelPubcomp;
    reasonCode = checkReasonCode(codes, cursor.byte("reason code"), type);
    if (cursor.remaining > 0) properties = decodeProperties(cursor, PropertyScope.publishAck);
  }
  cursor.expectEnd(type);
  return { type, packetId, reasonCode, properties };
}

/**
 * The Packet Identifier of a SUBSCRIBE or UNSUBSCRIBE. 0 breaks [MQTT-2.2.1-3] (client rule, no reason
 * code named): Malformed Packet here, as Mosquitto answers it for these two packets (0x82 elsewhere).
 */
function requestPacketId(cursor: Cursor, packet: string): number {
  const id = cursor.twoBytes("packet identifier");
  if (id === 0) throw malformed(`${packet} with packet identifier 0`, "[MQTT-2.2.1-3]");
  return id;
}

function readSubscription(cursor: Cursor, version: ProtocolVersion, allowControls: boolean): Subscription {
  const topicFilter = cursor.string("topic filter", allowControls);
  const options = cursor.byte("subscription options");
  if (version < 5) {
    if (options & 0xfc) throw malformed("SUBSCRIBE reserved option bits are set", "[MQTT-3.8.3-4]");
    if (options === 3) throw malformed("Requested QoS 3", "[MQTT-3.8.3-4]");
    return { topicFilter, qos: options as QoS, noLocal: false, retainAsPublished: false, retainHandling: 0 };
  }
  if (options & 0xc0) throw malformed("SUBSCRIBE reserved option bits are set", "[MQTT-3.8.3-5]");
  const qos = options & 0x03;
  if (qos === 3) throw protocolError("Maximum QoS 3 in subscription options");
  const retainHandling = (options >> 4) & 0x03;
  if (retainHandling === 3) throw protocolError("Retain handling 3 in subscription options");
  return {
    topicFilter,
    qos: qos as QoS,
    noLocal: (options & 0x04) !== 0,
    retainAsPublished: (options & 0x08) !== 0,
    retainHandling: retainHandling as 0 | 1 | 2,
  };
}

/** SUBSCRIBE: at least one topic filter [MQTT-3.8.3-3]; control characters refused unless allowed. */
export function decodeSubscribe(
  cursor: Cursor,
  version: ProtocolVersion,
  allowControls = true,
): SubscribePacket {
  const packetId = requestPacketId(cursor, "SUBSCRIBE");
  const properties = version === 5 ? decodeProperties(cursor, PropertyScope.subscribe) : {};
  if (cursor.remaining === 0) throw protocolError("SUBSCRIBE without topic filters", "[MQTT-3.8.3-3]");
  const subscriptions: Subscription[] = [];
  while (cursor.remaining > 0) subscriptions.push(readSubscription(cursor, version, allowControls));
  return { type: "subscribe", packetId, subscriptions, properties };
}

function readReasonCodes(cursor: Cursor, codes: Uint8Array, packet: string): number[] {
  if (cursor.remaining === 0) throw protocolError(`${packet} without reason codes`);
  const reasonCodes: number[] = [];
  while (cursor.remaining > 0) reasonCodes.push(checkReasonCode(codes, cursor.byte(), packet));
  return reasonCodes;
}

/** SUBACK: one return/reason code per requested subscription. */
export function decodeSuback(cursor: Cursor, version: ProtocolVersion): SubackPacket {
  const packetId = cursor.packetId();
  const properties = version === 5 ? decodeProperties(cursor, PropertyScope.suback) : {};
  const codes = version === 5 ? ValidReasonCodes.suback : ValidReasonCodes.subackV3;
  const reasonCodes = readReasonCodes(cursor, codes, "SUBACK");
  return { type: "suback", packetId, reasonCodes, properties };
}

/** UNSUBSCRIBE: at least one topic filter [MQTT-3.10.3-2]; control characters refused unless allowed. */
export function decodeUnsubscribe(
  cursor: Cursor,
  version: ProtocolVersion,
  allowControls = true,
): UnsubscribePacket {
  const packetId = requestPacketId(cursor, "UNSUBSCRIBE");
  const properties = version === 5 ? decodeProperties(cursor, PropertyScope.unsubscribe) : {};
  if (cursor.remaining === 0) throw protocolError("UNSUBSCRIBE without topic filters", "[MQTT-3.10.3-2]");
  const topicFilters: string[] = [];
  while (cursor.remaining > 0) topicFilters.push(cursor.string("topic filter", allowControls));
  return { type: "unsubscribe", packetId, topicFilters, properties };
}

/** UNSUBACK: only a packet identifier below level 5; reason codes at 5. */
export function decodeUnsuback(cursor: Cursor, version: ProtocolVersion): UnsubackPacket {
  const packetId = cursor.packetId();
  if (version < 5) {
    cursor.expectEnd("UNSUBACK");
    return { type: "unsuback", packetId, reasonCodes: [], properties: {} };
  }
  const properties = decodeProperties(cursor, PropertyScope.unsuback);
  const reasonCodes = readReasonCodes(cursor, ValidReasonCodes.unsuback, "UNSUBACK");
  return { type: "unsuback", packetId, reasonCodes, properties };
}

/** DISCONNECT: empty below level 5; at 5, remaining length 0 means reason 0 and 1 means no properties. */
export function decodeDisconnect(cursor: Cursor, version: ProtocolVersion): DisconnectPacket {
  let reasonCode = 0;
  let properties: Properties = {};
  if (version === 5 && cursor.remaining > 0) {
    reasonCode = checkReasonCode(ValidReasonCodes.disconnect, cursor.byte(), "DISCONNECT");
    if (cursor.remaining > 0) properties = decodeProperties(cursor, PropertyScope.disconnect);
  }
  cursor.expectEnd("DISCONNECT");
  return { type: "disconnect", reasonCode, properties };
}

/**
 * AUTH (level 5 only): remaining length 0 means reason 0 without properties; otherwise both the reason
 * code and the property length are present (spec §3.15.2).
 */
export function decodeAuth(cursor: Cursor): AuthPacket {
  if (cursor.remaining === 0) return { type: "auth", reasonCode: 0, properties: {} };
  const reasonCode = checkReasonCode(ValidReasonCodes.auth, cursor.byte(), "AUTH");
  const properties = decodeProperties(cursor, PropertyScope.auth);
  cursor.expectEnd("AUTH");
  return { type: "auth", reasonCode, properties };
}
