/** The snapshot stream: parts as JSON with their bytes, cut into pieces of a fixed size and put together again. */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import {
  QUEUE_SLICE_BYTES,
  SnapshotReader,
  SnapshotWriter,
  type StatePart,
} from "../../src/cluster/snapshot.ts";
import type { Message } from "../../src/session/mod.ts";

function retained(topic: string, payload: Uint8Array): Message {
  return { topic, payload, qos: 1, retain: true, properties: {}, publisherId: "" };
}

/** The parts read back from `pieces`, checking the stream ended where a part does. */
function readBack(pieces: { data: Uint8Array }[]): StatePart[] {
  const reader = new SnapshotReader();
  const read: StatePart[] = [];
  for (const { data } of pieces) read.push(...reader.push(data));
  assert.equal(reader.atPartBoundary, true);
  return read;
}

/** Writes `parts` through a writer of `pieceBytes`, returning the pieces it sent and how many sends overlapped. */
async function written(parts: StatePart[], pieceBytes: number) {
  const pieces: { data: Uint8Array; last: boolean }[] = [];
  let sending = 0;
  let mostAtOnce = 0;
  const writer = new SnapshotWriter(pieceBytes, async (data, last) => {
    mostAtOnce = Math.max(mostAtOnce, ++sending);
    await Promise.resolve(); // a turn in which a writer that did not wait would send the next piece
    pieces.push({ data: data.slice(), last });
    sending--;
  });
  for (const part of parts) await writer.write(part);
  await writer.end();
  return { pieces, mostAtOnce };
}

Deno.test("cluster snapshot: byte fields come back as plain Uint8Arrays, also from Node Buffers", async () => {
  const part: StatePart = {
    kind: "retained",
    messages: [{
      ...retained("r", Buffer.from("from a buffer")),
      properties: { correlationData: Buffer.from([1, 2]) },
    }],
  };
  const [decoded] = readBack((await written([part], 64)).pieces);
  assert(decoded.kind === "retained");
  const [message] = decoded.messages;
  assert.ok(message.payload instanceof Uint8Array && !Buffer.isBuffer(message.payload));
  assert.equal(new TextDecoder().decode(message.payload), "from a buffer");
  assert.deepEqual([...message.properties.correlationData!], [1, 2]);
});

Deno.test("cluster snapshot: parts cut into pieces of a fixed size, wherever parts end, read back whole and in order", async () => {
  const cluster: StatePart = { kind: "cluster", peers: [["a", 1, 2]], sequences: [["a/1", 3]] };
  const parts: StatePart[] = [
    cluster,
    { kind: "retained", messages: [retained("small", new Uint8Array([1]))] },
    { kind: "retained", messages: [retained("large", new Uint8Array(5000).map((_, i) => i % 251))] },
    { kind: "wills", wills: [] },
  ];
  for (const pieceBytes of [1, 3, 4, 5, 64, 1000, 100_000]) {
    const { pieces, mostAtOnce } = await written(parts, pieceBytes);
    assert.equal(mostAtOnce, 1, "the writer waits for each piece to be taken");
    assert.deepEqual(pieces.map((piece) => piece.last), pieces.map((_, i) => i === pieces.length - 1));
    assert.ok(pieces.every((piece) => piece.data.byteLength <= pieceBytes), `pieces of ${pieceBytes} B`);
    assert.ok(
      pieces.slice(0, -1).every((piece) => piece.data.byteLength === pieceBytes),
      "only the last is short",
    );

    assert.deepEqual(readBack(pieces), parts, `pieces of ${pieceBytes} B`);
  }
});

Deno.test("cluster snapshot: a reader given a stream cut short says it stopped inside a part", async () => {
  const { pieces } = await written([{ kind: "wills", wills: [] }], 4);
  const reader = new SnapshotReader();
  for (const { data } of pieces.slice(0, -1)) assert.deepEqual(reader.push(data), []);
  assert.equal(reader.atPartBoundary, false);
});

/** The length of each record in a stream (a uint32 length before each). */
function recordLengths(pieces: { data: Uint8Array }[]): number[] {
  const stream = new Uint8Array(pieces.reduce((sum, piece) => sum + piece.data.byteLength, 0));
  let at = 0;
  for (const { data } of pieces) (stream.set(data, at), at += data.byteLength);
  const lengths: number[] = [];
  const view = new DataView(stream.buffer);
  for (let offset = 0; offset < stream.byteLength; offset += 4 + lengths.at(-1)!) {
    lengths.push(view.getUint32(offset));
  }
  return lengths;
}

Deno.test("cluster snapshot: a session's long queue goes in records of a bounded size and comes back whole, in order", async () => {
  const queue = Array.from({ length: 200 }, (_, i) => ({
    delivery: {
      message: retained(`q/${i}`, new Uint8Array(10_000).fill(i)),
      grantedQos: 1 as const,
      retain: false,
    },
    qos: 1 as const,
  }));
  const session: StatePart = {
    kind: "session",
    session: {
      state: {
        clientId: "big",
        expiryInterval: 3600,
        subscriptions: [],
        inflight: [],
        queue,
        awaitingRelease: [],
        nextPacketId: 1,
      },
      persistent: true,
      epoch: 7,
    },
  };
  const parts: StatePart[] = [session, { kind: "wills", wills: [] }];
  const { pieces } = await written(parts, 64 * 1024);
  assert.deepEqual(readBack(pieces), parts);
  const lengths = recordLengths(pieces);
  assert.ok(lengths.length >= 8, `2 MB of queue in ${lengths.length} records`);
  // base64 makes 4 bytes of 3, and JSON adds the fields around each payload
  const bound = (QUEUE_SLICE_BYTES + 10_000) * 4 / 3 + 64 * 1024;
  assert.ok(
    lengths.every((length) => length <= bound),
    `records of ${Math.max(...lengths)} B, at most ${bound}`,
  );
});
