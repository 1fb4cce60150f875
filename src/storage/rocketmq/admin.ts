/**
 * Admin requests over RocketMQ's remoting protocol, for what the gRPC client cannot do: create topics,
 * make a consumer group orderly (FIFO consumption needs `consumeMessageOrderly=true` on the group), and
 * start a new group at the tail of a topic. The name server tells which brokers to ask. Names here are
 * the broker's own (already wrapped with a namespace, if any).
 */
import { parseRocketMqJson, RemotingConnection, type RemotingResponse } from "./remoting.ts";

const RequestCode = {
  QUERY_CONSUMER_OFFSET: 14,
  UPDATE_CONSUMER_OFFSET: 15,
  UPDATE_AND_CREATE_TOPIC: 17,
  GET_MAX_OFFSET: 30,
  GET_ROUTEINFO_BY_TOPIC: 105,
  GET_BROKER_CLUSTER_INFO: 106,
  UPDATE_AND_CREATE_SUBSCRIPTIONGROUP: 200,
} as const;
const SUCCESS = 0;
const TOPIC_NOT_EXIST = 17;
const QUERY_NOT_FOUND = 22;
/** `brokerAddrs` key of a broker's master. */
const MASTER_ID = "0";

export type TopicMessageType = "FIFO" | "NORMAL" | "DELAY" | "TRANSACTION" | "LITE";

export interface TopicSpec {
  name: string;
  messageType: TopicMessageType;
  /** Read and write queues per broker. */
  queues: number;
}

/** Where a topic lives, as the name server routes it. */
export interface TopicRoute {
  /** Master address of each broker that serves the topic. */
  masters: string[];
  /** Writable queues over all brokers. */
  writeQueues: number;
}

interface BrokerData {
  brokerName: string;
  brokerAddrs: Record<string, string>;
}

/** Runs `body` on one connection to `address`, closing it afterwards. */
async function withConnection<T>(
  address: string,
  timeoutMs: number,
  body: (conn: RemotingConnection) => Promise<T>,
): Promise<T> {
  const conn = await RemotingConnection.open(address, timeoutMs);
  try {
    return await body(conn);
  } finally {
    await conn.close();
  }
}

function expectSuccess(response: RemotingResponse, what: string): RemotingResponse {
  if (response.code !== SUCCESS) {
    throw new Error(`RocketMQ refused to ${what}: code ${response.code} ${response.remark}`.trim());
  }
  return response;
}

/** The master address of every broker of `cluster`. */
export function clusterMasters(nameServer: string, cluster: string, timeoutMs: number): Promise<string[]> {
  return withConnection(nameServer, timeoutMs, async (conn) => {
    const response = expectSuccess(
      await conn.request(RequestCode.GET_BROKER_CLUSTER_INFO, {}, undefined, timeoutMs),
      "list the brokers",
    );
    const info = parseRocketMqJson(response.body) as {
      brokerAddrTable?: Record<string, BrokerData & { cluster: string }>;
    };
    return Object.values(info.brokerAddrTable ?? {})
      .filter((broker) => broker.cluster === cluster && broker.brokerAddrs[MASTER_ID] !== undefined)
      .map((broker) => broker.brokerAddrs[MASTER_ID]);
  });
}

/** The route of `topic`, or undefined when the name server does not know it. */
export function topicRoute(
  nameServer: string,
  topic: string,
  timeoutMs: number,
): Promise<TopicRoute | undefined> {
  return withConnection(nameServer, timeoutMs, async (conn) => {
    const response = await conn.request(RequestCode.GET_ROUTEINFO_BY_TOPIC, { topic }, undefined, timeoutMs);
    if (response.code === TOPIC_NOT_EXIST) return undefined;
    expectSuccess(response, `route topic ${topic}`);
    const route = parseRocketMqJson(response.body) as {
      queueDatas?: { writeQueueNums: number; perm: number }[];
      brokerDatas?: BrokerData[];
    };
    const writable = (route.queueDatas ?? []).filter((queue) => (queue.perm & 2) !== 0);
    return {
      masters: (route.brokerDatas ?? []).flatMap((broker) => broker.brokerAddrs[MASTER_ID] ?? []),
      writeQueues: writable.reduce((sum, queue) => sum + queue.writeQueueNums, 0),
    };
  });
}

/** Creates or updates a topic on one broker (idempotent). */
export async function createTopic(broker: string, spec: TopicSpec, timeoutMs: number): Promise<void> {
  await withConnection(broker, timeoutMs, async (conn) => {
    expectSuccess(
      await conn.request(
        RequestCode.UPDATE_AND_CREATE_TOPIC,
        {
          topic: spec.name,
          defaultTopic: "TBW102",
          readQueueNums: String(spec.queues),
          writeQueueNums: String(spec.queues),
          perm: "6", // read and write
          topicFilterType: "SINGLE_TAG",
          topicSysFlag: "0",
          order: "false",
          // The proxy and the client refuse a send whose type differs from the topic's message.type.
          attributes: `+message.type=${spec.messageType}`,
        },
        undefined,
        timeoutMs,
      ),
      `create topic ${spec.name}`,
    );
  });
}

/**
 * Creates or updates `group` on one broker as an orderly group: pop then hands out a queue's messages
 * only in offset order, one batch at a time, and redelivers a batch that was not acknowledged before the
 * next one. `retryMaxTimes` bounds redeliveries before the proxy moves a message to the dead-letter
 * queue; a log reader must never lose an entry, so it is high. Not Integer.MAX_VALUE: the proxy computes
 * maxAttempts = retryMaxTimes + 1, which then overflows, and every message went straight to the DLQ.
 * A million redeliveries (each one a crash or stop mid-batch) is never reached.
 */
export async function createOrderlyGroup(broker: string, group: string, timeoutMs: number): Promise<void> {
  const config = {
    groupName: group,
    consumeEnable: true,
    consumeFromMinEnable: false,
    consumeBroadcastEnable: false,
    consumeMessageOrderly: true,
    retryQueueNums: 1,
    retryMaxTimes: 1_000_000,
    brokerId: 0,
    whichBrokerWhenConsumeSlowly: 1,
    notifyConsumerIdsChangedEnable: true,
    groupSysFlag: 0,
    consumeTimeoutMinute: 15,
  };
  await withConnection(broker, timeoutMs, async (conn) => {
    expectSuccess(
      await conn.request(
        RequestCode.UPDATE_AND_CREATE_SUBSCRIPTIONGROUP,
        {},
        new TextEncoder().encode(JSON.stringify(config)),
        timeoutMs,
      ),
      `create consumer group ${group}`,
    );
  });
}

/**
 * Puts a group that has no offset on `topic` yet at the topic's tail on every queue of `broker`, so it
 * reads only what is appended from now on. (Left alone, a new pop group is handed the last existing
 * message of each queue: the broker starts it at max offset - 1.) Returns whether the group was new.
 */
export async function startGroupAtTail(
  broker: string,
  group: string,
  topic: string,
  queues: number,
  timeoutMs: number,
): Promise<boolean> {
  return await withConnection(broker, timeoutMs, async (conn) => {
    let created = false;
    for (let queueId = 0; queueId < queues; queueId++) {
      const queue = { consumerGroup: group, topic, queueId: String(queueId) };
      const current = await conn.request(
        RequestCode.QUERY_CONSUMER_OFFSET,
        { ...queue, setZeroIfNotFound: "false" },
        undefined,
        timeoutMs,
      );
      if (current.code === SUCCESS) continue;
      if (current.code !== QUERY_NOT_FOUND) expectSuccess(current, `read the offset of group ${group}`);
      const max = expectSuccess(
        await conn.request(
          RequestCode.GET_MAX_OFFSET,
          { topic, queueId: String(queueId) },
          undefined,
          timeoutMs,
        ),
        `read the max offset of topic ${topic}`,
      );
      expectSuccess(
        await conn.request(
          RequestCode.UPDATE_CONSUMER_OFFSET,
          { ...queue, commitOffset: max.extFields.offset ?? "0" },
          undefined,
          timeoutMs,
        ),
        `set the offset of group ${group}`,
      );
      created = true;
    }
    return created;
  });
}

/**
 * Readies `group` to read `topic` as a cluster log: checks that the topic has exactly one writable queue
 * (one queue is what makes the log totally ordered), makes the group orderly on that queue's broker and,
 * when the group is new, starts it at the tail. Returns whether the group was new.
 */
export async function prepareOrderlyReader(
  nameServer: string,
  topic: string,
  group: string,
  timeoutMs: number,
): Promise<boolean> {
  const route = await topicRoute(nameServer, topic, timeoutMs);
  if (!route) throw new Error(`topic ${topic} does not exist (scripts/rocketmq.sh start creates it)`);
  if (route.writeQueues !== 1 || route.masters.length !== 1) {
    throw new Error(
      `topic ${topic} has ${route.writeQueues} writable queues on ${route.masters.length} brokers; ` +
        "a cluster log needs exactly one queue to be totally ordered",
    );
  }
  const [broker] = route.masters;
  await createOrderlyGroup(broker, group, timeoutMs);
  return await startGroupAtTail(broker, group, topic, 1, timeoutMs);
}
