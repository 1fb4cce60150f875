/**
 * A client coming back to a long stored queue costs the broker about a page of it (QUEUE_PAGE, 4 MiB),
 * not the whole queue: 300 messages of 1 MiB (within the default mqtt.max_queued_messages and
 * mqtt.max_packet_size) come back to a client with a small Receive Maximum while the broker runs in a
 * memory cgroup well under the queue's size. Read whole, the queue alone would be 300 MiB on the broker's
 * thread, and as much again in the store's worker while it is handed over; the kernel would kill it.
 * The pages' payloads are moved from the worker, not copied: draining adds a few pages' worth, not copies
 * waiting for either side's next collection.
 */
import assert from "node:assert/strict";
import { connect, publishPacket, readPublish, subscribe, subscription } from "../helpers/clients.ts";
import { cgroupsAvailable, createMemoryCgroup, MB, startLimitedBroker } from "./support.ts";

/** The broker's idle size (about 60 MB here) and a few pages and windows of 1 MiB messages, with room. */
const LIMIT = 200 * MB;
const MESSAGES = 300;
/** 1 MiB PUBLISH packets: the payload, topic and headers within the default mqtt.max_packet_size. */
const PAYLOAD_BYTES = MB - 64;
/** What draining may add to the broker's own memory: a few pages (4 MiB each) and windows in flight. */
const DRAIN_GROWTH = 45 * MB;
const UNAVAILABLE = " (ignored: this machine cannot create a memory cgroup)";

function report(line: string): void {
  // deno-lint-ignore no-console
  console.log(`    [limits] ${line}`);
}

Deno.test({
  name:
    `queue paging: a client back to 300 stored messages of 1 MiB gets them all, in order, from a broker held to ${
      LIMIT / MB
    } MB` + (cgroupsAvailable ? "" : UNAVAILABLE),
  ignore: !cgroupsAvailable,
  fn: () => backToStoredQueue(3600),
});

Deno.test({
  name: `queue paging: the same with the client back with Session Expiry 0 (its session then ends with it)` +
    (cgroupsAvailable ? "" : UNAVAILABLE),
  ignore: !cgroupsAvailable,
  fn: () => backToStoredQueue(0),
});

/** A client comes back to its stored queue with `returningExpiry` as its Session Expiry Interval. */
async function backToStoredQueue(returningExpiry: number): Promise<void> {
  const storeDir = await Deno.makeTempDir({ prefix: "mqtt-proxy-paging-store-" });
  const cgroup = createMemoryCgroup(LIMIT)!;
  const broker = await startLimitedBroker(
    ["storage.type = embedded", `storage.dir = ${storeDir}`],
    cgroup.wrap,
  );
  const { port } = broker;
  const mb = (bytes: number) => `${(bytes / MB).toFixed(0)} MB`;
  // The cgroup's usage counts the store's file cache, which the kernel takes back under the limit: the
  // broker's own (anonymous) memory is sampled instead.
  let anonPeak = 0;
  const sampler = setInterval(() => anonPeak = Math.max(anonPeak, cgroup.anon() || 0), 20);
  try {
    const persistent = {
      cleanStart: false,
      properties: { sessionExpiryInterval: 3600, receiveMaximum: 2 },
    };
    const { client: first } = await connect(port, "sub", 5, persistent);
    await subscribe(first, 5, [subscription("q/#", 1)]);
    await first.close();

    const { client: publisher } = await connect(port, "pub", 5);
    const payload = new Uint8Array(PAYLOAD_BYTES);
    for (let index = 0; index < MESSAGES; index++) {
      new DataView(payload.buffer).setUint32(0, index);
      await publisher.sendPacket({ ...publishPacket(`q/${index}`, "", 1, { packetId: 1 }), payload }, 5);
      assert.equal((await publisher.readPacket()).type, "puback");
    }
    await publisher.close();
    const beforeDrain = cgroup.anon();
    report(`stored ${MESSAGES} × 1 MiB: own memory now ${mb(beforeDrain)}, peak ${mb(anonPeak)}`);
    anonPeak = 0;

    const { client: back, connack } = await connect(port, "sub", 5, {
      cleanStart: false,
      properties: { sessionExpiryInterval: returningExpiry, receiveMaximum: 2 },
    });
    assert.equal(connack.sessionPresent, true);
    for (let index = 0; index < MESSAGES; index++) {
      const publish = await readPublish(back);
      assert.equal(publish.topic, `q/${index}`);
      assert.equal(new DataView(publish.payload.buffer, publish.payload.byteOffset).getUint32(0), index);
      assert.equal(publish.payload.byteLength, PAYLOAD_BYTES);
      await back.sendPacket(
        { type: "puback", packetId: publish.packetId!, reasonCode: 0, properties: {} },
        5,
      );
    }
    assert.ok(await back.expectSilence(300), "every message once");
    await back.close();
    if (returningExpiry === 0) {
      const { client: after, connack } = await connect(port, "sub", 5, persistent);
      assert.equal(connack.sessionPresent, false, "a session resumed with Session Expiry 0 ends with it");
      await after.close();
    }
    assert.ok(await broker.alive(), `the broker was killed over ${mb(LIMIT)} (${broker.broker.output()})`);
    report(`drained: own memory peak ${mb(anonPeak)} (limit ${mb(LIMIT)})`);
    // A page and a window of 1 MiB messages, a few times over (measured: 18-28 MB). When the store's worker
    // copied each page to the broker instead of moving its payloads, the copies left behind on both sides
    // until their next collections took it to 50-60 MB.
    assert.ok(
      anonPeak - beforeDrain <= DRAIN_GROWTH,
      `draining took the broker's own memory from ${mb(beforeDrain)} to ${mb(anonPeak)}`,
    );
  } finally {
    clearInterval(sampler);
    if (!await broker.alive()) {
      report(`the broker died: own memory peak ${mb(anonPeak)} (limit ${mb(LIMIT)})`);
    }
    await broker.stop();
    await cgroup.remove();
    await Deno.remove(storeDir, { recursive: true });
  }
}
