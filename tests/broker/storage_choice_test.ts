/** Which storage the configuration picks, seen from outside: what survives a restart and what touches the disk. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { withBroker } from "../helpers/broker.ts";
import { connect, publishPacket } from "../helpers/clients.ts";
import { listDir, withTempDir } from "../storage/embedded_helpers.ts";

Deno.test("embedded durability memory: nothing reaches the disk and a restart starts empty", async () => {
  await withTempDir(async (dir) => {
    const dataDir = join(dir, "data");
    const properties = `storage.type = embedded\nstorage.durability = memory\nstorage.dir = ${dataDir}`;
    await withBroker(properties, async ({ port }) => {
      const { client } = await connect(port, "durable-in-memory", 4, { cleanStart: false });
      await client.sendPacket(publishPacket("r", "retained", 1, { retain: true }), 4);
      assert.equal((await client.readPacket()).type, "puback");
      await client.close();
    });
    assert.deepEqual(await listDir(dir), [], "not even the data directory is created");
    await withBroker(properties, async ({ port }) => {
      const { client, connack } = await connect(port, "durable-in-memory", 4, { cleanStart: false });
      assert.equal(connack.sessionPresent, false, "the session did not survive the restart");
      await client.close();
    });
  });
});
