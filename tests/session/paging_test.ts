/**
 * A session read back from storage a page at a time (OutboundFlow.pageIn): in-flight messages come back
 * as they were, new deliveries go behind the tail in storage, and the queue limits count both parts.
 */
import assert from "node:assert/strict";
import type { QoS } from "../../src/codec/mod.ts";
import type { StoredDeliveryState } from "../../src/session/outbound.ts";
import {
  type Attachment,
  type Delivery,
  type Effect,
  EffectList,
  Session,
  type SessionEffect,
  type SessionLimits,
  sharedState,
} from "../../src/session/mod.ts";
import { attachmentV5, type SessionRecord, takenRecords } from "../helpers/session_limits.ts";

const limits: SessionLimits = {
  maxInflight: 2,
  receiveMaximum: 2,
  maxQueuedMessages: 3,
  maxQueuedBytes: 0,
  queueDropPolicy: "drop_oldest",
  queueQos0Offline: false,
  maxTopicAlias: 0,
  maxSubscriptionsPerClient: 3,
  maxTopicLevels: 8,
  maxQos: 2,
  retainAvailable: true,
  wildcardSubscriptionAvailable: true,
  subscriptionIdentifiersAvailable: true,
  sharedSubscriptionAvailable: true,
};

const attachment: Attachment = { ...attachmentV5, sessionExpiryInterval: 3600 };

function delivery(topic: string, qos: QoS = 1): Delivery {
  return {
    message: { topic, payload: new Uint8Array([1]), qos, retain: false, properties: {}, publisherId: "p" },
    grantedQos: qos,
    retain: false,
  };
}

function stored(
  topic: string,
  stage: StoredDeliveryState["stage"] = "queued",
  packetId?: number,
  qos: QoS = 1,
) {
  return { delivery: delivery(topic, qos), qos, stage, packetId };
}

/** What the effects put on the wire, as `PUBLISH topic id [dup]` and `PUBREL id`. */
function wire(effects: readonly (Effect | SessionEffect)[]): string[] {
  return effects.flatMap((effect) => {
    if (effect.kind === "deliver") {
      return [`PUBLISH ${effect.message.topic} ${effect.packetId}${effect.dup ? " dup" : ""}`];
    }
    if (effect.kind === "send" && effect.packet.type === "pubrel") {
      return [`PUBREL ${effect.packet.packetId}`];
    }
    return [];
  });
}

function recorded(records: readonly SessionRecord[]): string[] {
  return records.map((record) =>
    record.kind === "saveDelivery"
      ? `save ${record.delivery.message.topic} ${record.stage}`
      : record.kind === "deleteDelivery"
      ? `delete ${record.delivery.message.topic}`
      : record.kind
  );
}

/** A persistent session paged out with `queued` entries in storage. */
function pagedOut(queued: number, sessionLimits = limits): Session {
  const session = new Session("c", sharedState(sessionLimits));
  session.persistent = true;
  session.outbound.pageOut({ entries: queued, bytes: queued * 2 });
  return session;
}

Deno.test("a first page brings QoS 2 stages and packet ids back as they were, re-sent before the queue", () => {
  const session = pagedOut(3);
  session.outbound.beginPageRead();
  session.outbound.pageIn(
    [stored("r", "released", 7, 2), stored("s", "sent", 8, 2), stored("q1"), stored("q2")],
    true,
    0,
    new EffectList(),
  );
  assert.ok(session.storedOnly, "more remains in storage");
  const effects = session.attach(attachment, 0);
  // Window of 2: both taken by the messages in flight, so nothing queued goes yet.
  assert.deepEqual(wire(effects), ["PUBREL 7", "PUBLISH s 8 dup"]);
  const afterComp = session.handleIn({ type: "pubcomp", packetId: 7, reasonCode: 0, properties: {} }, 0);
  assert.deepEqual(wire(afterComp), ["PUBLISH q1 9"]);
});

Deno.test("while the tail is in storage, a new delivery goes behind it even with room in the window", () => {
  const session = pagedOut(2);
  session.outbound.beginPageRead();
  session.outbound.pageIn([stored("q1")], true, 0, new EffectList());
  session.attach(attachment, 0);
  takenRecords(session);
  const effects = session.deliver(delivery("live"), true, 0);
  assert.deepEqual(wire(effects), [], "not sent ahead of the stored tail");
  assert.deepEqual(recorded(takenRecords(session)), ["save live queued"]);
  assert.equal(session.outbound.queueLength, 0, "kept in storage only");

  // The last page: the tail and the live message, in that order; the session holds its queue again.
  const out = new EffectList();
  session.outbound.beginPageRead();
  session.outbound.pageIn([stored("q2"), stored("live")], false, 0, out);
  assert.equal(session.storedOnly, false);
  assert.deepEqual(wire(out.effects), ["PUBLISH q2 2"], "the window's free slot");
  const next = session.handleIn({ type: "puback", packetId: 1, reasonCode: 0, properties: {} }, 0);
  assert.deepEqual(wire(next), ["PUBLISH live 3"]);
});

Deno.test("the queue limit counts what waits in memory and in storage: drop_oldest drops the oldest of either", () => {
  // maxQueuedMessages 3: one in memory behind a full window, two in storage.
  const session = pagedOut(5);
  session.outbound.beginPageRead();
  session.outbound.pageIn([stored("a"), stored("b"), stored("c")], true, 0, new EffectList());
  session.attach(attachment, 0); // a and b in flight, c queued
  takenRecords(session);
  session.deliver(delivery("d"), true, 0); // c + 2 in storage = 3: full
  assert.deepEqual(recorded(takenRecords(session)), ["delete c", "save d queued"], "the oldest is in memory");
  assert.equal(session.outbound.drops.queueFull, 1);
  session.deliver(delivery("e"), true, 0);
  assert.deepEqual(
    recorded(takenRecords(session)),
    ["dropOldestStored", "save e queued"],
    "the oldest is in storage, no page being read",
  );
});

Deno.test("drop_oldest while a page is read drops that page's first entry when it comes, not another", () => {
  const session = pagedOut(3);
  session.outbound.beginPageRead();
  session.outbound.pageIn([stored("a"), stored("b")], true, 0, new EffectList());
  session.attach(attachment, 0); // a and b in flight; 1 in storage
  session.deliver(delivery("c"), true, 0);
  session.deliver(delivery("d"), true, 0); // 1 + 2 = 3 stored
  takenRecords(session);
  session.outbound.beginPageRead();
  session.deliver(delivery("e"), true, 0); // full: the oldest stored is what the running read returns
  assert.deepEqual(
    recorded(takenRecords(session)),
    ["save e queued"],
    "no delete storage would race the read with",
  );
  const out = new EffectList();
  session.outbound.pageIn([stored("x"), stored("c"), stored("d"), stored("e")], false, 0, out);
  assert.deepEqual(recorded(takenRecords(session)), ["delete x"]);
  session.handleIn({ type: "puback", packetId: 1, reasonCode: 0, properties: {} }, 0);
  assert.deepEqual(session.outbound.queue.map((queued) => queued.message.topic), ["d", "e"]);
});

Deno.test("an in-flight message in a later page is re-sent under its id, or anew if its id was taken since", () => {
  const session = pagedOut(4, { ...limits, maxInflight: 10 });
  session.outbound.beginPageRead();
  session.outbound.pageIn([stored("s1", "sent", 1)], true, 0, new EffectList());
  session.attach(attachment, 0);
  const out = new EffectList();
  session.outbound.beginPageRead();
  session.outbound.pageIn([stored("s5", "sent", 5), stored("q1")], true, 0, out);
  assert.deepEqual(wire(out.effects), ["PUBLISH s5 5 dup", "PUBLISH q1 6"]);
  const again = new EffectList();
  session.outbound.beginPageRead();
  session.outbound.pageIn([stored("s6", "sent", 6)], false, 0, again);
  assert.deepEqual(wire(again.effects), ["PUBLISH s6 7"], "id 6 is q1's now");
});

Deno.test("a page-out while a page is read gives the put-off drops to storage and starts over at the top", () => {
  const session = pagedOut(3);
  session.outbound.beginPageRead();
  session.deliver(delivery("d"), true, 0); // offline, full, read running: put off
  takenRecords(session);
  session.outbound.pageOut();
  assert.deepEqual(recorded(takenRecords(session)), ["dropOldestStored"]);
  assert.ok(session.outbound.pagedOut);
  assert.ok(session.outbound.wantsPage, "a new read may start");
});

Deno.test("a drop put off until its page came is counted once: the queue limit still sees every message", () => {
  const session = pagedOut(3); // a, b, c in storage: full
  session.outbound.beginPageRead();
  session.deliver(delivery("d"), true, 0); // drops the oldest (a, in the page being read), stores d
  session.outbound.pageIn([stored("a"), stored("b")], true, 0, new EffectList());
  assert.deepEqual(recorded(takenRecords(session)), ["save d queued", "delete a"]);
  // b in memory, c and d in storage: full again.
  session.deliver(delivery("e"), true, 0);
  assert.deepEqual(recorded(takenRecords(session)), ["delete b", "save e queued"]);
  assert.equal(session.outbound.drops.queueFull, 2);
});

Deno.test("a session paged out lets its flow go and makes it again as it was: counts, packet ids, records", () => {
  const session = new Session("c", sharedState(limits));
  session.persistent = true;
  session.attach(attachment, 0);
  // Packet ids 1 and 2 in flight, acknowledged: the next one is 3.
  session.deliver(delivery("a"), true, 0);
  session.deliver(delivery("b"), true, 0);
  session.handleIn({ type: "puback", packetId: 1, reasonCode: 0, properties: {} }, 0);
  session.handleIn({ type: "puback", packetId: 2, reasonCode: 0, properties: {} }, 0);
  takenRecords(session);
  session.pageOut({ entries: 2, bytes: 4 });
  session.detach();
  assert.equal(session.outbound.pagedOut, true, "made again, paged out");
  assert.ok(session.persistent);

  // Let go again; a delivery while the client is away counts against the queue limit (3) with the two in
  // storage, so the fourth drops the oldest stored one.
  session.pageOut();
  assert.ok(
    session.storedOnly && session.pagedOut && session.persistent,
    "a paged-out session, with no flow",
  );
  session.deliver(delivery("c"), false, 0);
  session.deliver(delivery("d"), false, 0);
  assert.deepEqual(recorded(takenRecords(session)), ["save c queued", "dropOldestStored", "save d queued"]);

  // A change recorded while the flow is let go (an inbound QoS 2 id freed) still reaches storage.
  session.pageOut();
  session.refuseInbound(5); // unknown: nothing to record
  session.awaitingRelease.add(6);
  session.pageOut();
  session.refuseInbound(6);
  assert.deepEqual(takenRecords(session), [{ kind: "awaitingRelease", packetId: 6, waiting: false }]);

  // Back: its next new packet id continues where it was.
  session.pageOut();
  session.outbound.beginPageRead();
  session.outbound.pageIn([stored("b2"), stored("c"), stored("d")], false, 0, new EffectList());
  assert.deepEqual(wire(session.attach(attachment, 0)), ["PUBLISH b2 3", "PUBLISH c 4"]);
});

Deno.test("a delivery stored while a page is read keeps the session reading: the page's end is not the queue's", () => {
  const session = pagedOut(1);
  session.outbound.beginPageRead();
  // Stored after the read began (the client is away): the page cannot hold it, nor count it.
  session.deliver(delivery("during"), false, 0);
  assert.deepEqual(recorded(takenRecords(session)), ["save during queued"]);
  session.outbound.pageIn([stored("q1")], false, 0, new EffectList());
  assert.ok(session.storedOnly, "`during` is still only in storage: the next page must be read");
  session.outbound.beginPageRead();
  session.outbound.pageIn([stored("during")], false, 0, new EffectList());
  assert.equal(session.storedOnly, false);
  assert.deepEqual(wire(session.attach(attachment, 0)), ["PUBLISH q1 1", "PUBLISH during 2"]);
});

Deno.test("a session that let its flow go paged out stores what comes while its client is away as the flow would", () => {
  const cases: [string, SessionLimits][] = [
    ["max_queued_messages, drop_oldest", limits],
    ["max_queued_messages, drop_newest", { ...limits, queueDropPolicy: "drop_newest" }],
    ["max_queued_bytes, drop_oldest", { ...limits, maxQueuedMessages: 0, maxQueuedBytes: 7 }],
    ["max_queued_bytes, drop_newest", {
      ...limits,
      maxQueuedMessages: 0,
      maxQueuedBytes: 7,
      queueDropPolicy: "drop_newest",
    }],
    ["QoS 0 queued offline", { ...limits, queueQos0Offline: true }],
  ];
  const expired: Delivery = { ...delivery("x"), message: { ...delivery("x").message, expiresAt: 5 } };
  const arriving = [
    delivery("a"),
    delivery("b", 0),
    expired,
    delivery("bigger"),
    delivery("c", 2),
    delivery("d"),
  ];
  for (const [name, sessionLimits] of cases) {
    // The same two stored deliveries (2 B each); one session keeps its flow, the other lets it go.
    const held = pagedOut(2, sessionLimits);
    const letGo = new Session("c", sharedState(sessionLimits));
    letGo.persistent = true;
    letGo.pageOut({ entries: 2, bytes: 4 });
    for (const arrival of arriving) {
      held.deliver({ ...arrival }, false, 10);
      letGo.deliver({ ...arrival }, false, 10);
      assert.deepEqual(
        recorded(takenRecords(letGo)),
        recorded(takenRecords(held)),
        `${name}: ${arrival.message.topic}`,
      );
    }
    assert.ok(letGo.pagedOut && letGo.storedOnly, `${name}: still paged out`);
    // Its flow made again counts what the one kept counts: the next delivery is admitted, or not, alike.
    assert.equal(letGo.outbound.pagedOut, true, `${name}: made again, paged out`);
    for (const session of [held, letGo]) session.deliver(delivery("e"), false, 10);
    assert.deepEqual(recorded(takenRecords(letGo)), recorded(takenRecords(held)), `${name}: made again`);
    assert.deepEqual(letGo.outbound.drops, held.outbound.drops, `${name}: drops`);
  }
});

Deno.test("what a paged-out session stored without its flow is still to be taken once its flow is made again", () => {
  const session = new Session("c", sharedState(limits));
  session.persistent = true;
  session.pageOut({ entries: 0, bytes: 0 });
  session.deliver(delivery("a"), false, 0);
  assert.equal(session.outbound.pagedOut, true, "the flow made again, before the records were taken");
  assert.deepEqual(recorded(takenRecords(session)), ["save a queued"]);
  assert.deepEqual(takenRecords(session), []);
  session.deliver(delivery("b"), false, 0);
  assert.deepEqual(recorded(takenRecords(session)), ["save b queued"]);
});
