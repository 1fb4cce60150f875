/**
 * Encoder behaviour beyond the vectors: what is dropped below level 5, and the MqttErrors for packets
 * that would be malformed or break a protocol rule.
 */
import assert from "node:assert/strict";
import {
  encode,
  encodedLength,
  MqttError,
  type Packet,
  type ProtocolVersion,
  ReasonCode,
} from "../../src/codec/mod.ts";

function assertEncodeFails(packet: Packet, version: ProtocolVersion, reasonCode: number): void {
  const check = (error: unknown) => error instanceof MqttError && error.reasonCode === reasonCode;
  assert.throws(() => encode(packet, version), check);
  assert.throws(() => encodedLength(packet, version), check);
}

Deno.test("below 5.0 acks carry no reason code or properties", () => {
  const bytes = encode(
    { type: "puback", packetId: 1, reasonCode: 0x80, properties: { reasonString: "no" } },
    4,
  );
  assert.deepEqual(Array.from(bytes), [0x40, 0x02, 0x00, 0x01]);
});

Deno.test("below 5.0 every SUBACK failure becomes 0x80", () => {
  const bytes = encode({ type: "suback", packetId: 1, reasonCodes: [0x02, 0x87, 0xa2], properties: {} }, 4);
  assert.deepEqual(Array.from(bytes), [0x90, 0x05, 0x00, 0x01, 0x02, 0x80, 0x80]);
});

Deno.test("below 5.0 DISCONNECT has no body", () => {
  assert.deepEqual(Array.from(encode({ type: "disconnect", reasonCode: 0x8b, properties: {} }, 4)), [
    0xe0,
    0x00,
  ]);
});

Deno.test("[MQTT-3.3.1-2] DUP is never set on a QoS 0 PUBLISH", () => {
  const bytes = encode({
    type: "publish",
    topic: "t",
    payload: new Uint8Array(0),
    qos: 0,
    retain: false,
    dup: true,
    properties: {},
  }, 4);
  assert.equal(bytes[0], 0x30);
});

Deno.test("empty property arrays put nothing on the wire and keep the short form", () => {
  const bytes = encode({ type: "pubrec", packetId: 2, reasonCode: 0, properties: { userProperties: [] } }, 5);
  assert.deepEqual(Array.from(bytes), [0x50, 0x02, 0x00, 0x02]);
});

Deno.test("[MQTT-2.2.1-3] PUBLISH at QoS 1 without a packet id is refused", () => {
  const packet: Packet = {
    type: "publish",
    topic: "t",
    payload: new Uint8Array(0),
    qos: 1,
    retain: false,
    dup: false,
    properties: {},
  };
  assert.throws(
    () => encode(packet, 4),
    (error: unknown) => error instanceof MqttError && error.reasonCode === 0x82,
  );
});

Deno.test("[MQTT-2.2.1-3] packet id 0 is refused", () => {
  assertEncodeFails(
    { type: "puback", packetId: 0, reasonCode: 0, properties: {} },
    4,
    ReasonCode.ProtocolError,
  );
});

Deno.test("AUTH below 5.0 is refused", () => {
  assertEncodeFails({ type: "auth", reasonCode: 0, properties: {} }, 4, ReasonCode.ProtocolError);
});

Deno.test("a property outside its packet is refused", () => {
  assertEncodeFails(
    { type: "disconnect", reasonCode: 0, properties: { topicAlias: 3 } },
    5,
    ReasonCode.MalformedPacket,
  );
});

Deno.test("more than one subscription identifier in SUBSCRIBE is refused", () => {
  assertEncodeFails(
    {
      type: "subscribe",
      packetId: 1,
      subscriptions: [{
        topicFilter: "a",
        qos: 0,
        noLocal: false,
        retainAsPublished: false,
        retainHandling: 0,
      }],
      properties: { subscriptionIdentifiers: [1, 2] },
    },
    5,
    ReasonCode.ProtocolError,
  );
});

Deno.test("[MQTT-3.8.3-3] SUBSCRIBE without subscriptions is refused", () => {
  assertEncodeFails(
    { type: "subscribe", packetId: 1, subscriptions: [], properties: {} },
    4,
    ReasonCode.ProtocolError,
  );
});

Deno.test("[MQTT-3.10.3-2] UNSUBSCRIBE without topic filters is refused", () => {
  assertEncodeFails(
    { type: "unsubscribe", packetId: 1, topicFilters: [], properties: {} },
    4,
    ReasonCode.ProtocolError,
  );
});

Deno.test("[MQTT-3.1.2-22] a password without user name is refused below 5.0", () => {
  assertEncodeFails(
    {
      type: "connect",
      protocolName: "MQTT",
      protocolVersion: 4,
      cleanStart: true,
      keepAlive: 0,
      clientId: "c",
      password: new Uint8Array([1]),
      properties: {},
    },
    4,
    ReasonCode.MalformedPacket,
  );
});

Deno.test("a string longer than 65535 bytes is refused", () => {
  assertEncodeFails(
    { type: "unsubscribe", packetId: 1, topicFilters: ["é".repeat(40_000)], properties: {} },
    4,
    ReasonCode.MalformedPacket,
  );
});

Deno.test("out-of-range integers are refused instead of truncated", () => {
  assertEncodeFails(
    { type: "connack", sessionPresent: false, reasonCode: 0, properties: { receiveMaximum: 70_000 } },
    5,
    ReasonCode.MalformedPacket,
  );
  assertEncodeFails(
    { type: "puback", packetId: 70_000, reasonCode: 0, properties: {} },
    4,
    ReasonCode.MalformedPacket,
  );
});

Deno.test("strings are written as UTF-8, surrogate pairs as 4 bytes", () => {
  const bytes = encode({ type: "unsubscribe", packetId: 1, topicFilters: ["😀é"], properties: {} }, 4);
  assert.deepEqual(Array.from(bytes.subarray(4)), [0x00, 0x06, 0xf0, 0x9f, 0x98, 0x80, 0xc3, 0xa9]);
});
