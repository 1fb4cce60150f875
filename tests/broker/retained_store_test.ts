/**
 * With the embedded store, retained payloads stay in the store and a SUBSCRIBE's matches are read from it
 * a page at a time, after the SUBACK: they still reach the subscriber in order with the live messages
 * (none older overtakes a newer one on its topic), and they wait for room in its socket rather than be
 * dropped. (The retained semantics themselves, Retain Handling, Retain As Published, shared subscriptions,
 * subscription identifiers, are the conformance suites'.)
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { Decoder, encode, type Packet, ReasonCode } from "../../src/codec/mod.ts";
import { type StorageAdapter, StorageError } from "../../src/storage/port.ts";
import type { RawClient } from "../helpers/broker.ts";
import { type TestBroker, withBroker } from "../helpers/broker.ts";
import { connect, publishPacket, readPublish, subscribe, subscription, text } from "../helpers/clients.ts";
import { freePort, startBrokerProcess } from "../helpers/process.ts";
import { withTempDir } from "../storage/embedded_helpers.ts";

/** Publishes `count` retained QoS 0 messages of `size` bytes on `prefix/<i>`, then waits until all are taken. */
async function retainTree(publisher: RawClient, prefix: string, count: number, size: number): Promise<void> {
  for (let i = 0; i < count; i++) {
    const payload = `${prefix}/${i} old`.padEnd(size, ".");
    await publisher.sendPacket(publishPacket(`${prefix}/${i}`, payload, 0, { retain: true }), 5);
  }
  // Handled in order: its PUBACK comes once every message before it is retained.
  await publisher.sendPacket(publishPacket("barrier", "", 1, { packetId: 1 }), 5);
  assert.equal((await publisher.readPacket()).type, "puback");
}

/** What a subscriber received per topic, as payload texts (up to the first "."), until `done` says so. */
async function receiveUntil(
  client: RawClient,
  done: (received: Map<string, string[]>) => boolean,
): Promise<Map<string, string[]>> {
  const received = new Map<string, string[]>();
  while (!done(received)) {
    const publish = await readPublish(client);
    const payload = text(publish.payload).split(".")[0];
    received.set(publish.topic, [...received.get(publish.topic) ?? [], payload]);
  }
  return received;
}

/**
 * A v5 subscriber on a bare socket that reads only when asked: `subscribe` returns once its SUBACK is read,
 * leaving the retained messages behind it unread, so the broker's output to it backs up; `next` reads on;
 * `subscribeAgain` sends the same SUBSCRIBE once more without reading anything.
 */
async function pausedSubscriber(
  port: number,
  clientId: string,
  filter: string,
  qos: 0 | 1,
  session: { cleanStart: boolean; properties: { sessionExpiryInterval?: number } },
): Promise<{ next(): Promise<Packet>; subscribeAgain(): Promise<void>; close(): void }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const decoder = new Decoder({ maxPacketSize: 1 << 28, protocolVersion: 5 });
  const chunk = new Uint8Array(64 * 1024);
  // One read at a time, kept across a timed-out call: a test that waits in vain fails instead of hanging.
  let reading: Promise<number | null> | undefined;
  const next = async (): Promise<Packet> => {
    for (;;) {
      const packet = decoder.next();
      if (packet) return packet;
      reading ??= conn.read(chunk);
      reading.catch(() => {}); // ends with the socket
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timeout = new Promise<"timeout">((resolve) => timer = setTimeout(() => resolve("timeout"), 5000));
      const n = await Promise.race([reading, timeout]).finally(() => clearTimeout(timer));
      if (n === "timeout") throw new Error(`nothing from the broker within 5000 ms for ${clientId}`);
      reading = undefined;
      assert.ok(n !== null, `the broker closed ${clientId}`);
      decoder.push(chunk.slice(0, n));
    }
  };
  const connectPacket = {
    type: "connect" as const,
    protocolName: "MQTT",
    protocolVersion: 5 as const,
    keepAlive: 0,
    clientId,
    ...session,
  };
  await conn.write(encode(connectPacket, 5));
  const subscribePacket = {
    type: "subscribe" as const,
    packetId: 1,
    subscriptions: [subscription(filter, qos)],
  };
  await conn.write(encode({ ...subscribePacket, properties: {} }, 5));
  while ((await next()).type !== "suback");
  const subscribeAgain = async () => {
    await conn.write(encode({ ...subscribePacket, properties: {} }, 5));
  };
  return { next, subscribeAgain, close: () => conn.close() };
}

/** Retained messages on big/0.. that {@link pausedBehindBigTree} publishes, 100 KiB each (20 MB in all). */
const BIG_TREE = 200;

/**
 * A publisher that retained BIG_TREE messages of 100 KiB (more than any socket takes at once), and a v5
 * subscriber to big/# at QoS 0 that stopped reading after its SUBACK (see {@link pausedSubscriber}).
 */
async function pausedBehindBigTree(port: number) {
  const { client: publisher } = await connect(port, "publisher", 5);
  await retainTree(publisher, "big", BIG_TREE, 100 * 1024);
  const subscriber = await pausedSubscriber(port, "subscriber", "big/#", 0, {
    cleanStart: true,
    properties: {},
  });
  return { publisher, subscriber };
}

/** A broker on a fresh embedded store, with `lines` added to its properties. */
function withEmbeddedBroker(lines: string[], fn: (broker: TestBroker) => Promise<void>): Promise<void> {
  return withTempDir((dir) =>
    withBroker([`storage.type = embedded`, `storage.dir = ${join(dir, "data")}`, ...lines].join("\n"), fn)
  );
}

Deno.test("retained store: a live message published while the retained ones are read comes after its topic's; a replacement is sent instead of the stale one", async () => {
  await withTempDir(async (dir) => {
    const properties = `storage.type = embedded\nstorage.dir = ${join(dir, "data")}`;
    const count = 3000;
    await withBroker(properties, async ({ port }) => {
      const { client: publisher } = await connect(port, "publisher", 5);
      await retainTree(publisher, "t", count, 1024);
      await publisher.close();
    });
    // After a restart no payload is in memory: every page is read from the store.
    await withBroker(properties, async ({ port }) => {
      const { client: publisher } = await connect(port, "publisher", 5);
      const { client: subscriber } = await connect(port, "subscriber", 5);
      assert.deepEqual(await subscribe(subscriber, 5, [subscription("t/#", 0)]), [0]);
      // While the pages are read (3 MB, a few pages): the last topics' messages are still in the store.
      await publisher.sendPacket(publishPacket(`t/${count - 1}`, "live"), 5);
      await publisher.sendPacket(publishPacket(`t/${count - 2}`, "new", 0, { retain: true }), 5);
      const received = await receiveUntil(
        subscriber,
        (received) =>
          received.size === count && received.get(`t/${count - 1}`)?.length === 2 &&
          received.get(`t/${count - 2}`)!.includes("new"),
      );
      assert.deepEqual(received.get(`t/${count - 1}`), [`t/${count - 1} old`, "live"]);
      const replaced = received.get(`t/${count - 2}`)!;
      // The old one if its page went before the replacement came, then the replacement once: never after it.
      assert.ok(
        [[`t/${count - 2} old`, "new"], ["new"]].some((expected) => expected.join() === replaced.join()),
        `t/${count - 2}: ${replaced}`,
      );
      assert.equal(received.get("t/0")![0], "t/0 old");
      assert.equal(await subscriber.expectSilence(200), true);
      await publisher.close();
      await subscriber.close();
    });
  });
});

Deno.test("retained store: retained messages past mqtt.max_outbound_bytes wait for room, even at QoS 0, and all arrive", async () => {
  await withEmbeddedBroker(["mqtt.max_outbound_bytes = 16384"], async ({ port }) => {
    const { client: publisher } = await connect(port, "publisher", 5);
    const count = 500;
    await retainTree(publisher, "q", count, 1024); // 500 KiB: thirty times the subscriber's output bound
    const { client: subscriber } = await connect(port, "subscriber", 5);
    assert.deepEqual(await subscribe(subscriber, 5, [subscription("q/#", 0)]), [0]);
    const received = await receiveUntil(subscriber, (received) => received.size === count);
    assert.ok([...received.values()].every((payloads) => payloads.length === 1));
    assert.equal(await subscriber.expectSilence(200), true);
    await publisher.close();
    await subscriber.close();
  });
});

Deno.test("retained store: after a restart the retained messages are read from the store, payloads and properties intact", async () => {
  await withTempDir(async (dir) => {
    const properties = `storage.type = embedded\nstorage.dir = ${join(dir, "data")}`;
    await withBroker(properties, async ({ port }) => {
      const { client } = await connect(port, "publisher", 5);
      await client.sendPacket(
        publishPacket("r/1", "first", 1, {
          packetId: 1,
          retain: true,
          properties: { contentType: "text/plain", userProperties: [["k", "v"]] },
        }),
        5,
      );
      assert.equal((await client.readPacket()).type, "puback");
      await client.sendPacket(publishPacket("r/2", "second", 1, { packetId: 2, retain: true }), 5);
      assert.equal((await client.readPacket()).type, "puback");
      await client.close();
    });
    await withBroker(properties, async ({ port }) => {
      const { client } = await connect(port, "subscriber", 5);
      assert.deepEqual(
        await subscribe(client, 5, [subscription("r/+", 1)], { subscriptionIdentifiers: [7] }),
        [
          1,
        ],
      );
      const received = [await readPublish(client), await readPublish(client)].sort((a, b) =>
        a.topic.localeCompare(b.topic)
      );
      assert.deepEqual(received.map((publish) => [publish.topic, text(publish.payload), publish.retain]), [
        ["r/1", "first", true],
        ["r/2", "second", true],
      ]);
      assert.equal(received[0].properties.contentType, "text/plain");
      assert.deepEqual(received[0].properties.userProperties, [["k", "v"]]);
      assert.deepEqual(received[1].properties.subscriptionIdentifiers, [7]);
      for (const publish of received) {
        await client.sendPacket({
          type: "puback",
          packetId: publish.packetId!,
          reasonCode: 0,
          properties: {},
        }, 5);
      }
      await client.close();
    });
  });
});

Deno.test("retained store: read from the store after a restart, Retain Handling 1 and 2, shared subscriptions and Retain As Published keep their meaning", async () => {
  await withTempDir(async (dir) => {
    const properties = `storage.type = embedded\nstorage.dir = ${join(dir, "data")}`;
    await withBroker(properties, async ({ port }) => {
      const { client } = await connect(port, "publisher", 5);
      await client.sendPacket(publishPacket("rh", "kept", 1, { packetId: 1, retain: true }), 5);
      assert.equal((await client.readPacket()).type, "puback");
      await client.close();
    });
    await withBroker(properties, async ({ port }) => {
      const { client: sub } = await connect(port, "sub", 5);
      const options = { retainHandling: 1 as const, retainAsPublished: true };
      await subscribe(sub, 5, [subscription("rh", 0, options)], {}, 1);
      const first = await readPublish(sub);
      assert.deepEqual([text(first.payload), first.retain], ["kept", true]);
      await subscribe(sub, 5, [subscription("rh", 0, options)], {}, 2);
      assert.ok(await sub.expectSilence(150), "Retain Handling 1 resent on an existing subscription");
      const { client: other } = await connect(port, "other", 5);
      await subscribe(other, 5, [subscription("rh", 0, { retainHandling: 2 })], {}, 1);
      await subscribe(other, 5, [subscription("$share/g/rh", 0)], {}, 2);
      assert.ok(
        await other.expectSilence(150),
        "Retain Handling 2 or a shared subscription sent a retained message",
      );
      const { client: pub } = await connect(port, "pub", 5);
      await pub.sendPacket(publishPacket("rh", "live", 0, { retain: true }), 5);
      assert.equal((await readPublish(sub)).retain, true); // Retain As Published
      assert.equal((await readPublish(other)).retain, false);
      await Promise.all([sub.close(), pub.close(), other.close()]);
    });
  });
});

Deno.test("retained store: a persistent subscriber that leaves while its retained messages are read gets every one when it comes back", async () => {
  await withTempDir(async (dir) => {
    // A queue that takes them all (the default 1000 would drop the oldest, as for live messages).
    const properties = `storage.type = embedded\nstorage.dir = ${
      join(dir, "data")
    }\nmqtt.max_queued_messages = 10000`;
    const count = 2000;
    await withBroker(properties, async ({ port }) => {
      // At QoS 1, so that what the subscriber is not sent before it leaves is kept for it.
      const { client: publisher } = await connect(port, "publisher", 5);
      for (let i = 0; i < count; i += 50) {
        for (let id = 1; id <= 50; id++) {
          const topic = `p/${i + id - 1}`;
          await publisher.sendPacket(publishPacket(topic, topic, 1, { packetId: id, retain: true }), 5);
        }
        for (let id = 1; id <= 50; id++) assert.equal((await publisher.readPacket()).type, "puback");
      }
      await publisher.close();
    });
    await withBroker(properties, async ({ port }) => {
      const persistent = { cleanStart: false, properties: { sessionExpiryInterval: 3600 } };
      const { client: first } = await connect(port, "persistent", 5, persistent);
      assert.deepEqual(await subscribe(first, 5, [subscription("p/#", 1)]), [1]);
      await readPublish(first); // then gone without acknowledging: the rest is read while it is away
      await first.close();
      const { client: again, connack } = await connect(port, "persistent", 5, persistent);
      assert.equal(connack.sessionPresent, true);
      const topics = new Set<string>();
      while (topics.size < count) {
        const publish = await readPublish(again).catch((error) => {
          throw new Error(`after ${topics.size} of ${count} topics: ${error}`);
        });
        assert.equal(publish.retain, true);
        topics.add(publish.topic);
        await again.sendPacket(
          { type: "puback", packetId: publish.packetId!, reasonCode: 0, properties: {} },
          5,
        );
      }
      assert.ok(await again.expectSilence(200));
      await again.close();
    });
  });
});

Deno.test("retained store: a live QoS 1 message held behind its topic's retained one being read survives a kill -9 once acknowledged", async () => {
  await withTempDir(async (dir) => {
    const port = freePort();
    const config = join(dir, "broker.properties");
    // Payloads over the 64 KiB kept in memory, and more of them than the subscriber's socket takes: its
    // retained messages wait in the store for room, and a live message on the last topic waits behind them.
    await Deno.writeTextFile(
      config,
      [
        "listener.default.host = 127.0.0.1",
        `listener.default.port = ${port}`,
        "storage.type = embedded",
        `storage.dir = ${join(dir, "data")}`,
        "mqtt.max_outbound_bytes = 262144",
        "log.level = warn",
      ].join("\n") + "\n",
    );
    const count = 200;
    let broker = await startBrokerProcess(config, port);
    try {
      const { client: publisher } = await connect(port, "publisher", 5);
      await retainTree(publisher, "big", count, 100 * 1024);
      const persistent = { cleanStart: false, properties: { sessionExpiryInterval: 3600 } };
      // Stopped after its SUBACK: 20 MB of retained messages cannot all go out, so the last topic's is still
      // in the store when the live message comes.
      const subscriber = await pausedSubscriber(port, "subscriber", "big/#", 1, persistent);
      await publisher.sendPacket(publishPacket(`big/${count - 1}`, "live", 1, { packetId: 2 }), 5);
      const ack = await publisher.readPacket();
      assert.equal(ack.type, "puback");
      await broker.kill9();
      subscriber.close();
      await publisher.close();

      broker = await startBrokerProcess(config, port);
      const { client: again, connack } = await connect(port, "subscriber", 5, persistent);
      assert.equal(connack.sessionPresent, true);
      // Retained messages sent before the crash come again; the acknowledged live message must come too.
      const payloads: string[] = [];
      while (!payloads.includes("live")) {
        const publish = await readPublish(again).catch((error) => {
          throw new Error(`"live" never came, after ${payloads.length} messages: ${error}`);
        });
        payloads.push(text(publish.payload).split(".")[0]);
        await again.sendPacket(
          { type: "puback", packetId: publish.packetId!, reasonCode: 0, properties: {} },
          5,
        );
      }
      await again.close();
    } finally {
      await broker.kill9();
    }
  });
});

Deno.test("retained store: a failed read of a SUBSCRIBE's retained messages is tried again by the broker, though the client sends nothing more", async () => {
  await withEmbeddedBroker([], async ({ port, running }) => {
    const { client: publisher } = await connect(port, "publisher", 5);
    // Over the 64 KiB kept in memory: read from the store.
    await retainTree(publisher, "r", 3, 100 * 1024);
    await publisher.close();
    // The store fails every retained read while `failing`: the broker's own storage object, patched.
    const storage = (running.broker as unknown as { options: { storage: StorageAdapter } }).options.storage;
    const readRetained = storage.readRetained.bind(storage);
    let failing = true;
    let failed = 0;
    storage.readRetained = (topics) => {
      if (!failing) return readRetained(topics);
      failed++;
      return Promise.reject(new StorageError("injected read failure", ReasonCode.UnspecifiedError));
    };
    const { client: subscriber } = await connect(port, "subscriber", 5, { keepAlive: 0 });
    assert.deepEqual(await subscribe(subscriber, 5, [subscription("r/#", 0)]), [0]);
    assert.ok(await subscriber.expectSilence(300));
    assert.ok(failed > 0, "a read was tried and failed");
    failing = false;
    // The client sends nothing more: only the broker trying again brings them.
    const received = await receiveUntil(subscriber, (received) => received.size === 3);
    assert.deepEqual([...received.keys()].sort(), ["r/0", "r/1", "r/2"]);
    await subscriber.close();
  });
});

Deno.test("retained store: live messages held behind a retained message being read are bounded like a queue (mqtt.max_queued_messages)", async () => {
  await withEmbeddedBroker(
    ["mqtt.max_outbound_bytes = 262144", "mqtt.max_queued_messages = 10"],
    async ({ port }) => {
      const count = BIG_TREE;
      // It stops reading after its SUBACK: the last topic's retained message stays in the store.
      const { publisher, subscriber } = await pausedBehindBigTree(port);
      // 15 live messages on the last topic, held behind its retained message: at most 10 are kept.
      for (let i = 0; i < 15; i++) {
        await publisher.sendPacket(publishPacket(`big/${count - 1}`, `live-${i}`), 5);
      }
      await publisher.sendPacket(publishPacket("barrier", "", 1, { packetId: 2 }), 5);
      assert.equal((await publisher.readPacket()).type, "puback");
      // Now it reads: the retained messages, the last topic's, the held live ones, then "end", sent once the
      // last retained message arrived (nothing waits any more: it is not held).
      const live: string[] = [];
      for (let ended = false; !ended;) {
        const packet = await subscriber.next();
        if (packet.type !== "publish") continue;
        const payload = text(packet.payload).split(".")[0];
        if (packet.topic === `big/${count - 1}` && packet.retain) {
          await publisher.sendPacket(publishPacket(`big/${count - 1}`, "end"), 5);
        } else if (payload === "end") ended = true;
        else if (payload.startsWith("live-")) live.push(payload);
      }
      assert.deepEqual(live, Array.from({ length: 10 }, (_, i) => `live-${i}`));
      subscriber.close();
      await publisher.close();
    },
  );
});

Deno.test("retained store: a client that stops reading and repeats its SUBSCRIBE does not multiply the retained messages waiting for it", async () => {
  await withEmbeddedBroker(
    ["mqtt.max_outbound_bytes = 262144", "mqtt.max_queued_messages = 10"],
    async ({ port }) => {
      const count = BIG_TREE;
      const repeats = 5;
      const { publisher, subscriber } = await pausedBehindBigTree(port);
      for (let i = 0; i < repeats; i++) await subscriber.subscribeAgain();
      // Handled in order after the SUBSCRIBEs: the PUBACK says the broker has taken them all.
      await publisher.sendPacket(publishPacket("barrier", "", 1, { packetId: 2 }), 5);
      assert.equal((await publisher.readPacket()).type, "puback");
      // Now it reads everything the broker still has for it: every retained message at least once, then
      // until the broker has been silent a while.
      const received = new Map<string, number>();
      let subacks = 1;
      const reading = (async () => {
        for (;;) {
          const packet = await subscriber.next();
          if (packet.type === "suback") subacks++;
          if (packet.type === "publish") received.set(packet.topic, (received.get(packet.topic) ?? 0) + 1);
        }
      })();
      reading.catch(() => {}); // ends when the socket is closed below
      while (received.size < count || subacks < repeats + 1) await new Promise((r) => setTimeout(r, 50));
      let total = -1;
      for (let seen = sum(received); seen !== total; seen = sum(received)) {
        total = seen;
        await new Promise((r) => setTimeout(r, 2000));
      }
      subscriber.close();
      await publisher.close();
      // One full match set always fits (200 > mqtt.max_queued_messages), plus what the first SUBSCRIBE's
      // pages had taken before the client stopped reading (its socket buffers hold some); without a bound
      // every repeat adds all 200 again.
      assert.ok(total < 2 * count, `${total} retained messages for ${repeats + 1} SUBSCRIBEs of ${count}`);
    },
  );
});

function sum(counts: Map<string, number>): number {
  let total = 0;
  for (const n of counts.values()) total += n;
  return total;
}

/**
 * The next PUBLISH as "topic payload" (up to the payload's first "."), acknowledged at QoS 1; other packets
 * (a SUBACK among them) are skipped.
 */
async function receiveLine(client: RawClient): Promise<string> {
  let publish = await client.readPacket();
  while (publish.type !== "publish") publish = await client.readPacket();
  if (publish.packetId !== undefined) {
    await client.sendPacket({ type: "puback", packetId: publish.packetId, reasonCode: 0, properties: {} }, 5);
  }
  return `${publish.topic} ${text(publish.payload).split(".")[0]}`;
}

/** Makes the broker's own store fail every retained read while `failing()` says so (fault injection). */
function failRetainedReads(running: { broker: unknown }, failing: () => boolean): void {
  const storage = (running.broker as { options: { storage: StorageAdapter } }).options.storage;
  const readRetained = storage.readRetained.bind(storage);
  storage.readRetained = (topics) =>
    failing()
      ? Promise.reject(new StorageError("injected read failure", ReasonCode.UnspecifiedError))
      : readRetained(topics);
}

const PERSISTENT = { cleanStart: false, properties: { sessionExpiryInterval: 3600 } };

/**
 * Three retained QoS 1 messages r/0..r/2 read from the store (over the 64 KiB kept in memory), whose reads
 * fail until `reads.failing` is false; a persistent subscriber to r/# that left after a live QoS 1 message
 * on r/2 was held behind r/2's retained one (and stored before its PUBACK).
 */
async function leftWhileHeld(
  port: number,
  running: TestBroker["running"],
): Promise<{ publisher: RawClient; reads: { failing: boolean } }> {
  const { client: publisher } = await connect(port, "publisher", 5);
  for (let i = 0; i < 3; i++) { // at QoS 1: kept for a client that is away
    const payload = `r/${i} old`.padEnd(100 * 1024, ".");
    await publisher.sendPacket(publishPacket(`r/${i}`, payload, 1, { packetId: 10 + i, retain: true }), 5);
    assert.equal((await publisher.readPacket()).type, "puback");
  }
  const reads = { failing: true };
  failRetainedReads(running, () => reads.failing);
  const { client: first } = await connect(port, "subscriber", 5, PERSISTENT);
  assert.deepEqual(await subscribe(first, 5, [subscription("r/#", 1)]), [1]);
  await publisher.sendPacket(publishPacket("r/2", "live", 1, { packetId: 2 }), 5);
  assert.equal((await publisher.readPacket()).type, "puback");
  await first.close();
  return { publisher, reads };
}

Deno.test("retained store: a live message held behind a retained one still being read comes once, after it, to a persistent subscriber that left and came back meanwhile", async () => {
  await withEmbeddedBroker([], async ({ port, running }) => {
    const { publisher, reads } = await leftWhileHeld(port, running);
    const { client: again, connack } = await connect(port, "subscriber", 5, PERSISTENT);
    assert.equal(connack.sessionPresent, true);
    reads.failing = false;
    // A marker on a topic with no retained message: sent at once, after whatever came before it.
    const received: string[] = [];
    const receive = async () => received.push(await receiveLine(again));
    while (!received.includes("r/2 live")) await receive();
    await publisher.sendPacket(publishPacket("r/end", "end", 1, { packetId: 3 }), 5);
    assert.equal((await publisher.readPacket()).type, "puback");
    while (!received.includes("r/end end")) await receive();
    assert.deepEqual(received.filter((line) => line.startsWith("r/2")), ["r/2 r/2 old", "r/2 live"]);
    await again.close();
    await publisher.close();
  });
});

Deno.test("retained store: a persistent session whose client left while its retained messages were read is paged out once they are, and gets them all when it comes back", async () => {
  await withEmbeddedBroker([], async ({ port, running }) => {
    const { publisher, reads } = await leftWhileHeld(port, running);
    const registry = (running.broker as unknown as {
      registry: { get(clientId: string): { session: { pagedOut: boolean } } | undefined };
    }).registry;
    assert.equal(registry.get("subscriber")?.session.pagedOut, false, "kept while its reads wait");
    reads.failing = false;
    // The broker tries the read again within a second (PAGE_RETRY_MS); then storage holds everything.
    for (let i = 0; i < 100 && !registry.get("subscriber")?.session.pagedOut; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.equal(registry.get("subscriber")?.session.pagedOut, true, "paged out once its reads are done");
    const { client: again } = await connect(port, "subscriber", 5, PERSISTENT);
    const received: string[] = [];
    while (received.length < 4) {
      received.push(await receiveLine(again));
    }
    assert.deepEqual(received, ["r/0 r/0 old", "r/1 r/1 old", "r/2 r/2 old", "r/2 live"]);
    assert.ok(await again.expectSilence(300));
    await again.close();
    await publisher.close();
  });
});

Deno.test("retained store: a resumed session still reading its stored backlog gets a live message on a topic whose retained message waits exactly once", async () => {
  await withEmbeddedBroker(["mqtt.max_queued_messages = 10000"], async ({ port, running }) => {
    const persistent = { cleanStart: false, properties: { sessionExpiryInterval: 3600 } };
    const { client: away } = await connect(port, "subscriber", 5, persistent);
    assert.deepEqual(await subscribe(away, 5, [subscription("q/#", 1)]), [1]);
    await away.close();
    const { client: publisher } = await connect(port, "publisher", 5);
    let packetId = 0;
    const publish = async (topic: string, payload: string, retain = false) => {
      packetId = packetId % 65535 + 1;
      await publisher.sendPacket(publishPacket(topic, payload, 1, { packetId, retain }), 5);
      assert.equal((await publisher.readPacket()).type, "puback");
    };
    // A backlog of more than a page (1000): the session resumes reading it from storage page by page.
    const backlog = 1200;
    for (let i = 0; i < backlog; i++) await publish("q/a", `backlog-${i}`);
    for (let i = 0; i < 3; i++) await publish(`r/${i}`, `r/${i} old`.padEnd(100 * 1024, "."), true);
    let failing = true;
    failRetainedReads(running, () => failing);
    const { client: subscriber, connack } = await connect(port, "subscriber", 5, persistent);
    assert.equal(connack.sessionPresent, true);
    await subscriber.sendPacket({
      type: "subscribe",
      packetId: 1,
      subscriptions: [subscription("r/#", 1)],
      properties: {},
    }, 5);
    // r/2's retained message cannot be read yet; then more of the backlog after this one.
    await publish("r/2", "live");
    for (let i = 0; i < 10; i++) await publish("q/a", `after-${i}`);
    const received: string[] = [];
    const receive = async () => received.push(await receiveLine(subscriber));
    // The whole backlog, the live message among it, while the retained reads still fail.
    while (!received.includes("q/a after-9")) await receive();
    failing = false;
    while (!received.includes("r/2 r/2 old")) await receive();
    await publish("r/end", "end");
    while (!received.includes("r/end end")) await receive();
    assert.equal(received.filter((line) => line === "r/2 live").length, 1, "r/2 live exactly once");
    assert.equal(received.filter((line) => line.startsWith("q/a backlog")).length, backlog);
    await subscriber.close();
    await publisher.close();
  });
});

Deno.test("retained store: over the memory budget, a SUBSCRIBE's retained matches waiting to be read are bounded by mqtt.max_queued_messages", async () => {
  await withTempDir(async (dir) => {
    const store = [`storage.type = embedded`, `storage.dir = ${join(dir, "data")}`];
    await withBroker(store.join("\n"), async ({ port }) => {
      const { client: publisher } = await connect(port, "publisher", 5);
      await retainTree(publisher, "r", 20, 100 * 1024); // over the 64 KiB kept in memory: read from the store
      await publisher.close();
    });
    const limited = [...store, "limits.memory_bytes = 1", "mqtt.max_queued_messages = 10"];
    await withBroker(limited.join("\n"), async ({ port }) => {
      const { client } = await connect(port, "subscriber", 5);
      await client.sendPacket(publishPacket("probe", "", 1, { packetId: 1 }), 5);
      const refused = await client.readPacket();
      assert.ok(refused.type === "puback" && refused.reasonCode === 0x97, "the broker is over its budget");
      assert.deepEqual(await subscribe(client, 5, [subscription("r/#", 0)], {}, 2), [0]);
      const received = await receiveUntil(client, (received) => received.size === 10);
      assert.ok(await client.expectSilence(500), "10 of the 20, not more");
      assert.equal(received.size, 10);
      await client.close();
    });
  });
});

Deno.test("retained store: at most 100,000 retained matches wait to be read for one client, however many match, and every one of them arrives", async () => {
  const count = 100_005;
  await withEmbeddedBroker(
    ["mqtt.max_outbound_bytes = 16384", "mqtt.max_queued_messages = 10"],
    async ({ port }) => {
      const { client: publisher } = await connect(port, "publisher", 5);
      for (let i = 0; i < count; i++) {
        await publisher.sendPacket(publishPacket(`m/${i}`, "x", 0, { retain: true }), 5);
      }
      await publisher.sendPacket(publishPacket("barrier", "", 1, { packetId: 1 }), 5);
      assert.equal((await publisher.readPacket()).type, "puback");
      await publisher.close();
      // More than the socket's room: every match waits to be read, up to the bound; small messages, so a
      // page's count of them must be the room's (a page that overfilled it lost its tail at QoS 0).
      const { client } = await connect(port, "subscriber", 5);
      assert.deepEqual(await subscribe(client, 5, [subscription("m/#", 0)]), [0]);
      let received = 0;
      while (received < 100_000) {
        await readPublish(client).catch((error) => {
          throw new Error(`after ${received} retained messages: ${error}`);
        });
        received++;
      }
      assert.ok(await client.expectSilence(500), "100,000 of the 100,005, not more");
      await client.close();
    },
  );
});

Deno.test("retained store: a page read while live messages filled the socket waits for room instead of being dropped", async () => {
  await withEmbeddedBroker(["mqtt.max_outbound_bytes = 16384"], async ({ port, running }) => {
    const { client: publisher } = await connect(port, "publisher", 5);
    await retainTree(publisher, "r", 10, 100 * 1024); // over the 64 KiB kept in memory: read from the store
    // Retained reads wait for the gate: meanwhile live messages fill the subscriber's socket.
    const storage = (running.broker as unknown as { options: { storage: StorageAdapter } }).options.storage;
    const readRetained = storage.readRetained.bind(storage);
    let open = () => {};
    const gate = new Promise<void>((resolve) => open = resolve);
    storage.readRetained = async (topics) => {
      await gate;
      return readRetained(topics);
    };
    const subscriber = await pausedSubscriber(port, "subscriber", "#", 0, {
      cleanStart: true,
      properties: {},
    });
    const live = "live".padEnd(100 * 1024, ".");
    for (let i = 0; i < 100; i++) await publisher.sendPacket(publishPacket("l/x", live, 0), 5);
    await publisher.sendPacket(publishPacket("barrier", "", 1, { packetId: 1 }), 5);
    assert.equal((await publisher.readPacket()).type, "puback");
    open();
    // Every retained message comes, whatever the live messages did to the room.
    const retained = new Set<string>();
    while (retained.size < 10) {
      const packet = await subscriber.next();
      if (packet.type === "publish" && packet.retain) retained.add(packet.topic);
    }
    subscriber.close();
    await publisher.close();
  });
});
