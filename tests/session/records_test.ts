import assert from "node:assert/strict";
import type { QoS } from "../../src/codec/mod.ts";
import { SessionRecords } from "../../src/session/records.ts";
import { allocatedBytes } from "../helpers/allocation.ts";
import type { Delivery, DeliveryStage, RecordSink } from "../../src/session/mod.ts";

const delivery = (topic: string): Delivery => ({
  message: { topic, payload: new Uint8Array(0), qos: 1, retain: false, properties: {}, publisherId: "p" },
  grantedQos: 2,
  retain: false,
});

/** A sink that writes each call as a line, the delivery by its topic. */
function textSink(lines: string[]): RecordSink {
  return {
    saveDelivery: (clientId, d, qos, stage, packetId) =>
      lines.push(`${clientId} save ${d.message.topic} ${qos} ${stage} ${packetId}`),
    deleteDelivery: (clientId, d) => lines.push(`${clientId} delete ${d.message.topic}`),
    requeueDelivery: (clientId, d, qos) => lines.push(`${clientId} requeue ${d.message.topic} ${qos}`),
    dropOldestStored: (clientId) => lines.push(`${clientId} dropOldest`),
    awaitingRelease: (clientId, packetId, waiting) =>
      lines.push(`${clientId} awaiting ${packetId} ${waiting}`),
  };
}

Deno.test("session records: every kind of change reaches the sink with its fields, in order", () => {
  const records = new SessionRecords();
  const expected: string[] = [];
  for (const qos of [0, 1, 2] as QoS[]) {
    for (const stage of ["queued", "sent", "released"] as DeliveryStage[]) {
      const packetId = stage === "queued" ? undefined : 65535 - qos;
      records.saveDelivery(delivery(`t/${qos}/${stage}`), qos, stage, packetId);
      expected.push(`c save t/${qos}/${stage} ${qos} ${stage} ${packetId}`);
    }
    records.requeueDelivery(delivery(`r/${qos}`), qos);
    expected.push(`c requeue r/${qos} ${qos}`);
  }
  records.deleteDelivery(delivery("d"));
  records.dropOldestStored();
  records.awaitingRelease(1, true);
  records.awaitingRelease(65535, false);
  expected.push("c delete d", "c dropOldest", "c awaiting 1 true", "c awaiting 65535 false");
  assert.equal(records.length, expected.length);
  const lines: string[] = [];
  records.takeInto("c", textSink(lines));
  assert.deepEqual(lines, expected);
  assert.equal(records.length, 0);
  records.takeInto("c", textSink(lines));
  assert.equal(lines.length, expected.length, "taken once");
});

Deno.test("session records: order holds as the ring wraps and grows while wrapped", () => {
  const records = new SessionRecords();
  const lines: string[] = [];
  const sink = textSink(lines);
  let next = 0;
  for (; next < 3; next++) records.deleteDelivery(delivery(`${next}`));
  // Each change taken records two more until 200: the ring's head moves on while it fills past its room.
  records.takeInto("c", {
    ...sink,
    deleteDelivery: (clientId, d) => {
      sink.deleteDelivery(clientId, d);
      for (let i = 0; i < 2 && next < 200; i++) records.deleteDelivery(delivery(`${next++}`));
    },
  });
  assert.deepEqual(lines, Array.from({ length: 200 }, (_, i) => `c delete ${i}`));
  assert.equal(records.length, 0);
  records.saveDelivery(delivery("again"), 1, "queued");
  records.takeInto("c", sink);
  assert.equal(lines.at(-1), "c save again 1 queued undefined", "usable once emptied");
});

Deno.test("session records: a change recorded while the list is taken is taken in the same call", () => {
  const records = new SessionRecords();
  const lines: string[] = [];
  const sink = textSink(lines);
  records.deleteDelivery(delivery("first"));
  records.takeInto("c", {
    ...sink,
    deleteDelivery: (clientId, d) => {
      sink.deleteDelivery(clientId, d);
      if (d.message.topic === "first") records.dropOldestStored();
    },
  });
  assert.deepEqual(lines, ["c delete first", "c dropOldest"]);
  assert.equal(records.length, 0);
});

Deno.test("session records: recording and taking changes at a steady length allocates nothing", async () => {
  // An object per change was 104 of the 520 B a durable QoS 1 message allocated on the broker's thread.
  const records = new SessionRecords();
  const deliveries = Array.from({ length: 16 }, (_, i) => delivery(`t/${i}`));
  let taken = 0;
  const sink: RecordSink = {
    saveDelivery: () => taken++,
    deleteDelivery: () => taken++,
    requeueDelivery: () => taken++,
    dropOldestStored: () => taken++,
    awaitingRelease: () => taken++,
  };
  const changes = 40_000;
  const run = () => {
    for (let i = 0; i < changes / 2; i++) {
      const d = deliveries[i & 15];
      records.saveDelivery(d, 1, "sent", (i & 0xffff) + 1);
      records.deleteDelivery(d);
      records.takeInto("c", sink);
    }
  };
  for (let round = 0; round < 3; round++) run(); // the code optimized
  const bytes = await allocatedBytes(run);
  assert.equal(taken, 4 * changes);
  assert.ok(bytes / changes < 4, `${(bytes / changes).toFixed(1)} B per change`);
});
