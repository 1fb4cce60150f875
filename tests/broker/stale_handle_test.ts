/**
 * A connection's handle carries the registry entry its claim gave (SessionHandle.entry), so the broker
 * checks a packet's epoch without looking the client id up. A handle must still be refused once it is not
 * the session's holder any more: taken over (same entry, new epoch), replaced by a clean start, ended, or
 * its entry replaced in the registry; and its packets must change nothing.
 */
import assert from "node:assert/strict";
import { Broker, type OpenResult, type SessionHandle } from "../../src/broker/mod.ts";
import { SessionEntry } from "../../src/broker/session_entry.ts";
import type { Packet, PublishPacket } from "../../src/codec/mod.ts";
import { ReasonCode } from "../../src/codec/mod.ts";
import { type Effect, sharedState } from "../../src/session/mod.ts";
import { memoryBroker, subscribePacket } from "../helpers/memory_broker.ts";
import { attachmentV5 as attachment, limits } from "../helpers/session_limits.ts";

/** A connection's side of the broker: what was pushed or delivered to it, and whether it was taken over. */
class FakeLink {
  readonly writable = true;
  readonly topics: string[] = [];
  takenOver = false;
  run(effects: Effect[]): void {
    for (const effect of effects) this.push(effect);
  }
  push(_effect: Effect): void {}
  deliver(message: { topic: string }): void {
    this.topics.push(message.topic);
  }
  takeOver(): void {
    this.takenOver = true;
  }
  whenDrained(): void {}
}

function publish(topic: string, packetId: number): PublishPacket {
  return {
    type: "publish",
    topic,
    payload: new Uint8Array([1]),
    qos: 1,
    retain: false,
    dup: false,
    packetId,
    properties: {},
  };
}

const isStale = (effects: Effect[]) =>
  effects.length === 1 && effects[0].kind === "close" &&
  effects[0].reasonCode === ReasonCode.SessionTakenOver;

async function setUp() {
  const { broker, clock } = await memoryBroker();
  // The subscriber: what a refused handle publishes must not reach it.
  const watcher = new FakeLink();
  const watching = await broker.open({
    clientId: "watcher",
    cleanStart: true,
    sessionExpiryInterval: 0,
    attachment,
    link: watcher,
  });
  broker.receive(watching, subscribePacket("#"));
  const open = (cleanStart: boolean, sessionExpiryInterval: number, link = new FakeLink()) =>
    broker.open({ clientId: "c", cleanStart, sessionExpiryInterval, attachment, link });
  return { clock, broker, watcher, open };
}

/** The handle is refused for every kind of packet, and nothing it sends is routed. */
function assertRefused(broker: Broker, handle: SessionHandle, watcher: FakeLink, where: string): void {
  const before = watcher.topics.length;
  for (
    const packet of [publish(`stale/${where}`, 9), subscribePacket("stale/#"), { type: "pingreq" } as Packet]
  ) {
    const effects = broker.receive(handle, packet);
    assert.ok(isStale(effects), `${where}: ${packet.type} gets ${JSON.stringify(effects)}`);
  }
  assert.equal(watcher.topics.length, before, `${where}: nothing routed`);
}

/** The handle holds its session: its publish reaches the watcher. */
function assertHolds(broker: Broker, handle: SessionHandle, watcher: FakeLink, where: string): void {
  const effects = broker.receive(handle, publish(`live/${where}`, 3));
  assert.ok(!isStale(effects), `${where}: refused`);
  assert.equal(watcher.topics.at(-1), `live/${where}`, `${where}: routed`);
}

Deno.test("stale handle: a takeover that resumes the session (same entry, new epoch) refuses the old handle", async () => {
  const { broker, watcher, open } = await setUp();
  const first = await open(false, 60);
  assert.ok(first.entry, "the claim gives its entry");
  assertHolds(broker, first, watcher, "first");
  const second = await open(false, 60);
  assert.equal(second.sessionPresent, true);
  assert.equal(second.entry, first.entry, "the resumed session keeps its entry");
  assertRefused(broker, first, watcher, "taken over");
  assertHolds(broker, second, watcher, "second");
  // The old handle's close changes nothing either.
  broker.close(first, true);
  assert.equal(broker.owner("c")?.connected, true);
  assertHolds(broker, second, watcher, "second after the old close");
});

Deno.test("stale handle: a clean start, a session ended and one expired refuse the handles before them", async () => {
  const { clock, broker, watcher, open } = await setUp();
  const first = await open(false, 60);
  const second = await open(true, 60); // clean start: the first entry is discarded
  assert.notEqual(second.entry, first.entry);
  assertRefused(broker, first, watcher, "clean start");
  assertHolds(broker, second, watcher, "after clean start");

  broker.close(second, false); // persistent: kept, offline
  assertRefused(broker, second, watcher, "offline");
  clock.advance(61_000); // expired: its entry is discarded
  assert.equal(broker.session("c"), undefined);
  assertRefused(broker, second, watcher, "expired");
  const third = await open(false, 0);
  assert.equal(third.sessionPresent, false);
  assertRefused(broker, second, watcher, "expired, client back");
  assertHolds(broker, third, watcher, "third");

  broker.close(third, false); // expiry 0: ended at once
  assertRefused(broker, third, watcher, "ended");
  const fourth = await open(false, 0);
  assertRefused(broker, third, watcher, "ended, client back");
  assertHolds(broker, fourth, watcher, "fourth");
});

Deno.test("stale handle: an entry replaced in the registry refuses the handles on the one it replaced", async () => {
  const { broker, watcher, open } = await setUp();
  const first = await open(false, 60);
  const replaced = first.entry!;
  // Another entry for the same client id, at the same epoch and attached (as a cluster's snapshot could
  // install): the old entry itself still says epoch and attached, only its leaving the registry marks it.
  const entry = new SessionEntry("c", sharedState(limits), replaced.epoch);
  broker.registry.add(entry);
  broker.registry.attach(entry, attachment, undefined, new FakeLink());
  assert.equal(replaced.epoch, first.epoch);
  assert.equal(replaced.attached, true);
  assertRefused(broker, first, watcher, "replaced entry");
  // A handle without an entry (a cluster's log replay) is checked against the registry's entry.
  const replay: SessionHandle = { session: entry.session, epoch: entry.epoch };
  assertHolds(broker, replay, watcher, "replay handle");
  assertRefused(broker, { session: first.session, epoch: first.epoch - 1 }, watcher, "replay, old epoch");
});

Deno.test("stale handle: a handle with its entry and one without answer alike", async () => {
  const { broker, watcher, open } = await setUp();
  const opened: OpenResult = await open(false, 60);
  const bare: SessionHandle = { session: opened.session, epoch: opened.epoch };
  assertHolds(broker, opened, watcher, "with entry");
  assertHolds(broker, bare, watcher, "without entry");
  await open(false, 60);
  assertRefused(broker, opened, watcher, "with entry, taken over");
  assertRefused(broker, bare, watcher, "without entry, taken over");
});
