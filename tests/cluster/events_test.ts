/** The cluster's event encoding: byte-exact round trips, and damaged entries refused. */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { type ClusterEvent, decodeEvent, encodeEvent } from "../../src/cluster/events.ts";
import { recentSlot, WireError, WireReader, WireWriter } from "../../src/cluster/wire.ts";

const bytes = (text: string) => new TextEncoder().encode(text);

const EVENTS: ClusterEvent[] = [
  {
    kind: "claim",
    node: "a",
    run: 1_700_000_000_000,
    request: 7,
    clientId: "dev/1 ☃",
    cleanStart: false,
    sessionExpiryInterval: 0xffffffff,
    owner: "user:alice",
    address: "192.0.2.7",
    will: { topic: "w", payload: bytes("gone"), qos: 1, retain: true, properties: { willDelayInterval: 30 } },
    attachment: {
      protocolVersion: 5,
      receiveMaximum: 20,
      maximumPacketSize: 4096,
      topicAliasMaximum: 3,
      sessionExpiryInterval: 60,
      requestProblemInformation: false,
    },
  },
  {
    kind: "packet",
    clientId: "c",
    epoch: 2 ** 40 + 5,
    version: 4,
    frame: new Uint8Array([0x30, 0x03, 0, 1, 97]),
  },
  { kind: "leave", clientId: "c", epoch: 9, publishWill: true, sessionExpiryInterval: 10 },
  {
    kind: "publish",
    message: {
      origin: { nodeId: "b", run: 2, sequence: 3 },
      topic: "t/1",
      payload: new Uint8Array(0),
      qos: 2,
      retain: false,
      publisherId: "p",
      expiresAt: 1_800_000_000_000,
      properties: {
        correlationData: bytes("x"),
        userProperties: [["k", "v"], ["k", "w"]],
        contentType: "a/b",
      },
    },
  },
  { kind: "timer", timer: "will", clientId: "c", epoch: 4 },
  { kind: "heartbeat", node: "n", run: 5 },
  { kind: "nodeDown", node: "n", run: 5, lastBeat: -1 },
  { kind: "snapshotRequest", node: "n", run: 6, attempt: 2 },
  {
    kind: "snapshotChunk",
    node: "n",
    run: 6,
    attempt: 2,
    from: "m",
    fromRun: 7.5,
    index: 1,
    last: true,
    data: bytes("{}"),
  },
];

Deno.test("cluster events: every kind round-trips with its time", () => {
  for (const event of EVENTS) {
    const decoded = decodeEvent(encodeEvent(123.5, event));
    assert.deepEqual(decoded, { at: 123.5, event }, event.kind);
  }
});

Deno.test("cluster events: a truncated or padded entry is refused, not misread", () => {
  for (const event of EVENTS) {
    const encoded = encodeEvent(1, event);
    assert.throws(() => decodeEvent(encoded.subarray(0, encoded.length - 1)), WireError, event.kind);
    const padded = new Uint8Array(encoded.length + 1);
    padded.set(encoded);
    assert.throws(() => decodeEvent(padded), WireError, event.kind);
  }
});

Deno.test("cluster events: a publish without its origin is refused (duplicates could not be told apart)", () => {
  const publish = EVENTS.find((event) => event.kind === "publish")!;
  assert(publish.kind === "publish");
  const { origin: _, ...message } = publish.message;
  const unstamped = { kind: "publish", message } as unknown as ClusterEvent;
  assert.throws(() => decodeEvent(encodeEvent(1, unstamped)), WireError, "origin");
});

Deno.test("cluster wire: a string is its UTF-8 bytes after a LEB128 length, short or long, ASCII or not", () => {
  const cases = [
    "",
    "a",
    "x".repeat(63),
    "x".repeat(64),
    "x".repeat(65),
    "y".repeat(63) + "é",
    "é" + "y".repeat(70),
    "日本",
  ];
  for (const text of cases) {
    const utf8 = new TextEncoder().encode(text);
    const length = utf8.length < 0x80 ? [utf8.length] : [(utf8.length & 0x7f) | 0x80, utf8.length >> 7];
    const written = new WireWriter().byte(7).string(text).byte(9).bytes();
    assert.deepEqual([...written], [7, ...length, ...utf8, 9], JSON.stringify(text));
    const reader = new WireReader(written);
    reader.byte();
    assert.equal(reader.string(), text);
  }
});

Deno.test("cluster events: a message without properties carries a zero property length, as the codec writes it", () => {
  for (const properties of [{}, { userProperties: [] }, { contentType: undefined }]) {
    const bytes = encodeEvent(1, { ...publishEvent(), message: { ...publishEvent().message, properties } });
    assert.deepEqual([...bytes.subarray(-2)], [1, 0], JSON.stringify(properties));
    assert.deepEqual(
      (decodeEvent(bytes).event as { message: { properties: object } }).message.properties,
      {},
    );
  }
  const withType = encodeEvent(1, {
    ...publishEvent(),
    message: { ...publishEvent().message, properties: { contentType: "a" } },
  });
  assert.deepEqual([...withType.subarray(-6)], [5, 4, 0x03, 0, 1, 0x61]);
});

function publishEvent(): Extract<ClusterEvent, { kind: "publish" }> {
  return {
    kind: "publish",
    message: {
      topic: "t",
      payload: new Uint8Array([1]),
      qos: 0,
      retain: false,
      publisherId: "p",
      properties: {},
      origin: { nodeId: "n", run: 1, sequence: 1 },
    },
  };
}

Deno.test("cluster wire: strings read again come back right, past many others and from reused Node Buffers", () => {
  const texts = Array.from({ length: 3000 }, (_, i) => i % 7 === 0 ? `ü-${i}` : `client-${i}`);
  const written = new WireWriter();
  for (const text of texts) written.string(text);
  const bytes = written.bytes().slice();
  for (let round = 0; round < 2; round++) {
    const reader = new WireReader(bytes);
    assert.deepEqual(texts.map(() => reader.string()), texts);
  }
  // A reader of a Node Buffer must keep no view of it: the same buffer later holds other bytes, here two
  // ids that share a slot among the recent strings.
  const encode = (text: string) => new TextEncoder().encode(text);
  const slotOf = (text: string) => recentSlot(encode(text), 0, text.length);
  const candidates = Array.from({ length: 100_000 }, (_, i) => `n${String(i).padStart(5, "0")}`);
  const other = candidates.find((text) => slotOf(text) === slotOf("node-a"))!;
  const buffer = Buffer.from(new WireWriter().string("node-a").bytes());
  assert.equal(new WireReader(buffer).string(), "node-a");
  buffer.set(encode(other), 1);
  assert.equal(new WireReader(buffer).string(), other);
  assert.equal(new WireReader(new WireWriter().string("node-a").bytes()).string(), "node-a");
  // Bytes that are not UTF-8 are refused every time, never taken for a string read before.
  assert.throws(() => new WireReader(new Uint8Array([2, 0xc3, 0x28])).string());
  assert.throws(() => new WireReader(new Uint8Array([2, 0xc3, 0x28])).string());
});
