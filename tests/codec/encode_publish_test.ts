/**
 * encodePublish: forwarding a decoded PUBLISH reuses its frame (zero copy when nothing changes, one
 * patched copy otherwise) and re-encodes only when topic or properties change. Every result is checked
 * by decoding it.
 */
import assert from "node:assert/strict";
import {
  encode,
  encodePublish,
  forwardableAt,
  frameLevel,
  MqttError,
  type Properties,
  type ProtocolVersion,
  publishEncodedLength,
  publishFrameLength,
  type PublishPacket,
  publishTopicEnd,
  ReasonCode,
  writeForwarded,
} from "../../src/codec/mod.ts";
import { decodeOne } from "./support/decode_all.ts";

function decoded(packet: PublishPacket, version: ProtocolVersion): PublishPacket {
  return decodeOne(encode(packet, version), version) as PublishPacket;
}

function publish(fields: Partial<PublishPacket> = {}): PublishPacket {
  return {
    type: "publish",
    topic: "a/b",
    payload: new Uint8Array([1, 2, 3, 4]),
    qos: 1,
    retain: false,
    dup: false,
    packetId: 7,
    properties: {},
    ...fields,
  };
}

/** The packet a forwarded frame decodes to, without its frame. */
function fields(packet: PublishPacket): Omit<PublishPacket, "frame"> {
  const { frame: _frame, ...rest } = packet;
  return rest;
}

const V5_PROPERTIES = { messageExpiryInterval: 30, userProperties: [["k", "v"]] as [string, string][] };

for (const version of [3, 4, 5] as const) {
  const properties = version === 5 ? V5_PROPERTIES : {};

  Deno.test(`returns the frame itself when nothing changes (level ${version})`, () => {
    const packet = decoded(publish({ properties }), version);
    assert.equal(encodePublish(packet, version), packet.frame);
    assert.equal(
      encodePublish(packet, version, { qos: 1, dup: false, retain: false, packetId: 7 }),
      packet.frame,
    );
  });

  Deno.test(`patches flags and packet id in one copy (level ${version})`, () => {
    const packet = decoded(publish({ properties }), version);
    const original = Array.from(packet.frame ?? []);
    const bytes = encodePublish(packet, version, { qos: 2, dup: true, retain: true, packetId: 0x1234 });
    assert.notEqual(bytes, packet.frame);
    assert.equal(bytes.length, original.length);
    assert.deepEqual(Array.from(packet.frame ?? []), original, "the source frame is not modified");
    assert.deepStrictEqual(
      fields(decodeOne(bytes, version) as PublishPacket),
      fields({ ...packet, qos: 2, dup: true, retain: true, packetId: 0x1234 }),
    );
  });

  Deno.test(`QoS 1 → 0 drops the packet id and DUP, 2 bytes shorter (level ${version})`, () => {
    const packet = decoded(publish({ properties, dup: true }), version);
    const bytes = encodePublish(packet, version, { qos: 0 });
    assert.equal(bytes.length, (packet.frame?.length ?? 0) - 2);
    const { packetId: _packetId, ...rest } = packet;
    assert.deepStrictEqual(
      fields(decodeOne(bytes, version) as PublishPacket),
      fields({ ...rest, qos: 0, dup: false }),
    );
  });

  Deno.test(`QoS 0 → 1 inserts the packet id, 2 bytes longer (level ${version})`, () => {
    const { packetId: _packetId, ...source } = publish({ properties, qos: 0 });
    const packet = decoded(source, version);
    const bytes = encodePublish(packet, version, { qos: 1, packetId: 99 });
    assert.equal(bytes.length, (packet.frame?.length ?? 0) + 2);
    assert.deepStrictEqual(
      fields(decodeOne(bytes, version) as PublishPacket),
      fields({ ...packet, qos: 1, packetId: 99 }),
    );
  });

  Deno.test(`a QoS change across a remaining-length size boundary (level ${version})`, () => {
    const overhead = version === 5 ? 6 : 5; // topic length 2 + "a/b" 3 (+ property length 1)
    for (const [from, to, remaining] of [[0, 1, 127], [1, 0, 128]] as const) {
      const payload = new Uint8Array(remaining - overhead - (from > 0 ? 2 : 0)).fill(0x5a);
      const packet = decoded(
        publish({ properties: {}, payload, qos: from, packetId: from > 0 ? 5 : undefined }),
        version,
      );
      assert.equal(packet.frame?.length, 1 + (remaining < 128 ? 1 : 2) + remaining);
      const bytes = encodePublish(packet, version, { qos: to, packetId: 6 });
      const result = decodeOne(bytes, version) as PublishPacket;
      assert.equal(result.qos, to);
      assert.equal(result.packetId, to > 0 ? 6 : undefined);
      assert.deepEqual(result.payload, payload);
    }
  });

  Deno.test(`QoS 0 → 1 without a packet id is refused [MQTT-2.2.1-3] (level ${version})`, () => {
    const { packetId: _packetId, ...source } = publish({ qos: 0 });
    const packet = decoded(source, version);
    assert.throws(
      () => encodePublish(packet, version, { qos: 1 }),
      (error: unknown) => error instanceof MqttError && error.reasonCode === ReasonCode.ProtocolError,
    );
  });

  Deno.test(`a topic override re-encodes (level ${version})`, () => {
    const packet = decoded(publish({ properties }), version);
    const bytes = encodePublish(packet, version, { topic: "c/d/e", packetId: 8 });
    assert.deepStrictEqual(
      fields(decodeOne(bytes, version) as PublishPacket),
      fields({ ...packet, topic: "c/d/e", packetId: 8 }),
    );
  });

  Deno.test(`a packet without frame is encoded from its fields (level ${version})`, () => {
    const packet = publish({ properties });
    assert.deepEqual(
      encodePublish(packet, version, { retain: true }),
      encode({ ...packet, retain: true }, version),
    );
  });

  Deno.test(`a frame whose payload was replaced is not reused (level ${version})`, () => {
    const packet = decoded(publish({ properties }), version);
    const replaced = { ...packet, payload: new Uint8Array([9, 9]) };
    assert.deepEqual(
      (decodeOne(encodePublish(replaced, version), version) as PublishPacket).payload,
      replaced.payload,
    );
  });
}

Deno.test("a properties override re-encodes the properties and copies the payload", () => {
  const packet = decoded(publish({ properties: V5_PROPERTIES }), 5);
  const overridden = { topicAlias: 3, subscriptionIdentifiers: [12] };
  const bytes = encodePublish(packet, 5, { properties: overridden });
  const expected = fields({ ...packet, payload: packet.payload.slice(), properties: overridden });
  packet.frame?.fill(0);
  assert.deepStrictEqual(fields(decodeOne(bytes, 5) as PublishPacket), expected, "the payload was copied");
});

Deno.test("a 5.0 frame forwarded at 3.1.1 is re-encoded without properties", () => {
  const packet = decoded(publish({ properties: V5_PROPERTIES }), 5);
  const bytes = encodePublish(packet, 4);
  assert.deepStrictEqual(fields(decodeOne(bytes, 4) as PublishPacket), fields({ ...packet, properties: {} }));
});

Deno.test("a 3.1.1 frame forwarded at 5.0 is re-encoded with a property length", () => {
  const packet = decoded(publish(), 4);
  const bytes = encodePublish(packet, 5);
  assert.equal(bytes.length, (packet.frame?.length ?? 0) + 1);
  assert.deepStrictEqual(fields(decodeOne(bytes, 5) as PublishPacket), fields(packet));
});

Deno.test("3.1 and 3.1.1 frames are interchangeable", () => {
  const packet = decoded(publish(), 4);
  assert.equal(encodePublish(packet, 3), packet.frame);
});

Deno.test("frameLevel tells a 5.0 frame from a 3.1.1 one, and none once the payload no longer views the frame", () => {
  const v4 = decoded(publish(), 4);
  const v5 = decoded(publish(), 5);
  const topicEnd = 2 + 2 + "a/b".length;
  assert.equal(publishTopicEnd(v4.frame!), topicEnd);
  assert.equal(publishTopicEnd(v5.frame!), topicEnd);
  assert.equal(frameLevel(v4.frame!, topicEnd, v4.payload), 4);
  assert.equal(frameLevel(v5.frame!, topicEnd, v5.payload), 5);
  assert.equal(frameLevel(v5.frame!, topicEnd, v5.payload.slice()), undefined);
  assert.equal(frameLevel(v4.frame!, topicEnd, v4.payload.slice()), undefined);
  assert.equal(
    frameLevel(v4.frame!, topicEnd, v4.payload.subarray(0, v4.payload.length - 1)),
    undefined,
    "not the frame's tail",
  );
  const qos0 = decoded(publish({ qos: 0, packetId: undefined }), 4);
  assert.equal(frameLevel(qos0.frame!, topicEnd, qos0.payload), 4, "no packet identifier at QoS 0");
});

Deno.test("forwardableAt answers for the level and QoS asked, where the frame sits in a larger buffer", () => {
  const v4 = decoded(publish(), 4);
  const v5 = decoded(publish(), 5);
  const topicEnd = 2 + 2 + "a/b".length;
  for (const [packet, level] of [[v4, 4], [v5, 5]] as const) {
    const frame = packet.frame!;
    const bytes = new Uint8Array(frame.length + 10);
    bytes.set(frame, 10);
    assert.equal(forwardableAt(bytes, 10, level, level, 1), topicEnd);
    assert.equal(forwardableAt(bytes, 10, level, level, 2), topicEnd);
    assert.equal(forwardableAt(bytes, 10, level, level, 0), -1, "the packet id would disappear");
    assert.equal(publishFrameLength(bytes, 10), frame.length);
  }
  assert.equal(forwardableAt(v4.frame!, 0, 4, 3, 1), topicEnd, "3.1 and 3.1.1 frames are interchangeable");
  assert.equal(forwardableAt(v4.frame!, 0, 4, 5, 1), -1, "a 3.1.1 frame has no property length");
  assert.equal(forwardableAt(v5.frame!, 0, 5, 4, 1), -1);
});

Deno.test("writeForwarded copies the frame from where it sits, with new flags and packet id", () => {
  // Frames inside a larger buffer copied by words (up to 256 bytes, every length modulo 8) and through a
  // view (a 300-byte topic), and a frame that is its buffer whole; the target a part of a larger buffer.
  for (
    const topic of [
      "a/b",
      "a/bc",
      "a/bcd",
      "a/bcde",
      "a/bcdef",
      "a/bcdefg",
      "a/bcdefgh",
      "a/bcdefghi",
      "t".repeat(100),
      "t".repeat(300),
    ]
  ) {
    for (const offset of [0, 7]) {
      const packet = decoded(publish({ topic, retain: true }), 5);
      const frame = packet.frame!;
      const bytes = offset === 0 ? frame : new Uint8Array(frame.length + offset);
      if (offset > 0) bytes.set(frame, offset);
      const target = new Uint8Array(frame.length + 8).subarray(5);
      const idAt = forwardableAt(bytes, offset, 5, 5, 1);
      const bufferWords = new DataView(target.buffer, target.byteOffset, target.byteLength);
      writeForwarded(
        bytes,
        offset,
        frame.length,
        idAt,
        { buffer: target, bufferWords },
        3,
        1,
        true,
        false,
        513,
      );
      const forwarded = decodeOne(target.subarray(3), 5) as PublishPacket;
      assert.deepStrictEqual(
        fields(forwarded),
        { ...fields(packet), dup: true, retain: false, packetId: 513 },
        `topic of ${topic.length} B at ${offset}`,
      );
    }
  }
});

Deno.test("publishEncodedLength is the size encode gives, without the payload's bytes", () => {
  // Remaining lengths across the 1/2/3-byte boundaries, with and without properties, at every level.
  for (const version of [3, 4, 5] as const) {
    for (const qos of [0, 1] as const) {
      for (const payloadLength of [0, 100, 120, 16_370, 16_400]) {
        const variants: Properties[] = [{}, { contentType: "text/plain", userProperties: [["k", "v"]] }];
        for (const properties of variants) {
          const packet = publish({
            payload: new Uint8Array(payloadLength),
            qos,
            packetId: qos > 0 ? 1 : undefined,
            properties,
          });
          assert.equal(
            publishEncodedLength(packet.topic, payloadLength, qos, properties, version),
            encode(packet, version).length,
            `${version} QoS ${qos} ${payloadLength} B ${Object.keys(properties).length} properties`,
          );
        }
      }
    }
  }
});

Deno.test("publishTopicEnd is where the packet id starts, whatever the size of the remaining length", () => {
  // Remaining lengths of 1, 2 and 3 bytes, topics of 0 (with an alias, at 5.0) to 300 bytes.
  for (const version of [4, 5] as const) {
    for (const payloadSize of [0, 100, 20_000]) {
      for (const topicLength of [0, 1, 127, 300]) {
        if (topicLength === 0 && version < 5) continue;
        const properties = topicLength === 0 ? { topicAlias: 1 } : {};
        const packet = decoded(
          publish({ topic: "t".repeat(topicLength), payload: new Uint8Array(payloadSize), properties }),
          version,
        );
        const frame = packet.frame!;
        const at = publishTopicEnd(frame);
        const context = `level ${version}, topic ${topicLength} B, payload ${payloadSize} B`;
        assert.equal((frame[at] << 8) | frame[at + 1], packet.packetId, context);
        assert.equal(frameLevel(frame, at, packet.payload), version, context);
      }
    }
  }
});
