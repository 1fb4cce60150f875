/** The broker's state as another node gets it (exportState): what a session's deliveries carry. */
import assert from "node:assert/strict";
import { SnapshotWriter } from "../../src/cluster/snapshot.ts";
import { withBroker } from "../helpers/broker.ts";
import { connect, publishPacket, readPublish, subscribe, subscription } from "../helpers/clients.ts";

Deno.test("a session's exported delivery carries its message's payload, not the decoder memory its frame sits in", async () => {
  await withBroker("", async ({ port, running }) => {
    const { client: sub } = await connect(port, "sub");
    await subscribe(sub, 4, [subscription("t", 1)]);
    const { client: pub } = await connect(port, "pub");
    await pub.sendPacket(publishPacket("t", "kept in flight", 1, { packetId: 1 }), 4);
    assert.equal((await pub.readPacket()).type, "puback");
    await readPublish(sub); // not acknowledged: the delivery stays in flight
    let exported = undefined;
    for await (const part of running.broker.exportState()) {
      if (part.kind === "session" && part.session.state.clientId === "sub") exported = part;
    }
    assert.ok(exported?.kind === "session");
    const [inflight] = exported.session.state.inflight;
    const message = inflight.delivery.message;
    assert.equal(new TextDecoder().decode(message.payload), "kept in flight");
    assert.equal(message.frameBytes, undefined, "the frame is this node's memory, not the message's");
    assert.deepEqual(
      Object.keys(message).sort(),
      ["expiresAt", "payload", "properties", "publisherId", "qos", "retain", "topic"],
      "a plain message: nothing of the decoder's (the payload's place in the frame) goes with it",
    );
    let bytes = 0;
    const writer = new SnapshotWriter(1 << 20, (piece, last) => {
      if (last) bytes = piece.length;
      return Promise.resolve();
    });
    await writer.write(exported);
    await writer.end();
    assert.ok(bytes < 2048, `the session's record is ${bytes} bytes`);
    await Promise.all([sub.close(), pub.close()]);
  });
});
