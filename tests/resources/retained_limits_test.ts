/**
 * Retained messages are bounded by mqtt.max_retained_messages and mqtt.max_retained_bytes: past them a
 * new retained message is refused (v5 0x97 Quota exceeded, nothing delivered; 3.1.1 publishers are
 * disconnected, as for a full store), while replacing or deleting an existing one always works.
 */
import assert from "node:assert/strict";
import type { ProtocolVersion } from "../../src/codec/mod.ts";
import { withBroker } from "../helpers/broker.ts";
import { connect, publishPacket, readPublish, subscribe, subscription, text } from "../helpers/clients.ts";

async function retain(
  client: Awaited<ReturnType<typeof connect>>["client"],
  version: ProtocolVersion,
  topic: string,
  payload: string,
  packetId: number,
  qos: 1 | 2 = 1,
): Promise<number> {
  await client.sendPacket(publishPacket(topic, payload, qos, { packetId, retain: true }), version);
  const ack = await client.readPacket();
  assert.ok(ack.type === (qos === 1 ? "puback" : "pubrec") && ack.packetId === packetId, JSON.stringify(ack));
  return (ack as { reasonCode: number }).reasonCode;
}

Deno.test("retained: past mqtt.max_retained_messages a new topic is refused with 0x97 and delivered to nobody; replacing and deleting still work", async () => {
  await withBroker("mqtt.max_retained_messages = 3\nsys.interval_seconds = 0", async ({ port, running }) => {
    const { client: watcher } = await connect(port, "watcher", 5);
    await subscribe(watcher, 5, [subscription("r/#", 1)]);
    const { client: publisher } = await connect(port, "publisher", 5);
    for (let i = 1; i <= 3; i++) assert.ok(await retain(publisher, 5, `r/${i}`, `v${i}`, i) < 0x80);
    for (let i = 1; i <= 3; i++) assert.equal(text((await readPublish(watcher)).payload), `v${i}`);

    assert.equal(await retain(publisher, 5, "r/4", "one too many", 4), 0x97);
    assert.equal(await retain(publisher, 5, "r/5", "QoS 2 too", 5, 2), 0x97);
    assert.ok(await watcher.expectSilence(200), "a refused message reaches no one");
    assert.equal(running.broker.retained.size, 3);
    // The refused QoS 2 id is free: no PUBREL is owed, and the id is taken as new.
    assert.equal(running.broker.session("publisher")?.awaitingRelease.size, 0);

    assert.ok(await retain(publisher, 5, "r/2", "replaced", 6) < 0x80, "a replacement is no new message");
    assert.equal(text((await readPublish(watcher)).payload), "replaced");
    await publisher.sendPacket(publishPacket("r/3", "", 1, { packetId: 7, retain: true }), 5);
    assert.equal((await publisher.readPacket()).type, "puback");
    assert.equal(text((await readPublish(watcher)).payload), "");
    assert.ok(await retain(publisher, 5, "r/4", "room again", 8) < 0x80);
    assert.equal(text((await readPublish(watcher)).payload), "room again");

    // QoS 0 cannot be refused: it is delivered, and not retained.
    await publisher.sendPacket(publishPacket("r/9", "live only", 0, { retain: true }), 5);
    assert.equal(text((await readPublish(watcher)).payload), "live only");
    const { client: late } = await connect(port, "late", 5);
    await subscribe(late, 5, [subscription("r/#", 0)]);
    const seen = [];
    for (let i = 0; i < 3; i++) seen.push((await readPublish(late)).topic);
    assert.deepEqual(seen.sort(), ["r/1", "r/2", "r/4"]);
    assert.ok(await late.expectSilence(200));
    await Promise.all([watcher.close(), publisher.close(), late.close()]);
  });
});

Deno.test("retained: past mqtt.max_retained_bytes a larger message is refused; a 3.1.1 publisher is disconnected", async () => {
  await withBroker("mqtt.max_retained_bytes = 1024\nsys.interval_seconds = 0", async ({ port, running }) => {
    const { client: v5 } = await connect(port, "bytes5", 5);
    assert.ok(await retain(v5, 5, "b/1", "x".repeat(600), 1) < 0x80);
    assert.equal(await retain(v5, 5, "b/2", "x".repeat(600), 2), 0x97);
    assert.ok(await retain(v5, 5, "b/1", "x".repeat(900), 3) < 0x80, "a replacement that fits");
    assert.equal(running.broker.retained.size, 1);

    const { client: v4 } = await connect(port, "bytes4", 4);
    await v4.sendPacket(publishPacket("b/3", "x".repeat(600), 1, { packetId: 1, retain: true }), 4);
    await v4.expectClosed(); // 3.1.1 has no way to say "not taken"
    assert.equal(running.broker.retained.size, 1);
    await Promise.all([v5.close(), v4.close()]);
  });
});
