/**
 * Messages read back from storage for a returning client are freed as soon as they are acknowledged
 * (Delivery.ownsPayload): what is not acknowledged yet must keep its bytes, for a takeover re-sends it.
 */
import assert from "node:assert/strict";
import { withBroker } from "../helpers/broker.ts";
import { connect, publishPacket, readPublish, subscribe, subscription, text } from "../helpers/clients.ts";
import { Decoder, encode, type Packet } from "../../src/codec/mod.ts";

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

Deno.test("a client that acknowledges read-back messages before it reads them (still in the backlog) loses only those, and the connection lives", async () => {
  const count = 100;
  const big = "x".repeat(64 * 1024);
  // The embedded store: its reads are the broker's own payloads, freed once acknowledged.
  const dir = await Deno.makeTempDir({ prefix: "mqtt-proxy-paged-" });
  const properties = `storage.type = embedded\nstorage.dir = ${dir}\nsys.interval_seconds = 0\n` +
    "mqtt.max_outbound_bytes = 1024";
  try {
    await withBroker(properties, async ({ port }) => {
      const persistent = { cleanStart: false };
      const { client: first } = await connect(port, "slow", 4, persistent);
      await subscribe(first, 4, [subscription("q/#", 1)]);
      await first.close();
      const { client: publisher } = await connect(port, "pub", 4);
      for (let id = 1; id <= count; id++) {
        await publisher.sendPacket(publishPacket("q/big", `${id}:${big}`, 1, { packetId: id }), 4);
        assert.equal((await publisher.readPacket()).type, "puback");
      }

      // A socket that does not read: 6.4 MB of PUBLISHes fill the kernel's buffers and the rest waits in
      // the connection's backlog, already numbered; the client acknowledges every packet id at once.
      const socket = await Deno.connect({ hostname: "127.0.0.1", port });
      const connectPacket: Packet = {
        type: "connect",
        protocolName: "MQTT",
        protocolVersion: 4,
        cleanStart: false,
        keepAlive: 60,
        clientId: "slow",
        properties: {},
      };
      const acks = Array.from(
        { length: count },
        (_, index) => encode({ type: "puback", packetId: index + 1, reasonCode: 0, properties: {} }, 4),
      );
      await socket.write(encode(connectPacket, 4));
      await new Promise((resolve) => setTimeout(resolve, 200));
      for (const ack of acks) await socket.write(ack);

      const decoder = new Decoder({ maxPacketSize: 1 << 20, protocolVersion: 4 });
      const received: number[] = [];
      const buffer = new Uint8Array(256 * 1024);
      let connacked = false;
      // One read at a time; the test stops once nothing has come for three 300 ms waits in a row.
      let pending = socket.read(buffer);
      for (let idle = 0; idle < 3;) {
        const read = await Promise.race([
          pending,
          new Promise<"idle">((resolve) => setTimeout(() => resolve("idle"), 300)),
        ]);
        if (read === "idle") {
          idle++;
          continue;
        }
        assert.ok(read !== null, "the broker closed the connection");
        idle = 0;
        decoder.push(buffer.subarray(0, read));
        for (let packet = decoder.next(); packet; packet = decoder.next()) {
          if (packet.type === "connack") connacked = true;
          if (packet.type === "publish") {
            const text = new TextDecoder().decode(packet.payload);
            assert.equal(
              text.length,
              big.length + `${packet.packetId}:`.length,
              "every PUBLISH sent is whole",
            );
            received.push(Number(text.split(":")[0]));
          }
        }
        pending = socket.read(buffer);
      }
      assert.ok(connacked);
      assert.ok(received.length > 0 && received.length < count, `${received.length} of ${count} written`);
      socket.close();
      await pending.catch(() => null);
      await publisher.close();
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
