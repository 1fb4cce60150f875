/**
 * Cost of the ACL check at delivery on the QoS 0 fan-out path, in process (no sockets, so the machine's
 * network noise stays out): one PUBLISH to 100 subscribers of `bench/#`, links that only count effects.
 *
 *   deno bench --allow-read --allow-write --allow-env tests/security/delivery_bench.ts
 *
 * Groups: no ACL (nothing to check), an ACL whose rules deny no reading (skipped per client), an ACL with a
 * read deny (a cached decision per client and topic), and the same with 1000 distinct topics (decisions
 * evicted, so the rules are scanned).
 */
import { createAuthorizer } from "../../src/auth/mod.ts";
import { Broker } from "../../src/broker/mod.ts";
import type { Attachment, Message, Permissions, SessionLimits } from "../../src/session/mod.ts";
import { createMemoryStorage } from "../../src/storage/memory/mod.ts";

const SUBSCRIBERS = 100;

const limits: SessionLimits = {
  maxInflight: 100,
  receiveMaximum: 100,
  maxQueuedMessages: 1000,
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

async function aclPermissions(aclText: string | undefined) {
  if (aclText === undefined) return () => undefined;
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(`${dir}/acl`, aclText);
  const authorizer = await createAuthorizer({ aclFile: `${dir}/acl`, defaultPolicy: "allow" });
  await Deno.remove(dir, { recursive: true });
  return (clientId: string): Permissions => {
    const identity = { clientId, username: `user-${clientId}` };
    return {
      canPublish: (topic) => authorizer.canPublish(identity, topic),
      canSubscribe: (filter) => authorizer.canSubscribe(identity, filter),
      canReceive: authorizer.receiverFor?.(identity) ?? ((topic) => authorizer.canReceive(identity, topic)),
    };
  };
}

async function fanOut(aclText: string | undefined) {
  const storage = createMemoryStorage();
  await storage.start();
  const broker = new Broker({
    limits,
    maxSessionExpiry: 0,
    sharedSubscriptionStrategy: "round_robin",
    storage,
  });
  const permissionsFor = await aclPermissions(aclText);
  let delivered = 0;
  for (let index = 0; index < SUBSCRIBERS; index++) {
    const clientId = `sub-${index}`;
    const attachment: Attachment = {
      protocolVersion: 4,
      receiveMaximum: 65535,
      topicAliasMaximum: 0,
      sessionExpiryInterval: 0,
      requestProblemInformation: true,
      permissions: permissionsFor(clientId),
    };
    const link = {
      writable: true,
      run: (effects: unknown[]) => void (delivered += effects.length),
      push: () => void delivered++,
      deliver: () => void delivered++,
      takeOver() {},
      whenDrained() {},
    };
    const handle = await broker.open({
      clientId,
      cleanStart: true,
      sessionExpiryInterval: 0,
      attachment,
      link,
    });
    const subscriptions = [{
      topicFilter: "bench/#",
      qos: 0 as const,
      noLocal: false,
      retainAsPublished: false,
      retainHandling: 0 as const,
    }];
    broker.receive(handle, { type: "subscribe", packetId: 1, subscriptions, properties: {} });
  }
  const messages: Message[] = Array.from({ length: 1000 }, (_, index) => ({
    topic: `bench/${index}/x`,
    payload: new Uint8Array(64),
    qos: 0,
    retain: false,
    properties: {},
    publisherId: "pub",
  }));
  return { broker, messages, delivered: () => delivered };
}

const READ_DENY = "allow readwrite #\ndeny subscribe secret/#\n";
const cases = [
  ["no ACL", await fanOut(undefined), 1],
  ["ACL without read denies (check skipped)", await fanOut("allow readwrite #\ndeny publish secret/#\n"), 1],
  ["ACL with a read deny, one topic", await fanOut(READ_DENY), 1],
  ["ACL with a read deny, 1000 topics", await fanOut(READ_DENY), 1000],
] as const;

for (const [name, { broker, messages }, topics] of cases) {
  let next = 0;
  Deno.bench(`QoS 0 fan-out 1→${SUBSCRIBERS}: ${name}`, { group: "fan-out" }, () => {
    broker.publish(messages[next++ % topics]);
  });
}
