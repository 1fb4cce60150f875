/** WaitingAcks (src/connection/waiting_acks.ts): acknowledgements come back in order, with their fields whole. */
import assert from "node:assert/strict";
import { ackPacketId, ackReasonCode, ackType, WaitingAcks } from "../../src/connection/waiting_acks.ts";

Deno.test("waiting acks: every type, packet id and reason code comes back, oldest first, with what it waits for", () => {
  const first = Promise.resolve(), second = Promise.resolve();
  const acks = WaitingAcks.take();
  const pushed: [("puback" | "pubrec"), number, number, Promise<void> | undefined][] = [
    ["puback", 1, 0x00, first],
    ["pubrec", 65535, 0x97, first],
    ["puback", 0x8000, 0x10, undefined],
    ["pubrec", 42, 0xff, second],
  ];
  for (const [type, packetId, reasonCode, durable] of pushed) acks.push(type, packetId, reasonCode, durable);
  assert.equal(acks.length, 4);
  for (const [type, packetId, reasonCode, durable] of pushed) {
    assert.equal(acks.firstDurable, durable);
    const ack = acks.shift();
    assert.deepEqual([ackType(ack), ackPacketId(ack), ackReasonCode(ack)], [type, packetId, reasonCode]);
  }
  assert.equal(acks.length, 0);
  acks.release();
  assert.equal(WaitingAcks.take(), acks, "an emptied list given back is the next one taken");
});
