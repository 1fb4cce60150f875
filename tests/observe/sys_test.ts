/** The $SYS tree over a real broker: retained values, refreshed every interval, invisible to '#'. */
import assert from "node:assert/strict";
import { withBroker } from "../helpers/broker.ts";
import { connect, publishPacket, readPublish, subscribe, subscription, text } from "../helpers/clients.ts";

Deno.test("$SYS: retained broker figures for $SYS/broker/#, refreshed every interval, not matched by '#' [MQTT-4.7.2-1]", async () => {
  await withBroker("sys.interval_seconds = 1", async ({ port }) => {
    const { client: everything } = await connect(port, "hash");
    await subscribe(everything, 4, [subscription("#", 0)]);
    const { client: publisher } = await connect(port, "pub");
    await publisher.sendPacket(publishPacket("t", "x"), 4);
    assert.equal((await readPublish(everything)).topic, "t");

    const { client: watcher } = await connect(port, "watcher");
    await subscribe(watcher, 4, [subscription("$SYS/broker/#", 0)]);
    const seen = new Map<string, string>();
    while (!seen.has("$SYS/broker/uptime") || !seen.has("$SYS/broker/load/messages/received/1min")) {
      const message = await readPublish(watcher);
      assert.equal(message.retain, true, `${message.topic} was not retained`);
      seen.set(message.topic, text(message.payload));
    }
    assert.match(seen.get("$SYS/broker/version")!, /^mqtt-proxy \d+\.\d+\.\d+/);
    assert.match(seen.get("$SYS/broker/uptime")!, /^\d+ seconds$/);
    for (
      const topic of [
        "clients/connected",
        "clients/total",
        "messages/received",
        "messages/sent",
        "bytes/received",
        "bytes/sent",
        "subscriptions/count",
        "retained messages/count",
      ]
    ) {
      assert.match(seen.get(`$SYS/broker/${topic}`) ?? "", /^\d+$/, topic);
    }

    // The retained values are the last interval's; the next interval publishes the live ones.
    const started = Date.now();
    const live = new Map<string, string>();
    while (!live.has("$SYS/broker/clients/connected") || !live.has("$SYS/broker/messages/received")) {
      const message = await readPublish(watcher);
      live.set(message.topic, text(message.payload));
    }
    assert.ok(Date.now() - started < 3000, "no $SYS refresh within 3 s at a 1 s interval");
    assert.equal(live.get("$SYS/broker/clients/connected"), "3");
    assert.ok(Number(live.get("$SYS/broker/messages/received")) >= 1, "messages/received after one PUBLISH");
    assert.ok(await everything.expectSilence(200), "'#' received a $SYS message");
    await Promise.all([everything.close(), publisher.close(), watcher.close()]);
  });
});
