/**
 * MQTT control packets as a discriminated union on `type`, shared by MQTT 3.1 (level 3),
 * 3.1.1 (level 4) and 5.0 (level 5). Fields that exist only in 5.0 (reason codes, properties)
 * are present for every version with their neutral value (0 / empty) so that the layers above
 * need one code path; the encoder omits them below level 5.
 */

export type ProtocolVersion = 3 | 4 | 5;

/**
 * The protocol level whose layout a decoded PUBLISH frame has: 5 with a properties section between packet
 * identifier and payload, 4 without (3.1 and 3.1.1 frames are interchangeable).
 */
export type FrameLevel = 4 | 5;
export type QoS = 0 | 1 | 2;

/** Fixed-header packet type numbers (spec §2.1.2). */
export const PacketType = {
  connect: 1,
  connack: 2,
  publish: 3,
  puback: 4,
  pubrec: 5,
  pubrel: 6,
  pubcomp: 7,
  subscribe: 8,
  suback: 9,
  unsubscribe: 10,
  unsuback: 11,
  pingreq: 12,
  pingresp: 13,
  disconnect: 14,
  auth: 15,
} as const;

export type PacketTypeName = keyof typeof PacketType;

export type UserProperty = readonly [key: string, value: string];

/**
 * Every MQTT 5 property (spec §2.2.2.2). Which packet may carry which property is checked by the
 * codec; a property absent from the wire is absent here. `subscriptionIdentifiers` is a list because
 * a forwarded PUBLISH may carry several; in SUBSCRIBE it holds at most one.
 */
export interface Properties {
  payloadFormatIndicator?: number; // 0x01 byte
  messageExpiryInterval?: number; // 0x02 four-byte integer
  contentType?: string; // 0x03
  responseTopic?: string; // 0x08
  correlationData?: Uint8Array; // 0x09
  subscriptionIdentifiers?: number[]; // 0x0B variable byte integer
  sessionExpiryInterval?: number; // 0x11
  assignedClientIdentifier?: string; // 0x12
  serverKeepAlive?: number; // 0x13 two-byte integer
  authenticationMethod?: string; // 0x15
  authenticationData?: Uint8Array; // 0x16
  requestProblemInformation?: number; // 0x17 byte
  willDelayInterval?: number; // 0x18
  requestResponseInformation?: number; // 0x19 byte
  responseInformation?: string; // 0x1A
  serverReference?: string; // 0x1C
  reasonString?: string; // 0x1F
  receiveMaximum?: number; // 0x21 two-byte integer
  topicAliasMaximum?: number; // 0x22
  topicAlias?: number; // 0x23
  maximumQoS?: number; // 0x24 byte
  retainAvailable?: number; // 0x25 byte
  userProperties?: UserProperty[]; // 0x26 string pair, repeatable
  maximumPacketSize?: number; // 0x27 four-byte integer
  wildcardSubscriptionAvailable?: number; // 0x28 byte
  subscriptionIdentifierAvailable?: number; // 0x29 byte
  sharedSubscriptionAvailable?: number; // 0x2A byte
}

export interface Will {
  topic: string;
  payload: Uint8Array;
  qos: QoS;
  retain: boolean;
  /** Will properties (v5 only): will delay, expiry, content type, response topic, ... */
  properties: Properties;
}

export interface ConnectPacket {
  type: "connect";
  /** "MQTT" for 3.1.1 and 5.0, "MQIsdp" for 3.1. */
  protocolName: string;
  protocolVersion: ProtocolVersion;
  cleanStart: boolean;
  keepAlive: number;
  clientId: string;
  username?: string;
  password?: Uint8Array;
  will?: Will;
  properties: Properties;
}

export interface ConnackPacket {
  type: "connack";
  sessionPresent: boolean;
  /** v5 reason code; at 3.1/3.1.1 the return code (0..5). */
  reasonCode: number;
  properties: Properties;
}

export interface PublishPacket {
  type: "publish";
  topic: string;
  /** A view into the received frame: forwarding never copies it. */
  payload: Uint8Array;
  qos: QoS;
  retain: boolean;
  dup: boolean;
  /** Present iff qos > 0. */
  packetId?: number;
  properties: Properties;
  /**
   * The whole received frame (fixed header included) when this packet came from the decoder, so that it
   * can be forwarded with `encodePublish` without re-encoding topic, properties and payload.
   */
  frame?: Uint8Array;
}

/** PUBACK, PUBREC, PUBREL and PUBCOMP share one shape. */
export interface AckPacket<T extends "puback" | "pubrec" | "pubrel" | "pubcomp"> {
  type: T;
  packetId: number;
  reasonCode: number;
  properties: Properties;
}
export type PubackPacket = AckPacket<"puback">;
export type PubrecPacket = AckPacket<"pubrec">;
export type PubrelPacket = AckPacket<"pubrel">;
export type PubcompPacket = AckPacket<"pubcomp">;

export interface Subscription {
  topicFilter: string;
  qos: QoS;
  /** v5 subscription options; false/0 below level 5. */
  noLocal: boolean;
  retainAsPublished: boolean;
  retainHandling: 0 | 1 | 2;
}

export interface SubscribePacket {
  type: "subscribe";
  packetId: number;
  subscriptions: Subscription[];
  properties: Properties;
}

export interface SubackPacket {
  type: "suback";
  packetId: number;
  /** Granted QoS or failure code per subscription (0x80 at 3.1.1; any v5 reason code at 5.0). */
  reasonCodes: number[];
  properties: Properties;
}

export interface UnsubscribePacket {
  type: "unsubscribe";
  packetId: number;
  topicFilters: string[];
  properties: Properties;
}

export interface UnsubackPacket {
  type: "unsuback";
  packetId: number;
  /** v5 only; empty below level 5. */
  reasonCodes: number[];
  properties: Properties;
}

export interface PingreqPacket {
  type: "pingreq";
}

export interface PingrespPacket {
  type: "pingresp";
}

export interface DisconnectPacket {
  type: "disconnect";
  reasonCode: number;
  properties: Properties;
}

export interface AuthPacket {
  type: "auth";
  reasonCode: number;
  properties: Properties;
}

export type Packet =
  | ConnectPacket
  | ConnackPacket
  | PublishPacket
  | PubackPacket
  | PubrecPacket
  | PubrelPacket
  | PubcompPacket
  | SubscribePacket
  | SubackPacket
  | UnsubscribePacket
  | UnsubackPacket
  | PingreqPacket
  | PingrespPacket
  | DisconnectPacket
  | AuthPacket;
