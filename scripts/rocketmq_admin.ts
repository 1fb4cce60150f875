/**
 * RocketMQ admin over the remoting protocol, without starting a JVM (one `mqadmin` call costs 4–7 s here).
 * Used by scripts/rocketmq.sh; also useful to an operator:
 *
 *   deno run --allow-net scripts/rocketmq_admin.ts ensure-topics --namesrv 127.0.0.1:9876 \
 *       [--cluster DefaultCluster] [--timeout-ms 60000] mqtt_log:FIFO:1 other:NORMAL:4 ...
 *     waits until the cluster has a broker, creates or updates each topic (name:type:queues) on every
 *     master, and waits until the name server routes each of them.
 *   deno run --allow-net scripts/rocketmq_admin.ts prepare-group --namesrv 127.0.0.1:9876 \
 *       --topic mqtt_log --group mqtt-node-a
 *     makes the group orderly and starts it at the topic's tail if it is new (what RocketMqLog.start does).
 */
import {
  clusterMasters,
  createTopic,
  prepareOrderlyReader,
  type TopicMessageType,
  topicRoute,
  type TopicSpec,
} from "../src/storage/rocketmq/admin.ts";

const MESSAGE_TYPES: readonly TopicMessageType[] = ["FIFO", "NORMAL", "DELAY", "TRANSACTION", "LITE"];
const POLL_MS = 200;

const encoder = new TextEncoder();

function say(text: string): void {
  Deno.stdout.writeSync(encoder.encode(`${text}\n`));
}

function fail(text: string): never {
  Deno.stderr.writeSync(encoder.encode(`rocketmq_admin: ${text}\n`));
  Deno.exit(1);
}

function parseArgs(args: string[]): { flags: Map<string, string>; rest: string[] } {
  const flags = new Map<string, string>();
  const rest: string[] = [];
  for (let i = 0; i < args.length; i++) {
    if (args[i].startsWith("--")) {
      const value = args[i + 1];
      if (value === undefined) fail(`${args[i]} needs a value`);
      flags.set(args[i].slice(2), value);
      i++;
    } else {
      rest.push(args[i]);
    }
  }
  return { flags, rest };
}

function parseTopic(text: string): TopicSpec {
  const [name, type, queues] = text.split(":");
  const messageType = MESSAGE_TYPES.find((known) => known === type);
  const count = Number(queues);
  if (!name || !messageType || !Number.isInteger(count) || count < 1) {
    fail(`topic "${text}" is not name:${MESSAGE_TYPES.join("|")}:queues`);
  }
  return { name, messageType, queues: count };
}

/** Calls `attempt` until it returns a value, or fails after the deadline with the last reason. */
async function poll<T>(what: string, deadline: number, attempt: () => Promise<T | undefined>): Promise<T> {
  let reason = "not yet";
  for (;;) {
    try {
      const value = await attempt();
      if (value !== undefined) return value;
    } catch (error) {
      reason = error instanceof Error ? error.message : String(error);
    }
    if (Date.now() > deadline) fail(`${what}: gave up (${reason})`);
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

async function ensureTopics(flags: Map<string, string>, topics: TopicSpec[]): Promise<void> {
  const nameServer = flags.get("namesrv") ?? "127.0.0.1:9876";
  const cluster = flags.get("cluster") ?? "DefaultCluster";
  const deadline = Date.now() + Number(flags.get("timeout-ms") ?? 60000);
  const requestMs = 5000;
  const masters = await poll(`waiting for a broker of ${cluster} at ${nameServer}`, deadline, async () => {
    const found = await clusterMasters(nameServer, cluster, requestMs);
    return found.length > 0 ? found : undefined;
  });
  for (const topic of topics) {
    for (const broker of masters) await createTopic(broker, topic, requestMs);
    await poll(`waiting for the name server to route ${topic.name}`, deadline, async () => {
      const route = await topicRoute(nameServer, topic.name, requestMs);
      return route && route.writeQueues === topic.queues * masters.length ? route : undefined;
    });
    say(`topic ${topic.name} ${topic.messageType} queues=${topic.queues} on ${masters.join(",")}`);
  }
}

const [command, ...args] = Deno.args;
const { flags, rest } = parseArgs(args);
switch (command) {
  case "ensure-topics":
    if (rest.length === 0) fail("ensure-topics needs at least one name:type:queues");
    await ensureTopics(flags, rest.map(parseTopic));
    break;
  case "prepare-group": {
    const topic = flags.get("topic");
    const group = flags.get("group");
    if (!topic || !group) fail("prepare-group needs --topic and --group");
    const created = await prepareOrderlyReader(flags.get("namesrv") ?? "127.0.0.1:9876", topic, group, 5000);
    say(`group ${group} orderly on ${topic}${created ? ", started at the tail" : ", offset kept"}`);
    break;
  }
  default:
    fail("usage: rocketmq_admin.ts ensure-topics|prepare-group ... (see the header of this file)");
}
