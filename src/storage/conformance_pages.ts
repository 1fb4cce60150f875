/** Conformance cases of paged queue reads: bounds, order across pages, and changes between two pages. */
import assert from "node:assert/strict";
import type { MessageRef, QueuePage, QueuePosition, StorageAdapter } from "./port.ts";
import { readWholeQueue, type RegisterCase } from "./conformance.ts";
import { sample } from "./conformance_samples.ts";

/** Appends `count` queued messages for `clientId` whose topic and payload take `size` bytes each. */
function queueMessages(storage: StorageAdapter, clientId: string, count: number, size = 100): MessageRef[] {
  return Array.from({ length: count }, (_, index) => {
    const topic = `t/${index}`.padEnd(8, "x");
    const id = storage.appendMessage(sample.message(topic, { payload: new Uint8Array(size - topic.length) }));
    storage.saveQueueEntry(sample.entry(clientId, id));
    return id;
  });
}

const refsOf = (page: QueuePage): MessageRef[] => page.deliveries.map((delivery) => delivery.entry.messageId);

/** Reads pages of `maxEntries` and `maxBytes` to the end; the refs of each page. */
async function pagesOf(
  storage: StorageAdapter,
  clientId: string,
  maxEntries: number,
  maxBytes: number,
): Promise<MessageRef[][]> {
  const pages: MessageRef[][] = [];
  let after: QueuePosition | undefined;
  for (;;) {
    const page = await storage.readQueue(clientId, { after, maxEntries, maxBytes });
    pages.push(refsOf(page));
    after = page.last ?? after;
    if (!page.more) return pages;
  }
}

/** Registers the paged-read cases through the suite's `test`. */
export function registerPageCases(test: RegisterCase): void {
  test("a queue is read in pages bounded by entries and by bytes, in order", async (storage, restart) => {
    const ids = queueMessages(storage, "a", 7);
    queueMessages(storage, "b", 3);
    const { storage: reopened } = await restart();
    const byEntries = await pagesOf(reopened, "a", 3, 1 << 20);
    assert.deepEqual(byEntries, [ids.slice(0, 3), ids.slice(3, 6), ids.slice(6)]);
    // 250 bytes hold two entries of 100, not three.
    const byBytes = await pagesOf(reopened, "a", 100, 250);
    assert.deepEqual(byBytes, [ids.slice(0, 2), ids.slice(2, 4), ids.slice(4, 6), ids.slice(6)]);
    const exact = await pagesOf(reopened, "a", 100, 700);
    assert.deepEqual(exact, [ids], "a page that reaches the end says nothing more remains");
  });

  test("an entry larger than maxBytes is still read, alone in its page", async (storage) => {
    const [small] = queueMessages(storage, "a", 1, 100);
    const [large] = queueMessages(storage, "a", 1, 5000);
    const [after] = queueMessages(storage, "a", 1, 100);
    const pages = await pagesOf(storage, "a", 10, 1000);
    assert.deepEqual(pages, [[small], [large], [after]]);
    const first = await storage.readQueue("a", { maxEntries: 10, maxBytes: 10 });
    assert.deepEqual(refsOf(first), [small]);
    assert.equal(first.more, true);
  });

  test("entries added after a page was read are in the next page, after the older ones", async (storage) => {
    const ids = queueMessages(storage, "a", 3);
    const first = await storage.readQueue("a", { maxEntries: 2, maxBytes: 1 << 20 });
    assert.deepEqual(refsOf(first), ids.slice(0, 2));
    const added = queueMessages(storage, "a", 2);
    const second = await storage.readQueue("a", { after: first.last, maxEntries: 10, maxBytes: 1 << 20 });
    assert.deepEqual(refsOf(second), [ids[2], ...added]);
    assert.equal(second.more, false);
    // The end of the queue, read again later, finds what was added since.
    const [late] = queueMessages(storage, "a", 1);
    const third = await storage.readQueue("a", { after: second.last, maxEntries: 10, maxBytes: 1 << 20 });
    assert.deepEqual(refsOf(third), [late]);
    const end = await storage.readQueue("a", { after: third.last, maxEntries: 10, maxBytes: 1 << 20 });
    assert.deepEqual(end, { deliveries: [], more: false }, "nothing after the last entry");
  });

  test("entries deleted, or dropped as oldest, between two pages are skipped", async (storage) => {
    const ids = queueMessages(storage, "a", 6);
    const first = await storage.readQueue("a", { maxEntries: 2, maxBytes: 1 << 20 });
    storage.deleteQueueEntry("a", ids[2]);
    storage.deleteQueueEntry("a", ids[4]);
    // The page already read is still queued in storage: the oldest queued is ids[0].
    storage.deleteOldestQueued("a");
    const rest = await storage.readQueue("a", { after: first.last, maxEntries: 10, maxBytes: 1 << 20 });
    assert.deepEqual(refsOf(rest), [ids[3], ids[5]]);
    assert.deepEqual(
      (await readWholeQueue(storage, "a")).map((delivery) => delivery.entry.messageId),
      [ids[1], ids[3], ids[5]],
    );
  });

  test("a stage change keeps an entry's place: it is not read again after its page", async (storage) => {
    const ids = queueMessages(storage, "a", 4);
    const first = await storage.readQueue("a", { maxEntries: 2, maxBytes: 1 << 20 });
    storage.saveQueueEntry(sample.entry("a", ids[0], { stage: "sent", packetId: 1 }));
    storage.saveQueueEntry(sample.entry("a", ids[1], { stage: "released", packetId: 2 }));
    const rest = await storage.readQueue("a", { after: first.last, maxEntries: 10, maxBytes: 1 << 20 });
    assert.deepEqual(refsOf(rest), ids.slice(2));
    const again = await storage.readQueue("a", { maxEntries: 2, maxBytes: 1 << 20 });
    assert.deepEqual(
      again.deliveries.map(({ entry }) => [entry.stage, entry.packetId]),
      [["sent", 1], ["released", 2]],
    );
  });

  test("a page of only expired entries moves on past them", async (storage) => {
    const expired = storage.appendMessage(sample.message("old", { expiresAt: Date.now() - 1000 }));
    storage.saveQueueEntry(sample.entry("a", expired));
    storage.saveQueueEntry(
      sample.entry("a", storage.appendMessage(sample.message("old 2", { expiresAt: 1 }))),
    );
    const [fresh] = queueMessages(storage, "a", 1);
    const first = await storage.readQueue("a", { maxEntries: 2, maxBytes: 1 << 20 });
    assert.deepEqual(first.deliveries, []);
    assert.equal(first.more, true);
    const second = await storage.readQueue("a", { after: first.last, maxEntries: 2, maxBytes: 1 << 20 });
    assert.deepEqual(refsOf(second), [fresh]);
    assert.equal(second.more, false);
  });

  test(
    "reading pages changes nothing: the queue totals after a restart are the same",
    async (storage, restart) => {
      queueMessages(storage, "a", 5, 200);
      const before = (await restart()).snapshot.queueTotals.get("a");
      const { storage: reopened } = await restart();
      await pagesOf(reopened, "a", 2, 1 << 20);
      await pagesOf(reopened, "a", 1, 1);
      const after = (await restart()).snapshot.queueTotals.get("a");
      assert.deepEqual(before, { entries: 5, bytes: 1000 });
      assert.deepEqual(after, before);
    },
  );

  test("an empty or unknown queue is one empty page", async (storage) => {
    assert.deepEqual(await storage.readQueue("nobody", { maxEntries: 10, maxBytes: 1000 }), {
      deliveries: [],
      more: false,
    });
  });
}
