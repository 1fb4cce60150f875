/**
 * The incremental decoder: arbitrary chunking, `needed`, maxPacketSize enforced before the body is
 * buffered, ownership of returned bytes, and the protocol level.
 */
import assert from "node:assert/strict";
import {
  DecodedPublish,
  Decoder,
  encode,
  MqttError,
  type Packet,
  type ProtocolVersion,
  type PublishPacket,
  publishPayloadLength,
  ReasonCode,
} from "../../src/codec/mod.ts";
import { canonical } from "./support/canonical.ts";
import { Random } from "./support/random.ts";
import { randomPacket } from "./support/random_packets.ts";

const exact = (packets: Packet[]) =>
  packets.map((packet) => canonical(packet, { groupUserProperties: false }));

function randomStream(
  seed: number,
  count: number,
  version: ProtocolVersion,
): { packets: Packet[]; bytes: Uint8Array } {
  const random = new Random(seed);
  const packets: Packet[] = [];
  // A CONNECT would switch the decoder's level, so streams here stay at one level.
  while (packets.length < count) {
    const packet = randomPacket(random, version, { mqttPacketCompatible: false });
    if (packet.type !== "connect") packets.push(packet);
  }
  const encoded = packets.map((packet) => encode(packet, version));
  const bytes = new Uint8Array(encoded.reduce((sum, part) => sum + part.length, 0));
  let offset = 0;
  for (const part of encoded) {
    bytes.set(part, offset);
    offset += part.length;
  }
  return { packets, bytes };
}

function drain(decoder: Decoder, into: Packet[]): void {
  for (let packet = decoder.next(); packet !== undefined; packet = decoder.next()) into.push(packet);
}

function publishFrame(payloadLength: number, version: ProtocolVersion = 4): Uint8Array {
  const payload = new Uint8Array(payloadLength).fill(0x61);
  return encode(
    { type: "publish", topic: "t", payload, qos: 0, retain: false, dup: false, properties: {} },
    version,
  );
}

function assertReason(reasonCode: number): (error: unknown) => boolean {
  return (error) => error instanceof MqttError && error.reasonCode === reasonCode;
}

for (const version of [3, 4, 5] as const) {
  Deno.test(`decodes a stream fed one byte at a time (level ${version})`, () => {
    const { packets, bytes } = randomStream(version, 60, version);
    const decoder = new Decoder({ maxPacketSize: 1 << 16, protocolVersion: version });
    const decoded: Packet[] = [];
    for (let i = 0; i < bytes.length; i++) {
      decoder.push(bytes.subarray(i, i + 1));
      const before = decoded.length;
      drain(decoder, decoded);
      assert.ok(decoder.needed >= 1);
      if (decoded.length > before) assert.equal(decoder.needed, 2, "idle after a whole packet");
    }
    assert.deepStrictEqual(exact(decoded), exact(packets));
  });

  Deno.test(`decodes many packets from one chunk (level ${version})`, () => {
    const { packets, bytes } = randomStream(100 + version, 200, version);
    const decoder = new Decoder({ maxPacketSize: 1 << 16, protocolVersion: version });
    decoder.push(bytes);
    const decoded: Packet[] = [];
    drain(decoder, decoded);
    assert.deepStrictEqual(exact(decoded), exact(packets));
    assert.equal(decoder.needed, 2);
  });

  Deno.test(`decodes a stream cut into random chunks (level ${version})`, () => {
    const { packets, bytes } = randomStream(200 + version, 200, version);
    const random = new Random(version);
    const decoder = new Decoder({ maxPacketSize: 1 << 16, protocolVersion: version });
    const decoded: Packet[] = [];
    for (let offset = 0; offset < bytes.length;) {
      const end = Math.min(bytes.length, offset + random.int(1, 80));
      decoder.push(bytes.subarray(offset, end));
      drain(decoder, decoded);
      offset = end;
    }
    assert.deepStrictEqual(exact(decoded), exact(packets));
  });
}

Deno.test("needed counts the bytes missing from the packet being read", () => {
  const bytes = publishFrame(6); // 0x30, remaining length 9, topic "t", 6 payload bytes: 11 bytes
  const decoder = new Decoder({ maxPacketSize: 100 });
  assert.equal(decoder.needed, 2, "idle");
  decoder.push(bytes.subarray(0, 1));
  assert.equal(decoder.next(), undefined);
  assert.equal(decoder.needed, 1, "inside the fixed header");
  decoder.push(bytes.subarray(1, 3));
  assert.equal(decoder.next(), undefined);
  assert.equal(decoder.needed, 8);
  decoder.push(bytes.subarray(3, 10));
  assert.equal(decoder.next(), undefined);
  assert.equal(decoder.needed, 1);
  decoder.push(bytes.subarray(10));
  assert.equal(decoder.next()?.type, "publish");
  assert.equal(decoder.needed, 2);
});

Deno.test("chunks pushed before next() is called are queued in order", () => {
  const decoder = new Decoder({ maxPacketSize: 100 });
  decoder.push(new Uint8Array([0xc0]));
  decoder.push(new Uint8Array([]));
  decoder.push(new Uint8Array([0x00, 0xd0, 0x00]));
  decoder.push(new Uint8Array([0xe0, 0x00]));
  const decoded: Packet[] = [];
  drain(decoder, decoded);
  assert.deepEqual(decoded.map((packet) => packet.type), ["pingreq", "pingresp", "disconnect"]);
});

Deno.test("maxPacketSize is enforced from the fixed header, before the body is buffered", () => {
  const decoder = new Decoder({ maxPacketSize: 100 });
  decoder.push(new Uint8Array([0x30, 0xe8])); // PUBLISH, remaining length 1000 (first byte of two)
  assert.equal(decoder.next(), undefined);
  decoder.push(new Uint8Array([0x07]));
  assert.throws(() => decoder.next(), assertReason(ReasonCode.PacketTooLarge));
  assert.equal(decoder.buffered, 0);
});

Deno.test("maxPacketSize counts the whole packet, fixed header included", () => {
  // Remaining length 100 (topic length 2, topic "t" 1, payload 97) plus a 2-byte fixed header.
  const fits = publishFrame(97);
  assert.equal(fits.length, 102);
  const accepting = new Decoder({ maxPacketSize: 102 });
  accepting.push(fits);
  assert.equal(accepting.next()?.type, "publish");
  const refusing = new Decoder({ maxPacketSize: 101 });
  refusing.push(fits.subarray(0, 2));
  assert.throws(() => refusing.next(), assertReason(ReasonCode.PacketTooLarge));
});

Deno.test("maxPacketSize can be changed between packets", () => {
  const decoder = new Decoder({ maxPacketSize: 1000 });
  decoder.push(publishFrame(50));
  assert.equal(decoder.next()?.type, "publish");
  decoder.maxPacketSize = 10;
  decoder.push(publishFrame(50));
  assert.throws(() => decoder.next(), assertReason(ReasonCode.PacketTooLarge));
});

Deno.test("after an error the decoder keeps failing with the same error", () => {
  const decoder = new Decoder({ maxPacketSize: 100 });
  decoder.push(new Uint8Array([0x00, 0x00]));
  let first: unknown;
  assert.throws(() => decoder.next(), (error) => (first = error) instanceof MqttError);
  decoder.push(new Uint8Array([0xc0, 0x00]));
  assert.throws(() => decoder.next(), (error) => error === first);
});

Deno.test("the caller may reuse its read buffer once next() returned undefined", () => {
  const first = publishFrame(30);
  const second = publishFrame(40);
  const readBuffer = new Uint8Array(first.length + 10);
  readBuffer.set(first);
  readBuffer.set(second.subarray(0, 10), first.length);
  const decoder = new Decoder({ maxPacketSize: 1000 });
  decoder.push(readBuffer);
  const decoded: Packet[] = [];
  drain(decoder, decoded);
  readBuffer.fill(0xff);
  decoder.push(second.subarray(10));
  drain(decoder, decoded);
  const [a, b] = decoded as PublishPacket[];
  assert.deepEqual(a.frame, first);
  assert.deepEqual(a.payload, new Uint8Array(30).fill(0x61));
  assert.deepEqual(b.frame, second);
  assert.deepEqual(b.payload, new Uint8Array(40).fill(0x61));
});

Deno.test("the frames of one read are copied together, and a refilled read buffer gives its new frames", () => {
  // One decoder and one read buffer, refilled for each read with other frames at the same places: first a
  // single PUBLISH twice, then more than one copied run (4 KiB) of PUBLISHes with PUBACKs between them.
  const random = new Random(16);
  const readBuffer = new Uint8Array(16 * 1024);
  const decoder = new Decoder({ maxPacketSize: 1000, reusePackets: true });
  for (const [round, wanted] of [[1, 1], [2, 1], [3, 12 * 1024]]) {
    const expected: Uint8Array[] = [];
    let length = 0;
    while (length < wanted) {
      const frame = encode({
        type: "publish",
        topic: `r${round}`,
        payload: random.bytes(wanted === 1 ? 50 : random.int(1, 200)),
        qos: 1,
        packetId: 1 + expected.length,
        retain: false,
        dup: false,
        properties: {},
      }, 4);
      readBuffer.set(frame, length);
      length += frame.length;
      readBuffer.set(encode({ type: "puback", packetId: 7, reasonCode: 0, properties: {} }, 4), length);
      length += 4;
      expected.push(frame);
    }
    decoder.push(readBuffer, length);
    const frames: Uint8Array[] = [];
    const payloads: Uint8Array[] = [];
    for (let packet = decoder.next(); packet !== undefined; packet = decoder.next()) {
      if (packet.type === "publish") {
        frames.push(packet.frame!);
        payloads.push(packet.payload);
      }
    }
    readBuffer.fill(0xff);
    assert.equal(frames.length, expected.length);
    frames.forEach((frame, i) => assert.deepEqual(frame, expected[i], `read ${round}, frame ${i}`));
    payloads.forEach((payload, i) =>
      assert.deepEqual(payload, expected[i].subarray(expected[i].length - payload.length))
    );
  }
});

Deno.test("returned packets own their bytes: frame is a copy and payload views it", () => {
  const bytes = encode({
    type: "connect",
    protocolName: "MQTT",
    protocolVersion: 5,
    cleanStart: true,
    keepAlive: 0,
    clientId: "c",
    password: new Uint8Array([1, 2, 3]),
    properties: { authenticationMethod: "m", authenticationData: new Uint8Array([4]) },
  }, 5);
  const publish = publishFrame(8, 5);
  const chunk = new Uint8Array([...bytes, ...publish]);
  const decoder = new Decoder({ maxPacketSize: 1000 });
  decoder.push(chunk);
  const connect = decoder.next() as Packet & { type: "connect" };
  const packet = decoder.next() as PublishPacket;
  chunk.fill(0);
  assert.deepEqual(connect.password, new Uint8Array([1, 2, 3]));
  assert.deepEqual(connect.properties.authenticationData, new Uint8Array([4]));
  assert.deepEqual(packet.frame, publish);
  assert.equal(packet.payload.buffer, packet.frame?.buffer);
  assert.deepEqual(packet.payload, new Uint8Array(8).fill(0x61));
});

Deno.test("a CONNECT sets the level used for the packets after it", () => {
  const connect = encode({
    type: "connect",
    protocolName: "MQTT",
    protocolVersion: 5,
    cleanStart: true,
    keepAlive: 0,
    clientId: "c",
    properties: {},
  }, 5);
  const puback = encode({ type: "puback", packetId: 1, reasonCode: 0x10, properties: {} }, 5);
  const decoder = new Decoder({ maxPacketSize: 1000 });
  assert.equal(decoder.protocolVersion, 4);
  decoder.push(new Uint8Array([...connect, ...puback]));
  assert.equal(decoder.next()?.type, "connect");
  assert.equal(decoder.protocolVersion, 5);
  assert.deepEqual(decoder.next(), { type: "puback", packetId: 1, reasonCode: 0x10, properties: {} });
});

Deno.test("protocolVersion can be set by a client after sending CONNECT", () => {
  const decoder = new Decoder({ maxPacketSize: 1000, protocolVersion: 4 });
  decoder.protocolVersion = 5;
  decoder.push(new Uint8Array([0xe0, 0x01, 0x8e])); // DISCONNECT, reason 0x8e session taken over
  assert.deepEqual(decoder.next(), { type: "disconnect", reasonCode: 0x8e, properties: {} });
});

Deno.test("reusePackets: plain acknowledgements come back as one object, each right until the next call", () => {
  const bytes = new Uint8Array([0x40, 2, 0, 1, 0x50, 2, 0, 2, 0x62, 2, 0, 3, 0x70, 2, 0, 4]);
  const reusing = new Decoder({ maxPacketSize: 1024, reusePackets: true });
  reusing.push(bytes);
  const first = reusing.next();
  assert.deepEqual(first, { type: "puback", packetId: 1, reasonCode: 0, properties: {} });
  const seen: [string, number][] = [];
  for (let packet = reusing.next(); packet; packet = reusing.next()) {
    assert.ok(packet === first, "the same object");
    seen.push([packet.type, (packet as { packetId: number }).packetId]);
  }
  assert.deepEqual(seen, [["pubrec", 2], ["pubrel", 3], ["pubcomp", 4]]);
  const fresh = new Decoder({ maxPacketSize: 1024 });
  fresh.push(bytes);
  assert.notEqual(fresh.next(), fresh.next(), "without the option every packet is an object of its own");
});

Deno.test("reusePackets: a run of PUBACKs split anywhere, with other packets and faults among them, decodes as a fresh decoder does", () => {
  // PUBACKs whole in a chunk take a shorter way than the other packets; the answers must not differ.
  const pubacks = [1, 2, 0x1234, 65535, 255, 256].map((packetId) =>
    encode({ type: "puback", packetId, reasonCode: 0, properties: {} }, 5)
  );
  const others = [
    encode({ type: "puback", packetId: 7, reasonCode: 0x10, properties: {} }, 5),
    encode({ type: "pubrec", packetId: 8, reasonCode: 0, properties: {} }, 5),
    encode({ type: "pingreq" }, 5),
  ];
  const stream = [...pubacks.slice(0, 3), ...others, ...pubacks.slice(3)];
  const bytes = new Uint8Array(stream.reduce((sum, part) => sum + part.length, 0));
  stream.reduce((at, part) => (bytes.set(part, at), at + part.length), 0);
  const expected: Packet[] = [];
  const fresh = new Decoder({ maxPacketSize: 1024, protocolVersion: 5 });
  fresh.push(bytes);
  for (let packet = fresh.next(); packet; packet = fresh.next()) expected.push(packet);
  for (let split = 0; split <= bytes.length; split++) {
    const reusing = new Decoder({ maxPacketSize: 1024, protocolVersion: 5, reusePackets: true });
    const seen: Packet[] = [];
    for (const chunk of [bytes.subarray(0, split), bytes.subarray(split)]) {
      reusing.push(chunk.slice());
      for (let packet = reusing.next(); packet; packet = reusing.next()) seen.push(structuredClone(packet));
    }
    assert.deepEqual(exact(seen), exact(expected), `split at ${split}`);
  }
  // Packet id 0, and a packet larger than the maximum, fail as they do the common way.
  for (
    const [bytes, maxPacketSize, reasonCode] of [
      [[0x40, 2, 0, 0], 1024, ReasonCode.ProtocolError],
      [[0x40, 2, 0, 1], 3, ReasonCode.PacketTooLarge],
    ] as const
  ) {
    for (const reusePackets of [false, true]) {
      const decoder = new Decoder({ maxPacketSize, reusePackets });
      decoder.push(new Uint8Array(bytes));
      assert.throws(() => decoder.next(), assertReason(reasonCode), `${bytes} max ${maxPacketSize}`);
    }
  }
});

Deno.test("reusePackets: PUBLISHes come back as one object, each with its own frame and payload", () => {
  const packets: PublishPacket[] = [
    {
      type: "publish",
      topic: "a/b",
      payload: new Uint8Array([1, 2]),
      qos: 1,
      retain: true,
      dup: false,
      packetId: 7,
      properties: {},
    },
    {
      type: "publish",
      topic: "c",
      payload: new Uint8Array([3]),
      qos: 0,
      retain: false,
      dup: false,
      properties: {},
    },
  ];
  const reusing = new Decoder({ maxPacketSize: 1024, reusePackets: true });
  for (const packet of packets) reusing.push(encode(packet, 4));
  const first = reusing.next() as PublishPacket;
  assert.deepEqual([first.topic, [...first.payload], first.qos, first.retain, first.packetId], [
    "a/b",
    [1, 2],
    1,
    true,
    7,
  ]);
  const firstFrame = first.frame!;
  const firstPayload = first.payload;
  const second = reusing.next() as PublishPacket;
  assert.ok(second === first, "the same object");
  assert.deepEqual([second.topic, [...second.payload], second.qos, second.retain, second.packetId], [
    "c",
    [3],
    0,
    false,
    undefined,
  ]);
  assert.deepEqual([...firstFrame], [...encode(packets[0], 4)], "the first frame is left as it was");
  assert.deepEqual([...firstPayload], [1, 2]);
});

Deno.test("reusePackets: a PUBLISH keeps its place in the read's copy, and its frame and payload read from there equal a fresh decoder's", () => {
  // Both layouts (5.0 with and without properties), QoS 0 and 1, several frames in one read (one copy of
  // the read shared by their packets), a frame split across two reads, and one larger than a copied run.
  for (const version of [4, 5] as const) {
    const packets: PublishPacket[] = [
      {
        type: "publish",
        topic: "a",
        payload: new Uint8Array([1]),
        qos: 0,
        retain: false,
        dup: false,
        properties: {},
      },
      {
        type: "publish",
        topic: "b/c",
        payload: new Uint8Array(300).fill(2),
        qos: 1,
        packetId: 9,
        retain: true,
        dup: false,
        properties: version === 5 ? { contentType: "x" } : {},
      },
      {
        type: "publish",
        topic: "d",
        payload: new Uint8Array(0),
        qos: 1,
        packetId: 3,
        retain: false,
        dup: true,
        properties: {},
      },
    ];
    const frames = packets.map((packet) => encode(packet, version));
    const big = encode({ ...packets[1], payload: new Uint8Array(5000).fill(5) }, version);
    const read = new Uint8Array([...frames.flatMap((frame) => [...frame]), ...big.subarray(0, 10)]);
    const reusing = new Decoder({ maxPacketSize: 1 << 16, protocolVersion: version, reusePackets: true });
    reusing.push(read);
    const views: Uint8Array[] = [];
    for (const frame of frames) {
      const packet = reusing.next() as DecodedPublish;
      assert.ok(packet instanceof DecodedPublish);
      const fresh = new Decoder({ maxPacketSize: 1 << 16, protocolVersion: version });
      fresh.push(frame);
      const expected = fresh.next() as PublishPacket;
      assert.deepEqual(packet.frame, frame);
      assert.deepEqual(packet.payload, expected.payload);
      assert.equal(publishPayloadLength(packet), expected.payload.length);
      assert.equal(packet.frameLevel, version, "the layout of the frame");
      assert.deepEqual(
        [packet.topic, packet.qos, packet.retain, packet.dup, packet.packetId, packet.properties],
        [expected.topic, expected.qos, expected.retain, expected.dup, expected.packetId, expected.properties],
      );
      assert.equal(packet.frameBytes.byteOffset, 0, "a view of the whole buffer");
      views.push(packet.frameBytes);
    }
    assert.ok(views.every((view) => view === views[0]), "one view for the frames of one read");
    reusing.push(big.subarray(10));
    const split = reusing.next() as DecodedPublish;
    assert.deepEqual(split.frame, big);
    assert.deepEqual(split.payload, new Uint8Array(5000).fill(5));
    assert.equal(publishPayloadLength(split), 5000);
    const whole = new Decoder({ maxPacketSize: 1 << 16, protocolVersion: version, reusePackets: true });
    whole.push(big);
    const large = whole.next() as DecodedPublish;
    assert.deepEqual(large.frame, big, "a frame larger than a copied run");
    assert.deepEqual(large.payload, new Uint8Array(5000).fill(5));
  }
});
