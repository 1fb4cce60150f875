/**
 * The storage conformance suite: every adapter of `port.ts` must pass it (run it from a test file with
 * `runStorageConformance`). Each case opens a fresh store, writes, restarts it (stop, then `reopen()` over
 * the same backing data) and checks the snapshot that `start()` recovers and the queues read back.
 */
import assert from "node:assert/strict";
import type {
  MessageLog,
  QueueEntry,
  QueuePosition,
  StorageAdapter,
  StorageSnapshot,
  StoredDelivery,
  StoredMessage,
  StoredRetained,
  StoredSubscription,
} from "./port.ts";
import { registerPageCases } from "./conformance_pages.ts";
import { registerQueueCases } from "./conformance_queues.ts";
import { sample } from "./conformance_samples.ts";

/** How the suite gets adapters: `reopen()` sees the backing data of the last `open()`, as after a restart. */
export interface StorageFactory {
  /** A new, not yet started adapter over new, empty backing data. */
  open(): Promise<StorageAdapter>;
  /** A new, not yet started adapter over the backing data of the last `open()`. */
  reopen(): Promise<StorageAdapter>;
  /** Removes the backing data of the last `open()`. */
  cleanup(): Promise<void>;
}

/** After a restart: what the new adapter recovered, and the adapter to continue with. */
export interface Restarted {
  snapshot: StorageSnapshot;
  storage: StorageAdapter;
}

/** A case body: a started adapter, and `restart()`, which stops it and starts a new one over the same data. */
export type CaseBody = (storage: StorageAdapter, restart: () => Promise<Restarted>) => Promise<void>;

/** Registers one case as `storage conformance (<name>): <title>`, with open, restart and cleanup done. */
export type RegisterCase = (title: string, body: CaseBody) => void;

/** A retained message as the snapshot has it: without its payload, with the payload's size. */
function summaryOf({ payload, ...summary }: StoredMessage): StoredRetained {
  return { ...summary, payloadBytes: payload.byteLength };
}

/** Registers the suite's tests as `storage conformance (<name>): ...`. */
export function runStorageConformance(name: string, factory: StorageFactory): void {
  const title = (text: string): string => `storage conformance (${name}): ${text}`;
  const test: RegisterCase = (text, body) => {
    Deno.test(title(text), async () => {
      let current = await factory.open();
      try {
        await current.start();
        await body(current, async () => {
          await current.stop();
          current = await factory.reopen();
          return { snapshot: await current.start(), storage: current };
        });
      } finally {
        await current.stop();
        await factory.cleanup();
      }
    });
  };

  Deno.test(title("health is not ok before start and after stop, ok while started"), async () => {
    const storage = await factory.open();
    try {
      assert.equal(storage.health().ok, false);
      await storage.start();
      assert.equal(storage.health().ok, true);
      assert.notEqual(storage.health().detail, "");
      await storage.stop();
      assert.equal(storage.health().ok, false);
    } finally {
      await storage.stop();
      await factory.cleanup();
    }
  });

  Deno.test(title("mutations before start throw"), async () => {
    const storage = await factory.open();
    try {
      assert.throws(() => storage.saveSession(sample.session()));
      assert.throws(() => storage.appendMessage(sample.message()));
    } finally {
      await storage.stop();
      await factory.cleanup();
    }
  });

  test("a new store recovers an empty snapshot", async (_storage, restart) => {
    const { snapshot } = await restart();
    const { meta, ...rest } = snapshot;
    assert.deepEqual(rest, {
      sessions: [],
      subscriptions: [],
      queueTotals: new Map(),
      storedMessages: 0,
      awaitingRelease: [],
      retained: [],
      wills: [],
    });
    assert.deepEqual([...meta.keys()].filter((key) => !key.startsWith("store.")), []);
  });

  test("sessions round-trip, with and without disconnectedAt; a save replaces", async (storage, restart) => {
    storage.saveSession(sample.session("a"));
    storage.saveSession(
      sample.session("b", { expiryInterval: 0xFFFFFFFF, disconnectedAt: 1_700_000_000_000 }),
    );
    storage.saveSession(sample.session("c", { epoch: 1 }));
    storage.saveSession(
      sample.session("c", {
        epoch: 1_700_000_000_000_001,
        expiryInterval: 10,
        owner: "alice",
        connection: "{}",
      }),
    );
    const { snapshot } = await restart();
    assert.deepEqual(sortBy(snapshot.sessions, (session) => session.clientId), [
      sample.session("a"),
      sample.session("b", { expiryInterval: 0xFFFFFFFF, disconnectedAt: 1_700_000_000_000 }),
      sample.session("c", {
        epoch: 1_700_000_000_000_001,
        expiryInterval: 10,
        owner: "alice",
        connection: "{}",
      }),
    ]);
  });

  test(
    "subscriptions round-trip with every field; a save replaces per filter; delete removes one",
    async (storage, restart) => {
      const full = sample.subscription("a", "$share/group/sensors/#", {
        qos: 2,
        noLocal: true,
        retainAsPublished: true,
        retainHandling: 2,
        subscriptionIdentifier: 268_435_455,
      });
      storage.saveSubscription(full);
      storage.saveSubscription(sample.subscription("a", "alarms/#", { qos: 0 }));
      storage.saveSubscription(sample.subscription("a", "alarms/#", { qos: 1, retainHandling: 1 }));
      storage.saveSubscription(sample.subscription("a", "gone/#"));
      storage.saveSubscription(sample.subscription("b", "gone/#"));
      storage.deleteSubscription("a", "gone/#");
      storage.deleteSubscription("a", "never/subscribed");
      const { snapshot } = await restart();
      const key = (subscription: StoredSubscription): string =>
        `${subscription.clientId} ${subscription.topicFilter}`;
      assert.deepEqual(
        sortBy(snapshot.subscriptions, key),
        sortBy([
          full,
          sample.subscription("a", "alarms/#", { qos: 1, retainHandling: 1 }),
          sample.subscription("b", "gone/#"),
        ], key),
      );
    },
  );

  test("awaiting-release ids are added once and deleted one at a time", async (storage, restart) => {
    storage.addAwaitingRelease("a", 1);
    storage.addAwaitingRelease("a", 2);
    storage.addAwaitingRelease("a", 2);
    storage.addAwaitingRelease("b", 1);
    storage.addAwaitingRelease("a", 65535);
    storage.deleteAwaitingRelease("a", 1);
    storage.deleteAwaitingRelease("c", 1);
    const { snapshot } = await restart();
    assert.deepEqual(sortBy(snapshot.awaitingRelease, (id) => `${id.clientId} ${id.packetId}`), [
      { clientId: "a", packetId: 2 },
      { clientId: "a", packetId: 65535 },
      { clientId: "b", packetId: 1 },
    ]);
  });

  test("retained messages: one per topic, a save replaces, delete removes", async (storage, restart) => {
    const first = sample.message("status/1", { retain: true, payload: new Uint8Array([1]) });
    const replacement = sample.message("status/1", {
      retain: true,
      payload: new Uint8Array([2]),
      properties: { correlationData: new Uint8Array([9, 9]), userProperties: [["a", "b"]] },
      expiresAt: Date.now() + 60_000,
    });
    storage.saveRetained(first);
    storage.saveRetained(replacement);
    storage.saveRetained(sample.message("status/2", { retain: true }));
    storage.saveRetained(sample.message("status/3", { retain: true }));
    storage.deleteRetained("status/3");
    storage.deleteRetained("status/never");
    const { snapshot, storage: restarted } = await restart();
    assert.deepEqual(sortBy(snapshot.retained, (message) => message.topic), [
      summaryOf(replacement),
      summaryOf(sample.message("status/2", { retain: true })),
    ]);
    assert.deepEqual(await restarted.readRetained(["status/2", "status/3", "status/1"]), [
      sample.message("status/2", { retain: true }),
      undefined,
      replacement,
    ]);
  });

  test(
    "the snapshot's retained messages carry their payload's size, not the payload",
    async (storage, restart) => {
      storage.saveRetained(
        sample.message("big/1", { retain: true, payload: new Uint8Array(100_000).fill(7) }),
      );
      storage.saveRetained(sample.message("big/2", { retain: true, payload: new Uint8Array(3) }));
      const { snapshot } = await restart();
      const retained = sortBy(snapshot.retained, (message) => message.topic);
      assert.deepEqual(retained.map((message) => [message.topic, message.payloadBytes]), [
        ["big/1", 100_000],
        [
          "big/2",
          3,
        ],
      ]);
      assert.ok(retained.every((message) => !("payload" in message)));
    },
  );

  test("readRetained reflects every mutation issued before it, without a flush", async (storage) => {
    storage.saveRetained(sample.message("live/1", { retain: true, payload: new Uint8Array([1]) }));
    storage.saveRetained(sample.message("live/2", { retain: true, payload: new Uint8Array([2]) }));
    const first = storage.readRetained(["live/1", "live/2"]);
    storage.saveRetained(sample.message("live/1", { retain: true, payload: new Uint8Array([3]) }));
    storage.deleteRetained("live/2");
    const second = storage.readRetained(["live/2", "live/1", "live/1"]);
    assert.deepEqual((await first).map((message) => message?.payload), [
      new Uint8Array([1]),
      new Uint8Array([2]),
    ]);
    assert.deepEqual((await second).map((message) => message?.payload), [
      undefined,
      new Uint8Array([3]),
      new Uint8Array([3]),
    ]);
    assert.deepEqual(await storage.readRetained([]), []);
  });

  test(
    "deferred mutations count as issued: a flush waits for them, a read and a stop issue them",
    async (storage, restart) => {
      const kept: Array<() => void> = [];
      const deferred = {
        awaited: 0,
        write() {
          for (const mutation of kept.splice(0)) mutation();
        },
      };
      kept.push(() => storage.saveSession(sample.session("flushed")));
      storage.defer(deferred);
      assert.equal(storage.dirty, true);
      await storage.flush();
      assert.equal(kept.length, 0, "the flush resolved before the deferred mutations were issued");

      kept.push(() =>
        storage.saveQueueEntry(sample.entry("reader", storage.appendMessage(sample.message("r"))))
      );
      storage.defer(deferred);
      storage.defer(deferred);
      assert.deepEqual((await readWholeQueue(storage, "reader")).map((delivery) => delivery.message.topic), [
        "r",
      ]);

      kept.push(() => storage.saveSession(sample.session("stopped")));
      storage.defer(deferred);
      const { snapshot } = await restart();
      assert.deepEqual(
        snapshot.sessions.map((session) => session.clientId).sort(),
        ["flushed", "stopped"],
      );
    },
  );

  test(
    "wills round-trip with and without publishAt and owner; a save replaces; delete removes",
    async (storage, restart) => {
      storage.saveWill(sample.will("connected"));
      storage.saveWill(sample.will("gone", { publishAt: 1_700_000_000_000, owner: "anonymous" }));
      storage.saveWill(sample.will("replaced"));
      storage.saveWill(sample.will("replaced", { publishAt: 5 }));
      storage.saveWill(sample.will("deleted"));
      storage.deleteWill("deleted");
      storage.deleteWill("never");
      const { snapshot } = await restart();
      assert.deepEqual(sortBy(snapshot.wills, (will) => will.clientId), [
        sample.will("connected"),
        sample.will("gone", { publishAt: 1_700_000_000_000, owner: "anonymous" }),
        sample.will("replaced", { publishAt: 5 }),
      ]);
    },
  );

  test(
    "deleteSession removes its subscriptions, queue entries and awaiting-release ids, not others' or its will",
    async (storage, restart) => {
      const shared = storage.appendMessage(sample.message("shared"));
      const own = storage.appendMessage(sample.message("own"));
      storage.saveSession(sample.session("a"));
      storage.saveSession(sample.session("b"));
      for (const clientId of ["a", "b"]) {
        storage.saveSubscription(sample.subscription(clientId));
        storage.saveQueueEntry(sample.entry(clientId, shared));
        storage.addAwaitingRelease(clientId, 7);
      }
      storage.saveQueueEntry(sample.entry("a", own));
      storage.saveWill(sample.will("a"));
      storage.deleteSession("a");
      storage.deleteSession("never-existed");
      const { snapshot, storage: reopened } = await restart();
      assert.deepEqual(snapshot.sessions, [sample.session("b")]);
      assert.deepEqual(snapshot.subscriptions, [sample.subscription("b")]);
      assert.deepEqual(entriesOf(await readWholeQueue(reopened, "a")), []);
      assert.deepEqual(entriesOf(await readWholeQueue(reopened, "b")), [sample.entry("b", shared)]);
      assert.deepEqual(snapshot.awaitingRelease, [{ clientId: "b", packetId: 7 }]);
      assert.equal(snapshot.storedMessages, 1, "the message only `a` referred to is gone");
      assert.deepEqual(snapshot.wills, [sample.will("a")], "the port cascades to wills nowhere");
    },
  );

  test(
    "flush resolves, clears dirty, and what it covered is there after a restart",
    async (storage, restart) => {
      assert.equal(storage.dirty, false);
      storage.saveSession(sample.session("a"));
      const id = storage.appendMessage(sample.message());
      storage.saveQueueEntry(sample.entry("a", id));
      assert.equal(storage.dirty, true);
      await Promise.all([storage.flush(), storage.flush()]);
      assert.equal(storage.dirty, false);
      await storage.flush();
      assert.equal(storage.dirty, false);
      const { snapshot, storage: reopened } = await restart();
      assert.deepEqual(snapshot.sessions, [sample.session("a")]);
      assert.deepEqual(entriesOf(await readWholeQueue(reopened, "a")), [sample.entry("a", id)]);
    },
  );

  test("meta values round-trip; a save replaces", async (storage, restart) => {
    storage.saveMeta("cluster.applied", "12");
    storage.saveMeta("cluster.applied", "13");
    storage.saveMeta("other", "");
    const { snapshot } = await restart();
    assert.equal(snapshot.meta.get("cluster.applied"), "13");
    assert.equal(snapshot.meta.get("other"), "");
  });

  registerQueueCases(test);
  registerPageCases(test);
}

/**
 * A client's whole queue, read a page at a time. The pages are small (two entries) so that every case
 * that reads a queue crosses page boundaries.
 */
export async function readWholeQueue(log: MessageLog, clientId: string): Promise<StoredDelivery[]> {
  const deliveries: StoredDelivery[] = [];
  let after: QueuePosition | undefined;
  for (;;) {
    const page = await log.readQueue(clientId, { after, maxEntries: 2, maxBytes: 1 << 30 });
    deliveries.push(...page.deliveries);
    after = page.last ?? after;
    if (!page.more) return deliveries;
  }
}

/** The queue entries of a read, without their messages. */
export function entriesOf(deliveries: StoredDelivery[]): QueueEntry[] {
  return deliveries.map((delivery) => delivery.entry);
}

/** A sorted copy, for comparing collections whose order the port leaves open. */
export function sortBy<T>(items: readonly T[], key: (item: T) => string): T[] {
  return [...items].sort((x, y) => key(x) < key(y) ? -1 : key(x) > key(y) ? 1 : 0);
}
