/** A full store: QoS 1/2 messages are refused, never acknowledged, and the broker keeps serving. */
import assert from "node:assert/strict";
import { withBroker } from "../helpers/broker.ts";
import { connect, publishPacket, subscribe, subscription } from "../helpers/clients.ts";

Deno.test("full store: v5 publishers get PUBACK 0x97, 3.1.1 publishers are disconnected, QoS 0 still flows", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mqtt-proxy-full-" });
  try {
    const config = `storage.type = embedded\nstorage.dir = ${dir}\nstorage.max_disk_bytes = 131072`;
    await withBroker(config, async ({ port }) => {
      // A persistent, offline subscriber: every QoS 1 message must be stored for it.
      const keeper = await connect(port, "keeper", 5, {
        cleanStart: false,
        properties: { sessionExpiryInterval: 3600 },
      });
      await subscribe(keeper.client, 5, [subscription("fill/#", 1)]);
      await keeper.client.sendPacket({ type: "disconnect", reasonCode: 0, properties: {} }, 5);
      await keeper.client.expectClosed();

      const { client: publisher } = await connect(port, "filler", 5);
      const payload = "x".repeat(4096);
      let refusedAt = -1;
      for (let i = 1; i <= 400 && refusedAt < 0; i++) {
        await publisher.sendPacket(publishPacket("fill/a", payload, 1, { packetId: i }), 5);
        const ack = await publisher.readPacket();
        assert.equal(ack.type, "puback");
        if (ack.type === "puback" && ack.reasonCode === 0x97) refusedAt = i;
        else {assert.ok(
            ack.type === "puback" && ack.reasonCode === 0,
            `unexpected PUBACK reason ${JSON.stringify(ack)}`,
          );}
      }
      assert.ok(refusedAt > 1, `the store never filled up (refusedAt ${refusedAt})`);

      const { client: old } = await connect(port, "old", 4);
      await old.sendPacket(publishPacket("fill/b", payload, 1, { packetId: 1 }), 4);
      await old.expectClosed(); // 3.1.1 has no way to say "not stored"

      const { client: listener } = await connect(port, "listener", 4);
      await subscribe(listener, 4, [subscription("live/#", 0)]);
      await publisher.sendPacket(publishPacket("live/x", "still here"), 5);
      const live = await listener.readPacket();
      assert.ok(live.type === "publish" && live.topic === "live/x");
      await Promise.all([publisher.close(), listener.close()]);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
