/**
 * The epoll transport (src/transport/epoll.ts) over real loopback sockets, with Deno's own sockets as the
 * other end: the ByteStream contract (reads, the end of the stream, backpressure, half-close, close), the
 * remote address as Deno would print it, bind errors, and the loop ending once the last socket is closed.
 * The MQTT suites run over it too (`TEST_LISTENER_IO=epoll`, .ci/run); running out of descriptors is in
 * tests/resources/descriptors_test.ts.
 */
import assert from "node:assert/strict";
import type { Accepted } from "../../src/transport/mod.ts";
import {
  epollStopped,
  epollUnsupported,
  formatIPv6,
  listenEpollTcp,
  socketAddress,
} from "../../src/transport/epoll.ts";

if (epollUnsupported()) throw new Error(`these tests need epoll I/O: ${epollUnsupported()}`);

/** An epoll listener on a free port, a Deno client connected to it, and the broker's side of that socket. */
async function socketPair(hostname = "127.0.0.1"): Promise<
  { accepted: Accepted; client: Deno.TcpConn; stop: () => Promise<void> }
> {
  let onAccepted: (accepted: Accepted) => void = () => {};
  const acceptedNow = new Promise<Accepted>((resolve) => (onAccepted = resolve));
  const listener = listenEpollTcp({ name: "test", hostname, port: 0 }, onAccepted, (error) => {
    throw error;
  });
  const client = await Deno.connect({ hostname, port: listener.port });
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

/** Everything the peer sends until its FIN, leaving the socket open for writing. */
async function readAll(conn: Deno.Conn): Promise<Uint8Array> {
  const chunks: Uint8Array<ArrayBuffer>[] = [];
  const buffer = new Uint8Array(65536);
  for (let n = await conn.read(buffer); n !== null; n = await conn.read(buffer)) {
    chunks.push(buffer.slice(0, n));
  }
  return new Uint8Array(await new Blob(chunks).arrayBuffer());
}

Deno.test("epoll: a socket reads what was sent, null after the peer's FIN, and refuses reads once closed", async () => {
  const { accepted, client, stop } = await socketPair();
  const buffer = new Uint8Array(16);
  await client.write(new Uint8Array([1, 2, 3]));
  const n = await accepted.stream.read(buffer);
  assert.deepEqual(buffer.subarray(0, n!), new Uint8Array([1, 2, 3]));
  assert.equal(await accepted.stream.read(new Uint8Array(0)), 0);
  await client.closeWrite();
  assert.equal(await accepted.stream.read(buffer), null);
  accepted.stream.close();
  await assert.rejects(() => accepted.stream.read(buffer), Deno.errors.BadResource);
  await assert.rejects(() => accepted.stream.write(buffer), Deno.errors.BadResource);
  assert.throws(() => accepted.stream.close(), Deno.errors.BadResource);
  client.close();
  await stop();
  // Nothing is left to watch: the loop ends and closes libc (the test's sanitizers check no op is left).
  await epollStopped();
});

Deno.test("epoll: a read pending when the socket is closed ends as the end of the stream; the peer sees the close", async () => {
  const { accepted, client, stop } = await socketPair();
  const pending = accepted.stream.read(new Uint8Array(16));
  accepted.stream.close();
  assert.equal(await pending, null);
  assert.equal(await client.read(new Uint8Array(16)), null);
  client.close();
  await stop();
});

Deno.test("epoll: a write to a client that does not read waits for room, then every byte arrives in order", async () => {
  const { accepted, client, stop } = await socketPair();
  const data = new Uint8Array(16 << 20);
  for (let i = 0; i < data.length; i++) data[i] = (i * 7 + (i >> 12)) & 255;
  let offset = 0;
  let partial = 0;
  const writing = (async () => {
    while (offset < data.length) {
      const n = await accepted.stream.write(data.subarray(offset));
      if (offset + n < data.length) partial++;
      offset += n;
    }
    accepted.stream.close();
  })();
  // The client reads nothing for a while: the socket's buffers fill and the writer must wait.
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.ok(offset < data.length, `all ${data.length} bytes taken with nobody reading`);
  const received = await readAll(client);
  await writing;
  assert.ok(partial > 0, "no write was partial");
  assert.equal(received.length, data.length);
  assert.ok(received.every((byte, i) => byte === data[i]), "the bytes arrived altered or out of order");
  client.close();
  await stop();
});

Deno.test("epoll: closeWrite sends FIN while reads go on", async () => {
  const { accepted, client, stop } = await socketPair();
  await accepted.stream.write(new TextEncoder().encode("bye"));
  await accepted.stream.closeWrite!();
  assert.equal(new TextDecoder().decode(await readAll(client)), "bye");
  await client.write(new Uint8Array([9]));
  const buffer = new Uint8Array(4);
  assert.equal(await accepted.stream.read(buffer), 1);
  assert.equal(buffer[0], 9);
  accepted.stream.close();
  client.close();
  await stop();
});

Deno.test("epoll: writing to a peer that is gone fails with BrokenPipe or ConnectionReset, not a crash", async () => {
  const { accepted, client, stop } = await socketPair();
  client.close();
  assert.equal(await accepted.stream.read(new Uint8Array(16)), null);
  // The first write after the peer's close is answered with a reset; a later one finds the socket broken.
  let failure: unknown;
  for (let i = 0; i < 100 && failure === undefined; i++) {
    await accepted.stream.write(new Uint8Array(100)).catch((error) => (failure = error));
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  assert.ok(
    failure instanceof Deno.errors.BrokenPipe || failure instanceof Deno.errors.ConnectionReset,
    `writes after the peer's close ended with ${failure}`,
  );
  accepted.stream.close();
  await stop();
});

Deno.test("epoll: the remote address is host:port as the client sees its own, for IPv4 and IPv6", async () => {
  for (const hostname of ["127.0.0.1", "::1"]) {
    const { accepted, client, stop } = await socketPair(hostname);
    const local = client.localAddr as Deno.NetAddr;
    assert.equal(accepted.remoteAddress, `${local.hostname}:${local.port}`);
    accepted.stream.close();
    client.close();
    await stop();
  }
});

Deno.test("epoll: many clients at once are each served on their own socket", async () => {
  const accepted: Accepted[] = [];
  const listener = listenEpollTcp(
    { name: "test", hostname: "127.0.0.1", port: 0 },
    (socket) => accepted.push(socket),
    (error) => {
      throw error;
    },
  );
  const clients = await Promise.all(
    Array.from({ length: 300 }, () => Deno.connect({ hostname: "127.0.0.1", port: listener.port })),
  );
  await Promise.all(clients.map((client, i) => client.write(new TextEncoder().encode(`client ${i}`))));
  while (accepted.length < clients.length) await new Promise((resolve) => setTimeout(resolve, 10));
  const byRemote = new Map(accepted.map((socket) => [socket.remoteAddress, socket]));
  for (const [i, client] of clients.entries()) {
    const local = client.localAddr as Deno.NetAddr;
    const socket = byRemote.get(`${local.hostname}:${local.port}`)!;
    const buffer = new Uint8Array(32);
    const n = await socket.stream.read(buffer);
    assert.equal(new TextDecoder().decode(buffer.subarray(0, n!)), `client ${i}`);
    await socket.stream.write(buffer.subarray(0, n!));
    assert.equal(new TextDecoder().decode(buffer.subarray(0, (await client.read(buffer))!)), `client ${i}`);
  }
  for (const socket of accepted) socket.stream.close();
  for (const client of clients) client.close();
  listener.close();
  await listener.done;
});

Deno.test("epoll: binding a port in use is AddrInUse; a host name is refused with a clear error", () => {
  const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    assert.throws(
      () =>
        listenEpollTcp(
          { name: "test", hostname: "127.0.0.1", port: (taken.addr as Deno.NetAddr).port },
          () => {},
          () => {},
        ),
      Deno.errors.AddrInUse,
    );
  } finally {
    taken.close();
  }
  assert.throws(
    () => listenEpollTcp({ name: "test", hostname: "broker.example", port: 0 }, () => {}, () => {}),
    /binds an IP address \(or localhost\), and "broker\.example" is not one/,
  );
});

Deno.test("epoll: bind addresses parse as IPv4, IPv6 or localhost, and nothing else", () => {
  const hex = (bytes: Uint8Array) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  assert.equal(hex(socketAddress("127.0.0.1", 1883)), "0200075b7f0000010000000000000000");
  assert.equal(hex(socketAddress("localhost", 1883)), "0200075b7f0000010000000000000000");
  assert.equal(
    hex(socketAddress("::1", 8883)),
    "0a0022b3000000000000000000000000000000000000000100000000",
  );
  assert.equal(
    hex(socketAddress("fe80::1:2", 1)).slice(16, 48),
    "fe800000000000000000000000010002",
  );
  for (const bad of ["1.2.3", "256.1.1.1", "01.2.3.4", ":::", "1::2::3", "1:2:3:4:5:6:7:8:9", "g::1", ""]) {
    assert.throws(() => socketAddress(bad, 1), /is not one/, bad);
  }
});

Deno.test("epoll: IPv6 addresses print as Rust and Deno print them (RFC 5952)", () => {
  const bytes = (text: string) => socketAddress(text, 0).subarray(8, 24);
  for (
    const [input, expected] of [
      ["::1", "::1"],
      ["::", "::"],
      ["fe80:0:0:0:0:0:0:1", "fe80::1"],
      ["2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"],
      ["2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"],
      ["0:0:0:0:0:ffff:7f00:1", "::ffff:127.0.0.1"],
      ["1:0:0:2:0:0:0:3", "1:0:0:2::3"],
    ]
  ) {
    assert.equal(formatIPv6(bytes(input)), expected, input);
  }
});
