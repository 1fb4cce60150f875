/**
 * The disk reserve (the ballast that keeps room for deletes on a full disk) scales with the data volume:
 * 1% of it, between 64 KiB and 8 MiB. A fixed 8 MiB reserve left a small volume — here a 4 MiB tmpfs —
 * in low-disk mode from the start, refusing every message a persistent session had to store. The broker
 * runs as a child process in a private mount namespace that has the tmpfs.
 */
import assert from "node:assert/strict";
import { connect, publishPacket, subscribe, subscription } from "../helpers/clients.ts";
import { startLimitedBroker } from "./support.ts";
import { onTmpfs, tmpfsAvailable, tmpfsIgnoredNote } from "../helpers/tmpfs.ts";

Deno.test({
  name:
    "disk reserve: on a 4 MiB data volume QoS 1 messages for a persistent session are stored and acknowledged" +
    tmpfsIgnoredNote,
  ignore: !tmpfsAvailable,
  fn: async () => {
    const data = await Deno.makeTempDir({ prefix: "mqtt-proxy-volume-" });
    const broker = await startLimitedBroker(
      ["storage.type = embedded", `storage.dir = ${data}`, "storage.durability = sync"],
      onTmpfs(data, []),
    );
    try {
      const { client: keeper } = await connect(broker.port, "keeper", 5, {
        cleanStart: false,
        properties: { sessionExpiryInterval: 3600 },
      });
      await subscribe(keeper, 5, [subscription("small/#", 1)]);
      await keeper.sendPacket({ type: "disconnect", reasonCode: 0, properties: {} }, 5);
      await keeper.expectClosed();
      await keeper.close();

      const { client: publisher } = await connect(broker.port, "publisher", 5);
      const payload = "x".repeat(1024);
      for (let id = 1; id <= 200; id++) {
        await publisher.sendPacket(publishPacket("small/a", payload, 1, { packetId: id }), 5);
        const ack = await publisher.readPacket();
        assert.ok(ack.type === "puback" && ack.reasonCode === 0, `message ${id}: ${JSON.stringify(ack)}`);
      }
      await publisher.close();
      assert.doesNotMatch(broker.broker.output(), /storage\.disk_full/);
    } finally {
      await broker.stop();
      await Deno.remove(data, { recursive: true });
    }
  },
});
