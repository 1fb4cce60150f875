/** Byte-exact CONNECT and CONNACK vectors at 3.1, 3.1.1 and 5.0, annotated byte by byte. */
import { testVectors, utf8 } from "./support/vectors.ts";

testVectors([
  {
    name: "CONNECT 3.1 (MQIsdp), clean session",
    versions: [3],
    bytes: [
      0x10, // CONNECT, flags 0
      0x10, // remaining length 16
      0x00,
      0x06,
      0x4d,
      0x51,
      0x49,
      0x73,
      0x64,
      0x70, // protocol name "MQIsdp"
      0x03, // protocol level 3
      0x02, // connect flags: clean session
      0x00,
      0x3c, // keep alive 60
      0x00,
      0x02,
      0x63,
      0x31, // client id "c1"
    ],
    packet: {
      type: "connect",
      protocolName: "MQIsdp",
      protocolVersion: 3,
      cleanStart: true,
      keepAlive: 60,
      clientId: "c1",
      properties: {},
    },
  },
  {
    name: "CONNECT 3.1.1 with will, user name and password",
    versions: [4],
    bytes: [
      0x10, // CONNECT, flags 0
      0x20, // remaining length 32
      0x00,
      0x04,
      0x4d,
      0x51,
      0x54,
      0x54, // protocol name "MQTT"
      0x04, // protocol level 4
      0xec, // connect flags: user name, password, will retain, will QoS 1, will; no clean session
      0x00,
      0x1e, // keep alive 30
      0x00,
      0x03,
      0x63,
      0x69,
      0x64, // client id "cid"
      0x00,
      0x03,
      0x77,
      0x2f,
      0x74, // will topic "w/t"
      0x00,
      0x03,
      0x62,
      0x79,
      0x65, // will payload "bye"
      0x00,
      0x01,
      0x75, // user name "u"
      0x00,
      0x02,
      0x70,
      0x77, // password "pw"
    ],
    packet: {
      type: "connect",
      protocolName: "MQTT",
      protocolVersion: 4,
      cleanStart: false,
      keepAlive: 30,
      clientId: "cid",
      username: "u",
      password: utf8("pw"),
      will: { topic: "w/t", payload: utf8("bye"), qos: 1, retain: true, properties: {} },
      properties: {},
    },
  },
  {
    name: "CONNECT 5.0 with properties, will properties and an empty client id",
    versions: [5],
    bytes: [
      0x10, // CONNECT, flags 0
      0x2c, // remaining length 44
      0x00,
      0x04,
      0x4d,
      0x51,
      0x54,
      0x54, // protocol name "MQTT"
      0x05, // protocol level 5
      0x06, // connect flags: will (QoS 0, no retain), clean start
      0x00,
      0x0a, // keep alive 10
      0x0f, // property length 15
      0x11,
      0x00,
      0x00,
      0x0e,
      0x10, // session expiry interval 3600
      0x21,
      0x00,
      0x14, // receive maximum 20
      0x26,
      0x00,
      0x01,
      0x61,
      0x00,
      0x01,
      0x31, // user property "a" = "1"
      0x00,
      0x00, // client id ""
      0x09, // will property length 9
      0x18,
      0x00,
      0x00,
      0x00,
      0x05, // will delay interval 5
      0x03,
      0x00,
      0x01,
      0x74, // content type "t"
      0x00,
      0x01,
      0x77, // will topic "w"
      0x00,
      0x01,
      0x01, // will payload 0x01
    ],
    packet: {
      type: "connect",
      protocolName: "MQTT",
      protocolVersion: 5,
      cleanStart: true,
      keepAlive: 10,
      clientId: "",
      will: {
        topic: "w",
        payload: new Uint8Array([1]),
        qos: 0,
        retain: false,
        properties: { willDelayInterval: 5, contentType: "t" },
      },
      properties: { sessionExpiryInterval: 3600, receiveMaximum: 20, userProperties: [["a", "1"]] },
    },
  },
  {
    name: "CONNECT 5.0 with a password but no user name (allowed since 5.0)",
    versions: [5],
    bytes: [
      0x10, // CONNECT, flags 0
      0x11, // remaining length 17
      0x00,
      0x04,
      0x4d,
      0x51,
      0x54,
      0x54, // protocol name "MQTT"
      0x05, // protocol level 5
      0x42, // connect flags: password, clean start
      0x00,
      0x00, // keep alive 0
      0x00, // property length 0
      0x00,
      0x01,
      0x63, // client id "c"
      0x00,
      0x01,
      0x00, // password 0x00
    ],
    packet: {
      type: "connect",
      protocolName: "MQTT",
      protocolVersion: 5,
      cleanStart: true,
      keepAlive: 0,
      clientId: "c",
      password: new Uint8Array([0]),
      properties: {},
    },
  },
  {
    name: "CONNACK 3.x session present, accepted",
    versions: [3, 4],
    bytes: [
      0x20, // CONNACK, flags 0
      0x02, // remaining length 2
      0x01, // acknowledge flags: session present
      0x00, // return code 0 accepted
    ],
    packet: { type: "connack", sessionPresent: true, reasonCode: 0, properties: {} },
  },
  {
    name: "CONNACK 3.x not authorized",
    versions: [3, 4],
    bytes: [
      0x20, // CONNACK, flags 0
      0x02, // remaining length 2
      0x00, // acknowledge flags: no session
      0x05, // return code 5 not authorized
    ],
    packet: { type: "connack", sessionPresent: false, reasonCode: 5, properties: {} },
  },
  {
    name: "CONNACK 5.0 refusal without properties",
    versions: [5],
    bytes: [
      0x20, // CONNACK, flags 0
      0x03, // remaining length 3
      0x00, // acknowledge flags: no session
      0x87, // reason code 0x87 not authorized
      0x00, // property length 0
    ],
    packet: { type: "connack", sessionPresent: false, reasonCode: 0x87, properties: {} },
  },
  {
    name: "CONNACK 5.0 with every CONNACK property",
    versions: [5],
    bytes: [
      0x20, // CONNACK, flags 0
      0x39, // remaining length 57
      0x00, // acknowledge flags: no session
      0x00, // reason code 0 success
      0x36, // property length 54
      0x22,
      0x00,
      0x0a, // topic alias maximum 10
      0x12,
      0x00,
      0x01,
      0x78, // assigned client identifier "x"
      0x24,
      0x01, // maximum QoS 1
      0x25,
      0x00, // retain available 0
      0x28,
      0x01, // wildcard subscription available 1
      0x29,
      0x00, // subscription identifier available 0
      0x2a,
      0x01, // shared subscription available 1
      0x13,
      0x00,
      0x3c, // server keep alive 60
      0x1a,
      0x00,
      0x01,
      0x72, // response information "r"
      0x1c,
      0x00,
      0x01,
      0x73, // server reference "s"
      0x1f,
      0x00,
      0x02,
      0x6f,
      0x6b, // reason string "ok"
      0x21,
      0x00,
      0x64, // receive maximum 100
      0x27,
      0x00,
      0x00,
      0x04,
      0x00, // maximum packet size 1024
      0x15,
      0x00,
      0x01,
      0x6d, // authentication method "m"
      0x16,
      0x00,
      0x01,
      0xaa, // authentication data 0xaa
      0x11,
      0x00,
      0x00,
      0x00,
      0x00, // session expiry interval 0
    ],
    packet: {
      type: "connack",
      sessionPresent: false,
      reasonCode: 0,
      properties: {
        topicAliasMaximum: 10,
        assignedClientIdentifier: "x",
        maximumQoS: 1,
        retainAvailable: 0,
        wildcardSubscriptionAvailable: 1,
        subscriptionIdentifierAvailable: 0,
        sharedSubscriptionAvailable: 1,
        serverKeepAlive: 60,
        responseInformation: "r",
        serverReference: "s",
        reasonString: "ok",
        receiveMaximum: 100,
        maximumPacketSize: 1024,
        authenticationMethod: "m",
        authenticationData: new Uint8Array([0xaa]),
        sessionExpiryInterval: 0,
      },
    },
  },
]);
