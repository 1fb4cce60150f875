/**
 * Byte-exact SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT and AUTH vectors,
 * annotated byte by byte.
 */
import { testVectors } from "./support/vectors.ts";

testVectors([
  {
    name: "SUBSCRIBE two filters",
    versions: [3, 4],
    bytes: [
      0x82, // SUBSCRIBE, flags 0b0010
      0x0c, // remaining length 12
      0x00,
      0x0a, // packet id 10
      0x00,
      0x03,
      0x61,
      0x2f,
      0x62, // topic filter "a/b"
      0x01, // requested QoS 1
      0x00,
      0x01,
      0x23, // topic filter "#"
      0x02, // requested QoS 2
    ],
    packet: {
      type: "subscribe",
      packetId: 10,
      subscriptions: [
        { topicFilter: "a/b", qos: 1, noLocal: false, retainAsPublished: false, retainHandling: 0 },
        { topicFilter: "#", qos: 2, noLocal: false, retainAsPublished: false, retainHandling: 0 },
      ],
      properties: {},
    },
  },
  {
    name: "SUBSCRIBE 5.0 with subscription options and identifier",
    versions: [5],
    bytes: [
      0x82, // SUBSCRIBE, flags 0b0010
      0x16, // remaining length 22
      0x00,
      0x0b, // packet id 11
      0x09, // property length 9
      0x0b,
      0x0a, // subscription identifier 10
      0x26,
      0x00,
      0x01,
      0x6b,
      0x00,
      0x01,
      0x76, // user property "k" = "v"
      0x00,
      0x03,
      0x61,
      0x2f,
      0x2b, // topic filter "a/+"
      0x2d, // options: retain handling 2, retain as published, no local, QoS 1
      0x00,
      0x01,
      0x23, // topic filter "#"
      0x00, // options: all 0
    ],
    packet: {
      type: "subscribe",
      packetId: 11,
      subscriptions: [
        { topicFilter: "a/+", qos: 1, noLocal: true, retainAsPublished: true, retainHandling: 2 },
        { topicFilter: "#", qos: 0, noLocal: false, retainAsPublished: false, retainHandling: 0 },
      ],
      properties: { subscriptionIdentifiers: [10], userProperties: [["k", "v"]] },
    },
  },
  {
    name: "SUBACK return codes",
    versions: [3, 4],
    bytes: [
      0x90, // SUBACK, flags 0
      0x05, // remaining length 5
      0x00,
      0x0a, // packet id 10
      0x00, // granted QoS 0
      0x01, // granted QoS 1
      0x80, // failure
    ],
    packet: { type: "suback", packetId: 10, reasonCodes: [0, 1, 0x80], properties: {} },
  },
  {
    name: "SUBACK 5.0 with reason string",
    versions: [5],
    bytes: [
      0x90, // SUBACK, flags 0
      0x09, // remaining length 9
      0x00,
      0x0b, // packet id 11
      0x04, // property length 4
      0x1f,
      0x00,
      0x01,
      0x65, // reason string "e"
      0x01, // granted QoS 1
      0xa2, // wildcard subscriptions not supported
    ],
    packet: { type: "suback", packetId: 11, reasonCodes: [1, 0xa2], properties: { reasonString: "e" } },
  },
  {
    name: "UNSUBSCRIBE two filters",
    versions: [3, 4],
    bytes: [
      0xa2, // UNSUBSCRIBE, flags 0b0010
      0x0a, // remaining length 10
      0x00,
      0x0c, // packet id 12
      0x00,
      0x03,
      0x61,
      0x2f,
      0x62, // topic filter "a/b"
      0x00,
      0x01,
      0x23, // topic filter "#"
    ],
    packet: { type: "unsubscribe", packetId: 12, topicFilters: ["a/b", "#"], properties: {} },
  },
  {
    name: "UNSUBSCRIBE 5.0",
    versions: [5],
    bytes: [
      0xa2, // UNSUBSCRIBE, flags 0b0010
      0x08, // remaining length 8
      0x00,
      0x0c, // packet id 12
      0x00, // property length 0
      0x00,
      0x03,
      0x61,
      0x2f,
      0x62, // topic filter "a/b"
    ],
    packet: { type: "unsubscribe", packetId: 12, topicFilters: ["a/b"], properties: {} },
  },
  {
    name: "UNSUBACK without payload",
    versions: [3, 4],
    bytes: [
      0xb0, // UNSUBACK, flags 0
      0x02, // remaining length 2
      0x00,
      0x0c, // packet id 12
    ],
    packet: { type: "unsuback", packetId: 12, reasonCodes: [], properties: {} },
  },
  {
    name: "UNSUBACK 5.0 with reason codes",
    versions: [5],
    bytes: [
      0xb0, // UNSUBACK, flags 0
      0x05, // remaining length 5
      0x00,
      0x0c, // packet id 12
      0x00, // property length 0
      0x00, // success
      0x11, // no subscription existed
    ],
    packet: { type: "unsuback", packetId: 12, reasonCodes: [0, 0x11], properties: {} },
  },
  {
    name: "PINGREQ",
    versions: [3, 4, 5],
    bytes: [
      0xc0, // PINGREQ, flags 0
      0x00, // remaining length 0
    ],
    packet: { type: "pingreq" },
  },
  {
    name: "PINGRESP",
    versions: [3, 4, 5],
    bytes: [
      0xd0, // PINGRESP, flags 0
      0x00, // remaining length 0
    ],
    packet: { type: "pingresp" },
  },
  {
    name: "DISCONNECT (at 5.0: normal disconnection, short form)",
    versions: [3, 4, 5],
    bytes: [
      0xe0, // DISCONNECT, flags 0
      0x00, // remaining length 0
    ],
    packet: { type: "disconnect", reasonCode: 0, properties: {} },
  },
  {
    name: "DISCONNECT 5.0 with a reason code only",
    versions: [5],
    bytes: [
      0xe0, // DISCONNECT, flags 0
      0x01, // remaining length 1: no property length
      0x04, // reason code 0x04 disconnect with will message
    ],
    packet: { type: "disconnect", reasonCode: 0x04, properties: {} },
  },
  {
    name: "DISCONNECT 5.0 with reason code and properties",
    versions: [5],
    bytes: [
      0xe0, // DISCONNECT, flags 0
      0x0b, // remaining length 11
      0x9c, // reason code 0x9c use another server
      0x09, // property length 9
      0x11,
      0x00,
      0x00,
      0x00,
      0x00, // session expiry interval 0
      0x1c,
      0x00,
      0x01,
      0x73, // server reference "s"
    ],
    packet: {
      type: "disconnect",
      reasonCode: 0x9c,
      properties: { sessionExpiryInterval: 0, serverReference: "s" },
    },
  },
  {
    name: "AUTH 5.0 short form",
    versions: [5],
    bytes: [
      0xf0, // AUTH, flags 0
      0x00, // remaining length 0: success, no properties
    ],
    packet: { type: "auth", reasonCode: 0, properties: {} },
  },
  {
    name: "AUTH 5.0 continue authentication",
    versions: [5],
    bytes: [
      0xf0, // AUTH, flags 0
      0x0b, // remaining length 11
      0x18, // reason code 0x18 continue authentication
      0x09, // property length 9
      0x15,
      0x00,
      0x01,
      0x6d, // authentication method "m"
      0x16,
      0x00,
      0x02,
      0x01,
      0x02, // authentication data 01 02
    ],
    packet: {
      type: "auth",
      reasonCode: 0x18,
      properties: { authenticationMethod: "m", authenticationData: new Uint8Array([1, 2]) },
    },
  },
]);
