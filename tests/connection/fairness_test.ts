/**
 * One connection whose bytes never stop arriving must not hold up every other connection: its read loop
 * gives the event loop a turn after each read that filled the large buffer. The flooder here is a stream
 * whose every read completes at once, as a fast client's do when the broker cannot keep up.
 */
import assert from "node:assert/strict";
import { withBroker } from "../helpers/broker.ts";
import { connect, publishPacket, readPublish, subscribe, subscription, text } from "../helpers/clients.ts";
import type { ByteStream } from "../../src/transport/mod.ts";

/** CONNECT, MQTT 3.1.1, clean session, keep alive 0, client id "flood". */
const CONNECT = Uint8Array.from([
  0x10,
  17,
  ...[0, 4, 0x4d, 0x51, 0x54, 0x54, 4, 2, 0, 0],
  ...[0, 5, ...new TextEncoder().encode("flood")],
]);

/** A QoS 0 PUBLISH to "flood/x" (nobody subscribes) of exactly 64 bytes: 1,024 fill a 64 KiB read. */
function floodFrame(): Uint8Array {
  const topic = new TextEncoder().encode("flood/x");
  const frame = new Uint8Array(64);
  frame.set([0x30, 62, 0, topic.length, ...topic]);
  return frame;
}

/** Reads that complete at once: the CONNECT, then `reads` buffers full of PUBLISHes, then the end. */
function floodingStream(reads: number): ByteStream & { readsLeft(): number } {
  const frame = floodFrame();
  let connected = false;
  let left = reads;
  return {
    read(buffer: Uint8Array): Promise<number | null> {
      if (!connected) {
        connected = true;
        buffer.set(CONNECT);
        return Promise.resolve(CONNECT.length);
      }
      if (left === 0) return Promise.resolve(null);
      left--;
      for (let at = 0; at + frame.length <= buffer.length; at += frame.length) buffer.set(frame, at);
      return Promise.resolve(buffer.length - (buffer.length % frame.length));
    },
    write: (data: Uint8Array) => Promise.resolve(data.byteLength),
    close() {},
    readsLeft: () => left,
  };
}

Deno.test("a client that floods the broker does not starve the others: a message published meanwhile arrives before the flood ends", async () => {
  await withBroker("", async ({ port, running }) => {
    const { client: subscriber } = await connect(port, "sub");
    await subscribe(subscriber, 4, [subscription("calm/x", 0)]);
    const { client: publisher } = await connect(port, "pub");

    const reads = 400; // 400 × 1,024 PUBLISHes: a bounded flood
    const flood = floodingStream(reads);
    running.connections.accept(
      { stream: flood, remoteAddress: "flood", certificateCommonName: undefined },
      { name: "test", open: 0, total: 0 },
      0,
    );
    // Sent while the flood is being read: its socket is served only when the event loop gets a turn.
    const sent = publisher.sendPacket(publishPacket("calm/x", "meanwhile", 0), 4);
    const delivered = await readPublish(subscriber);
    const readsLeftAtDelivery = flood.readsLeft();
    await sent;

    assert.equal(text(delivered.payload), "meanwhile");
    assert.ok(
      readsLeftAtDelivery > 0,
      `the other client's message waited until all ${reads} flooding reads were handled`,
    );
    await Promise.all([subscriber.close(), publisher.close()]);
  });
});
