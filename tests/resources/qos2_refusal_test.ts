/**
 * Acknowledged means delivered, and refused means delivered to nobody: a QoS 2 PUBLISH the store cannot
 * take (PUBREC 0x97) reaches no subscriber and leaves no state, so its packet id is free for a new
 * message [MQTT-4.3.3]; a 3.1.1 publisher, cut off instead (it cannot hear 0x97), that re-sends after
 * space is freed gets its message stored and delivered, across a kill -9 and a restart.
 */
import assert from "node:assert/strict";
import type { Packet, ProtocolVersion } from "../../src/codec/mod.ts";
import { withBroker } from "../helpers/broker.ts";
import { connect, publishPacket, readPublish, subscribe, subscription, text } from "../helpers/clients.ts";
import { freePort, startBrokerProcess } from "../helpers/process.ts";

/** Every message is this large (and a label), so none fits where the store refused one. */
const FILL = "x".repeat(4096);

/** Publishes QoS 1 messages of 4 KiB to `fill/a` until the store refuses one (PUBACK 0x97). */
async function fillStore(port: number): Promise<void> {
  const { client } = await connect(port, "filler", 5);
  for (let id = 1; id <= 400; id++) {
    await client.sendPacket(publishPacket("fill/a", FILL, 1, { packetId: id }), 5);
    const ack = await client.readPacket();
    assert.equal(ack.type, "puback");
    if (ack.type === "puback" && ack.reasonCode === 0x97) {
      assert.ok(id > 1, "the store was full from the start");
      await client.close();
      return;
    }
  }
  throw new Error("the store never filled up");
}

/** A persistent session subscribed to `filters`, left offline: what it is sent must be stored. */
async function keeper(port: number, version: ProtocolVersion, filters: string[]): Promise<void> {
  const { client } = await connect(port, "keeper", version, {
    cleanStart: false,
    properties: version === 5 ? { sessionExpiryInterval: 3600 } : {},
  });
  await subscribe(client, version, filters.map((filter) => subscription(filter, 2)));
  await client.sendPacket({ type: "disconnect", reasonCode: 0, properties: {} }, version);
  await client.expectClosed();
  await client.close();
}

/**
 * Connects the keeper again and acknowledges what it is sent until `until` arrives (or, without `until`,
 * until nothing comes for a while); returns the payloads of `q2/` messages, in order.
 */
async function drainKeeper(port: number, version: ProtocolVersion, until?: string): Promise<string[]> {
  const { client } = await connect(port, "keeper", version, {
    cleanStart: false,
    properties: version === 5 ? { sessionExpiryInterval: 3600 } : {},
  });
  const seen: string[] = [];
  for (;;) {
    let packet: Packet;
    try {
      packet = await client.readPacket();
    } catch {
      if (until === undefined) break; // quiet for the read timeout: drained
      throw new Error(`keeper never received ${until}; saw ${JSON.stringify(seen)}`);
    }
    if (packet.type === "publish") {
      if (packet.topic.startsWith("q2/")) seen.push(text(packet.payload).slice(0, -FILL.length));
      const type = packet.qos === 1 ? "puback" : "pubrec";
      if (packet.qos > 0) {
        await client.sendPacket({ type, packetId: packet.packetId!, reasonCode: 0, properties: {} }, version);
      }
    } else if (packet.type === "pubrel") {
      await client.sendPacket(
        { type: "pubcomp", packetId: packet.packetId, reasonCode: 0, properties: {} },
        version,
      );
    }
    if (until !== undefined && seen.includes(until)) break;
  }
  await client.sendPacket({ type: "disconnect", reasonCode: 0, properties: {} }, version);
  await client.close();
  return seen;
}

async function withStoreDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "mqtt-proxy-qos2-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("QoS 2 on a full store: PUBREC 0x97, delivered to nobody, and the packet id carries the next message [MQTT-4.3.3]", async () => {
  await withStoreDir(async (dir) => {
    const config = [
      "storage.type = embedded",
      `storage.dir = ${dir}`,
      "storage.max_disk_bytes = 131072",
      "sys.interval_seconds = 0",
    ].join("\n");
    await withBroker(config, async ({ port, running }) => {
      await keeper(port, 5, ["fill/#", "q2/#"]);
      const { client: watcher } = await connect(port, "watcher", 5);
      await subscribe(watcher, 5, [subscription("q2/#", 2)]);
      await fillStore(port);

      const { client: publisher } = await connect(port, "publisher", 5);
      await publisher.sendPacket(publishPacket("q2/x", "refused" + FILL, 2, { packetId: 42 }), 5);
      const refused = await publisher.readPacket();
      assert.ok(refused.type === "pubrec" && refused.packetId === 42, JSON.stringify(refused));
      assert.equal(refused.reasonCode, 0x97);
      assert.ok(await watcher.expectSilence(300), "a refused message reaches no subscriber");
      assert.equal(running.broker.session("publisher")?.awaitingRelease.size, 0, "no state is left");

      const drained = await drainKeeper(port, 5);
      assert.deepEqual(drained, [], "the refused message was not queued either");

      // Space is free again: the same packet id is a new message, routed and stored like any other.
      await keeper(port, 5, ["q2/#"]);
      await publisher.sendPacket(publishPacket("q2/x", "second" + FILL, 2, { packetId: 42 }), 5);
      const accepted = await publisher.readPacket();
      assert.ok(accepted.type === "pubrec" && accepted.packetId === 42 && accepted.reasonCode === 0);
      const got = await readPublish(watcher);
      assert.equal(text(got.payload), "second" + FILL);
      await publisher.sendPacket({ type: "pubrel", packetId: 42, reasonCode: 0, properties: {} }, 5);
      assert.equal((await publisher.readPacket()).type, "pubcomp");
      assert.deepEqual(await drainKeeper(port, 5, "second"), ["second"]);
      await Promise.all([watcher.close(), publisher.close()]);
    });
  });
});

Deno.test("QoS 2 on a full store, 3.1.1: the publisher is cut off; its DUP re-send after space is freed is stored and delivered across kill -9", async () => {
  await withStoreDir(async (dir) => {
    const port = freePort();
    const configPath = `${dir}/mqtt.properties`;
    await Deno.writeTextFile(
      configPath,
      [
        "listener.default.host = 127.0.0.1",
        `listener.default.port = ${port}`,
        "storage.type = embedded",
        `storage.dir = ${dir}/data`,
        "storage.durability = sync",
        "storage.max_disk_bytes = 131072",
        "log.level = error",
        "sys.interval_seconds = 0",
      ].join("\n"),
    );
    let broker = await startBrokerProcess(configPath, port);
    try {
      await keeper(port, 4, ["fill/#", "q2/#"]);
      await fillStore(port);

      const persistent = { cleanStart: false };
      const { client: first } = await connect(port, "old-publisher", 4, persistent);
      const message = publishPacket("q2/x", "exactly once" + FILL, 2, { packetId: 7 });
      await first.sendPacket(message, 4);
      assert.equal((await first.expectClosed()).length, 0, "no PUBREC: 3.1.1 cannot hear 0x97");
      await first.close();

      await drainKeeper(port, 4); // acknowledging the fill messages frees their space
      const { client: again, connack } = await connect(port, "old-publisher", 4, persistent);
      assert.equal(connack.sessionPresent, true);
      await again.sendPacket({ ...message, dup: true }, 4);
      const pubrec = await again.readPacket();
      assert.ok(pubrec.type === "pubrec" && pubrec.packetId === 7, JSON.stringify(pubrec));
      await again.sendPacket({ type: "pubrel", packetId: 7, reasonCode: 0, properties: {} }, 4);
      assert.equal((await again.readPacket()).type, "pubcomp");
      await again.close();

      await broker.kill9();
      broker = await startBrokerProcess(configPath, port);
      assert.deepEqual(await drainKeeper(port, 4, "exactly once"), ["exactly once"]);
      assert.deepEqual(await drainKeeper(port, 4), [], "and only once");
    } finally {
      await broker.kill9();
    }
  });
});
