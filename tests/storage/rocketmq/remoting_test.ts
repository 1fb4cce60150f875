/**
 * The remoting client's framing against a loopback server that answers the way a broker may: a large
 * answer in many small writes, and several answers in one write, out of request order.
 */
import assert from "node:assert/strict";
import { RemotingConnection } from "../../../src/storage/rocketmq/remoting.ts";

/** A response frame: int32 length, int32 header length (JSON), header, body. */
function responseFrame(opaque: number, body: Uint8Array): Uint8Array {
  const header = new TextEncoder().encode(JSON.stringify({ code: 0, opaque, flag: 1, extFields: {} }));
  const frame = new Uint8Array(8 + header.length + body.length);
  const view = new DataView(frame.buffer);
  view.setInt32(0, 4 + header.length + body.length);
  view.setInt32(4, header.length);
  frame.set(header, 8);
  frame.set(body, 8 + header.length);
  return frame;
}

/** Reads request frames and returns their opaques, as many as `count`. */
async function readOpaques(conn: Deno.Conn, count: number): Promise<number[]> {
  const opaques: number[] = [];
  let buffered = new Uint8Array(0);
  const chunk = new Uint8Array(4096);
  while (opaques.length < count) {
    const n = await conn.read(chunk);
    if (n === null) throw new Error("client closed");
    buffered = new Uint8Array([...buffered, ...chunk.subarray(0, n)]);
    while (buffered.length >= 8) {
      const view = new DataView(buffered.buffer);
      const length = view.getInt32(0);
      if (buffered.length < 4 + length) break;
      const headerLength = view.getInt32(4) & 0xffffff;
      const header = JSON.parse(new TextDecoder().decode(buffered.subarray(8, 8 + headerLength)));
      opaques.push(header.opaque);
      buffered = buffered.slice(4 + length);
    }
  }
  return opaques;
}

function body(size: number, seed: number): Uint8Array {
  return Uint8Array.from({ length: size }, (_, i) => (i * 31 + seed) & 0xff);
}

Deno.test("remoting: answers split over many writes, and several in one write, each reach their request", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const bodies = [body(3 * 1024 * 1024 + 17, 1), body(10, 2), body(70_000, 3), body(0, 4), body(5, 5)];
  const serving = (async () => {
    const conn = await listener.accept();
    try {
      const opaques = await readOpaques(conn, bodies.length);
      // The large one first, 1000 bytes per write; then the other four together, in reverse order.
      const large = responseFrame(opaques[0], bodies[0]);
      for (let at = 0; at < large.length; at += 1000) await conn.write(large.subarray(at, at + 1000));
      const rest = opaques.slice(1).map((opaque, i) => responseFrame(opaque, bodies[i + 1])).reverse();
      const together = new Uint8Array(rest.reduce((sum, frame) => sum + frame.length, 0));
      let at = 0;
      for (const frame of rest) (together.set(frame, at), at += frame.length);
      for (let written = 0; written < together.length;) {
        written += await conn.write(together.subarray(written));
      }
      await readOpaques(conn, 1).catch(() => {}); // until the client closes
    } finally {
      conn.close();
    }
  })();
  const { port } = listener.addr as Deno.NetAddr;
  const connection = await RemotingConnection.open(`127.0.0.1:${port}`, 5000);
  try {
    const answers = await Promise.all(bodies.map((_, i) => connection.request(11, { n: String(i) })));
    answers.forEach((answer, i) => {
      assert.equal(answer.body.length, bodies[i].length, `answer ${i}'s length`);
      assert.ok(answer.body.every((byte, j) => byte === bodies[i][j]), `answer ${i}'s bytes`);
    });
  } finally {
    await connection.close();
    await serving;
    listener.close();
  }
});
