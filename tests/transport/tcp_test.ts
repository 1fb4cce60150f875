import assert from "node:assert/strict";
import v8 from "node:v8";
import { type Accepted, listenTcp, TcpSocket } from "../../src/transport/mod.ts";

/** A listener on a free loopback port, a client connected to it, and the broker's side of that socket. */
async function socketPair(): Promise<
  { accepted: Accepted; client: Deno.TcpConn; stop: () => Promise<void> }
> {
  let onAccepted: (accepted: Accepted) => void = () => {};
  const acceptedNow = new Promise<Accepted>((resolve) => (onAccepted = resolve));
  const listener = listenTcp({ name: "test", hostname: "127.0.0.1", port: 0 }, onAccepted, (error) => {
    throw error;
  });
  const client = await Deno.connect({ hostname: "127.0.0.1", port: listener.port });
  const accepted = await acceptedNow;
  return {
    accepted,
    client,
    stop: async () => {
      listener.close();
      await listener.done;
    },
  };
}

function oldSpaceUsed(): number {
  return v8.getHeapSpaceStatistics().find((space) => space.space_name === "old_space")!.space_used_size;
}

Deno.test("a TCP socket reads what was sent, null after the peer's FIN, and refuses reads once closed", async () => {
  const { accepted, client, stop } = await socketPair();
  const buffer = new Uint8Array(16);
  await client.write(new Uint8Array([1, 2, 3]));
  const n = await accepted.stream.read(buffer);
  assert.deepEqual(buffer.subarray(0, n!), new Uint8Array([1, 2, 3]));
  assert.deepEqual(await accepted.stream.read(new Uint8Array(0)), 0);
  await client.closeWrite();
  assert.deepEqual(await accepted.stream.read(buffer), null);
  accepted.stream.close();
  await assert.rejects(() => accepted.stream.read(buffer));
  client.close();
  await stop();
});

Deno.test("reading a long-lived TCP socket leaves no garbage in V8's old generation", async () => {
  const { accepted, client, stop } = await socketPair();
  assert.ok(
    accepted.stream instanceof TcpSocket && accepted.stream.readsDirectly,
    "no read op found in this runtime",
  );
  // The socket is old, as any that has been connected a while: enough garbage for several scavenges.
  let sink: unknown;
  for (let i = 0; i < 3_000_000; i++) sink = { i };
  assert.ok(sink);
  const byte = new Uint8Array(1);
  const buffer = new Uint8Array(64);
  const READS = 20_000;
  let grown = 0;
  let before = oldSpaceUsed();
  for (let i = 0; i < READS; i++) {
    await client.write(byte);
    assert.deepEqual(await accepted.stream.read(buffer), 1);
    if (i % 100 === 99) {
      // A full collection may shrink the old generation meanwhile: only its growth counts.
      const now = oldSpaceUsed();
      grown += Math.max(0, now - before);
      before = now;
    }
  }
  // Deno.Conn.read leaves ~114 B per read there (its Set of pending reads re-made in the old generation).
  const perRead = grown / READS;
  assert.ok(perRead < 30, `${perRead.toFixed(1)} B of old-generation growth per read, 30 B at most`);
  accepted.stream.close();
  client.close();
  await stop();
});
