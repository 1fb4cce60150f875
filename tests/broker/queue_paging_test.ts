/**
 * A returning client's stored queue is read back a page at a time (QUEUE_PAGE, 4 MiB): the broker holds
 * about a page behind the client's window, reads the next as the client acknowledges its way through, and
 * messages published meanwhile go to storage behind the tail, so the client gets every message once, in
 * the order it was published. The embedded store's: the memory store keeps nothing across a restart, so the
 * sessions keep their queues (tests/broker/queues_in_memory_test.ts).
 */
import assert from "node:assert/strict";
import { withBroker } from "../helpers/broker.ts";
import { connect, publishPacket, readPublish, subscribe, subscription, text } from "../helpers/clients.ts";
import type { RawClient, TestBroker } from "../helpers/broker.ts";
import { QUEUE_PAGE } from "../../src/session/outbound.ts";
import { ReasonCode } from "../../src/codec/mod.ts";
import { type StorageAdapter, StorageError } from "../../src/storage/port.ts";

const STORED = 48;
const LIVE = 6;
/** 48 × 256 KiB: three pages' worth. */
const BODY = "x".repeat(256 * 1024);
const RECEIVE_MAXIMUM = 4;

async function publishAll(publisher: RawClient, topics: string[], firstId: number): Promise<void> {
  for (const [index, topic] of topics.entries()) {
    await publisher.sendPacket(publishPacket(topic, `${topic}:${BODY}`, 1, { packetId: firstId + index }), 5);
  }
  for (const _ of topics) assert.equal((await publisher.readPacket()).type, "puback");
}

const persistent = { cleanStart: false, properties: { sessionExpiryInterval: 3600 } };
const resume = {
  cleanStart: false,
  properties: { sessionExpiryInterval: 3600, receiveMaximum: RECEIVE_MAXIMUM },
};

interface Stored {
  port: number;
  running: TestBroker["running"];
  publisher: RawClient;
  /** The topics stored for client "sub", in the order they were published. */
  stored: string[];
}

/** A broker on the embedded store with STORED messages waiting for the persistent session "sub" (subscribed to q/#). */
function withStoredQueue(fn: (setup: Stored) => Promise<void>) {
  return async () => {
    const dir = await Deno.makeTempDir({ prefix: "mqtt-proxy-paging-" });
    const properties = `storage.type = embedded\nstorage.dir = ${dir}\nsys.interval_seconds = 0`;
    try {
      await withBroker(properties, async ({ port, running }) => {
        const { client: first } = await connect(port, "sub", 5, persistent);
        await subscribe(first, 5, [subscription("q/#", 1)]);
        await first.close();
        const { client: publisher } = await connect(port, "pub", 5);
        const stored = Array.from({ length: STORED }, (_, index) => `q/stored/${index}`);
        await publishAll(publisher, stored, 1);
        try {
          await fn({ port, running, publisher, stored });
        } finally {
          await publisher.close();
        }
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  };
}

async function puback(client: RawClient, packetId: number): Promise<void> {
  await client.sendPacket({ type: "puback", packetId, reasonCode: 0, properties: {} }, 5);
}

/** Reads `count` messages, acknowledging each as it comes; their topics and DUP flags. */
async function drain(client: RawClient, count: number): Promise<{ topic: string; dup: boolean }[]> {
  const read = [];
  for (let index = 0; index < count; index++) {
    const publish = await readPublish(client);
    assert.equal(text(publish.payload), `${publish.topic}:${BODY}`);
    read.push({ topic: publish.topic, dup: publish.dup });
    await puback(client, publish.packetId!);
  }
  return read;
}

Deno.test(
  `embedded store: a long stored queue comes back page by page, in order, once, with messages published while it drains behind it`,
  withStoredQueue(async ({ port, running, publisher, stored }) => {
    const { client: back, connack } = await connect(port, "sub", 5, resume);
    assert.equal(connack.sessionPresent, true);
    const session = running.broker.session("sub")!;
    const live = Array.from({ length: LIVE }, (_, index) => `q/live/${index}`);
    const received: string[] = [];
    let mostHeld = 0;
    let publishedLive: Promise<void> | undefined;
    while (received.length < STORED + LIVE) {
      const publish = await readPublish(back);
      assert.equal(publish.dup, false);
      received.push(publish.topic);
      assert.equal(text(publish.payload), `${publish.topic}:${BODY}`);
      // What the broker holds behind the window: never more than a page and the half page left when
      // it read the next one.
      mostHeld = Math.max(mostHeld, session.queuedBytes);
      assert.ok(
        session.queuedBytes <= QUEUE_PAGE.maxBytes * 1.5,
        `held ${session.queuedBytes} bytes behind the window (a page is ${QUEUE_PAGE.maxBytes})`,
      );
      if (received.length === 8) {
        assert.ok(session.storedOnly, "the queue's tail is still in storage");
        publishedLive = publishAll(publisher, live, 100);
      }
      await puback(back, publish.packetId!);
    }
    await publishedLive;
    assert.deepEqual(received, [...stored, ...live]);
    assert.ok(mostHeld > QUEUE_PAGE.maxBytes / 2, `pages were held (${mostHeld} bytes at most)`);
    assert.equal(session.storedOnly, false, "the whole queue was read");
    assert.ok(await back.expectSilence(300), "every message once");
    await back.close();

    // Nothing is left to come back: every message was acknowledged.
    const { client: last } = await connect(port, "sub", 5, persistent);
    assert.ok(await last.expectSilence(300), "nothing left in storage");
    await last.close();
  }),
);

for (const how of ["leaves", "is taken over"] as const) {
  Deno.test(
    `embedded store: a client that ${how} while its queue is paged in gets the rest once, in order, on the next connection`,
    withStoredQueue(async ({ port, stored }) => {
      const { client: first } = await connect(port, "sub", 5, resume);
      // The fifth acknowledgement takes the queue in memory under half a page: a read starts with it.
      const before = await drain(first, 5);
      if (how === "leaves") await first.close();
      const { client: next, connack } = await connect(port, "sub", 5, resume);
      assert.equal(connack.sessionPresent, true);
      if (how === "is taken over") await first.expectClosed();
      const rest = await drain(next, STORED - 5);
      assert.deepEqual([...before, ...rest].map((read) => read.topic), stored);
      // Sent to the first connection and not acknowledged: re-sent first, with DUP [MQTT-4.4.0-1].
      const resent = rest.filter((read) => read.dup).length;
      assert.ok(resent <= RECEIVE_MAXIMUM, `${resent} re-sent`);
      assert.ok(rest.slice(0, resent).every((read) => read.dup));
      assert.ok(await next.expectSilence(300), "every message once");
      await Promise.all([first.close(), next.close()]);
    }),
  );
}

Deno.test(
  `embedded store: a clean start while the queue is paged in gets none of it`,
  withStoredQueue(async ({ port, running }) => {
    const { client: first } = await connect(port, "sub", 5, resume);
    await drain(first, 5);
    const { client: fresh, connack } = await connect(port, "sub", 5, { cleanStart: true });
    assert.equal(connack.sessionPresent, false);
    await first.expectClosed();
    assert.ok(await fresh.expectSilence(300), "nothing of the old queue");
    assert.equal(running.broker.session("sub")?.storedOnly, false);
    await Promise.all([first.close(), fresh.close()]);
  }),
);

Deno.test(
  `embedded store: a first page the client cannot take does not hold back the next one until its next packet`,
  async () => {
    const dir = await Deno.makeTempDir({ prefix: "mqtt-proxy-paging-" });
    const properties = [
      "sys.interval_seconds = 0",
      `mqtt.max_queued_messages = ${2 * QUEUE_PAGE.maxEntries}`,
      "storage.type = embedded",
      `storage.dir = ${dir}`,
    ].join("\n");
    try {
      await withBroker(properties, async ({ port }) => {
        const { client: first } = await connect(port, "sub", 5, persistent);
        await subscribe(first, 5, [subscription("q/#", 1)]);
        await first.close();
        // A whole first page (by entries) of messages over the client's Maximum Packet Size, then three
        // small ones in the next page.
        const { client: publisher } = await connect(port, "pub", 5);
        const big = "b".repeat(2048);
        const small = ["q/small/0", "q/small/1", "q/small/2"];
        const messages = [
          ...Array.from({ length: QUEUE_PAGE.maxEntries }, (_, index) => [`q/big/${index}`, big]),
          ...small.map((topic) => [topic, "s"]),
        ];
        for (const [index, [topic, payload]] of messages.entries()) {
          await publisher.sendPacket(publishPacket(topic, payload, 1, { packetId: 1 + index }), 5);
        }
        for (const _ of messages) assert.equal((await publisher.readPacket()).type, "puback");
        await publisher.close();

        // Keep alive 0 and nothing sent after CONNECT: only the broker can start the next page.
        const { client: back } = await connect(port, "sub", 5, {
          cleanStart: false,
          keepAlive: 0,
          properties: { sessionExpiryInterval: 3600, maximumPacketSize: 1024 },
        });
        const received = [];
        for (const _ of small) {
          const publish = await readPublish(back);
          received.push(publish.topic);
          await puback(back, publish.packetId!);
        }
        assert.deepEqual(received, small);
        await back.close();
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test(
  "embedded store: a failed page read is tried again by the broker, though the client has nothing left to acknowledge",
  withStoredQueue(async ({ port, running, stored }) => {
    // The store fails every read while `failing`: the broker's own storage object, its readQueue replaced.
    const storage = (running.broker as unknown as { options: { storage: StorageAdapter } }).options.storage;
    const readQueue = storage.readQueue.bind(storage);
    let failing = false;
    let failed = 0;
    storage.readQueue = (clientId, read) => {
      if (!failing) return readQueue(clientId, read);
      failed++;
      return Promise.reject(new StorageError("injected read failure", ReasonCode.UnspecifiedError));
    };
    const { client } = await connect(port, "sub", 5, { ...resume, keepAlive: 0 });
    failing = true;
    // What the pages read at the CONNECT hold, acknowledged; the next page's reads fail meanwhile.
    const received: string[] = [];
    while (!(await client.expectSilence(300))) {
      const publish = await readPublish(client);
      received.push(publish.topic);
      await puback(client, publish.packetId!);
    }
    assert.ok(failed > 0 && received.length < STORED, `${failed} reads failed, ${received.length} received`);
    failing = false;
    // Keep alive 0 and every message acknowledged: the client sends nothing more, the broker must try again.
    const rest = await drain(client, STORED - received.length);
    assert.deepEqual([...received, ...rest.map(({ topic }) => topic)], stored);
    await client.close();
  }),
);
