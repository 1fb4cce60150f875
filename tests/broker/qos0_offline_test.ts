/**
 * mqtt.queue_qos0_offline: a QoS 0 message queued for an absent persistent session is stored (nothing else
 * keeps it), delivered when the client comes back, and then gone: it has no acknowledgement to wait for.
 */
import assert from "node:assert/strict";
import { withBroker } from "../helpers/broker.ts";
import { connect, publishPacket, readPublish, subscribe, subscription, text } from "../helpers/clients.ts";

for (const storage of ["memory", "embedded"] as const) {
  Deno.test(`${storage} store: a QoS 0 message queued offline is delivered once, not again at the next resume`, async () => {
    const dir = await Deno.makeTempDir({ prefix: "mqtt-proxy-qos0-" });
    const properties = "mqtt.queue_qos0_offline = true\nsys.interval_seconds = 0\n" +
      (storage === "embedded" ? `storage.type = embedded\nstorage.dir = ${dir}` : "");
    try {
      await withBroker(properties, async ({ port }) => {
        const persistent = { cleanStart: false, properties: { sessionExpiryInterval: 3600 } };
        const { client: first } = await connect(port, "sub", 5, persistent);
        await subscribe(first, 5, [subscription("q/#", 0)]);
        await first.close();
        const { client: publisher } = await connect(port, "pub", 5);
        await publisher.sendPacket(publishPacket("q/0", "while away", 0), 5);
        await publisher.sendPacket(publishPacket("q/1", "flushed", 1, { packetId: 1 }), 5);
        assert.equal((await publisher.readPacket()).type, "puback");

        const { client: back } = await connect(port, "sub", 5, persistent);
        const publish = await readPublish(back);
        assert.deepEqual([publish.topic, publish.qos, text(publish.payload)], ["q/0", 0, "while away"]);
        // Only QoS 0 here (q/1 too, at the subscription's QoS 0): nothing more, and nothing to acknowledge.
        assert.equal((await readPublish(back)).topic, "q/1");
        await back.close();

        const { client: again } = await connect(port, "sub", 5, persistent);
        assert.ok(await again.expectSilence(300), "delivered once: not again at the next resume");
        await Promise.all([publisher.close(), again.close()]);
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}
