/**
 * Messages read back from storage for a returning client are freed as soon as they are acknowledged
 * (Delivery.ownsPayload): what is not acknowledged yet must keep its bytes, for a takeover re-sends it.
 */
import assert from "node:assert/strict";
import { withBroker } from "../helpers/broker.ts";
import { connect, publishPacket, readPublish, subscribe, subscription, text } from "../helpers/clients.ts";

for (const storage of ["memory", "embedded"] as const) {
  Deno.test(`${storage} store: a queue read back is re-sent whole after a takeover, then acknowledged and gone`, async () => {
    const dir = await Deno.makeTempDir({ prefix: "mqtt-proxy-paged-" });
    const properties = storage === "embedded"
      ? `storage.type = embedded\nstorage.dir = ${dir}\nsys.interval_seconds = 0`
      : "sys.interval_seconds = 0";
    try {
      await withBroker(properties, async ({ port }) => {
        const persistent = { cleanStart: false };
        const { client: first } = await connect(port, "sub", 4, persistent);
        await subscribe(first, 4, [subscription("q/#", 1)]);
        await first.close();

        const { client: publisher } = await connect(port, "pub", 4);
        const bodies = ["one", "two".repeat(300), "three".repeat(2000)];
        for (const [index, body] of bodies.entries()) {
          await publisher.sendPacket(publishPacket(`q/${index}`, body, 1, { packetId: index + 1 }), 4);
          assert.equal((await publisher.readPacket()).type, "puback");
        }

        const { client: back, connack } = await connect(port, "sub", 4, persistent);
        assert.equal(connack.sessionPresent, true);
        const read = [await readPublish(back), await readPublish(back), await readPublish(back)];
        assert.deepEqual(read.map((publish) => text(publish.payload)), bodies);
        await back.sendPacket(
          { type: "puback", packetId: read[0].packetId!, reasonCode: 0, properties: {} },
          4,
        );

        // The same client id again: the unacknowledged two come back with DUP and every byte.
        const { client: taker } = await connect(port, "sub", 4, persistent);
        const resent = [await readPublish(taker), await readPublish(taker)];
        assert.deepEqual(resent.map((publish) => [publish.dup, text(publish.payload)]), [
          [true, bodies[1]],
          [true, bodies[2]],
        ]);
        for (const publish of resent) {
          await taker.sendPacket({
            type: "puback",
            packetId: publish.packetId!,
            reasonCode: 0,
            properties: {},
          }, 4);
        }
        await publisher.sendPacket(publishPacket("q/live", "live", 1, { packetId: 9 }), 4);
        const live = await readPublish(taker);
        assert.equal(text(live.payload), "live");
        await taker.sendPacket(
          { type: "puback", packetId: live.packetId!, reasonCode: 0, properties: {} },
          4,
        );
        await taker.close();

        const { client: last } = await connect(port, "sub", 4, persistent);
        assert.ok(await last.expectSilence(300), "everything was acknowledged");
        await Promise.all([back.close(), publisher.close(), last.close()]);
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}
