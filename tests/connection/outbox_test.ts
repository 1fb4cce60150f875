/**
 * The outbox's buffers (src/connection/outbox.ts): while a write is in flight, a buffer grows only when the
 * one before it filled up. The stream here is a stand-in whose writes stay pending until the test lets
 * them finish, so that "a write in flight" is a state the test controls; the broker-level behaviour is
 * covered by the connection and resources suites.
 */
import assert from "node:assert/strict";
import { BufferPool } from "../../src/connection/buffer_pool.ts";
import { Outbox, type OutboxOwner } from "../../src/connection/outbox.ts";
import type { ByteStream } from "../../src/transport/mod.ts";

/** A stream whose writes resolve only when {@link finishWrites} is called. */
class PendingStream implements ByteStream {
  readonly writes: Uint8Array[] = [];
  #pending: (() => void)[] = [];

  read(): Promise<number | null> {
    return new Promise(() => {});
  }

  write(data: Uint8Array): Promise<number> {
    this.writes.push(data.slice());
    return new Promise((resolve) => this.#pending.push(() => resolve(data.byteLength)));
  }

  finishWrites(): void {
    const pending = this.#pending;
    this.#pending = [];
    for (const finish of pending) finish();
  }

  close(): void {}
}

const owner: OutboxOwner = { writeFailed() {}, written() {}, outboxIdle() {} };
const LARGE = 16 * 1024;

/** Queues `length` bytes and returns the size of the buffer they went into. */
function queue(outbox: Outbox, length: number): number {
  const at = outbox.reserve(length);
  outbox.buffer.fill(1, at, at + length);
  return outbox.buffer.byteLength;
}

const turn = () => new Promise((resolve) => setTimeout(resolve, 0));

Deno.test("outbox: while a write is in flight, a buffer ended by a hold is followed by a pooled one, not a doubled one", async () => {
  const stream = new PendingStream();
  const outbox = new Outbox(stream, 8 << 20, new BufferPool(256, 4), new BufferPool(LARGE, 4), owner);
  queue(outbox, 100);
  await turn();
  assert.equal(stream.writes.length, 1, "the first write is in flight");
  const sizes: number[] = [];
  for (let i = 0; i < 8; i++) {
    // A persistent subscriber's turn: a PUBLISH held until the session state it implies is stored.
    sizes.push(queue(outbox, 300));
    outbox.holdUntil(Promise.resolve());
    await turn();
  }
  assert.deepEqual(sizes, Array(8).fill(LARGE), "each turn's few hundred bytes take the pooled size");
  for (let i = 0; i < 20; i++) {
    stream.finishWrites();
    await turn();
  }
  const written = stream.writes.map((write) => write.byteLength).reduce((a, b) => a + b);
  assert.equal(written, 100 + 8 * 300, "every byte queued is written, once");
});

Deno.test("outbox: while a write is in flight, a buffer that fills up is followed by one twice its size", async () => {
  const stream = new PendingStream();
  const outbox = new Outbox(stream, 8 << 20, new BufferPool(256, 4), new BufferPool(LARGE, 4), owner);
  queue(outbox, 100);
  await turn();
  const sizes = new Set<number>();
  for (let i = 0; i < 200; i++) sizes.add(queue(outbox, 1000));
  assert.deepEqual(
    [...sizes],
    [LARGE, 2 * LARGE, 4 * LARGE, 8 * LARGE],
    "a backlog grows to fewer, larger writes",
  );
  outbox.close();
  stream.finishWrites();
});

Deno.test("outbox: a turn's frames that outgrow the small buffer go out in one write, in order", async () => {
  const stream = new PendingStream();
  const small = new BufferPool(256, 4);
  const outbox = new Outbox(stream, 8 << 20, small, new BufferPool(LARGE, 4), owner);
  // A fan-out subscriber's turn: its window freed by one read of acknowledgements, 12 frames of 79 bytes.
  let smallBuffer: Uint8Array | undefined;
  for (let i = 0; i < 12; i++) {
    const at = outbox.reserve(79);
    smallBuffer ??= outbox.buffer;
    outbox.buffer.fill(i + 1, at, at + 79);
  }
  await turn();
  assert.equal(stream.writes.length, 1, "one write, not the small buffer's 256 bytes and then the rest");
  const expected = new Uint8Array(12 * 79);
  for (let i = 0; i < 12; i++) expected.fill(i + 1, i * 79, (i + 1) * 79);
  assert.deepEqual(stream.writes[0], expected);
  assert.equal(smallBuffer!.byteLength, 256, "the turn started in the small buffer");
  assert.equal(small.take(), smallBuffer, "the small buffer went back to its pool");
  stream.finishWrites();
  await turn();
});

/**
 * A stream that takes at most `room` bytes per writeNow and then nothing (undefined) until the test gives it
 * room again; its promise writes are counted and stay pending like {@link PendingStream}'s.
 */
class RoomStream extends PendingStream {
  readonly taken: Uint8Array[] = [];
  constructor(public room: number) {
    super();
  }

  writeNow(data: Uint8Array): number | undefined {
    if (this.room === 0) return undefined;
    const n = Math.min(this.room, data.byteLength);
    this.room -= n;
    this.taken.push(data.slice(0, n));
    return n;
  }
}

Deno.test("outbox: a stream that takes bytes at once gets them without a promise write; a full one falls back to write(), in order", async () => {
  const stream = new RoomStream(1 << 20);
  let written = 0;
  let idle = 0;
  const counting: OutboxOwner = { writeFailed() {}, written: (n) => written += n, outboxIdle: () => idle++ };
  const outbox = new Outbox(stream, 8 << 20, new BufferPool(256, 4), new BufferPool(LARGE, 4), counting);
  queue(outbox, 100);
  await turn();
  assert.deepEqual([stream.taken.length, stream.writes.length, written, idle], [1, 0, 100, 1]);

  // 600 bytes against room for 250: a partial take, then the rest waits in a promise write.
  stream.room = 250;
  const at = outbox.reserve(600);
  for (let i = 0; i < 600; i++) outbox.buffer[at + i] = i & 0xff;
  await turn();
  assert.equal(stream.taken.at(-1)!.byteLength, 250);
  assert.equal(stream.writes.length, 1, "the rest went to write()");
  assert.equal(stream.writes[0].byteLength, 350);
  stream.finishWrites();
  await turn();
  const sent = new Uint8Array([...stream.taken.at(-1)!, ...stream.writes[0]]);
  assert.deepEqual(sent, Uint8Array.from({ length: 600 }, (_, i) => i & 0xff), "every byte once, in order");
  assert.deepEqual([written, idle], [700, 2]);
});

Deno.test("outbox: a stream whose writeNow throws fails the outbox as a failed write does", async () => {
  const stream = new RoomStream(0);
  stream.writeNow = () => {
    throw new Deno.errors.BrokenPipe("gone");
  };
  const failures: unknown[] = [];
  const watching: OutboxOwner = {
    writeFailed: (error) => failures.push(error),
    written() {},
    outboxIdle() {},
  };
  const outbox = new Outbox(stream, 8 << 20, new BufferPool(256, 4), new BufferPool(LARGE, 4), watching);
  queue(outbox, 10);
  await turn();
  assert.equal(failures.length, 1);
  assert(failures[0] instanceof Deno.errors.BrokenPipe);
  assert.equal(outbox.writable, false, "closed");
  assert.equal(stream.writes.length, 0);
});

Deno.test("outbox: thousands of queued buffers that a stream takes at once are written in a loop, not one nested call each", async () => {
  const stream = new RoomStream(0);
  let written = 0;
  const counting: OutboxOwner = { writeFailed() {}, written: (n) => written += n, outboxIdle() {} };
  // Frames larger than the large pool's buffers go out one by one: 40,000 of them queue behind the first write.
  const outbox = new Outbox(stream, 64 << 20, new BufferPool(32, 4), new BufferPool(48, 4), counting);
  const frame = new Uint8Array(64).fill(7);
  outbox.push(frame);
  await turn();
  assert.equal(stream.writes.length, 1, "the socket was full: the first frame waits in a write");
  for (let i = 0; i < 40_000; i++) outbox.push(frame);
  stream.room = 1 << 30;
  stream.finishWrites();
  await turn();
  assert.equal(written, 64 * 40_001, "every frame written once the socket had room");
  assert.equal(stream.taken.length, 40_000);
});
