/**
 * The router gives one delivery to every transient session a message reaches the same way, and sessions
 * keep it as it is: sharing must not show. Two identical sets of sessions are driven through the same
 * random steps (routed messages, acknowledgements, disconnects and resumes, sessions made persistent); one
 * set is routed as the broker routes, the other gets a private copy of every delivery. Both must say and
 * keep exactly the same, and a persistent session's stored refs (as the broker's persistence writes them)
 * must never be seen by another session. Every delivery is also checked against what the session's own
 * plain subscriptions call for (docs/architecture.md, "Overlapping subscriptions").
 */
import assert from "node:assert/strict";
import type { Packet, QoS } from "../../src/codec/mod.ts";
import { Router } from "../../src/broker/router.ts";
import { sharedState } from "../../src/session/outbound.ts";
import {
  type Delivery,
  type Effect,
  type Message,
  Session,
  type SessionLimits,
  type SessionSubscription,
} from "../../src/session/mod.ts";
import { isSharedFilter, parseSharedFilter, topicMatches } from "../../src/topic/mod.ts";
import { Random } from "../codec/support/random.ts";
import {
  attachmentV5 as attachment,
  limits as baseLimits,
  type SessionRecord,
  takenRecords,
} from "../helpers/session_limits.ts";

/** Small windows and queues, so that the random steps reach full windows, drops and paging. */
const limits: SessionLimits = {
  ...baseLimits,
  maxInflight: 3,
  receiveMaximum: 3,
  maxQueuedMessages: 6,
  queueQos0Offline: true,
  maxTopicAlias: 0,
  maxSubscriptionsPerClient: 8,
  maxTopicLevels: 8,
};

const CLIENTS = 6;
const FILTERS = ["t/a", "t/+", "#", "u/#", "t/b"];
const TOPICS = ["t/a", "t/b", "u/x"];

/** One set of sessions and its router; `copy` gives each session a private copy of its delivery. */
class Side {
  readonly router = new Router("round_robin", () => 0);
  readonly sessions: Session[] = [];
  readonly targets: { session: Session }[] = [];
  readonly shared = sharedState(limits);

  constructor(readonly name: string, readonly copy: boolean, readonly refs: Map<number, string>) {
    for (let i = 0; i < CLIENTS; i++) this.sessions.push(new Session(`c${i}`, this.shared));
    for (const session of this.sessions) this.targets.push({ session });
  }

  route(
    message: Message,
    writable: boolean[],
    now: number,
    subscriptions: SessionSubscription[][],
  ): string[][] {
    const seen: string[][] = this.sessions.map(() => []);
    this.router.route(message, ({ session }, delivery) => {
      assertCalledFor(delivery, message, session.clientId, subscriptions[this.sessions.indexOf(session)]);
      const own: Delivery = this.copy
        ? { ...delivery, subscriptionIdentifiers: delivery.subscriptionIdentifiers?.slice() }
        : delivery;
      const index = this.sessions.indexOf(session);
      const out: Effect[] = session.deliver(own, writable[index], now);
      seen[index] = described(out);
    });
    return seen;
  }

  /** What the broker's persistence does with a session's records: writes a ref of its own into each delivery. */
  store(session: Session): string[] {
    return takenRecords(session).map((record) => this.#stored(session.clientId, record));
  }

  #stored(clientId: string, record: SessionRecord): string {
    if (
      record.kind !== "saveDelivery" && record.kind !== "deleteDelivery" && record.kind !== "requeueDelivery"
    ) {
      return JSON.stringify(record);
    }
    const delivery = record.delivery;
    if (delivery.storedRef === undefined) {
      delivery.storedRef = this.refs.size + 1;
      this.refs.set(delivery.storedRef, `${this.name}:${clientId}`);
    }
    assert.equal(
      this.refs.get(delivery.storedRef),
      `${this.name}:${clientId}`,
      "a delivery another session stored",
    );
    const { kind } = record;
    return `${kind} ${deliveryText(delivery)} ${"qos" in record ? record.qos : ""} ${
      "stage" in record ? record.stage : ""
    } ${"packetId" in record ? record.packetId : ""}`;
  }
}

/**
 * What a session's plain subscriptions call for: the highest QoS, RETAIN if any has Retain As Published,
 * every Subscription Identifier, No Local applied. Not checked where a shared subscription matches too (its
 * group picks one member, which may add its options).
 */
function assertCalledFor(
  delivery: Delivery,
  message: Message,
  clientId: string,
  subscriptions: SessionSubscription[],
): void {
  const innerFilter = (filter: string) =>
    parseSharedFilter(filter, Number.MAX_SAFE_INTEGER)?.filter ?? filter;
  const matching = subscriptions.filter((subscription) =>
    topicMatches(innerFilter(subscription.topicFilter), message.topic)
  );
  if (matching.some((subscription) => isSharedFilter(subscription.topicFilter))) return;
  const plain = matching.filter((subscription) =>
    !(subscription.noLocal && clientId === message.publisherId)
  );
  assert.ok(plain.length > 0, `${clientId} reached through no subscription`);
  assert.equal(delivery.message, message);
  assert.equal(delivery.grantedQos, Math.max(...plain.map((subscription) => subscription.qos)));
  assert.equal(
    delivery.retain,
    message.retain && plain.some((subscription) => subscription.retainAsPublished),
  );
  const ids = plain.flatMap((subscription) => subscription.subscriptionIdentifier ?? []).sort();
  assert.deepEqual([...delivery.subscriptionIdentifiers ?? []].sort(), ids, `${clientId}'s subscription ids`);
}

function deliveryText(delivery: Delivery): string {
  const { message } = delivery;
  return `${message.topic}/${message.payload.join(".")}/q${delivery.grantedQos}/r${delivery.retain}/ids${
    delivery.subscriptionIdentifiers?.join(",") ?? "-"
  }`;
}

function described(effects: readonly Effect[]): string[] {
  return effects.map((effect) => {
    if (effect.kind !== "deliver") return JSON.stringify(effect);
    const { message, qos, packetId, dup, retain, properties, topic } = effect;
    return `deliver ${topic}|${message.payload.join(".")}|q${qos}|id${packetId}|dup${dup}|r${retain}|${
      JSON.stringify(properties)
    }`;
  });
}

function stateOf(session: Session): string {
  const { inflight, queue, nextPacketId } = session.outbound.toRecord();
  return JSON.stringify({
    inflight: inflight.map(({ packetId, delivery, qos, stage }) =>
      `${packetId} ${deliveryText(delivery)} ${qos} ${stage}`
    ),
    queue: queue.map(({ delivery, qos }) => `${deliveryText(delivery)} ${qos}`),
    nextPacketId,
  });
}

function randomSubscription(random: Random): SessionSubscription {
  const filter = random.pick(FILTERS);
  const subscription: SessionSubscription = {
    topicFilter: filter,
    qos: random.int(0, 2) as QoS,
    noLocal: random.bool(0.2),
    retainAsPublished: random.bool(),
    retainHandling: 0,
  };
  if (random.bool(0.3)) subscription.subscriptionIdentifier = random.int(1, 9);
  if (random.bool(0.15)) subscription.topicFilter = `$share/g/${filter}`;
  return subscription;
}

Deno.test("router: sessions sharing a delivery behave as with a copy each, stored refs stay their own", () => {
  for (let seed = 1; seed <= 30; seed++) {
    const random = new Random(seed);
    const refs = new Map<number, string>();
    const sides = [new Side("shared", false, refs), new Side("copied", true, refs)];
    const subscriptionsOf: SessionSubscription[][] = [];
    for (let i = 0; i < CLIENTS; i++) {
      const subscriptions = new Map<string, SessionSubscription>();
      for (let n = random.int(1, 3); n > 0; n--) {
        const subscription = randomSubscription(random);
        subscriptions.set(subscription.topicFilter, subscription);
      }
      subscriptionsOf.push([...subscriptions.values()]);
      if (random.bool(0.3)) { for (const side of sides) side.sessions[i].persistent = true; }
      for (const subscription of subscriptions.values()) {
        for (const side of sides) side.router.add(side.targets[i], subscription);
      }
      for (const side of sides) side.sessions[i].attach(attachment, 0);
    }
    const attached: boolean[] = new Array(CLIENTS).fill(true);
    for (let step = 0; step < 600; step++) {
      const now = step * 10;
      const where = `seed ${seed}, step ${step}`;
      const roll = random.int(0, 99);
      const said: string[][][] = [];
      if (roll < 45) {
        // A message from the decoder: its payload a view of a bigger block, so a client away gets a copy.
        const block = random.bytes(8);
        const message: Message = {
          topic: random.pick(TOPICS),
          payload: block.subarray(0, random.int(1, 4)),
          qos: random.int(0, 2) as QoS,
          retain: random.bool(0.3),
          properties: {},
          publisherId: `c${random.int(0, CLIENTS + 2)}`,
        };
        if (random.bool(0.2)) message.expiresAt = now + random.int(1, 200);
        const writable = Array.from({ length: CLIENTS }, (_, i) => attached[i] && random.bool(0.9));
        for (const side of sides) said.push(side.route(message, writable, now, subscriptionsOf));
      } else {
        const i = random.int(0, CLIENTS - 1);
        for (let s = 0; s < sides.length; s++) said.push([]);
        const ids = [...sides[0].sessions[i].outbound.inflight.keys()];
        if (roll < 85 && attached[i] && ids.length > 0) {
          const packetId = roll < 75 ? ids[0] : random.pick(ids);
          const type = random.pick(["puback", "pubrec", "pubcomp"] as const);
          const packet: Packet = { type, packetId, reasonCode: 0, properties: {} };
          for (let s = 0; s < sides.length; s++) {
            said[s][i] = described(sides[s].sessions[i].handleIn(packet, now) as Effect[]);
          }
        } else if (roll < 93) {
          attached[i] = !attached[i];
          for (let s = 0; s < sides.length; s++) {
            const session = sides[s].sessions[i];
            if (attached[i]) said[s][i] = described(session.attach(attachment, now));
            else session.detach();
          }
        } else {
          for (const side of sides) side.sessions[i].persistent = true;
        }
      }
      for (let i = 0; i < CLIENTS; i++) {
        const [shared, copied] = sides.map((side, s) => ({
          said: said[s][i] ?? [],
          stored: side.store(side.sessions[i]),
          state: stateOf(side.sessions[i]),
        }));
        assert.deepEqual(shared, copied, `${where}, client ${i}`);
      }
    }
  }
});
