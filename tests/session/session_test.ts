/** The session state machine alone: packets and routed messages in, effects out, no sockets. */
import assert from "node:assert/strict";
import {
  Decoder,
  encode,
  type Packet,
  publishFrameLength,
  type PublishPacket,
  type QoS,
} from "../../src/codec/mod.ts";
import {
  type Attachment,
  copyPayload,
  FramedMessage,
  type Message,
  payloadSize,
  Session,
  type SessionEffect,
  type SessionLimits,
  sharedState,
  shareFrame,
  withoutFrame,
} from "../../src/session/mod.ts";
import { takenRecords } from "../helpers/session_limits.ts";

const limits: SessionLimits = {
  maxInflight: 2,
  receiveMaximum: 2,
  maxQueuedMessages: 3,
  maxQueuedBytes: 0,
  queueDropPolicy: "drop_oldest",
  queueQos0Offline: false,
  maxTopicAlias: 4,
  maxSubscriptionsPerClient: 3,
  maxTopicLevels: 8,
  maxQos: 2,
  retainAvailable: true,
  wildcardSubscriptionAvailable: true,
  subscriptionIdentifiersAvailable: true,
  sharedSubscriptionAvailable: true,
};

function attachment(version: 4 | 5, extra: Partial<Attachment> = {}): Attachment {
  return {
    protocolVersion: version,
    receiveMaximum: 65535,
    topicAliasMaximum: 0,
    sessionExpiryInterval: 0,
    requestProblemInformation: true,
    ...extra,
  };
}

function publish(
  topic: string,
  qos: QoS,
  packetId?: number,
  extra: Partial<PublishPacket> = {},
): PublishPacket {
  return {
    type: "publish",
    topic,
    payload: new TextEncoder().encode("x"),
    qos,
    retain: false,
    dup: false,
    packetId,
    properties: {},
    ...extra,
  };
}

function message(topic: string, qos: QoS, extra: Partial<Message> = {}): Message {
  return {
    topic,
    payload: new Uint8Array([1]),
    qos,
    retain: false,
    properties: {},
    publisherId: "p",
    ...extra,
  };
}

function kinds(effects: SessionEffect[]): string[] {
  return effects.map((effect) =>
    effect.kind === "send"
      ? `send:${effect.packet.type}`
      : effect.kind === "close"
      ? `close:0x${effect.reasonCode.toString(16)}`
      : effect.kind
  );
}

function connected(version: 4 | 5 = 5, extra: Partial<Attachment> = {}): Session {
  const session = new Session("c1", sharedState(limits));
  session.attach(attachment(version, extra), 0);
  return session;
}

Deno.test("QoS 1 PUBLISH is routed with a PUBACK to send after routing [MQTT-4.3.2-2]", () => {
  const effects = connected().handleIn(publish("a/b", 1, 7), 0);
  assert.equal(effects.length, 1);
  const [effect] = effects;
  assert.equal(effect.kind, "publish");
  if (effect.kind !== "publish") return;
  assert.equal(effect.message.topic, "a/b");
  assert.deepEqual(effect.ack, {
    kind: "ack",
    type: "puback",
    packetId: 7,
    reasonCode: 0,
    durable: undefined,
  });
});

Deno.test("QoS 2 PUBLISH resent before PUBREL is acknowledged but not routed again [MQTT-4.3.3-10]", () => {
  const session = connected();
  assert.deepEqual(kinds(session.handleIn(publish("a", 2, 9), 0)), ["publish"]);
  assert.deepEqual(kinds(session.handleIn(publish("a", 2, 9, { dup: true }), 0)), ["send:pubrec"]);
  assert.deepEqual(
    kinds(session.handleIn({ type: "pubrel", packetId: 9, reasonCode: 0, properties: {} }, 0)),
    [
      "send:pubcomp",
    ],
  );
  // After PUBREL the id is free: the same id is a new message [MQTT-4.3.3-12].
  assert.deepEqual(kinds(session.handleIn(publish("a", 2, 9), 0)), ["publish"]);
});

Deno.test("PUBREL for an unknown packet id is answered PUBCOMP 0x92", () => {
  const effects = connected().handleIn({ type: "pubrel", packetId: 3, reasonCode: 0, properties: {} }, 0);
  const [effect] = effects;
  assert.equal(effect.kind === "send" && effect.packet.type === "pubcomp" && effect.packet.reasonCode, 0x92);
});

Deno.test("a second CONNECT is a protocol error [MQTT-3.1.0-2]", () => {
  const connect: Packet = {
    type: "connect",
    protocolName: "MQTT",
    protocolVersion: 5,
    cleanStart: true,
    keepAlive: 0,
    clientId: "c1",
    properties: {},
  };
  assert.deepEqual(kinds(connected().handleIn(connect, 0)), ["close:0x82"]);
});

Deno.test("outbound window: deliveries beyond min(maxInflight, Receive Maximum) queue until acked", () => {
  const session = connected(5, { receiveMaximum: 5 }); // our maxInflight of 2 is the smaller
  const sent: number[] = [];
  for (let i = 0; i < 4; i++) {
    for (
      const effect of session.deliver({ message: message("t", 1), grantedQos: 1, retain: false }, true, 0)
    ) {
      if (effect.kind === "deliver") sent.push(effect.packetId!);
    }
  }
  assert.deepEqual(sent, [1, 2]);
  assert.equal(session.outbound.queue.length, 2);
  const next = session.handleIn({ type: "puback", packetId: 1, reasonCode: 0, properties: {} }, 0);
  assert.deepEqual(next.map((e) => e.kind === "deliver" && e.packetId), [3]);
});

Deno.test("resume: QoS 0 queued while away goes out past a full window, QoS 1 behind it waits for a PUBACK", () => {
  const session = new Session(
    "c1",
    sharedState({
      ...limits,
      maxInflight: 1,
      maxQueuedMessages: 10,
      queueQos0Offline: true,
    }),
  );
  session.persistent = true;
  const topics = [["a", 1], ["b", 0], ["c", 1], ["d", 0], ["e", 0], ["f", 1]] as const;
  for (const [topic, qos] of topics) {
    session.deliver({ message: message(topic, qos), grantedQos: qos, retain: false }, false, 0);
  }
  // The window (1) is full from the first PUBLISH on: each QoS 0 behind a QoS 1 goes out with it.
  const sent = (effects: SessionEffect[]) =>
    effects.map((effect) => effect.kind === "deliver" ? `${effect.message.topic}${effect.qos}` : effect.kind);
  assert.deepEqual(sent(session.attach(attachment(5), 0)), ["a1", "b0"]);
  assert.deepEqual(
    sent(session.handleIn({ type: "puback", packetId: 1, reasonCode: 0, properties: {} }, 0)),
    [
      "c1",
      "d0",
      "e0",
    ],
  );
  assert.deepEqual(
    sent(session.handleIn({ type: "puback", packetId: 2, reasonCode: 0, properties: {} }, 0)),
    [
      "f1",
    ],
  );
  assert.equal(session.outbound.queueLength, 0);
});

Deno.test("delivery QoS is the minimum of message and subscription QoS [MQTT-3.8.4-8]", () => {
  const [effect] = connected().deliver({ message: message("t", 2), grantedQos: 1, retain: false }, true, 0);
  assert.equal(effect.kind === "deliver" && effect.qos, 1);
});

Deno.test("resume re-sends unacknowledged QoS 1 with DUP, in order, and PUBREL for released QoS 2 [MQTT-4.4.0-1]", () => {
  const session = connected(4);
  session.deliver({ message: message("a", 1), grantedQos: 1, retain: false }, true, 0);
  session.deliver({ message: message("b", 2), grantedQos: 2, retain: false }, true, 0);
  session.handleIn({ type: "pubrec", packetId: 2, reasonCode: 0, properties: {} }, 0);
  session.detach();
  const effects = session.attach(attachment(4), 0);
  assert.equal(effects.length, 2);
  const [first, second] = effects;
  assert.ok(first.kind === "deliver" && first.dup && first.packetId === 1 && first.message.topic === "a");
  assert.ok(second.kind === "send" && second.packet.type === "pubrel" && second.packet.packetId === 2);
});

/** What `effects` send, e.g. "a1#3dup" (topic, QoS, packet id, DUP) or "pubrel#2". */
function sentPackets(effects: SessionEffect[]): string[] {
  return effects.map((effect) =>
    effect.kind === "deliver"
      ? `${effect.message.topic}${effect.qos}#${effect.packetId}${effect.dup ? "dup" : ""}`
      : effect.kind === "send" && "packetId" in effect.packet
      ? `${effect.packet.type}#${effect.packet.packetId}`
      : effect.kind
  );
}

function ack(type: "puback" | "pubrec" | "pubcomp", packetId: number): Packet {
  return { type, packetId, reasonCode: 0, properties: {} };
}

Deno.test("resume with a smaller Receive Maximum: in-flight PUBLISHes go again only as the new window has room, in order, then new ones [MQTT-4.9.0-2]", () => {
  const session = new Session("c1", sharedState({ ...limits, maxInflight: 10, maxQueuedMessages: 10 }));
  session.attach(attachment(5, { receiveMaximum: 5 }), 0);
  for (const topic of ["a", "b", "c", "d", "e", "f", "g"]) {
    session.deliver({ message: message(topic, 1), grantedQos: 1, retain: false }, true, 0);
  }
  session.detach();
  // Five in flight, two queued; back with room for two.
  assert.deepEqual(sentPackets(session.attach(attachment(5, { receiveMaximum: 2 }), 0)), [
    "a1#1dup",
    "b1#2dup",
  ]);
  assert.deepEqual(sentPackets(session.handleIn(ack("puback", 1), 0)), ["c1#3dup"]);
  assert.deepEqual(sentPackets(session.handleIn(ack("puback", 2), 0)), ["d1#4dup"]);
  assert.deepEqual(sentPackets(session.handleIn(ack("puback", 3), 0)), ["e1#5dup"]);
  // The queue's messages only once every in-flight one went again.
  assert.deepEqual(sentPackets(session.handleIn(ack("puback", 4), 0)), ["f1#6"]);
  assert.deepEqual(sentPackets(session.handleIn(ack("puback", 5), 0)), ["g1#7"]);
  // The next connection with room for all sends all that is unacknowledged again.
  session.detach();
  assert.deepEqual(sentPackets(session.attach(attachment(5, { receiveMaximum: 5 }), 0)), [
    "f1#6dup",
    "g1#7dup",
  ]);
});

Deno.test("resume with a full window: PUBRELs go at once; a PUBACK or PUBREC to a PUBLISH not sent again yet ends its wait", () => {
  const session = new Session("c1", sharedState({ ...limits, maxInflight: 10 }));
  session.attach(attachment(5, { receiveMaximum: 5 }), 0);
  session.deliver({ message: message("a", 2), grantedQos: 2, retain: false }, true, 0);
  session.deliver({ message: message("b", 1), grantedQos: 1, retain: false }, true, 0);
  session.deliver({ message: message("c", 1), grantedQos: 1, retain: false }, true, 0);
  session.deliver({ message: message("d", 2), grantedQos: 2, retain: false }, true, 0);
  session.handleIn(ack("pubrec", 1), 0);
  session.detach();
  // The released QoS 2 message's PUBREL takes no quota; it counts until its PUBCOMP, leaving no room.
  assert.deepEqual(sentPackets(session.attach(attachment(5, { receiveMaximum: 1 }), 0)), ["pubrel#1"]);
  // Acknowledged on the earlier connection's PUBLISH: done with, nothing sent again for it.
  assert.deepEqual(sentPackets(session.handleIn(ack("puback", 3), 0)), []);
  assert.deepEqual(sentPackets(session.handleIn(ack("pubcomp", 1), 0)), ["b1#2dup"]);
  assert.deepEqual(sentPackets(session.handleIn(ack("pubrec", 4), 0)), ["pubrel#4"]);
  assert.deepEqual(sentPackets(session.handleIn(ack("puback", 2), 0)), []);
  assert.deepEqual(sentPackets(session.handleIn(ack("pubcomp", 4), 0)), []);
  assert.equal(session.inflightCount, 0);
  // Nothing waits any more: a new message goes at once.
  assert.deepEqual(
    sentPackets(session.deliver({ message: message("e", 1), grantedQos: 1, retain: false }, true, 0)),
    ["e1#5"],
  );
});

Deno.test("offline: QoS 0 is not queued by default, QoS 1 is, and the queue drops the oldest when full", () => {
  const session = new Session("c1", sharedState(limits));
  assert.equal(
    session.deliver({ message: message("q0", 0), grantedQos: 1, retain: false }, false, 0).length,
    0,
  );
  assert.equal(session.outbound.drops.qos0Offline, 1);
  for (const topic of ["1", "2", "3", "4"]) {
    session.deliver({ message: message(topic, 1), grantedQos: 1, retain: false }, false, 0);
  }
  assert.deepEqual(session.outbound.queue.map((q) => q.message.topic), ["2", "3", "4"]);
  assert.equal(session.outbound.drops.queueFull, 1);
});

Deno.test("an expired message is dropped, not delivered [MQTT-3.3.2-5]", () => {
  const session = connected();
  const effects = session.deliver(
    { message: message("t", 1, { expiresAt: 1000 }), grantedQos: 1, retain: false },
    true,
    1000,
  );
  assert.equal(effects.length, 0);
  assert.equal(session.outbound.drops.expired, 1);
});

Deno.test("Message Expiry Interval is sent as the time remaining [MQTT-3.3.2-6]", () => {
  const [effect] = connected().deliver(
    {
      message: message("t", 0, { expiresAt: 10_000, properties: { messageExpiryInterval: 10 } }),
      grantedQos: 0,
      retain: false,
    },
    true,
    4_500,
  );
  assert.equal(effect.kind === "deliver" && effect.properties.messageExpiryInterval, 6);
});

Deno.test("outbound topic alias: first send carries topic and alias, later sends only the alias", () => {
  const session = connected(5, { topicAliasMaximum: 2 });
  const send = () =>
    session.deliver({ message: message("long/topic", 0), grantedQos: 0, retain: false }, true, 0)[0];
  const first = send();
  const second = send();
  assert.ok(first.kind === "deliver" && first.topic === "long/topic" && first.properties.topicAlias === 1);
  assert.ok(second.kind === "deliver" && second.topic === "" && second.properties.topicAlias === 1);
});

Deno.test("inbound topic alias: set by one PUBLISH, resolved in the next; unknown alias is a protocol error", () => {
  const session = connected();
  session.handleIn(publish("x/y", 0, undefined, { properties: { topicAlias: 1 } }), 0);
  const [routed] = session.handleIn(publish("", 0, undefined, { properties: { topicAlias: 1 } }), 0);
  assert.ok(routed.kind === "publish" && routed.message.topic === "x/y");
  assert.deepEqual(kinds(session.handleIn(publish("", 0, undefined, { properties: { topicAlias: 2 } }), 0)), [
    "close:0x82",
  ]);
});

Deno.test("topic alias above our Topic Alias Maximum is 0x94 [MQTT-3.3.2-9]", () => {
  assert.deepEqual(
    kinds(connected().handleIn(publish("t", 0, undefined, { properties: { topicAlias: 5 } }), 0)),
    [
      "close:0x94",
    ],
  );
});

Deno.test("SUBSCRIBE: invalid filter refused per version, QoS capped, quota enforced", () => {
  const v5 = connected();
  const [effect] = v5.handleIn({
    type: "subscribe",
    packetId: 1,
    properties: {},
    subscriptions: [
      { topicFilter: "a/#/b", qos: 1, noLocal: false, retainAsPublished: false, retainHandling: 0 },
      { topicFilter: "ok/+", qos: 2, noLocal: false, retainAsPublished: false, retainHandling: 0 },
      { topicFilter: "$share/g/x", qos: 1, noLocal: false, retainAsPublished: false, retainHandling: 0 },
      { topicFilter: "c", qos: 0, noLocal: false, retainAsPublished: false, retainHandling: 0 },
      { topicFilter: "d", qos: 0, noLocal: false, retainAsPublished: false, retainHandling: 0 },
    ],
  }, 0);
  assert.ok(effect.kind === "subscribe");
  assert.deepEqual(effect.suback.reasonCodes, [0x8f, 2, 1, 0, 0x97]);
  const v4 = connected(4);
  const [effect4] = v4.handleIn({
    type: "subscribe",
    packetId: 1,
    properties: {},
    subscriptions: [{
      topicFilter: "a/b#",
      qos: 1,
      noLocal: false,
      retainAsPublished: false,
      retainHandling: 0,
    }],
  }, 0);
  assert.ok(effect4.kind === "subscribe");
  assert.deepEqual(effect4.suback.reasonCodes, [0x80]); // [MQTT-3.9.3-2]
});

Deno.test("No Local on a shared subscription is a protocol error [MQTT-3.8.3-4]", () => {
  const effects = connected().handleIn({
    type: "subscribe",
    packetId: 1,
    properties: {},
    subscriptions: [{
      topicFilter: "$share/g/x",
      qos: 1,
      noLocal: true,
      retainAsPublished: false,
      retainHandling: 0,
    }],
  }, 0);
  assert.deepEqual(kinds(effects), ["close:0x82"]);
});

Deno.test("UNSUBSCRIBE answers 0x11 for a filter that had no subscription (v5) and nothing at 3.1.1", () => {
  const v5 = connected();
  const [effect] = v5.handleIn(
    { type: "unsubscribe", packetId: 4, topicFilters: ["nope"], properties: {} },
    0,
  );
  assert.ok(effect.kind === "unsubscribe" && effect.unsuback.reasonCodes[0] === 0x11);
  const [effect4] = connected(4).handleIn({
    type: "unsubscribe",
    packetId: 4,
    topicFilters: ["x"],
    properties: {},
  }, 0);
  assert.ok(effect4.kind === "unsubscribe" && effect4.unsuback.reasonCodes.length === 0);
});

Deno.test("DISCONNECT: normal discards the will, 0x04 keeps it; expiry set after 0 is a protocol error [MQTT-3.14.2-2]", () => {
  const [normal] = connected().handleIn({ type: "disconnect", reasonCode: 0, properties: {} }, 0);
  assert.ok(normal.kind === "close" && !normal.publishWill && !normal.notify);
  const [withWill] = connected().handleIn({ type: "disconnect", reasonCode: 4, properties: {} }, 0);
  assert.ok(withWill.kind === "close" && withWill.publishWill);
  const effects = connected().handleIn({
    type: "disconnect",
    reasonCode: 0,
    properties: { sessionExpiryInterval: 30 },
  }, 0);
  assert.deepEqual(kinds(effects), ["close:0x82"]);
});

Deno.test("PUBLISH above the maximum QoS is refused with 0x9B [MQTT-3.2.2-11]", () => {
  const session = new Session("c", sharedState({ ...limits, maxQos: 1 }));
  session.attach(attachment(5), 0);
  assert.deepEqual(kinds(session.handleIn(publish("t", 2, 1), 0)), ["close:0x9b"]);
});

Deno.test("a message larger than the client's Maximum Packet Size is dropped for that client [MQTT-3.1.2-25]", () => {
  const session = connected(5, { maximumPacketSize: 20 });
  const big = message("t", 1, { payload: new Uint8Array(100) });
  assert.equal(session.deliver({ message: big, grantedQos: 1, retain: false }, true, 0).length, 0);
  assert.equal(session.outbound.drops.tooLarge, 1);
  assert.equal(session.outbound.inflight.size, 0);
});

Deno.test("a paged-out session hands a delivery to storage as it came, without a copy of its payload", () => {
  const session = new Session("c1", sharedState(limits));
  session.persistent = true;
  session.outbound.pageOut();
  // A payload that is a view of a larger received block, as the decoder's are.
  const block = new Uint8Array(4096);
  const payload = block.subarray(100, 1124);
  session.deliver({ message: message("t", 1, { payload }), grantedQos: 1, retain: false }, false, 0);
  const records = takenRecords(session);
  assert.equal(records.length, 1);
  const [record] = records;
  assert.ok(record.kind === "saveDelivery" && record.stage === "queued");
  assert.equal(record.delivery.message.payload, payload, "the payload is not copied for storage");
  assert.equal(session.outbound.queueLength, 0, "nothing is kept in memory");
});

Deno.test("a delivery read back from storage gives its payload's memory back once acknowledged; a shared one is kept", () => {
  const session = connected(5);
  const stored = message("read-back", 1, { payload: new Uint8Array(1024).fill(7) });
  const shared = message("live", 1, { payload: new Uint8Array(1024).fill(9) });
  const storedQos2 = message("read-back-2", 2, { payload: new Uint8Array(512).fill(3) });
  session.deliver({ message: stored, grantedQos: 1, retain: false, ownsPayload: true }, true, 0);
  session.deliver({ message: shared, grantedQos: 1, retain: false }, true, 0);
  assert.equal(stored.payload.byteLength, 1024, "kept while in flight: a takeover re-sends it");

  session.handleIn({ type: "puback", packetId: 1, reasonCode: 0, properties: {} }, 0);
  session.handleIn({ type: "puback", packetId: 2, reasonCode: 0, properties: {} }, 0);
  assert.equal(stored.payload.buffer.byteLength, 0, "freed at PUBACK");
  assert.equal(shared.payload.byteLength, 1024, "a message other sessions may hold is left alone");
  assert.ok(shared.payload.every((byte) => byte === 9));

  session.deliver({ message: storedQos2, grantedQos: 2, retain: false, ownsPayload: true }, true, 0);
  session.handleIn({ type: "pubrec", packetId: 3, reasonCode: 0, properties: {} }, 0);
  assert.equal(storedQos2.payload.byteLength, 512, "QoS 2: kept until PUBCOMP");
  session.handleIn({ type: "pubcomp", packetId: 3, reasonCode: 0, properties: {} }, 0);
  assert.equal(storedQos2.payload.buffer.byteLength, 0, "freed at PUBCOMP");
});

/**
 * The messages `session` makes of `frames`, sent in one read and decoded at `version`, by a decoder that
 * reuses its packets (as a connection's does) or one that does not.
 */
function decodedMessages(
  session: Session,
  frames: Uint8Array[],
  version: 4 | 5,
  reusePackets = true,
): Message[] {
  const decoder = new Decoder({ maxPacketSize: 1 << 16, protocolVersion: version, reusePackets });
  const read = new Uint8Array(frames.reduce((total, frame) => total + frame.length, 0));
  let at = 0;
  for (const frame of frames) {
    read.set(frame, at);
    at += frame.length;
  }
  decoder.push(read);
  return frames.map(() => {
    const [routed] = session.handleIn(decoder.next() as PublishPacket, 0);
    assert.ok(routed.kind === "publish");
    return routed.message;
  });
}

Deno.test("a decoded PUBLISH's message keeps its frame as an offset into a view of the whole slab, no view of its own", () => {
  for (const [version, reusePackets] of [[4, true], [5, true], [4, false], [5, false]] as const) {
    const frames = [encode(publish("a/b", 1, 7), version), encode(publish("c/d", 1, 8), version)];
    const messages = decodedMessages(connected(version), frames, version, reusePackets);
    messages.forEach((message, i) => {
      const bytes = message.frameBytes!;
      assert.equal(bytes.byteOffset, 0, "a view of the whole buffer");
      assert.equal(bytes.length, message.payload.buffer.byteLength);
      assert.equal(message.frameLevel, version);
      const start = message.frameStart!;
      assert.deepEqual(bytes.subarray(start, start + publishFrameLength(bytes, start)), frames[i]);
    });
    assert.equal(messages[0].frameBytes, messages[1].frameBytes, "frames of one read share the view");
  }
});

Deno.test("a decoded PUBLISH's message reads its payload from its frame, before and after shareFrame", () => {
  for (const reusePackets of [true, false]) {
    const payload = new Uint8Array(300).map((_, i) => i);
    const frames = [
      encode(publish("a/b", 1, 7), 5),
      encode({ ...publish("c/d", 1, 8), payload, properties: { contentType: "x" } }, 5),
    ];
    const message = decodedMessages(connected(5), frames, 5, reusePackets)[1];
    assert.ok(message instanceof FramedMessage);
    assert.deepEqual(message.payload, payload);
    assert.equal(payloadSize(message), 300);
    shareFrame(message);
    assert.deepEqual(message.payload, payload);
    assert.equal(payloadSize(message), 300);
    const copy = withoutFrame(message, message.payload.slice());
    assert.deepEqual(copy, {
      topic: "c/d",
      payload,
      qos: 1,
      retain: false,
      properties: { contentType: "x" },
      publisherId: "c1",
      expiresAt: undefined,
    });
  }
});

Deno.test("a PUBLISH whose topic came by alias makes a plain message with no frame to forward (its topic is not the frame's)", () => {
  const session = connected(5);
  const frame = encode({ ...publish("a/b", 1, 7), properties: { topicAlias: 1 } }, 5);
  const [message] = decodedMessages(session, [frame], 5);
  assert.ok(!(message instanceof FramedMessage));
  assert.equal(message.frameBytes, undefined);
  assert.deepEqual([message.topic, message.properties], ["a/b", {}]);
  assert.deepEqual(message.payload, publish("a/b", 1, 7).payload);
});

Deno.test("copyPayload copies a message's payload from its frame (short and long) or from its payload", () => {
  for (const size of [0, 5, 64, 256, 257, 1000]) {
    const payload = new Uint8Array(size).map((_, i) => 7 + i);
    const frames = [encode(publish("a/b", 1, 7), 5), encode({ ...publish("c/d", 1, 8), payload }, 5)];
    const framed = decodedMessages(connected(5), frames, 5)[1];
    assert.ok(framed instanceof FramedMessage);
    for (const message of [framed, withoutFrame(framed, payload.slice())]) {
      const target = new Uint8Array(size + 20).fill(0xee);
      copyPayload(message, payloadSize(message), new DataView(target.buffer, 4), 3);
      assert.deepEqual(target.subarray(7, 7 + size), payload, `${size} bytes`);
      assert.ok(target.subarray(0, 7).every((byte) => byte === 0xee), "nothing written before");
      assert.ok(target.subarray(7 + size).every((byte) => byte === 0xee), "nothing written after");
    }
  }
});

Deno.test("shareFrame gives a message a view of its own frame once, with the same bytes", () => {
  const frames = [encode(publish("a/b", 1, 7), 5), encode(publish("c/d", 1, 8), 5)];
  const message = decodedMessages(connected(5), frames, 5)[1];
  const shared = message.frameBytes!;
  const start = message.frameStart!;
  assert.ok(start > 0);
  shareFrame(message);
  assert.equal(message.frameStart, 0);
  assert.deepEqual(message.frameBytes, frames[1]);
  assert.equal(message.frameBytes!.buffer, shared.buffer, "a view of the same bytes, not a copy");
  assert.equal(message.frameBytes!.byteOffset, start);
  const own = message.frameBytes;
  shareFrame(message);
  assert.equal(message.frameBytes, own, "made once");
});

for (const recordsDeliveries of [true, false]) {
  Deno.test(`a persistent session ${recordsDeliveries ? "records every" : "keeping its own queue records no"} delivery change, and records its inbound QoS 2 ids either way`, () => {
    const session = new Session("c1", sharedState(limits, recordsDeliveries));
    session.persistent = true;
    session.attach(attachment(5), 0);
    // One sent and acknowledged, one queued while the client is away.
    const [sent] = session.deliver({ message: message("a", 1), grantedQos: 1, retain: false }, true, 0);
    assert.ok(sent.kind === "deliver");
    session.handleIn({ type: "puback", packetId: sent.packetId!, reasonCode: 0, properties: {} }, 0);
    session.handleIn(publish("in", 2, 9), 0);
    session.detach();
    session.deliver({ message: message("b", 1), grantedQos: 1, retain: false }, false, 0);

    const records = takenRecords(session).map((record) => record.kind);
    assert.deepEqual(
      records,
      recordsDeliveries
        ? ["saveDelivery", "deleteDelivery", "awaitingRelease", "saveDelivery"]
        : ["awaitingRelease"],
    );
    assert.equal(session.queueLength, 1, "the queued message is kept by the session either way");
  });
}
