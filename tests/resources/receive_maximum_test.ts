/**
 * Receive Maximum at every protocol level: a client may not hold more unreleased QoS 2 packet ids than
 * mqtt.receive_maximum. MQTT 5 clients are told the number in CONNACK and hear 0x93 when they pass it;
 * 3.1 and 3.1.1 clients are never told, and are disconnected the same way.
 */
import assert from "node:assert/strict";
import type { ProtocolVersion } from "../../src/codec/mod.ts";
import { withBroker } from "../helpers/broker.ts";
import { connect, publishPacket } from "../helpers/clients.ts";

const LIMIT = 5;

for (const version of [3, 4, 5] as ProtocolVersion[]) {
  Deno.test(`receive maximum (MQTT level ${version}): unreleased QoS 2 ids beyond mqtt.receive_maximum close the connection [MQTT-3.3.4-9]`, async () => {
    await withBroker(`mqtt.receive_maximum = ${LIMIT}`, async ({ port, running }) => {
      const { client } = await connect(port, `rm-${version}`, version);
      for (let id = 1; id <= LIMIT; id++) {
        await client.sendPacket(publishPacket("rm/t", `m${id}`, 2, { packetId: id }), version);
        const pubrec = await client.readPacket();
        assert.ok(pubrec.type === "pubrec" && pubrec.packetId === id && pubrec.reasonCode < 0x80); // v5: 0x10, no subscribers
      }
      // A resend of an unreleased id is no new id: still answered.
      await client.sendPacket(publishPacket("rm/t", "m1", 2, { packetId: 1, dup: true }), version);
      assert.equal((await client.readPacket()).type, "pubrec");
      assert.equal(running.broker.session(`rm-${version}`)?.awaitingRelease.size, LIMIT);

      await client.sendPacket(publishPacket("rm/t", "one too many", 2, { packetId: LIMIT + 1 }), version);
      const rest = await client.expectClosed();
      if (version === 5) {
        // DISCONNECT 0x93 Receive Maximum exceeded, then the close.
        assert.deepEqual([...rest.subarray(0, 3)], [0xe0, rest[1], 0x93]);
      } else {
        assert.equal(rest.length, 0, "a 3.1.1 client is closed without a packet");
      }
      assert.equal(
        running.broker.session(`rm-${version}`),
        undefined,
        "clean session ended with the connection",
      );
    });
  });
}

Deno.test("receive maximum: releasing ids (PUBREL) makes room again at 3.1.1", async () => {
  await withBroker(`mqtt.receive_maximum = ${LIMIT}`, async ({ port }) => {
    const { client } = await connect(port, "rm-release", 4);
    for (let id = 1; id <= 3 * LIMIT; id++) {
      await client.sendPacket(publishPacket("rm/t", `m${id}`, 2, { packetId: id }), 4);
      assert.equal((await client.readPacket()).type, "pubrec");
      await client.sendPacket({ type: "pubrel", packetId: id, reasonCode: 0, properties: {} }, 4);
      assert.equal((await client.readPacket()).type, "pubcomp");
    }
    assert.equal(client.closedByServer, false);
    await client.close();
  });
});
