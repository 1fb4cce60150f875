/** Persistent sessions, offline queues, resume and will messages, over real sockets. */
import assert from "node:assert/strict";
import type { Will } from "../../src/codec/mod.ts";
import { hex, withBroker } from "../helpers/broker.ts";
import { connect, publishPacket, readPublish, subscribe, subscription, text } from "../helpers/clients.ts";

function will(topic: string, payload: string, delay?: number): Will {
  return {
    topic,
    payload: new TextEncoder().encode(payload),
    qos: 1,
    retain: false,
    properties: delay === undefined ? {} : { willDelayInterval: delay },
  };
}

Deno.test("offline queue: QoS 1 messages for a persistent 3.1.1 session arrive on reconnect, in order", async () => {
  await withBroker("", async ({ port }) => {
    const first = await connect(port, "durable", 4, { cleanStart: false });
    await subscribe(first.client, 4, [subscription("q/#", 1)]);
    await first.client.send(hex("e0 00"));
    await first.client.expectClosed();
    const { client: pub } = await connect(port, "pub");
    for (let i = 0; i < 5; i++) {
      await pub.sendPacket(publishPacket("q/a", `m${i}`, 1, { packetId: i + 1 }), 4);
      assert.equal((await pub.readPacket()).type, "puback");
    }
    await pub.sendPacket(publishPacket("q/a", "qos0-dropped"), 4);
    const again = await connect(port, "durable", 4, { cleanStart: false });
    assert.equal(again.connack.sessionPresent, true);
    const got: string[] = [];
    for (let i = 0; i < 5; i++) {
      const message = await readPublish(again.client);
      got.push(text(message.payload));
      await again.client.sendPacket({
        type: "puback",
        packetId: message.packetId!,
        reasonCode: 0,
        properties: {},
      }, 4);
    }
    assert.deepEqual(got, ["m0", "m1", "m2", "m3", "m4"]);
    assert.ok(await again.client.expectSilence(150), "a QoS 0 message was queued for an offline session");
    await Promise.all([again.client.close(), pub.close()]);
  });
});

Deno.test("[MQTT-4.4.0-1] unacknowledged QoS 1 is re-sent with DUP on resume", async () => {
  await withBroker("", async ({ port }) => {
    const first = await connect(port, "resume", 4, { cleanStart: false });
    await subscribe(first.client, 4, [subscription("r", 1)]);
    const { client: pub } = await connect(port, "pub");
    await pub.sendPacket(publishPacket("r", "unacked", 1, { packetId: 1 }), 4);
    const original = await readPublish(first.client);
    assert.equal(original.dup, false);
    await first.client.close(); // no PUBACK
    const again = await connect(port, "resume", 4, { cleanStart: false });
    const resent = await readPublish(again.client);
    assert.equal(resent.dup, true);
    assert.equal(resent.packetId, original.packetId);
    assert.equal(text(resent.payload), "unacked");
    await Promise.all([again.client.close(), pub.close()]);
  });
});

Deno.test("[MQTT-3.1.2-4] clean start discards the previous session", async () => {
  await withBroker("", async ({ port }) => {
    const first = await connect(port, "c", 4, { cleanStart: false });
    await subscribe(first.client, 4, [subscription("x", 1)]);
    await first.client.close();
    const clean = await connect(port, "c", 4, { cleanStart: true });
    assert.equal(clean.connack.sessionPresent, false);
    const { client: pub } = await connect(port, "pub");
    await pub.sendPacket(publishPacket("x", "no"), 4);
    assert.ok(await clean.client.expectSilence(150));
    await Promise.all([clean.client.close(), pub.close()]);
  });
});

Deno.test("v5 Session Expiry Interval 0 ends the session at disconnect; a longer one keeps it", async () => {
  await withBroker("", async ({ port }) => {
    const short = await connect(port, "s0", 5, { cleanStart: false });
    await short.client.sendPacket({ type: "disconnect", reasonCode: 0, properties: {} }, 5);
    await short.client.expectClosed();
    assert.equal((await connect(port, "s0", 5, { cleanStart: false })).connack.sessionPresent, false);
    const kept = await connect(port, "s1", 5, {
      cleanStart: false,
      properties: { sessionExpiryInterval: 60 },
    });
    await kept.client.close();
    const back = await connect(port, "s1", 5, { cleanStart: false });
    assert.equal(back.connack.sessionPresent, true);
    await back.client.close();
  });
});

Deno.test("[MQTT-3.1.2-8] the will is published when the connection drops without DISCONNECT", async () => {
  await withBroker("", async ({ port }) => {
    const { client: watcher } = await connect(port, "watcher");
    await subscribe(watcher, 4, [subscription("wills/#", 1)]);
    const { client: dying } = await connect(port, "dying", 4, { will: will("wills/dying", "gone") });
    await dying.close();
    const message = await readPublish(watcher);
    assert.equal(message.topic, "wills/dying");
    assert.equal(text(message.payload), "gone");
    await watcher.close();
  });
});

Deno.test("[MQTT-3.1.2-10] no will after a normal DISCONNECT; v5 reason 0x04 sends it", async () => {
  await withBroker("", async ({ port }) => {
    const { client: watcher } = await connect(port, "watcher", 5);
    await subscribe(watcher, 5, [subscription("wills/#", 0)]);
    const polite = await connect(port, "polite", 5, { will: will("wills/polite", "x") });
    await polite.client.sendPacket({ type: "disconnect", reasonCode: 0, properties: {} }, 5);
    await polite.client.expectClosed();
    assert.ok(await watcher.expectSilence(150), "will sent after a normal DISCONNECT");
    const asking = await connect(port, "asking", 5, { will: will("wills/asking", "please") });
    await asking.client.sendPacket({ type: "disconnect", reasonCode: 4, properties: {} }, 5);
    assert.equal(text((await readPublish(watcher)).payload), "please");
    await watcher.close();
  });
});

Deno.test("the will is published on keep-alive timeout", async () => {
  await withBroker("", async ({ port }) => {
    const { client: watcher } = await connect(port, "watcher");
    await subscribe(watcher, 4, [subscription("wills/#", 0)]);
    const { client: silent } = await connect(port, "silent", 4, {
      keepAlive: 1,
      will: will("wills/silent", "timeout"),
    });
    assert.equal(text((await readPublish(watcher)).payload), "timeout");
    await silent.expectClosed();
    await watcher.close();
  });
});

Deno.test("v5 Will Delay Interval: the will waits, and is cancelled when the client reconnects in time", async () => {
  await withBroker("", async ({ port }) => {
    const { client: watcher } = await connect(port, "watcher", 5);
    await subscribe(watcher, 5, [subscription("wills/#", 0)]);
    const sessionProps = { sessionExpiryInterval: 60 };
    const first = await connect(port, "delayed", 5, {
      will: will("wills/delayed", "late", 1),
      properties: sessionProps,
    });
    await first.client.close();
    assert.ok(await watcher.expectSilence(300), "will sent before its delay");
    const back = await connect(port, "delayed", 5, { cleanStart: false, properties: sessionProps });
    assert.ok(await watcher.expectSilence(1200), "will sent although the client came back");
    await back.client.close(); // no will this time: the new CONNECT had none
    const other = await connect(port, "other", 5, {
      will: will("wills/other", "after-delay", 1),
      properties: sessionProps,
    });
    await other.client.close();
    const started = Date.now();
    assert.equal(text((await readPublish(watcher)).payload), "after-delay");
    assert.ok(Date.now() - started >= 800);
    await watcher.close();
  });
});

Deno.test("the will of a taken-over connection is published (delay 0)", async () => {
  await withBroker("", async ({ port }) => {
    const { client: watcher } = await connect(port, "watcher");
    await subscribe(watcher, 4, [subscription("wills/#", 0)]);
    const first = await connect(port, "twin", 4, { will: will("wills/twin", "taken") });
    const second = await connect(port, "twin", 4);
    assert.equal(text((await readPublish(watcher)).payload), "taken");
    await first.client.expectClosed();
    await Promise.all([second.client.close(), watcher.close()]);
  });
});
