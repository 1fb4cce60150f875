/** Conformance cases of the message log and the queues: sharing, order, stages, deletion, recovery rules. */
import assert from "node:assert/strict";
import type { MessageRef, StorageAdapter, StoredMessage } from "./port.ts";
import { entriesOf, readWholeQueue, type RegisterCase } from "./conformance.ts";
import { sample } from "./conformance_samples.ts";

const HOUR = 3_600_000;

const refsOf = async (storage: StorageAdapter, clientId: string): Promise<MessageRef[]> =>
  (await readWholeQueue(storage, clientId)).map((delivery) => delivery.entry.messageId);

/** Registers the queue cases through the suite's `test`. */
export function registerQueueCases(test: RegisterCase): void {
  test(
    "messages round-trip with every property, byte fields, expiry, and empty or large payloads",
    async (storage, restart) => {
      const rich = sample.message("a/b", {
        qos: 2,
        retain: true,
        payload: Uint8Array.from({ length: 256 * 1024 }, (_, index) => index % 251),
        expiresAt: Date.now() + HOUR,
        properties: {
          payloadFormatIndicator: 1,
          messageExpiryInterval: 3600,
          contentType: "application/json",
          responseTopic: "replies/1",
          correlationData: new Uint8Array([0, 1, 2, 255]),
          userProperties: [["k", "v"], ["k", "second"], ["ключ", "значение"]],
        },
      });
      const empty = sample.message("empty", { payload: new Uint8Array(0), qos: 0 });
      const richId = storage.appendMessage(rich);
      const emptyId = storage.appendMessage(empty);
      assert.notEqual(richId, emptyId);
      storage.saveQueueEntry(sample.entry("a", richId));
      storage.saveQueueEntry(sample.entry("a", emptyId));
      const { storage: reopened } = await restart();
      const read = await readWholeQueue(reopened, "a");
      assert.deepEqual(read.map((delivery) => delivery.message), [rich, empty]);
    },
  );

  test(
    "appendMessage keeps the payload's bytes, not the caller's buffer: a view of a block reused after a restart",
    async (storage, restart) => {
      // The broker hands over payloads that are views of its read blocks, which hold other frames too.
      const block = Uint8Array.from({ length: 4096 }, (_, index) => index % 199);
      const payload = block.subarray(1000, 2024);
      const expected = payload.slice();
      const id = storage.appendMessage(sample.message("view", { payload }));
      storage.saveQueueEntry(sample.entry("a", id));
      const { storage: reopened } = await restart();
      block.fill(0);
      const [read] = await readWholeQueue(reopened, "a");
      assert.deepEqual(read.message.payload, expected);
      assert.equal(read.message.payload.buffer.byteLength, expected.byteLength, "not the whole block");
    },
  );

  test(
    "a payload given by its source is stored as the source gives it, and the source is not kept",
    async (storage) => {
      // The broker's one stored message copies each payload from its PUBLISH frame (see Persistence).
      const frame = Uint8Array.from({ length: 300 }, (_, index) => index % 251);
      const source = {
        start: 0,
        payloadSize: 0,
        copyPayloadTo(target: DataView, at: number): void {
          for (let i = 0; i < this.payloadSize; i++) target.setUint8(at + i, frame[this.start + i]);
        },
      };
      const message: StoredMessage = {
        ...sample.message("sourced"),
        get payload(): Uint8Array {
          return frame.slice(source.start, source.start + source.payloadSize);
        },
        payloadSource: source,
      };
      const ids: MessageRef[] = [];
      for (const [start, size] of [[10, 64], [0, 300], [299, 0]]) {
        Object.assign(source, { start, payloadSize: size });
        ids.push(storage.appendMessage(message));
      }
      for (const id of ids) storage.saveQueueEntry(sample.entry("a", id));
      const expected = [frame.slice(10, 74), frame.slice(0, 300), new Uint8Array(0)];
      frame.fill(0);
      const read = await readWholeQueue(storage, "a");
      assert.deepEqual(
        read.map((delivery) => delivery.message),
        expected.map((payload) => sample.message("sourced", { payload })),
      );
    },
  );

  test("a message is stored once however many queue entries refer to it", async (storage, restart) => {
    const id = storage.appendMessage(sample.message());
    storage.saveQueueEntry(sample.entry("a", id));
    storage.saveQueueEntry(sample.entry("b", id, { qos: 0, retain: true, subscriptionIdentifiers: [3, 7] }));
    const { snapshot, storage: reopened } = await restart();
    assert.equal(snapshot.storedMessages, 1);
    assert.deepEqual(entriesOf(await readWholeQueue(reopened, "a")), [sample.entry("a", id)]);
    const b = await readWholeQueue(reopened, "b");
    assert.deepEqual(entriesOf(b), [
      sample.entry("b", id, { qos: 0, retain: true, subscriptionIdentifiers: [3, 7] }),
    ]);
    assert.deepEqual(b[0].message, sample.message());
  });

  test("the objects passed to appendMessage and saveQueueEntry are the caller's to reuse", async (storage) => {
    // The broker fills one message and one entry for every append and save of its delivery path.
    const message = sample.message("first");
    const first = storage.appendMessage(message);
    Object.assign(message, sample.message("second", { qos: 0, payload: new Uint8Array([9]) }));
    const second = storage.appendMessage(message);
    const entry = sample.entry("a", first);
    storage.saveQueueEntry(entry);
    Object.assign(entry, sample.entry("a", second, { qos: 0, subscriptionIdentifiers: [4] }));
    storage.saveQueueEntry(entry);
    Object.assign(entry, sample.entry("b", first, { stage: "sent", packetId: 9 }));
    const read = await readWholeQueue(storage, "a");
    assert.deepEqual(read.map((delivery) => delivery.message), [
      sample.message("first"),
      sample.message("second", { qos: 0, payload: new Uint8Array([9]) }),
    ]);
    assert.deepEqual(entriesOf(read), [
      sample.entry("a", first),
      sample.entry("a", second, { qos: 0, subscriptionIdentifiers: [4] }),
    ]);
  });

  test(
    "deleteUnreferencedMessage keeps a message a queue entry refers to, in the same batch or not",
    async (storage, restart) => {
      const kept = storage.appendMessage(sample.message("kept"));
      const staged = storage.appendMessage(sample.message("staged"));
      storage.saveQueueEntry(sample.entry("a", staged));
      storage.deleteUnreferencedMessage(staged); // queued in the same batch: stays
      storage.deleteUnreferencedMessage(storage.appendMessage(sample.message("unused")));
      await storage.flush();
      storage.saveQueueEntry(sample.entry("b", kept));
      storage.deleteUnreferencedMessage(kept); // queued in an earlier batch: stays
      const { snapshot, storage: reopened } = await restart();
      assert.equal(snapshot.storedMessages, 2);
      assert.deepEqual(await refsOf(reopened, "a"), [staged]);
      assert.deepEqual(await refsOf(reopened, "b"), [kept]);
    },
  );

  test("queues keep first-insertion order across replacements and restarts", async (storage, restart) => {
    const [m1, m2, m3] = ["t/1", "t/2", "t/3"].map((topic) => storage.appendMessage(sample.message(topic)));
    storage.saveQueueEntry(sample.entry("a", m3));
    storage.saveQueueEntry(sample.entry("b", m1));
    storage.saveQueueEntry(sample.entry("a", m1));
    storage.saveQueueEntry(sample.entry("b", m2));
    storage.saveQueueEntry(sample.entry("a", m2));
    storage.saveQueueEntry(sample.entry("a", m3, { stage: "sent", packetId: 9 }));
    const first = await restart();
    assert.deepEqual(await refsOf(first.storage, "a"), [m3, m1, m2]);
    assert.deepEqual(await refsOf(first.storage, "b"), [m1, m2]);

    const m4 = first.storage.appendMessage(sample.message("t/4"));
    first.storage.saveQueueEntry(sample.entry("a", m4));
    first.storage.saveQueueEntry(sample.entry("a", m1, { stage: "sent", packetId: 10 }));
    assert.deepEqual(
      await refsOf(first.storage, "a"),
      [m3, m1, m2, m4],
      "a read sees what was issued before it",
    );
    const second = await restart();
    assert.deepEqual(await refsOf(second.storage, "a"), [m3, m1, m2, m4]);
    assert.deepEqual(await refsOf(second.storage, "b"), [m1, m2]);
  });

  test("stage updates: queued, then sent with a packet id, then released", async (storage, restart) => {
    const id = storage.appendMessage(sample.message("t", { qos: 2 }));
    storage.saveQueueEntry(sample.entry("a", id, { qos: 2 }));
    let restarted = await restart();
    assert.deepEqual(entriesOf(await readWholeQueue(restarted.storage, "a")), [
      sample.entry("a", id, { qos: 2 }),
    ]);

    restarted.storage.saveQueueEntry(sample.entry("a", id, { qos: 2, stage: "sent", packetId: 42 }));
    restarted = await restart();
    assert.deepEqual(entriesOf(await readWholeQueue(restarted.storage, "a")), [
      sample.entry("a", id, { qos: 2, stage: "sent", packetId: 42 }),
    ]);

    restarted.storage.saveQueueEntry(sample.entry("a", id, { qos: 2, stage: "released", packetId: 42 }));
    restarted = await restart();
    assert.deepEqual(entriesOf(await readWholeQueue(restarted.storage, "a")), [
      sample.entry("a", id, { qos: 2, stage: "released", packetId: 42 }),
    ]);
  });

  test(
    "deleteQueueEntry keeps the message while another entry refers to it, and drops it with the last",
    async (storage, restart) => {
      const id = storage.appendMessage(sample.message());
      storage.saveQueueEntry(sample.entry("a", id));
      storage.saveQueueEntry(sample.entry("b", id));
      storage.deleteQueueEntry("a", id);
      storage.deleteQueueEntry("a", id);
      storage.deleteQueueEntry("c", 123_456 as MessageRef);
      const first = await restart();
      assert.deepEqual(entriesOf(await readWholeQueue(first.storage, "b")), [sample.entry("b", id)]);
      assert.deepEqual(await refsOf(first.storage, "a"), []);
      assert.equal(first.snapshot.storedMessages, 1);

      first.storage.deleteQueueEntry("b", id);
      const second = await restart();
      assert.deepEqual(await refsOf(second.storage, "b"), []);
      assert.equal(second.snapshot.storedMessages, 0);
    },
  );

  test(
    "deleteOldestQueued removes the oldest entry not yet sent, and its message with the last reference",
    async (storage, restart) => {
      const [m1, m2, m3] = ["t/1", "t/2", "t/3"].map((topic) => storage.appendMessage(sample.message(topic)));
      storage.saveQueueEntry(sample.entry("a", m1, { stage: "sent", packetId: 1 }));
      storage.saveQueueEntry(sample.entry("a", m2));
      storage.saveQueueEntry(sample.entry("a", m3));
      storage.saveQueueEntry(sample.entry("b", m3));
      storage.deleteOldestQueued("a");
      storage.deleteOldestQueued("a");
      storage.deleteOldestQueued("nobody");
      const { snapshot, storage: reopened } = await restart();
      assert.deepEqual(await refsOf(reopened, "a"), [m1], "the entry in flight stays");
      assert.deepEqual(await refsOf(reopened, "b"), [m3]);
      assert.equal(snapshot.storedMessages, 2, "t/2 had no other reference; t/3 is still b's");
    },
  );

  test(
    "queue totals count each client's entries not yet sent, with their topic and payload bytes",
    async (storage, restart) => {
      const small = storage.appendMessage(sample.message("t", { payload: new Uint8Array(10) }));
      const large = storage.appendMessage(sample.message("tt", { payload: new Uint8Array(1000) }));
      storage.saveQueueEntry(sample.entry("a", small));
      storage.saveQueueEntry(sample.entry("a", large));
      storage.saveQueueEntry(sample.entry("b", small, { stage: "sent", packetId: 4 }));
      const { snapshot } = await restart();
      assert.deepEqual(snapshot.queueTotals, new Map([["a", { entries: 2, bytes: 11 + 1002 }]]));
    },
  );

  test("mutations of one entry within one flush apply in the order issued", async (storage, restart) => {
    const [m1, m2] = ["t/1", "t/2"].map((topic) => storage.appendMessage(sample.message(topic)));
    storage.saveQueueEntry(sample.entry("a", m1));
    storage.saveQueueEntry(sample.entry("b", m1));
    storage.saveQueueEntry(sample.entry("a", m2));
    storage.saveQueueEntry(sample.entry("a", m2, { stage: "sent", packetId: 1 }));
    storage.deleteQueueEntry("a", m1);
    storage.saveQueueEntry(sample.entry("a", m1, { stage: "sent", packetId: 2 }));
    storage.deleteQueueEntry("b", m1);
    const { snapshot, storage: reopened } = await restart();
    assert.deepEqual(entriesOf(await readWholeQueue(reopened, "a")), [
      sample.entry("a", m2, { stage: "sent", packetId: 1 }),
      sample.entry("a", m1, { stage: "sent", packetId: 2 }),
    ]);
    assert.equal(snapshot.storedMessages, 2);
  });

  test(
    "an entry saved after its message went with the last entry is dropped at recovery",
    async (storage, restart) => {
      const id = storage.appendMessage(sample.message());
      storage.saveQueueEntry(sample.entry("a", id));
      storage.deleteQueueEntry("a", id);
      storage.saveQueueEntry(sample.entry("b", id));
      const { snapshot, storage: reopened } = await restart();
      assert.deepEqual([await refsOf(reopened, "b"), snapshot.storedMessages], [[], 0]);
    },
  );

  test("messages no queue entry refers to are dropped at recovery", async (storage, restart) => {
    storage.appendMessage(sample.message("nobody/subscribed"));
    const kept = storage.appendMessage(sample.message("kept"));
    storage.saveQueueEntry(sample.entry("a", kept));
    // A snapshot may be read before the drop (the embedded store drops them once the broker has it).
    const first = await restart();
    assert.deepEqual(await refsOf(first.storage, "a"), [kept]);
    const { snapshot } = await restart();
    assert.equal(snapshot.storedMessages, 1);
  });

  test(
    "messages expired at recovery are dropped with their queue entries; expired retained too",
    async (storage, restart) => {
      const expired = storage.appendMessage(sample.message("old", { expiresAt: Date.now() - 1000 }));
      const fresh = storage.appendMessage(sample.message("fresh", { expiresAt: Date.now() + HOUR }));
      const forever = storage.appendMessage(sample.message("forever"));
      for (const id of [expired, fresh, forever]) storage.saveQueueEntry(sample.entry("a", id));
      storage.saveQueueEntry(sample.entry("b", expired));
      storage.saveRetained(sample.message("retained/old", { retain: true, expiresAt: Date.now() - 1000 }));
      storage.saveRetained(sample.message("retained/fresh", { retain: true, expiresAt: Date.now() + HOUR }));
      const { snapshot, storage: reopened } = await restart();
      assert.deepEqual(await refsOf(reopened, "a"), [fresh, forever]);
      assert.deepEqual(await refsOf(reopened, "b"), []);
      assert.equal(snapshot.storedMessages, 2);
      assert.deepEqual(snapshot.retained.map((message) => message.topic), ["retained/fresh"]);
    },
  );

  test(
    "an expired message already sent stays in flight, in reads and across recovery [MQTT-4.3.3-7]",
    async (storage, restart) => {
      const past = Date.now() - 1000;
      const sent = storage.appendMessage(sample.message("sent", { expiresAt: past }));
      const waiting = storage.appendMessage(sample.message("waiting", { expiresAt: past }));
      storage.saveQueueEntry(sample.entry("a", sent, { stage: "sent", packetId: 3 }));
      storage.saveQueueEntry(sample.entry("a", waiting));
      assert.deepEqual(await refsOf(storage, "a"), [sent]);
      const { storage: reopened } = await restart();
      assert.deepEqual(await refsOf(reopened, "a"), [sent]);
    },
  );

  test("message references stay unique across restarts", async (storage, restart) => {
    const before = [storage.appendMessage(sample.message("1")), storage.appendMessage(sample.message("2"))];
    for (const id of before) storage.saveQueueEntry(sample.entry("a", id));
    const { storage: reopened } = await restart();
    const after = reopened.appendMessage(sample.message("3"));
    assert.equal(before.includes(after), false);
  });
}
