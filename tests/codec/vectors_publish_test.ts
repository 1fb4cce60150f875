/** Byte-exact PUBLISH, PUBACK, PUBREC, PUBREL and PUBCOMP vectors, annotated byte by byte. */
import { testVectors, utf8 } from "./support/vectors.ts";

const PAYLOAD_200 = new Uint8Array(200).map((_, i) => i);

testVectors([
  {
    name: "PUBLISH QoS 0 retained",
    versions: [3, 4],
    bytes: [
      0x31, // PUBLISH, flags: QoS 0, retain
      0x07, // remaining length 7
      0x00,
      0x03,
      0x61,
      0x2f,
      0x62, // topic "a/b"
      0x68,
      0x69, // payload "hi"
    ],
    packet: {
      type: "publish",
      topic: "a/b",
      payload: utf8("hi"),
      qos: 0,
      retain: true,
      dup: false,
      properties: {},
    },
  },
  {
    name: "PUBLISH QoS 1 DUP",
    versions: [3, 4],
    bytes: [
      0x3a, // PUBLISH, flags: DUP, QoS 1
      0x09, // remaining length 9
      0x00,
      0x03,
      0x61,
      0x2f,
      0x62, // topic "a/b"
      0x00,
      0x0a, // packet id 10
      0x68,
      0x69, // payload "hi"
    ],
    packet: {
      type: "publish",
      topic: "a/b",
      payload: utf8("hi"),
      qos: 1,
      retain: false,
      dup: true,
      packetId: 10,
      properties: {},
    },
  },
  {
    name: "PUBLISH QoS 2 with empty payload and packet id 65535",
    versions: [3, 4],
    bytes: [
      0x34, // PUBLISH, flags: QoS 2
      0x07, // remaining length 7
      0x00,
      0x03,
      0x61,
      0x2f,
      0x62, // topic "a/b"
      0xff,
      0xff, // packet id 65535
    ],
    packet: {
      type: "publish",
      topic: "a/b",
      payload: new Uint8Array(0),
      qos: 2,
      retain: false,
      dup: false,
      packetId: 0xffff,
      properties: {},
    },
  },
  {
    name: "PUBLISH with a two-byte remaining length",
    versions: [3, 4],
    bytes: [
      0x30, // PUBLISH, flags: QoS 0
      0xcd,
      0x01, // remaining length 205 = 0x4d + 1 * 128
      0x00,
      0x03,
      0x61,
      0x2f,
      0x62, // topic "a/b"
      ...PAYLOAD_200, // payload 0, 1, ..., 199
    ],
    packet: {
      type: "publish",
      topic: "a/b",
      payload: PAYLOAD_200,
      qos: 0,
      retain: false,
      dup: false,
      properties: {},
    },
  },
  {
    name: "PUBLISH 5.0 QoS 0 without properties",
    versions: [5],
    bytes: [
      0x30, // PUBLISH, flags: QoS 0
      0x08, // remaining length 8
      0x00,
      0x03,
      0x61,
      0x2f,
      0x62, // topic "a/b"
      0x00, // property length 0
      0x68,
      0x69, // payload "hi"
    ],
    packet: {
      type: "publish",
      topic: "a/b",
      payload: utf8("hi"),
      qos: 0,
      retain: false,
      dup: false,
      properties: {},
    },
  },
  {
    name: "PUBLISH 5.0 QoS 1 with every PUBLISH property",
    versions: [5],
    bytes: [
      0x32, // PUBLISH, flags: QoS 1
      0x34, // remaining length 52
      0x00,
      0x03,
      0x61,
      0x2f,
      0x62, // topic "a/b"
      0x00,
      0x01, // packet id 1
      0x2a, // property length 42
      0x01,
      0x01, // payload format indicator 1 (UTF-8)
      0x02,
      0x00,
      0x00,
      0x00,
      0x3c, // message expiry interval 60
      0x23,
      0x00,
      0x05, // topic alias 5
      0x08,
      0x00,
      0x01,
      0x72, // response topic "r"
      0x09,
      0x00,
      0x02,
      0x01,
      0x02, // correlation data 01 02
      0x26,
      0x00,
      0x01,
      0x6b,
      0x00,
      0x01,
      0x76, // user property "k" = "v"
      0x26,
      0x00,
      0x01,
      0x6b,
      0x00,
      0x01,
      0x77, // user property "k" = "w" (repeated name, order kept)
      0x0b,
      0x01, // subscription identifier 1
      0x0b,
      0xc8,
      0x01, // subscription identifier 200 (two-byte variable byte integer)
      0x03,
      0x00,
      0x01,
      0x63, // content type "c"
      0x68,
      0x69, // payload "hi"
    ],
    packet: {
      type: "publish",
      topic: "a/b",
      payload: utf8("hi"),
      qos: 1,
      retain: false,
      dup: false,
      packetId: 1,
      properties: {
        payloadFormatIndicator: 1,
        messageExpiryInterval: 60,
        topicAlias: 5,
        responseTopic: "r",
        correlationData: new Uint8Array([1, 2]),
        userProperties: [["k", "v"], ["k", "w"]],
        subscriptionIdentifiers: [1, 200],
        contentType: "c",
      },
    },
  },
  {
    name: "PUBLISH 5.0 with an empty topic and a topic alias [MQTT-3.3.2-1]",
    versions: [5],
    bytes: [
      0x30, // PUBLISH, flags: QoS 0
      0x07, // remaining length 7
      0x00,
      0x00, // topic "" (replaced by the alias)
      0x03, // property length 3
      0x23,
      0x00,
      0x07, // topic alias 7
      0x78, // payload "x"
    ],
    packet: {
      type: "publish",
      topic: "",
      payload: utf8("x"),
      qos: 0,
      retain: false,
      dup: false,
      properties: { topicAlias: 7 },
    },
  },
  {
    name: "PUBACK",
    versions: [3, 4, 5],
    bytes: [
      0x40, // PUBACK, flags 0
      0x02, // remaining length 2 (at 5.0: reason 0, no properties)
      0x00,
      0x07, // packet id 7
    ],
    packet: { type: "puback", packetId: 7, reasonCode: 0, properties: {} },
  },
  {
    name: "PUBREC",
    versions: [3, 4, 5],
    bytes: [
      0x50, // PUBREC, flags 0
      0x02, // remaining length 2
      0x00,
      0x07, // packet id 7
    ],
    packet: { type: "pubrec", packetId: 7, reasonCode: 0, properties: {} },
  },
  {
    name: "PUBREL",
    versions: [3, 4, 5],
    bytes: [
      0x62, // PUBREL, flags 0b0010
      0x02, // remaining length 2
      0x00,
      0x07, // packet id 7
    ],
    packet: { type: "pubrel", packetId: 7, reasonCode: 0, properties: {} },
  },
  {
    name: "PUBCOMP",
    versions: [3, 4, 5],
    bytes: [
      0x70, // PUBCOMP, flags 0
      0x02, // remaining length 2
      0x00,
      0x07, // packet id 7
    ],
    packet: { type: "pubcomp", packetId: 7, reasonCode: 0, properties: {} },
  },
  {
    name: "PUBREC 5.0 with a reason code only",
    versions: [5],
    bytes: [
      0x50, // PUBREC, flags 0
      0x03, // remaining length 3: no property length
      0x00,
      0x07, // packet id 7
      0x10, // reason code 0x10 no matching subscribers
    ],
    packet: { type: "pubrec", packetId: 7, reasonCode: 0x10, properties: {} },
  },
  {
    name: "PUBREL 5.0 packet identifier not found",
    versions: [5],
    bytes: [
      0x62, // PUBREL, flags 0b0010
      0x03, // remaining length 3
      0x00,
      0x07, // packet id 7
      0x92, // reason code 0x92 packet identifier not found
    ],
    packet: { type: "pubrel", packetId: 7, reasonCode: 0x92, properties: {} },
  },
  {
    name: "PUBACK 5.0 with reason code and reason string",
    versions: [5],
    bytes: [
      0x40, // PUBACK, flags 0
      0x0b, // remaining length 11
      0x00,
      0x07, // packet id 7
      0x97, // reason code 0x97 quota exceeded
      0x07, // property length 7
      0x1f,
      0x00,
      0x04,
      0x71,
      0x75,
      0x6f,
      0x74, // reason string "quot"
    ],
    packet: { type: "puback", packetId: 7, reasonCode: 0x97, properties: { reasonString: "quot" } },
  },
  {
    name: "PUBCOMP 5.0 success with a user property",
    versions: [5],
    bytes: [
      0x70, // PUBCOMP, flags 0
      0x0a, // remaining length 10
      0x00,
      0x07, // packet id 7
      0x00, // reason code 0 (needed because properties follow)
      0x06, // property length 6
      0x26,
      0x00,
      0x01,
      0x61,
      0x00,
      0x00, // user property "a" = ""
    ],
    packet: { type: "pubcomp", packetId: 7, reasonCode: 0, properties: { userProperties: [["a", ""]] } },
  },
  {
    name: "PUBACK 5.0 long form of success (as mqtt-packet writes it)",
    versions: [5],
    decodeOnly: true,
    bytes: [
      0x40, // PUBACK, flags 0
      0x04, // remaining length 4
      0x00,
      0x07, // packet id 7
      0x00, // reason code 0
      0x00, // property length 0
    ],
    packet: { type: "puback", packetId: 7, reasonCode: 0, properties: {} },
  },
]);
