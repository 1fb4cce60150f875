/**
 * What an offline persistent session costs besides its record (issue 11): its expiry is a place in the
 * registry's expiry queue, not a timer of its own, and it still expires on time.
 */
import assert from "node:assert/strict";
import { Broker } from "../../src/broker/mod.ts";
import type { Attachment } from "../../src/session/mod.ts";
import { createMemoryStorage } from "../../src/storage/memory/mod.ts";
import { FakeClock } from "../helpers/clock.ts";
import { limits } from "../helpers/session_limits.ts";

const attachment: Attachment = {
  protocolVersion: 5,
  receiveMaximum: 65535,
  topicAliasMaximum: 0,
  sessionExpiryInterval: 0,
  requestProblemInformation: true,
};

const link = { writable: true, run() {}, push() {}, deliver() {}, takeOver() {}, whenDrained() {} };

Deno.test("offline sessions: one timer for all their expiries; each expires at its own time, soonest first", async () => {
  const clock = new FakeClock();
  const start = clock.now();
  const storage = createMemoryStorage();
  await storage.start();
  const broker = new Broker({
    limits,
    maxSessionExpiry: 0xffffffff,
    sharedSubscriptionStrategy: "round_robin",
    storage,
    clock,
  });
  // Expiry intervals in seconds, not in the order they end; "forever" never expires.
  const expiries: [string, number][] = [["c", 30], ["a", 10], ["forever", 0xffffffff], ["b", 20], ["d", 40]];
  for (const [clientId, sessionExpiryInterval] of expiries) {
    const handle = await broker.open({ clientId, cleanStart: true, sessionExpiryInterval, attachment, link });
    broker.receive(handle, {
      type: "subscribe",
      packetId: 1,
      subscriptions: [{
        topicFilter: `q/${clientId}`,
        qos: 1,
        noLocal: false,
        retainAsPublished: false,
        retainHandling: 0,
      }],
      properties: {},
    });
    broker.close(handle, false);
    clock.advance(1000); // each leaves a second after the one before
  }
  assert.equal(clock.pending, 1, "one timer for the expiries of five offline sessions");
  // "d" reconnects and leaves again: its expiry counts from its new disconnect.
  const d = await broker.open({
    clientId: "d",
    cleanStart: false,
    sessionExpiryInterval: 40,
    attachment,
    link,
  });
  assert.equal(d.sessionPresent, true);
  broker.close(d, false);
  assert.equal(clock.pending, 1);

  const held = () => ["a", "b", "c", "d", "forever"].filter((id) => broker.session(id) !== undefined);
  // Now t = 5 s. Left at 0 s (c), 1 s (a), 3 s (b), 5 s (d, again): due at 11, 23, 30 and 45 s.
  const steps: [number, string[]][] = [
    [5_999, ["a", "b", "c", "d", "forever"]],
    [1, ["b", "c", "d", "forever"]],
    [11_999, ["b", "c", "d", "forever"]],
    [1, ["c", "d", "forever"]],
    [6_999, ["c", "d", "forever"]],
    [1, ["d", "forever"]],
    [14_999, ["d", "forever"]], // 44.999 s: not at 4 + 40 s, its first disconnect
    [1, ["forever"]],
  ];
  for (const [ms, expected] of steps) {
    clock.advance(ms);
    assert.deepEqual(held(), expected, `at ${clock.now() - start} ms`);
  }
  assert.equal(clock.pending, 0, "no timer left once no offline session expires");
  assert.equal(broker.subscriptionCount, 1);
  broker.stop();
});
