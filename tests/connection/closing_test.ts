/**
 * After a client's DISCONNECT the broker half-closes and waits for the client's close (src/connection/
 * closing.ts), so that its pending read ends with the end of the stream: a client that never closes must
 * not keep the socket, and a stopping broker does not wait for it.
 */
import assert from "node:assert/strict";
import { hex, RawClient, withBroker } from "../helpers/broker.ts";

/** CONNECT 3.1.1, clean session, keep alive 60, client id "c1". */
const CONNECT_V4 = hex("10 0e 00 04 4d 51 54 54 04 02 00 3c 00 02 63 31");
const DISCONNECT = hex("e0 00");

/** Whether `condition` holds within `rounds` looks 50 ms apart (a broken linger would keep the socket). */
async function eventually(condition: () => boolean, rounds = 100): Promise<boolean> {
  for (let round = 0; round < rounds && !condition(); round++) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return condition();
}

Deno.test("after its DISCONNECT, a client that never closes its socket reads the end of the stream and is let go", async () => {
  await withBroker("", async ({ port, running }) => {
    const client = await RawClient.connect(port);
    await client.send(CONNECT_V4);
    await client.readBytes(4);
    await client.send(DISCONNECT);
    assert.equal((await client.expectClosed()).length, 0);
    // The client keeps its socket open: the broker closes its own once the linger is up.
    assert.ok(await eventually(() => running.connections.connectionCount === 0));
    await client.close();
  });
});

Deno.test("a stopping broker does not wait for a client that never closes after its DISCONNECT", async () => {
  let client: RawClient | undefined;
  let open = -1;
  await withBroker("", async ({ port, running }) => {
    client = await RawClient.connect(port);
    await client.send(CONNECT_V4);
    await client.readBytes(4);
    await client.send(DISCONNECT);
    await client.expectClosed();
    await running.stop();
    open = running.connections.connectionCount;
  });
  await client?.close();
  assert.equal(open, 0);
});
