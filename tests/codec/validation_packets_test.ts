/**
 * Strict validation of CONNECT, CONNACK, the acks, SUBSCRIBE, UNSUBSCRIBE, PING, DISCONNECT and AUTH:
 * each malformed or rule-breaking packet fails with the reason code the spec prescribes.
 */
import assert from "node:assert/strict";
import { Decoder, MqttError, ReasonCode } from "../../src/codec/mod.ts";
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

const { MalformedPacket, ProtocolError, UnsupportedProtocolVersion, TopicNameInvalid } = ReasonCode;

const CASES: RejectionCase[] = [
  // CONNECT
  {
    name: "[MQTT-3.1.2-1] unknown protocol name (not MQTT at all: no CONNACK form)",
    versions: ALL,
    bytes: frame(0x10, [...str("HTTP"), 4, 0x02, 0, 0, 0, 0]),
    reasonCode: ProtocolError,
  },
  {
    name: "[MQTT-3.1.2-2] protocol name MQTT with level 3",
    versions: ALL,
    bytes: frame(0x10, [...MQTT, 3, 0x02, 0, 0, 0, 0]),
    reasonCode: UnsupportedProtocolVersion,
  },
  {
    name: "[MQTT-3.1.2-2] protocol name MQIsdp with level 4",
    versions: ALL,
    bytes: frame(0x10, [...str("MQIsdp"), 4, 0x02, 0, 0, 0, 1, 0x63]),
    reasonCode: UnsupportedProtocolVersion,
  },
  {
    name: "[MQTT-3.1.2-2] protocol level 6",
    versions: ALL,
    bytes: frame(0x10, [...MQTT, 6, 0x02, 0, 0, 0, 0]),
    reasonCode: UnsupportedProtocolVersion,
  },
  {
    name: "[MQTT-3.1.2-3] CONNECT reserved flag set",
    versions: [4],
    bytes: frame(0x10, [...MQTT, 4, 0x03, 0, 0, 0, 0]),
    reasonCode: MalformedPacket,
  },
  {
    name: "[MQTT-3.1.2-11] will QoS without will flag",
    versions: [4],
    bytes: frame(0x10, [...MQTT, 4, 0x0a, 0, 0, 0, 0]),
    reasonCode: MalformedPacket,
  },
  {
    name: "[MQTT-3.1.2-12] will QoS 3",
    versions: [4],
    bytes: frame(0x10, [...MQTT, 4, 0x1e, 0, 0, 0, 0, ...str("w"), 0, 0]),
    reasonCode: MalformedPacket,
  },
  {
    name: "[MQTT-3.1.2-13] will retain without will flag",
    versions: [4],
    bytes: frame(0x10, [...MQTT, 4, 0x22, 0, 0, 0, 0]),
    reasonCode: MalformedPacket,
  },
  {
    name: "[MQTT-3.1.2-22] password without user name at 3.1.1",
    versions: [4],
    bytes: frame(0x10, [...MQTT, 4, 0x42, 0, 0, 0, 0, 0, 1, 0x70]),
    reasonCode: MalformedPacket,
  },
  {
    name: "[MQTT-3.3.2-2] wildcard in the will topic",
    versions: [4],
    bytes: frame(0x10, [...MQTT, 4, 0x06, 0, 0, 0, 0, ...str("w/#"), 0, 0]),
    reasonCode: TopicNameInvalid,
  },
  {
    name: "trailing byte after CONNECT",
    versions: [4],
    bytes: frame(0x10, [...MQTT, 4, 0x02, 0, 0, 0, 0, 0xff]),
    reasonCode: MalformedPacket,
  },
  {
    name: "CONNECT cut inside the client id",
    versions: [4],
    bytes: frame(0x10, [...MQTT, 4, 0x02, 0, 0, 0, 5, 0x61]),
    reasonCode: MalformedPacket,
  },
  // CONNACK
  {
    name: "[MQTT-3.2.2-1] CONNACK reserved flags",
    versions: V3,
    bytes: frame(0x20, [0x02, 0]),
    reasonCode: MalformedPacket,
  },
  { name: "CONNACK return code 6", versions: V3, bytes: frame(0x20, [0, 6]), reasonCode: ProtocolError },
  {
    name: "[MQTT-3.2.2-6] session present with a refusal",
    versions: [5],
    bytes: frame(0x20, [1, 0x87, 0]),
    reasonCode: ProtocolError,
  },
  // Acks
  {
    name: "[MQTT-2.2.1-3] PUBACK packet id 0 (0x82, as Mosquitto)",
    versions: ALL,
    bytes: frame(0x40, [0, 0]),
    reasonCode: ProtocolError,
  },
  {
    name: "PUBACK with a trailing byte",
    versions: V3,
    bytes: frame(0x40, [0, 1, 0]),
    reasonCode: MalformedPacket,
  },
  { name: "PUBACK cut short", versions: ALL, bytes: frame(0x40, [0]), reasonCode: MalformedPacket },
  {
    name: "PUBACK reason code 0x92 (only for PUBREL/PUBCOMP)",
    versions: [5],
    bytes: frame(0x40, [0, 1, 0x92]),
    reasonCode: ProtocolError,
  },
  {
    name: "PUBACK reason string not allowed to be followed by garbage",
    versions: [5],
    bytes: frame(0x40, [0, 1, 0x80, 0, 0xff]),
    reasonCode: MalformedPacket,
  },
  // SUBSCRIBE / UNSUBSCRIBE
  {
    name: "[MQTT-3.8.3-3] SUBSCRIBE without topic filters",
    versions: V3,
    bytes: frame(0x82, [0, 1]),
    reasonCode: ProtocolError,
  },
  {
    name: "[MQTT-3.8.3-3] SUBSCRIBE 5.0 without topic filters",
    versions: [5],
    bytes: frame(0x82, [0, 1, 0]),
    reasonCode: ProtocolError,
  },
  {
    name: "[MQTT-2.2.1-3] SUBSCRIBE packet id 0 (0x81, as Mosquitto)",
    versions: V3,
    bytes: frame(0x82, [0, 0, ...str("a"), 0]),
    reasonCode: MalformedPacket,
  },
  {
    name: "[MQTT-3.8.3-4] SUBSCRIBE 3.1.1 reserved option bits",
    versions: V3,
    bytes: frame(0x82, [0, 1, ...str("a"), 0x04]),
    reasonCode: MalformedPacket,
  },
  {
    name: "[MQTT-3.8.3-4] SUBSCRIBE 3.1.1 QoS 3",
    versions: V3,
    bytes: frame(0x82, [0, 1, ...str("a"), 0x03]),
    reasonCode: MalformedPacket,
  },
  {
    name: "[MQTT-3.8.3-5] SUBSCRIBE 5.0 reserved option bits",
    versions: [5],
    bytes: frame(0x82, [0, 1, 0, ...str("a"), 0x40]),
    reasonCode: MalformedPacket,
  },
  {
    name: "SUBSCRIBE 5.0 retain handling 3",
    versions: [5],
    bytes: frame(0x82, [0, 1, 0, ...str("a"), 0x30]),
    reasonCode: ProtocolError,
  },
  {
    name: "SUBSCRIBE 5.0 maximum QoS 3",
    versions: [5],
    bytes: frame(0x82, [0, 1, 0, ...str("a"), 0x03]),
    reasonCode: ProtocolError,
  },
  {
    name: "SUBSCRIBE topic filter without options byte",
    versions: V3,
    bytes: frame(0x82, [0, 1, ...str("a")]),
    reasonCode: MalformedPacket,
  },
  {
    name: "[MQTT-3.10.3-2] UNSUBSCRIBE without topic filters",
    versions: V3,
    bytes: frame(0xa2, [0, 1]),
    reasonCode: ProtocolError,
  },
  {
    name: "[MQTT-3.10.3-2] UNSUBSCRIBE 5.0 without topic filters",
    versions: [5],
    bytes: frame(0xa2, [0, 1, 0]),
    reasonCode: ProtocolError,
  },
  {
    name: "SUBACK 3.1.1 return code 3",
    versions: V3,
    bytes: frame(0x90, [0, 1, 3]),
    reasonCode: ProtocolError,
  },
  {
    name: "SUBACK without return codes",
    versions: V3,
    bytes: frame(0x90, [0, 1]),
    reasonCode: ProtocolError,
  },
  {
    name: "UNSUBACK 3.1.1 with a payload",
    versions: V3,
    bytes: frame(0xb0, [0, 1, 0]),
    reasonCode: MalformedPacket,
  },
  {
    name: "UNSUBACK 5.0 reason code 0x10",
    versions: [5],
    bytes: frame(0xb0, [0, 1, 0, 0x10]),
    reasonCode: ProtocolError,
  },
  // PING, DISCONNECT, AUTH
  { name: "PINGREQ with a body", versions: ALL, bytes: frame(0xc0, [0]), reasonCode: MalformedPacket },
  {
    name: "DISCONNECT 3.1.1 with a body",
    versions: V3,
    bytes: frame(0xe0, [0]),
    reasonCode: MalformedPacket,
  },
  {
    name: "DISCONNECT 5.0 reason code 0x01",
    versions: [5],
    bytes: frame(0xe0, [0x01]),
    reasonCode: ProtocolError,
  },
  {
    name: "AUTH 5.0 reason code without property length",
    versions: [5],
    bytes: frame(0xf0, [0x18]),
    reasonCode: MalformedPacket,
  },
  {
    name: "AUTH 5.0 reason code 0x04",
    versions: [5],
    bytes: frame(0xf0, [0x04, 0]),
    reasonCode: ProtocolError,
  },
];

testRejections(CASES);

Deno.test("[MQTT-3.1.2-22] a password without user name is accepted at 5.0", () => {
  const packet = decode(frame(0x10, [...MQTT, 5, 0x42, 0, 0, 0, 0, 0, 0, 1, 0x70]), 5);
  assert.deepEqual(packet?.type === "connect" && packet.password, new Uint8Array([0x70]));
});

Deno.test("a CONNECT sets the decoder's level, even when the rest of it is malformed", () => {
  const decoder = new Decoder({ maxPacketSize: 1024, protocolVersion: 4 });
  decoder.push(frame(0x10, [...MQTT, 5, 0x03, 0, 0, 0, 0, 0]));
  assert.throws(
    () => decoder.next(),
    (error: unknown) => error instanceof MqttError && error.reasonCode === 0x81,
  );
  assert.equal(decoder.protocolVersion, 5);
});

Deno.test("an error carries the spec statement it enforces", () => {
  assert.throws(
    () => decode(frame(0x30, [...str("a/+")]), 4),
    (error: unknown) => error instanceof MqttError && error.statement === "[MQTT-3.3.2-2]",
  );
});
