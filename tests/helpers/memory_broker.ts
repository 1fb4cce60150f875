/** A broker in the test's own process: memory storage, a fake clock, no config file, no sockets. */
import { Broker } from "../../src/broker/mod.ts";
import type { SubscribePacket } from "../../src/codec/mod.ts";
import type { SessionLimits } from "../../src/session/mod.ts";
import type { StorageAdapter } from "../../src/storage/mod.ts";
import { createMemoryStorage } from "../../src/storage/memory/mod.ts";
import { FakeClock } from "./clock.ts";
import { limits as defaultLimits } from "./session_limits.ts";

export async function memoryBroker(
  limits: SessionLimits = defaultLimits,
  clock = new FakeClock(),
): Promise<{ broker: Broker; clock: FakeClock; storage: StorageAdapter }> {
  const storage = createMemoryStorage();
  await storage.start();
  const broker = new Broker({
    limits,
    maxSessionExpiry: 0xffffffff,
    sharedSubscriptionStrategy: "round_robin",
    storage,
    clock,
  });
  return { broker, clock, storage };
}

/** A SUBSCRIBE (packet id 1) to one filter with no options. */
export function subscribePacket(topicFilter: string, qos: 0 | 1 | 2 = 1): SubscribePacket {
  return {
    type: "subscribe",
    packetId: 1,
    subscriptions: [{ topicFilter, qos, noLocal: false, retainAsPublished: false, retainHandling: 0 }],
    properties: {},
  };
}
