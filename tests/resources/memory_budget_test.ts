/**
 * limits.memory_bytes: while the broker's memory is over it, client messages are not taken: QoS 0 is
 * dropped, QoS 1/2 are refused with 0x97 Quota exceeded (a QoS 2 id is free again), 3.1.1 publishers are
 * disconnected as for a full store; deleting a retained message, which frees memory, still works. A limit
 * of one byte keeps the broker over it from its first sample (the way back under is in
 * tests/broker/memory_budget_test.ts).
 */
import assert from "node:assert/strict";
import { MB } from "./support.ts";
import { withBroker } from "../helpers/broker.ts";
import { connect, publishPacket, readPublish, subscribe, subscription, text } from "../helpers/clients.ts";

Deno.test("memory budget: over limits.memory_bytes, QoS 0 is dropped and QoS 1/2 refused with 0x97; a retained delete is taken", async () => {
  await withBroker("limits.memory_bytes = 1\nsys.interval_seconds = 0", async ({ port, running }) => {
    const { client: watcher } = await connect(port, "watcher", 5);
    await subscribe(watcher, 5, [subscription("m/#", 2)]);
    const { client: publisher } = await connect(port, "publisher", 5);

    await publisher.sendPacket(publishPacket("m/0", "qos 0", 0), 5);
    await publisher.sendPacket(publishPacket("m/1", "qos 1", 1, { packetId: 1 }), 5);
    const puback = await publisher.readPacket();
    assert.ok(puback.type === "puback" && puback.reasonCode === 0x97, JSON.stringify(puback));
    await publisher.sendPacket(publishPacket("m/2", "qos 2", 2, { packetId: 2 }), 5);
    const pubrec = await publisher.readPacket();
    assert.ok(pubrec.type === "pubrec" && pubrec.reasonCode === 0x97, JSON.stringify(pubrec));
    assert.equal(
      running.broker.session("publisher")?.awaitingRelease.size,
      0,
      "the refused QoS 2 id is free",
    );
    assert.ok(await watcher.expectSilence(300), "nothing refused or dropped reaches a subscriber");

    await publisher.sendPacket(publishPacket("m/r", "", 1, { packetId: 3, retain: true }), 5);
    const deleted = await publisher.readPacket();
    assert.ok(
      deleted.type === "puback" && deleted.reasonCode < 0x80,
      "a retained delete frees memory: taken",
    );
    assert.equal(text((await readPublish(watcher)).payload), "");

    const { client: old } = await connect(port, "old", 4);
    await old.sendPacket(publishPacket("m/3", "3.1.1", 1, { packetId: 4 }), 4);
    await old.expectClosed();
    await Promise.all([watcher.close(), publisher.close(), old.close()]);
  });
});

Deno.test("memory budget: a publisher that keeps sending over the budget is logged once a second, not per message", async () => {
  await withBroker("limits.memory_bytes = 1\nsys.interval_seconds = 0", async ({ port, logLines }) => {
    const { client: publisher } = await connect(port, "publisher", 5);
    for (let id = 1; id <= 50; id++) {
      await publisher.sendPacket(publishPacket("m/1", "refused", 1, { packetId: id }), 5);
    }
    for (let id = 1; id <= 50; id++) {
      const ack = await publisher.readPacket();
      assert.ok(ack.type === "puback" && ack.reasonCode === 0x97, JSON.stringify(ack));
    }
    const refusals = logLines.filter((line) => line.includes('"publish.not_stored"'));
    assert.ok(refusals.length >= 1 && refusals.length <= 2, `${refusals.length} log lines for 50 refusals`);
    await publisher.close();
  });
});

Deno.test("memory budget: under limits.memory_bytes (automatic by default) messages flow", async () => {
  await withBroker("sys.interval_seconds = 0", async ({ port }) => {
    const { client: watcher } = await connect(port, "watcher", 5);
    await subscribe(watcher, 5, [subscription("m/#", 1)]);
    const { client: publisher } = await connect(port, "publisher", 5);
    await publisher.sendPacket(publishPacket("m/1", "qos 1", 1, { packetId: 1 }), 5);
    const puback = await publisher.readPacket();
    assert.ok(puback.type === "puback" && puback.reasonCode < 0x80, JSON.stringify(puback));
    assert.equal(text((await readPublish(watcher)).payload), "qos 1");
    await Promise.all([watcher.close(), publisher.close()]);
  });
});

Deno.test("memory budget: garbage does not count: a sample over the limit collects first, and messages flow when what is live is under it", async () => {
  const { heapUsed, external } = Deno.memoryUsage();
  const limit = heapUsed + external + 64 * MB;
  await withBroker(`limits.memory_bytes = ${limit}\nsys.interval_seconds = 0`, async ({ port, logLines }) => {
    const { client: watcher } = await connect(port, "watcher", 5);
    await subscribe(watcher, 5, [subscription("m/#", 1)]);
    const { client: publisher } = await connect(port, "publisher", 5);
    // 96 MB of garbage in the old generation (an array this large is allocated there at once): nothing
    // allocates after it, so V8 has no reason to collect it before the broker's next memory sample.
    let garbage: number[] | undefined = new Array(12 * MB).fill(0.5);
    assert.ok(Deno.memoryUsage().heapUsed > limit, "the garbage takes the heap over the limit");
    garbage = undefined;
    await new Promise((resolve) => setTimeout(resolve, 600)); // two samples

    await publisher.sendPacket(publishPacket("m/1", "qos 1", 1, { packetId: 1 }), 5);
    const puback = await publisher.readPacket();
    assert.ok(puback.type === "puback" && puback.reasonCode < 0x80, JSON.stringify(puback));
    assert.equal(text((await readPublish(watcher)).payload), "qos 1");
    assert.equal(garbage, undefined);
    assert.deepEqual(logLines.filter((line) => line.includes('"memory.over_budget"')), []);
    await Promise.all([watcher.close(), publisher.close()]);
  });
});
