/**
 * The decoder's protocol edges (issue 12): Remaining Lengths refused from the fixed header alone, packet
 * types a client may not send, control characters in identifiers and topics, and the CONNACK form of an
 * unsupported level.
 */
import assert from "node:assert/strict";
import {
  Decoder,
  MqttError,
  type ProtocolVersion,
  ReasonCode,
  UnsupportedProtocolError,
} from "../../src/codec/mod.ts";
import { ALL, frame, MQTT, str, V3 } from "./support/rejections.ts";

function decoder(version: ProtocolVersion, options: { fromClients?: boolean; controls?: boolean } = {}) {
  return new Decoder({
    maxPacketSize: 1 << 16,
    protocolVersion: version,
    fromClients: options.fromClients,
    allowControlCharacters: options.controls,
  });
}

function rejects(bytes: Uint8Array, reasonCode: number, make: () => Decoder): void {
  const d = make();
  d.push(bytes);
  assert.throws(
    () => d.next(),
    (error: unknown) => error instanceof MqttError && error.reasonCode === reasonCode,
    `expected 0x${reasonCode.toString(16)} for ${[...bytes]}`,
  );
}

Deno.test("a Remaining Length the packet type cannot have is refused from the fixed header, before any body", () => {
  const headers: Array<[number[], ProtocolVersion[]]> = [
    [[0xc0, 0x01], ALL], // PINGREQ
    [[0xc0, 0x80, 0x01], ALL], // PINGREQ, two-byte length
    [[0xd0, 0x02], ALL], // PINGRESP
    [[0xe0, 0x01], V3], // DISCONNECT below 5
    [[0x40, 0x03], V3], // PUBACK below 5 is a packet id only
    [[0x62, 0x01], V3], // PUBREL
    [[0x70, 0x00], V3], // PUBCOMP
    [[0x50, 0x01], [5]], // PUBREC shorter than a packet id
  ];
  for (const [header, versions] of headers) {
    for (const version of versions) {
      rejects(new Uint8Array(header), ReasonCode.MalformedPacket, () => decoder(version));
    }
  }
});

Deno.test("lengths a packet type may have still wait for their body", () => {
  for (const [header, version] of [[[0xe0, 0x01], 5], [[0x40, 0x03], 5], [[0x40, 0x02], 4]] as const) {
    const d = decoder(version);
    d.push(new Uint8Array(header));
    assert.equal(d.next(), undefined, `${header} at ${version}`);
  }
});

Deno.test("from clients, CONNACK, SUBACK, UNSUBACK and PINGRESP are refused from their first byte with 0x82", () => {
  for (const first of [0x20, 0x90, 0xb0, 0xd0]) {
    for (const version of ALL) {
      rejects(
        new Uint8Array([first]),
        ReasonCode.ProtocolError,
        () => decoder(version, { fromClients: true }),
      );
    }
  }
  // Wrong flags are still a Malformed Packet first [MQTT-2.1.3-1], as Mosquitto checks them first too.
  rejects(new Uint8Array([0x91]), ReasonCode.MalformedPacket, () => decoder(5, { fromClients: true }));
  // A client-side decoder reads them.
  const d = decoder(4);
  d.push(new Uint8Array([0xd0, 0x00]));
  assert.equal(d.next()?.type, "pingresp");
});

const CONTROL_SPELLINGS = [[0x01], [0x0a], [0x1f], [0x7f], [0xc2, 0x80], [0xc2, 0x9f]];

/** A two-byte length and the bytes as they are (to spell any character). */
function field(bytes: number[]): number[] {
  return [bytes.length >> 8, bytes.length & 0xff, ...bytes];
}

/** Each field that may not hold a control character, as a packet at `version` around `text`. */
function packetsWith(text: number[], version: ProtocolVersion): Uint8Array[] {
  const props = version === 5 ? [0] : [];
  const name = version === 3 ? str("MQIsdp") : MQTT;
  return [
    frame(0x10, [...name, version, 0x02, 0, 60, ...props, ...field(text)]), // client identifier
    frame(0x10, [...name, version, 0x82, 0, 60, ...props, ...str("id"), ...field(text)]), // user name
    frame(0x10, [...name, version, 0x06, 0, 60, ...props, ...str("id"), ...props, ...field(text), 0, 0]), // will topic
    frame(0x30, [...field(text), ...props]), // topic name
    frame(0x82, [0, 1, ...props, ...field(text), 0]), // SUBSCRIBE filter
    frame(0xa2, [0, 1, ...props, ...field(text)]), // UNSUBSCRIBE filter
  ];
}

function bytesOf(text: string): number[] {
  return [...new TextEncoder().encode(text)];
}

Deno.test("[MQTT-1.5.4] control characters: a Malformed Packet when refused, accepted when allowed (the default)", () => {
  for (const spelling of CONTROL_SPELLINGS) {
    for (const version of ALL) {
      for (const bytes of packetsWith([0x61, ...spelling, 0x62], version)) {
        rejects(bytes, ReasonCode.MalformedPacket, () => decoder(version, { controls: false }));
        const d = decoder(version);
        d.push(bytes);
        assert.ok(d.next(), `accepted by default: ${[...bytes]}`);
      }
    }
  }
  // Characters next to the control ranges are ordinary: space, "~", U+00A0, U+0100.
  for (const text of [" ", "~", "\u00a0", "\u0100"]) {
    for (const bytes of packetsWith(bytesOf(`a${text}b`), 5)) {
      const d = decoder(5, { controls: false });
      d.push(bytes);
      assert.ok(d.next(), JSON.stringify(text));
    }
  }
});

Deno.test("[MQTT-1.5.4] a topic name with a control character decoded where allowed is not served from the cache where refused", () => {
  const publish = frame(0x30, [...field([0x61, 0x01]), 0x78]);
  for (let i = 0; i < 3; i++) {
    const d = decoder(4);
    d.push(publish);
    assert.equal(d.next()?.type, "publish");
  }
  rejects(publish, ReasonCode.MalformedPacket, () => decoder(4, { controls: false }));
});

Deno.test("[MQTT-3.1.2-2] an unsupported level: the CONNACK form follows the name (MQTT level 5: v5; MQIsdp: 3.1)", () => {
  const cases: Array<[number[], number, number]> = [[MQTT, 6, 6], [MQTT, 3, 3], [str("MQIsdp"), 5, 3], [
    str("MQIsdp"),
    4,
    3,
  ]];
  for (const [name, level, answeredAt] of cases) {
    const d = decoder(4);
    d.push(frame(0x10, [...name, level, 0x02, 0, 60, 0, 0]));
    assert.throws(
      () => d.next(),
      (error: unknown) => error instanceof UnsupportedProtocolError && error.level === answeredAt,
      `level ${level}`,
    );
  }
});
