/**
 * Hostile input: every class of malformed or forbidden packet gets the spec's answer (MQTT 5: DISCONNECT
 * with the reason code, then close; MQTT 3.1.1: close) and does not disturb a well-behaved client pair
 * next to it, which must keep publishing and receiving after every case. Bounded: one connection per case.
 */
import assert from "node:assert/strict";
import type { DisconnectPacket, ProtocolVersion } from "../../src/codec/mod.ts";
import { hex, RawClient, toHex, withBroker } from "../helpers/broker.ts";
import { connect } from "../helpers/clients.ts";
import { Bystander, mb, report, RssSampler } from "./support.ts";

function varInt(value: number): number[] {
  const out: number[] = [];
  do {
    let byte = value % 128;
    value = Math.floor(value / 128);
    if (value > 0) byte |= 0x80;
    out.push(byte);
  } while (value > 0);
  return out;
}

function str(text: string | number[]): number[] {
  const bytes = typeof text === "string" ? [...new TextEncoder().encode(text)] : text;
  return [bytes.length >> 8, bytes.length & 0xff, ...bytes];
}

function frame(first: number, body: number[]): Uint8Array {
  return new Uint8Array([first, ...varInt(body.length), ...body]);
}

/** A PUBLISH QoS 0 on `topic` with v5 property bytes (without the length prefix). */
function publishWith(topic: string | number[], properties: number[], version: ProtocolVersion): Uint8Array {
  return frame(0x30, [
    ...str(topic),
    ...(version === 5 ? [...varInt(properties.length), ...properties] : []),
    0x78,
  ]);
}

interface Case {
  name: string;
  bytes: (version: ProtocolVersion) => Uint8Array;
  /** v5 reason code(s) of the DISCONNECT; 3.1.1 always expects a silent close. */
  v5: number | number[];
  /** Only meaningful at MQTT 5. */
  v5Only?: boolean;
}

const deepTopic = Array.from({ length: 200 }, () => "l").join("/");

const CASES: Case[] = [
  { name: "reserved packet type 0", bytes: () => hex("00 00"), v5: 0x82 },
  {
    name: "SUBSCRIBE with flags 0000",
    bytes: (v) => frame(0x80, [0, 1, ...(v === 5 ? [0] : []), ...str("a"), 0]),
    v5: 0x81,
  },
  {
    name: "PUBLISH QoS 3",
    bytes: (v) => frame(0x36, [...str("a"), 0, 1, ...(v === 5 ? [0] : []), 0x78]),
    v5: 0x81,
  },
  {
    name: "PUBLISH QoS 0 with DUP",
    bytes: (v) => frame(0x38, [...str("a"), ...(v === 5 ? [0] : [])]),
    v5: 0x81,
  },
  { name: "remaining length of 5 bytes", bytes: () => hex("30 ff ff ff ff 01"), v5: 0x81 },
  { name: "non-minimal remaining length", bytes: () => hex("c0 80 00"), v5: 0x81 },
  { name: "topic length beyond the packet", bytes: () => hex("30 04 00 10 61 62"), v5: 0x81 },
  { name: "PINGREQ with a body", bytes: () => hex("c0 01 00"), v5: 0x81 },
  { name: "DISCONNECT with reserved flags", bytes: () => hex("e1 00"), v5: 0x81 },
  { name: "ill-formed UTF-8 topic", bytes: (v) => publishWith([0x61, 0xc3, 0x28], [], v), v5: 0x81 },
  { name: "encoded surrogate in a topic", bytes: (v) => publishWith([0xed, 0xb0, 0x80], [], v), v5: 0x81 },
  { name: "U+0000 in a topic", bytes: (v) => publishWith([0x61, 0x00], [], v), v5: 0x81 },
  {
    name: "U+0000 in a topic filter",
    bytes: (v) => frame(0x82, [0, 1, ...(v === 5 ? [0] : []), ...str([0x00]), 0]),
    v5: 0x81,
  },
  { name: "wildcard in a topic name", bytes: (v) => publishWith("a/#", [], v), v5: 0x90 },
  { name: "topic deeper than max_topic_levels", bytes: (v) => publishWith(deepTopic, [], v), v5: 0x90 },
  { name: "empty topic without alias", bytes: (v) => publishWith("", [], v), v5: 0x82 },
  {
    name: "packet id 0 on QoS 1",
    bytes: (v) => frame(0x32, [...str("a"), 0, 0, ...(v === 5 ? [0] : []), 0x78]),
    v5: 0x82,
  },
  { name: "SUBSCRIBE without filters", bytes: (v) => frame(0x82, [0, 1, ...(v === 5 ? [0] : [])]), v5: 0x82 },
  {
    name: "UNSUBSCRIBE without filters",
    bytes: (v) => frame(0xa2, [0, 1, ...(v === 5 ? [0] : [])]),
    v5: 0x82,
  },
  {
    name: "SUBSCRIBE QoS 3",
    bytes: (v) => frame(0x82, [0, 1, ...(v === 5 ? [0] : []), ...str("a"), 3]),
    v5: [0x81, 0x82],
  },
  {
    name: "CONNACK from a client",
    bytes: (v) => (v === 5 ? hex("20 03 00 00 00") : hex("20 02 00 00")),
    v5: 0x82,
  },
  {
    name: "SUBACK from a client",
    bytes: (v) => (v === 5 ? hex("90 04 00 01 00 00") : hex("90 03 00 01 00")),
    v5: 0x82,
  },
  { name: "PINGRESP from a client", bytes: () => hex("d0 00"), v5: 0x82 },
  { name: "second CONNECT", bytes: () => hex("10 0e 00 04 4d 51 54 54 04 02 00 3c 00 02 63 32"), v5: 0x82 },
  {
    name: "packet above max_packet_size",
    bytes: () => new Uint8Array([0x30, ...varInt(70_000), 0, 1, 0x61]),
    v5: 0x95,
  },
  { name: "unknown property id", bytes: (v) => publishWith("a", [0x7f, 0], v), v5: 0x81, v5Only: true },
  {
    name: "property not allowed in PUBLISH",
    bytes: (v) => publishWith("a", [0x11, 0, 0, 0, 1], v),
    v5: 0x81,
    v5Only: true,
  },
  { name: "property twice", bytes: (v) => publishWith("a", [0x01, 0, 0x01, 1], v), v5: 0x82, v5Only: true },
  {
    name: "property length beyond the packet",
    bytes: () => frame(0x30, [...str("a"), 20, 0x01, 0]),
    v5: 0x81,
    v5Only: true,
  },
  {
    name: "Payload Format Indicator 2",
    bytes: (v) => publishWith("a", [0x01, 2], v),
    v5: 0x82,
    v5Only: true,
  },
  { name: "topic alias 0", bytes: (v) => publishWith("a", [0x23, 0, 0], v), v5: 0x94, v5Only: true },
  {
    name: "topic alias above the maximum",
    bytes: (v) => publishWith("a", [0x23, 0xff, 0xff], v),
    v5: 0x94,
    v5Only: true,
  },
  { name: "unknown topic alias", bytes: (v) => publishWith("", [0x23, 0, 3], v), v5: 0x82, v5Only: true },
  { name: "PUBACK with an invalid reason code", bytes: () => hex("40 03 00 01 05"), v5: 0x82, v5Only: true },
  { name: "DISCONNECT with an invalid reason code", bytes: () => hex("e0 01 03"), v5: 0x82, v5Only: true },
  { name: "AUTH without an authentication method", bytes: () => hex("f0 02 19 00"), v5: 0x82, v5Only: true },
  { name: "AUTH below MQTT 5", bytes: () => hex("f0 00"), v5: 0x82, v5Only: false },
  {
    name: "Subscription Identifier 0",
    bytes: () => frame(0x82, [0, 1, 2, 0x0b, 0, ...str("a"), 0]),
    v5: 0x82,
    v5Only: true,
  },
  {
    name: "reserved subscription option bits",
    bytes: () => frame(0x82, [0, 1, 0, ...str("a"), 0xc0]),
    v5: 0x81,
    v5Only: true,
  },
  {
    name: "Retain Handling 3",
    bytes: () => frame(0x82, [0, 1, 0, ...str("a"), 0x30]),
    v5: 0x82,
    v5Only: true,
  },
];

/** Reads the broker's answer: at v5 the DISCONNECT's reason code, then the close; at 3.1.1 nothing and the close. */
async function answer(client: RawClient, version: ProtocolVersion): Promise<string> {
  if (version === 5) {
    const packet = await client.readPacket();
    if (packet.type !== "disconnect") return `got ${packet.type}`;
    const rest = await client.expectClosed();
    return `0x${(packet as DisconnectPacket).reasonCode.toString(16)}${
      rest.length ? ` + ${toHex(rest)}` : ""
    }`;
  }
  const rest = await client.expectClosed();
  return rest.length === 0 ? "closed" : `closed after ${toHex(rest)}`;
}

for (const version of [5, 4] as const) {
  Deno.test(`hostile ${version === 5 ? "v5" : "v3.1.1"}: each malformed or forbidden packet gets the spec's answer; a bystander keeps working`, async () => {
    await withBroker(
      "mqtt.max_packet_size = 65536\nmqtt.max_topic_levels = 128",
      async ({ port, running }) => {
        const sampler = new RssSampler();
        const bystander = await Bystander.start(port, "malformed", version);
        await bystander.check("before");
        const failures: string[] = [];
        for (const testCase of CASES) {
          if (testCase.v5Only && version !== 5) continue;
          if (testCase.name === "AUTH below MQTT 5" && version === 5) continue;
          const { client } = await connect(port, "attacker", version);
          await client.send(testCase.bytes(version));
          const got = await answer(client, version).catch((error) => `error: ${error.message}`);
          await client.close(); // the broker half-closed after its answer and waits for the client's close
          const expected = version === 5
            ? [testCase.v5].flat().map((c) => `0x${c.toString(16)}`)
            : ["closed"];
          if (!expected.includes(got)) {
            failures.push(`${testCase.name}: expected ${expected.join(" or ")}, got ${got}`);
          }
          await bystander.check(`after "${testCase.name}"`);
        }
        assert.deepEqual(failures, []);
        assert.equal(running.connections.connectionCount, 2, "only the bystanders are left connected");
        await bystander.close();
        const rss = sampler.stop();
        report(
          `malformed ${version === 5 ? "v5" : "3.1.1"}: peak RSS ${mb(rss.peak)} (start ${mb(rss.start)})`,
        );
      },
    );
  });
}

Deno.test("hostile: invalid UTF-8 and U+0000 in the client id close the connection before CONNACK; a bystander keeps working", async () => {
  await withBroker("", async ({ port }) => {
    const bystander = await Bystander.start(port, "clientid");
    for (const version of [4, 5] as const) {
      for (
        const id of [[0x61, 0xc3, 0x28], [0x61, 0x00, 0x62], [0xf8, 0x88, 0x80, 0x80, 0x80], [
          0xed,
          0xa0,
          0x80,
        ]]
      ) {
        const body = [...str("MQTT"), version, 0x02, 0, 60, ...(version === 5 ? [0] : []), ...str(id)];
        const client = await RawClient.connect(port, version);
        await client.send(frame(0x10, body));
        const rest = await client.expectClosed();
        assert.ok(
          rest.length === 0 || (rest[0] === 0x20 && rest[3] >= 0x80),
          `v${version} id ${id}: ${toHex(rest)}`,
        );
        await bystander.check(`after client id ${id}`);
      }
    }
    await bystander.close();
  });
});

Deno.test("hostile: topics deeper than mqtt.max_topic_levels are refused (PUBLISH: 0x90 / close; SUBSCRIBE: 0x8F / 0x80)", async () => {
  await withBroker("mqtt.max_topic_levels = 16", async ({ port }) => {
    const bystander = await Bystander.start(port, "deep");
    const atLimit = Array.from({ length: 16 }, (_, i) => `${i}`).join("/");
    const beyond = `${atLimit}/x`;
    const huge = Array.from({ length: 30_000 }, () => "").join("/"); // 30000 empty levels in 29999 bytes
    for (const version of [5, 4] as const) {
      const { client } = await connect(port, "deep", version);
      await client.send(
        frame(0x82, [
          0,
          1,
          ...(version === 5 ? [0] : []),
          ...str(atLimit),
          0,
          ...str(beyond),
          0,
          ...str(huge),
          0,
        ]),
      );
      const suback = await client.readPacket();
      assert.equal(suback.type, "suback");
      const refused = version === 5 ? 0x8f : 0x80;
      assert.deepEqual((suback as { reasonCodes: number[] }).reasonCodes, [0, refused, refused]);
      for (const topic of [beyond, huge]) {
        const { client: publisher } = await connect(port, "deep-attacker", version);
        await publisher.send(publishWith(topic, [], version));
        assert.equal(await answer(publisher, version), version === 5 ? "0x90" : "closed");
        await bystander.check(`after a publish of ${topic.length} bytes`);
      }
      await client.close();
    }
    await bystander.close();
  });
});

Deno.test("hostile: a fragmented attack (one byte per write) is answered the same; a bystander keeps working", async () => {
  await withBroker("", async ({ port }) => {
    const bystander = await Bystander.start(port, "fragments");
    const { client } = await connect(port, "dribble", 5);
    const bad = publishWith([0x61, 0xc3, 0x28], [], 5);
    for (const byte of bad) {
      await client.send([byte]);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    assert.equal(await answer(client, 5), "0x81");
    await bystander.check("after the fragmented attack");
    await bystander.close();
  });
});
