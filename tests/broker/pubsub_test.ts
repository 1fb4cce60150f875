/** Publish/subscribe flows through the whole broker over real sockets, at 3.1.1 and 5.0. */
import assert from "node:assert/strict";
import { hex, toHex, withBroker } from "../helpers/broker.ts";
import { connect, publishPacket, readPublish, subscribe, subscription, text } from "../helpers/clients.ts";

Deno.test("[MQTT-3.3.1-9] QoS 0 round trip at 3.1.1, byte-exact, RETAIN 0 on a live forward", async () => {
  await withBroker("", async ({ port }) => {
    const { client: sub } = await connect(port, "sub");
    await sub.send(hex("82 06 00 01 00 01 61 00")); // SUBSCRIBE id 1, "a" QoS 0
    assert.equal(toHex(await sub.readBytes(5)), "90 03 00 01 00"); // SUBACK id 1, granted 0
    const { client: pub } = await connect(port, "pub");
    await pub.send(hex("30 04 00 01 61 68")); // PUBLISH QoS 0 "a" payload "h"
    assert.equal(toHex(await sub.readBytes(6)), "30 04 00 01 61 68");
    await Promise.all([sub.close(), pub.close()]);
  });
});

Deno.test("[MQTT-4.3.2-2] QoS 1: PUBACK to the publisher, the subscriber gets QoS 1 and acks", async () => {
  await withBroker("", async ({ port }) => {
    const { client: sub } = await connect(port, "sub");
    assert.deepEqual(await subscribe(sub, 4, [subscription("t/+", 1)]), [1]);
    const { client: pub } = await connect(port, "pub");
    await pub.send(hex("32 08 00 03 74 2f 31 00 07 78")); // PUBLISH QoS 1 "t/1" id 7 "x"
    assert.equal(toHex(await pub.readBytes(4)), "40 02 00 07"); // PUBACK id 7
    const received = await readPublish(sub);
    assert.equal(received.qos, 1);
    assert.equal(received.topic, "t/1");
    await sub.sendPacket({ type: "puback", packetId: received.packetId!, reasonCode: 0, properties: {} }, 4);
    await Promise.all([sub.close(), pub.close()]);
  });
});

Deno.test("[MQTT-3.8.4-8] delivery is downgraded to the subscription QoS", async () => {
  await withBroker("", async ({ port }) => {
    const { client: sub } = await connect(port, "sub");
    await subscribe(sub, 4, [subscription("d", 0)]);
    const { client: pub } = await connect(port, "pub");
    await pub.sendPacket(publishPacket("d", "x", 2, { packetId: 3 }), 4);
    assert.equal((await pub.readPacket()).type, "pubrec");
    await pub.sendPacket({ type: "pubrel", packetId: 3, reasonCode: 0, properties: {} }, 4);
    assert.equal((await pub.readPacket()).type, "pubcomp");
    const received = await readPublish(sub);
    assert.equal(received.qos, 0);
    await Promise.all([sub.close(), pub.close()]);
  });
});

Deno.test("[MQTT-4.3.3-10] QoS 2 exactly once: a resent PUBLISH before PUBREL is not delivered twice", async () => {
  await withBroker("", async ({ port }) => {
    const { client: sub } = await connect(port, "sub");
    await subscribe(sub, 4, [subscription("q2", 2)]);
    const { client: pub } = await connect(port, "pub");
    await pub.sendPacket(publishPacket("q2", "once", 2, { packetId: 9 }), 4);
    assert.equal((await pub.readPacket()).type, "pubrec");
    await pub.sendPacket(publishPacket("q2", "once", 2, { packetId: 9, dup: true }), 4);
    assert.equal((await pub.readPacket()).type, "pubrec");
    await pub.sendPacket({ type: "pubrel", packetId: 9, reasonCode: 0, properties: {} }, 4);
    assert.equal((await pub.readPacket()).type, "pubcomp");
    const first = await readPublish(sub);
    assert.equal(text(first.payload), "once");
    await sub.sendPacket({ type: "pubrec", packetId: first.packetId!, reasonCode: 0, properties: {} }, 4);
    assert.equal((await sub.readPacket()).type, "pubrel");
    await sub.sendPacket({ type: "pubcomp", packetId: first.packetId!, reasonCode: 0, properties: {} }, 4);
    assert.ok(await sub.expectSilence(200), "the resent QoS 2 PUBLISH was delivered twice");
    await Promise.all([sub.close(), pub.close()]);
  });
});

Deno.test("[MQTT-4.7.2-1] wildcards at the first level do not match $ topics; '#' matches the parent level", async () => {
  await withBroker("", async ({ port }) => {
    const { client: sub } = await connect(port, "sub");
    await subscribe(sub, 4, [subscription("#", 0), subscription("sport/tennis/#", 0)], {}, 1);
    const { client: pub } = await connect(port, "pub");
    await pub.sendPacket(publishPacket("$SYS/x", "hidden"), 4);
    await pub.sendPacket(publishPacket("sport/tennis", "parent"), 4);
    const received = await readPublish(sub);
    assert.equal(received.topic, "sport/tennis");
    assert.ok(await sub.expectSilence(150)); // one delivery for two overlapping subscriptions
    await Promise.all([sub.close(), pub.close()]);
  });
});

Deno.test("overlapping subscriptions: one delivery per client at the highest granted QoS, all subscription ids (v5)", async () => {
  await withBroker("", async ({ port }) => {
    const { client: sub } = await connect(port, "sub", 5);
    await subscribe(sub, 5, [subscription("o/+", 0)], { subscriptionIdentifiers: [11] }, 1);
    await subscribe(sub, 5, [subscription("o/#", 1)], { subscriptionIdentifiers: [22] }, 2);
    const { client: pub } = await connect(port, "pub", 5);
    await pub.sendPacket(publishPacket("o/x", "m", 1, { packetId: 1 }), 5);
    const received = await readPublish(sub);
    assert.equal(received.qos, 1);
    assert.deepEqual([...received.properties.subscriptionIdentifiers!].sort(), [11, 22]);
    assert.ok(await sub.expectSilence(150));
    await Promise.all([sub.close(), pub.close()]);
  });
});

Deno.test("[MQTT-3.3.1-6] [MQTT-3.3.1-10] [MQTT-3.3.1-11] retained: delivered on subscribe with RETAIN 1, replaced, deleted by empty payload", async () => {
  await withBroker("", async ({ port }) => {
    const { client: pub } = await connect(port, "pub");
    await pub.sendPacket(publishPacket("r/1", "old", 0, { retain: true }), 4);
    await pub.sendPacket(publishPacket("r/1", "new", 0, { retain: true }), 4);
    await pub.sendPacket(publishPacket("r/2", "gone", 0, { retain: true }), 4);
    await pub.sendPacket(publishPacket("r/2", "", 0, { retain: true }), 4);
    await pub.sendPacket({ type: "pingreq" }, 4);
    assert.equal((await pub.readPacket()).type, "pingresp");
    const { client: sub } = await connect(port, "sub");
    await subscribe(sub, 4, [subscription("r/#", 1)]);
    const retained = await readPublish(sub);
    assert.equal(retained.retain, true);
    assert.equal(text(retained.payload), "new");
    assert.ok(await sub.expectSilence(150));
    await Promise.all([sub.close(), pub.close()]);
  });
});

Deno.test("v5 Retain Handling 1 sends retained messages only for a new subscription, 2 never; Retain As Published", async () => {
  await withBroker("", async ({ port }) => {
    const { client: pub } = await connect(port, "pub", 5);
    await pub.sendPacket(publishPacket("rh", "kept", 0, { retain: true }), 5);
    const { client: sub } = await connect(port, "sub", 5);
    await subscribe(sub, 5, [subscription("rh", 0, { retainHandling: 1, retainAsPublished: true })], {}, 1);
    assert.equal(text((await readPublish(sub)).payload), "kept");
    await subscribe(sub, 5, [subscription("rh", 0, { retainHandling: 1, retainAsPublished: true })], {}, 2);
    assert.ok(await sub.expectSilence(150), "Retain Handling 1 resent on an existing subscription");
    const { client: other } = await connect(port, "other", 5);
    await subscribe(other, 5, [subscription("rh", 0, { retainHandling: 2 })], {}, 1);
    assert.ok(await other.expectSilence(150), "Retain Handling 2 sent a retained message");
    await pub.sendPacket(publishPacket("rh", "live", 0, { retain: true }), 5);
    assert.equal((await readPublish(sub)).retain, true); // Retain As Published
    assert.equal((await readPublish(other)).retain, false);
    await Promise.all([sub.close(), pub.close(), other.close()]);
  });
});

Deno.test("[MQTT-3.8.3-3] v5 No Local: a client does not get its own messages", async () => {
  await withBroker("", async ({ port }) => {
    const { client } = await connect(port, "self", 5);
    await subscribe(client, 5, [subscription("nl", 0, { noLocal: true })]);
    await client.sendPacket(publishPacket("nl", "mine"), 5);
    assert.ok(await client.expectSilence(150));
    await client.close();
  });
});

Deno.test("shared subscriptions: one member per message, round robin, for 3.1.1 and 5.0 members", async () => {
  await withBroker("", async ({ port }) => {
    const { client: a } = await connect(port, "a", 4);
    const { client: b } = await connect(port, "b", 5);
    await subscribe(a, 4, [subscription("$share/g/jobs/#", 0)]);
    await subscribe(b, 5, [subscription("$share/g/jobs/#", 0)]);
    const { client: pub } = await connect(port, "pub");
    for (let i = 0; i < 4; i++) await pub.sendPacket(publishPacket("jobs/x", String(i)), 4);
    const gotA = [text((await readPublish(a)).payload), text((await readPublish(a)).payload)];
    const gotB = [text((await readPublish(b)).payload), text((await readPublish(b)).payload)];
    assert.deepEqual([...gotA, ...gotB].sort(), ["0", "1", "2", "3"]);
    assert.ok(await a.expectSilence(100));
    await Promise.all([a.close(), b.close(), pub.close()]);
  });
});

Deno.test("[MQTT-3.10.4-1] UNSUBSCRIBE stops delivery; UNSUBACK echoes the packet id", async () => {
  await withBroker("", async ({ port }) => {
    const { client: sub } = await connect(port, "sub");
    await subscribe(sub, 4, [subscription("u", 0)]);
    await sub.send(hex("a2 05 00 05 00 01 75")); // UNSUBSCRIBE id 5 "u"
    assert.equal(toHex(await sub.readBytes(4)), "b0 02 00 05");
    const { client: pub } = await connect(port, "pub");
    await pub.sendPacket(publishPacket("u", "x"), 4);
    assert.ok(await sub.expectSilence(150));
    await Promise.all([sub.close(), pub.close()]);
  });
});
