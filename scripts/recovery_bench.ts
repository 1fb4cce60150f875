/**
 * Recovery time for a store holding many messages: fills an embedded store with N queued QoS 1 messages
 * (64 B payloads) for persistent sessions, closes it, then times opening it again and rebuilding the broker.
 *
 *   deno run -A scripts/recovery_bench.ts [N=1000000] [sessions=10]
 */
import { Broker } from "../src/broker/mod.ts";
import type { SessionLimits } from "../src/session/mod.ts";
import { createEmbeddedStorage } from "../src/storage/embedded/mod.ts";

const total = Number(Deno.args[0] ?? 1_000_000);
const sessions = Number(Deno.args[1] ?? 10);
const dir = await Deno.makeTempDir({ prefix: "mqtt-proxy-recovery-" });
const limits: SessionLimits = {
  maxInflight: 32,
  receiveMaximum: 100,
  maxQueuedMessages: 0,
  maxQueuedBytes: 0,
  queueDropPolicy: "drop_oldest",
  queueQos0Offline: false,
  maxTopicAlias: 0,
  maxSubscriptionsPerClient: 0,
  maxTopicLevels: 128,
  maxQos: 2,
  retainAvailable: true,
  wildcardSubscriptionAvailable: true,
  subscriptionIdentifiersAvailable: true,
  sharedSubscriptionAvailable: true,
};
const write = (text: string) => Deno.stdout.writeSync(new TextEncoder().encode(text + "\n"));

try {
  const fill = createEmbeddedStorage({ dir, durability: "batch", batchIntervalMs: 50 });
  await fill.start();
  const started = performance.now();
  for (let s = 0; s < sessions; s++) {
    fill.saveSession({ clientId: `device-${s}`, expiryInterval: 86_400, epoch: 1 });
  }
  const payload = new Uint8Array(64).fill(0x61);
  for (let i = 0; i < total; i++) {
    const messageId = fill.appendMessage({
      topic: `sensors/${i % 100}/value`,
      payload,
      qos: 1,
      retain: false,
      properties: {},
      publisherId: "bench",
    });
    fill.saveQueueEntry({
      clientId: `device-${i % sessions}`,
      messageId,
      qos: 1,
      retain: false,
      stage: "queued",
    });
    if (i % 10_000 === 9_999) await fill.flush();
  }
  await fill.flush();
  await fill.stop();
  let bytes = 0;
  for await (const entry of Deno.readDir(dir)) bytes += (await Deno.stat(`${dir}/${entry.name}`)).size;
  write(
    `filled ${total} messages for ${sessions} sessions in ${
      ((performance.now() - started) / 1000).toFixed(1)
    } s; ${(bytes / 1e6).toFixed(0)} MB on disk`,
  );

  const reopened = createEmbeddedStorage({ dir, durability: "sync", batchIntervalMs: 10 });
  const t0 = performance.now();
  const snapshot = await reopened.start();
  const t1 = performance.now();
  const broker = new Broker({
    limits,
    maxSessionExpiry: 0xffffffff,
    sharedSubscriptionStrategy: "round_robin",
    storage: reopened,
  });
  await broker.restore(snapshot);
  const t2 = performance.now();
  write(
    `recovery of ${snapshot.storedMessages} queued messages: storage start ${
      ((t1 - t0) / 1000).toFixed(2)
    } s, ` +
      `broker restore ${((t2 - t1) / 1000).toFixed(2)} s, total ${((t2 - t0) / 1000).toFixed(2)} s, ` +
      `RSS ${(Deno.memoryUsage().rss / 1e6).toFixed(0)} MB`,
  );
  broker.stop();
  await reopened.stop();
} finally {
  await Deno.remove(dir, { recursive: true });
}
