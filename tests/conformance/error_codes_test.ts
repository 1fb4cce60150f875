/**
 * Conformance: Malformed Packet (0x81) or Protocol Error (0x82) per class of error, as the table
 * "0x81 or 0x82" in docs/conformance.md decides it: the code the specification names, else Mosquitto
 * 2.0's. Each row is one packet sent after CONNACK on its own v5 connection.
 */
import assert from "node:assert/strict";
import type { DisconnectPacket } from "../../src/codec/mod.ts";
import { hex, toHex, withBroker } from "../helpers/broker.ts";
import { connect, frame, str } from "./support.ts";

const TABLE: Array<[string, Uint8Array, number]> = [
  // The specification names the code.
  ["reserved fixed-header flags [MQTT-2.1.3-1]", hex("60 02 00 01"), 0x81],
  ["PUBLISH QoS 3 [MQTT-3.3.1-4]", frame(0x36, [...str("a"), 0, 1, 0]), 0x81],
  ["a property the packet may not carry (§2.2.2.2)", frame(0x30, [...str("a"), 5, 0x11, 0, 0, 0, 1]), 0x81],
  ["a property twice (§3.3.2.3)", frame(0x30, [...str("a"), 4, 0x01, 0, 0x01, 1]), 0x82],
  ["a property value out of range (§3.3.2.3.2)", frame(0x30, [...str("a"), 2, 0x01, 2]), 0x82],
  ["trailing bytes after a fixed-size packet (§1.2)", hex("c0 01 00"), 0x81],
  [
    "Subscription Identifier in a client's PUBLISH [MQTT-3.3.4-6]",
    frame(0x30, [...str("a"), 2, 0x0b, 1]),
    0x82,
  ],
  ["a second CONNECT [MQTT-3.1.0-2]", frame(0x10, [...str("MQTT"), 5, 0x02, 0, 60, 0, ...str("c2")]), 0x82],
  // The specification names none: Mosquitto 2.0's code.
  ["reserved packet type 0", hex("00 00"), 0x82],
  ["a packet type a client may not send (CONNACK)", hex("20 03 00 00 00"), 0x82],
  ["a packet type a client may not send, its body broken (SUBACK)", hex("90 01 00"), 0x82],
  ["PUBLISH QoS 0 with DUP [MQTT-3.3.1-2]", frame(0x38, [...str("a"), 0]), 0x81],
  ["packet id 0 on PUBLISH [MQTT-2.2.1-3]", frame(0x32, [...str("a"), 0, 0, 0]), 0x82],
  ["packet id 0 on PUBACK [MQTT-2.2.1-3]", hex("40 02 00 00"), 0x82],
  ["packet id 0 on SUBSCRIBE [MQTT-2.2.1-3]", frame(0x82, [0, 0, 0, ...str("a"), 0]), 0x81],
  ["packet id 0 on UNSUBSCRIBE [MQTT-2.2.1-3]", frame(0xa2, [0, 0, 0, ...str("a")]), 0x81],
  ["a reason code PUBACK does not define [MQTT-3.4.2-1]", hex("40 03 00 01 05"), 0x82],
  ["a reason code PUBREL does not define [MQTT-3.6.2-1]", hex("62 03 00 01 10"), 0x82],
  ["a reason code DISCONNECT does not define [MQTT-3.14.2-1]", hex("e0 01 05"), 0x82],
  ["a reason code AUTH does not define [MQTT-3.15.2-1]", hex("f0 02 04 00"), 0x82],
];

Deno.test("v5 [MQTT-4.13.1-1] each class of error gets the reason code of the table in docs/conformance.md", async () => {
  await withBroker("", async ({ port }) => {
    const wrong: string[] = [];
    for (const [what, bytes, code] of TABLE) {
      const { client } = await connect(port, "codes", 5);
      await client.send(bytes);
      const packet = await client.readPacket().catch((error) => error as Error);
      const got = packet instanceof Error
        ? packet.message
        : packet.type === "disconnect"
        ? (packet as DisconnectPacket).reasonCode
        : packet.type;
      if (got !== code) {
        wrong.push(`${what} (${toHex(bytes)}): got ${got}, table says 0x${code.toString(16)}`);
      }
      await client.close();
    }
    assert.deepEqual(wrong, []);
  });
});
