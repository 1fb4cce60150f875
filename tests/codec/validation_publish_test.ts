/**
 * Strict validation of fixed headers, PUBLISH, UTF-8 strings and properties: each malformed or
 * rule-breaking packet fails with the reason code the spec prescribes.
 */
import assert from "node:assert/strict";
import { ReasonCode } from "../../src/codec/mod.ts";
import {
  ALL,
  decode,
  frame,
  MQTT,
  type RejectionCase,
  str,
  testRejections,
  V3,
} from "./support/rejections.ts";

const { MalformedPacket, ProtocolError, TopicNameInvalid, TopicAliasInvalid } = ReasonCode;

const CASES: RejectionCase[] = [
  // Fixed header
  {
    name: "[MQTT-2.2.2-2] PUBREL flags 0",
    versions: ALL,
    bytes: frame(0x60, [0, 1]),
    reasonCode: MalformedPacket,
  },
  {
    name: "[MQTT-2.2.2-2] SUBSCRIBE flags 0",
    versions: V3,
    bytes: frame(0x80, [0, 1, ...str("a"), 0]),
    reasonCode: MalformedPacket,
  },
  {
    name: "[MQTT-2.2.2-2] UNSUBSCRIBE flags 0",
    versions: V3,
    bytes: frame(0xa0, [0, 1, ...str("a")]),
    reasonCode: MalformedPacket,
  },
  {
    name: "[MQTT-2.2.2-2] PUBACK flags 0b0010",
    versions: ALL,
    bytes: frame(0x42, [0, 1]),
    reasonCode: MalformedPacket,
  },
  {
    name: "[MQTT-2.2.2-2] PINGREQ flags 1",
    versions: ALL,
    bytes: frame(0xc1, []),
    reasonCode: MalformedPacket,
  },
  {
    name: "reserved packet type 0 (0x82, as Mosquitto)",
    versions: ALL,
    bytes: frame(0x00, []),
    reasonCode: ProtocolError,
  },
  { name: "AUTH before 5.0", versions: V3, bytes: frame(0xf0, []), reasonCode: MalformedPacket },
  {
    name: "remaining length longer than 4 bytes",
    versions: ALL,
    bytes: new Uint8Array([0x30, 0xff, 0xff, 0xff, 0xff, 0x7f]),
    reasonCode: MalformedPacket,
  },
  {
    name: "[MQTT-1.5.5-1] remaining length not minimally encoded",
    versions: ALL,
    bytes: new Uint8Array([0xc0, 0x80, 0x00]),
    reasonCode: MalformedPacket,
  },
  // PUBLISH
  {
    name: "[MQTT-3.3.1-4] PUBLISH QoS 3",
    versions: ALL,
    bytes: frame(0x36, [...str("a"), 0, 1]),
    reasonCode: MalformedPacket,
  },
  {
    name: "[MQTT-3.3.1-2] PUBLISH QoS 0 with DUP (0x81, as Mosquitto)",
    versions: ALL,
    bytes: frame(0x38, [...str("a")]),
    reasonCode: MalformedPacket,
  },
  {
    name: "[MQTT-3.3.2-2] PUBLISH topic with +",
    versions: V3,
    bytes: frame(0x30, [...str("a/+")]),
    reasonCode: TopicNameInvalid,
  },
  {
    name: "[MQTT-3.3.2-2] PUBLISH topic with #",
    versions: [5],
    bytes: frame(0x30, [...str("a/#"), 0]),
    reasonCode: TopicNameInvalid,
  },
  {
    name: "[MQTT-2.2.1-3] PUBLISH QoS 1 with packet id 0",
    versions: V3,
    bytes: frame(0x32, [...str("a"), 0, 0]),
    reasonCode: ProtocolError,
  },
  {
    name: "[MQTT-4.7.3-1] PUBLISH empty topic",
    versions: V3,
    bytes: frame(0x30, [0, 0, 0x68]),
    reasonCode: ProtocolError,
  },
  {
    name: "[MQTT-3.3.2-1] PUBLISH empty topic without topic alias",
    versions: [5],
    bytes: frame(0x30, [0, 0, 0]),
    reasonCode: ProtocolError,
  },
  {
    name: "[MQTT-3.3.2-8] topic alias 0",
    versions: [5],
    bytes: frame(0x30, [...str("a"), 3, 0x23, 0, 0]),
    reasonCode: TopicAliasInvalid,
  },
  {
    name: "topic length beyond the packet",
    versions: V3,
    bytes: frame(0x30, [0, 10, 0x61]),
    reasonCode: MalformedPacket,
  },
  {
    name: "PUBLISH 5.0 without property length",
    versions: [5],
    bytes: frame(0x30, [...str("a")]),
    reasonCode: MalformedPacket,
  },
  // UTF-8 [MQTT-1.5.4-1] [MQTT-1.5.4-2]
  {
    name: "[MQTT-1.5.4-1] ill-formed UTF-8 in a topic",
    versions: V3,
    bytes: frame(0x30, [0, 2, 0xc3, 0x28]),
    reasonCode: MalformedPacket,
  },
  {
    name: "[MQTT-1.5.4-1] overlong encoding of / in a topic",
    versions: V3,
    bytes: frame(0x30, [0, 2, 0xc0, 0xaf]),
    reasonCode: MalformedPacket,
  },
  {
    name: "[MQTT-1.5.4-1] UTF-8 encoded surrogate U+D800 in a topic",
    versions: V3,
    bytes: frame(0x30, [0, 3, 0xed, 0xa0, 0x80]),
    reasonCode: MalformedPacket,
  },
  {
    name: "[MQTT-1.5.4-2] U+0000 in a topic",
    versions: V3,
    bytes: frame(0x30, [0, 2, 0x61, 0x00]),
    reasonCode: MalformedPacket,
  },
  {
    name: "[MQTT-1.5.4-2] U+0000 in a client id",
    versions: [4],
    bytes: frame(0x10, [...MQTT, 4, 0x02, 0, 0, 0, 1, 0x00]),
    reasonCode: MalformedPacket,
  },
  {
    name: "[MQTT-1.5.4-1] ill-formed UTF-8 in a user property",
    versions: [5],
    bytes: frame(0x40, [0, 1, 0, 6, 0x26, 0, 0, 0, 1, 0xff]),
    reasonCode: MalformedPacket,
  },
  {
    name: "[MQTT-1.5.4-1] ill-formed UTF-8 in a topic filter",
    versions: V3,
    bytes: frame(0x82, [0, 1, 0, 1, 0x80, 0]),
    reasonCode: MalformedPacket,
  },
  // Properties
  {
    name: "duplicate message expiry interval",
    versions: [5],
    bytes: frame(0x30, [...str("a"), 10, 0x02, 0, 0, 0, 1, 0x02, 0, 0, 0, 2]),
    reasonCode: ProtocolError,
  },
  {
    name: "duplicate subscription identifier in SUBSCRIBE",
    versions: [5],
    bytes: frame(0x82, [0, 1, 4, 0x0b, 1, 0x0b, 2, ...str("a"), 0]),
    reasonCode: ProtocolError,
  },
  {
    name: "session expiry interval in PUBLISH (not allowed there)",
    versions: [5],
    bytes: frame(0x30, [...str("a"), 5, 0x11, 0, 0, 0, 1]),
    reasonCode: MalformedPacket,
  },
  {
    name: "will delay interval in CONNECT properties (a will property)",
    versions: [5],
    bytes: frame(0x10, [...MQTT, 5, 0x02, 0, 0, 5, 0x18, 0, 0, 0, 1, 0, 0]),
    reasonCode: MalformedPacket,
  },
  {
    name: "unknown property identifier",
    versions: [5],
    bytes: frame(0x30, [...str("a"), 2, 0x7f, 0]),
    reasonCode: MalformedPacket,
  },
  {
    name: "property length beyond the packet",
    versions: [5],
    bytes: frame(0x30, [...str("a"), 20, 0x01, 1]),
    reasonCode: MalformedPacket,
  },
  {
    name: "property value cut by the property length",
    versions: [5],
    bytes: frame(0x30, [...str("a"), 3, 0x02, 0, 0, 0, 1]),
    reasonCode: MalformedPacket,
  },
  {
    name: "receive maximum 0",
    versions: [5],
    bytes: frame(0x10, [...MQTT, 5, 0x02, 0, 0, 3, 0x21, 0, 0, 0, 0]),
    reasonCode: ProtocolError,
  },
  {
    name: "maximum QoS 2",
    versions: [5],
    bytes: frame(0x20, [0, 0, 2, 0x24, 2]),
    reasonCode: ProtocolError,
  },
  {
    name: "payload format indicator 2",
    versions: [5],
    bytes: frame(0x30, [...str("a"), 2, 0x01, 2]),
    reasonCode: ProtocolError,
  },
  {
    name: "subscription identifier 0",
    versions: [5],
    bytes: frame(0x82, [0, 1, 2, 0x0b, 0, ...str("a"), 0]),
    reasonCode: ProtocolError,
  },
  {
    name: "authentication data without authentication method",
    versions: [5],
    bytes: frame(0xf0, [0x18, 4, 0x16, 0, 1, 0xaa]),
    reasonCode: ProtocolError,
  },
];

testRejections(CASES);

Deno.test("[MQTT-1.5.4-3] a leading BOM stays in the topic name", () => {
  const packet = decode(frame(0x30, [0, 4, 0xef, 0xbb, 0xbf, 0x61]), 4);
  assert.equal(packet?.type === "publish" && packet.topic, "\ufeffa");
});

Deno.test("subscription identifiers may repeat in PUBLISH", () => {
  const packet = decode(frame(0x30, [...str("a"), 4, 0x0b, 1, 0x0b, 2]), 5);
  assert.deepEqual(packet?.type === "publish" && packet.properties.subscriptionIdentifiers, [1, 2]);
});
