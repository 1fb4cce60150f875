/**
 * Where a persistent session's queue lives (BrokerOptions.queuesInStore): in the embedded store, which keeps it
 * across a restart, an absent client's queue is in the store alone and comes back page by page; the memory
 * store keeps nothing across a restart, so on a single node the session keeps its own queue and the store gets
 * no write per delivery. Either way the client that comes back gets what it had not acknowledged, with DUP,
 * then what was published while it was away, in order, once.
 */
import assert from "node:assert/strict";
import { type RawClient, withBroker } from "../helpers/broker.ts";
import { connect, publishPacket, readPublish, subscribe, subscription, text } from "../helpers/clients.ts";
import type { StorageAdapter } from "../../src/storage/port.ts";
import type { Broker } from "../../src/broker/mod.ts";

const persistent = {
  cleanStart: false,
  properties: { sessionExpiryInterval: 3600, receiveMaximum: 2 },
};

function storageOf(broker: Broker): StorageAdapter {
  return (broker as unknown as { options: { storage: StorageAdapter } }).options.storage;
}

/** Waits until the broker has seen the client of `clientId` leave. */
async function untilAbsent(broker: Broker, clientId: string): Promise<void> {
  for (let attempt = 0; attempt < 500; attempt++) {
    if (broker.session(clientId)?.attachment === undefined) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`the broker still holds ${clientId}'s connection`);
}

async function publishAll(publisher: RawClient, topics: string[], firstId: number): Promise<void> {
  for (const [index, topic] of topics.entries()) {
    await publisher.sendPacket(publishPacket(topic, `body of ${topic}`, 1, { packetId: firstId + index }), 5);
  }
  for (const _ of topics) assert.equal((await publisher.readPacket()).type, "puback");
}

/** Runs `body` against a broker on the memory store, or on the embedded store in a directory of its own. */
async function withStoreBroker(
  store: "memory" | "embedded",
  body: Parameters<typeof withBroker>[1],
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "mqtt-proxy-queues-" });
  const properties = [
    "sys.interval_seconds = 0",
    ...(store === "embedded" ? ["storage.type = embedded", `storage.dir = ${dir}`] : []),
  ].join("\n");
  try {
    await withBroker(properties, body);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

for (const store of ["memory", "embedded"] as const) {
  Deno.test(`${store} store: where an absent client's queue waits, and what it gets back`, async () => {
    await withStoreBroker(store, async ({ port, running }) => {
      const { client: first } = await connect(port, "sub", 5, persistent);
      await subscribe(first, 5, [subscription("q/#", 1)]);
      const { client: publisher } = await connect(port, "pub", 5);
      const before = ["q/0", "q/1", "q/2", "q/3", "q/4"];
      await publishAll(publisher, before, 1);
      // The client's window is 2: two are in flight, unacknowledged, when it leaves.
      const inflight = [await readPublish(first), await readPublish(first)];
      assert.deepEqual(inflight.map((publish) => publish.topic), ["q/0", "q/1"]);
      await first.close();
      await untilAbsent(running.broker, "sub");
      const away = ["q/5", "q/6"];
      await publishAll(publisher, away, 10);

      const session = running.broker.session("sub")!;
      const stored = await storageOf(running.broker).readQueue("sub", {
        maxEntries: 100,
        maxBytes: 1 << 20,
      });
      if (store === "embedded") {
        assert.equal(session.storedOnly, true, "the embedded store holds the absent client's queue alone");
        assert.deepEqual(stored.deliveries.map((delivery) => delivery.message.topic), [...before, ...away]);
      } else {
        assert.equal(session.storedOnly, false, "the session keeps its queue");
        assert.equal(session.inflightCount + session.queueLength, 7);
        assert.deepEqual(stored.deliveries, [], "the memory store got no delivery");
      }

      const { client: back, connack } = await connect(port, "sub", 5, persistent);
      assert.equal(connack.sessionPresent, true);
      const received: { topic: string; dup: boolean }[] = [];
      for (let index = 0; index < 7; index++) {
        const publish = await readPublish(back);
        assert.equal(text(publish.payload), `body of ${publish.topic}`);
        received.push({ topic: publish.topic, dup: publish.dup });
        await back.sendPacket({
          type: "puback",
          packetId: publish.packetId!,
          reasonCode: 0,
          properties: {},
        }, 5);
      }
      assert.deepEqual(received, [
        { topic: "q/0", dup: true },
        { topic: "q/1", dup: true },
        ...["q/2", "q/3", "q/4", ...away].map((topic) => ({ topic, dup: false })),
      ]);
      assert.ok(await back.expectSilence(300), "every message once");
      await Promise.all([back.close(), publisher.close()]);
    });
  });
}

for (const store of ["memory", "embedded"] as const) {
  Deno.test(`${store} store: a QoS 2 message for a persistent session is staged in the store only where the store keeps queues`, async () => {
    await withStoreBroker(store, async ({ port, running }) => {
      const { client: subscriber } = await connect(port, "sub", 5, persistent);
      await subscribe(subscriber, 5, [subscription("q/#", 2)]);
      const storage = storageOf(running.broker);
      const appended: string[] = [];
      const appendMessage = storage.appendMessage.bind(storage);
      storage.appendMessage = (message) => {
        appended.push(message.topic);
        return appendMessage(message);
      };
      const { client: publisher } = await connect(port, "pub", 5);
      await publisher.sendPacket(publishPacket("q/2", "exactly once", 2, { packetId: 1 }), 5);
      assert.equal((await publisher.readPacket()).type, "pubrec");
      const publish = await readPublish(subscriber);
      assert.equal(text(publish.payload), "exactly once");
      // The memory store cannot refuse a message, and sessions keep their own queues with it: nothing to
      // stage. The embedded store keeps the payload for the session's queue.
      assert.deepEqual(appended, store === "memory" ? [] : ["q/2"]);
      await Promise.all([subscriber.close(), publisher.close()]);
    });
  });
}
