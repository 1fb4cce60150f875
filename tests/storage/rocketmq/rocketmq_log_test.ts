import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { ClusterLogError, type LogEntry } from "../../../src/storage/cluster_log.ts";
import { runClusterLogConformance } from "../../../src/storage/cluster_log_conformance.ts";
import { consumerGroupFor, prepareOrderlyReader, RocketMqLog } from "../../../src/storage/rocketmq/mod.ts";
import { shutdownClients, startClients } from "../../../src/storage/rocketmq/clients.ts";
import { newWriter, packEntries } from "../../../src/storage/rocketmq/frames.ts";
import { resolveOptions } from "../../../src/storage/rocketmq/options.ts";
import { nameServer, requireRocketMq, rocketMqFactory, testOptions, topic } from "./rocketmq_env.ts";

const text = (value: string) => new TextEncoder().encode(value);

requireRocketMq();
runClusterLogConformance("rocketmq", rocketMqFactory());

/**
 * Without a name server (an ACL-enabled RocketMQ, whose remoting requests would have to be signed) the
 * log is read by popping an orderly group through the proxy; the operator made the group, as here.
 */
runClusterLogConformance("rocketmq, read through the proxy", {
  ...rocketMqFactory(),
  open: (nodeId) => {
    const log = new RocketMqLog(testOptions(nodeId, { nameServer: "" }));
    const start = log.start.bind(log);
    log.start = async () => {
      await prepareOrderlyReader(nameServer, topic, consumerGroupFor(nodeId), 5000);
      await start();
    };
    return log;
  },
});

Deno.test("rocketmq log: start() rejects with a clear ClusterLogError when the proxy is not there", async () => {
  const log = new RocketMqLog(
    testOptions("nobody", { endpoints: "127.0.0.1:1", nameServer: "", startTimeoutMs: 5000 }),
  );
  await assert.rejects(log.start(), (error) => {
    assert.ok(error instanceof ClusterLogError);
    assert.match(error.message, /cannot start the cluster log .* on 127\.0\.0\.1:1/);
    return true;
  });
  assert.equal(log.health().ok, false);
  await log.stop();
});

Deno.test("rocketmq log: start() rejects when the topic is missing or has more than one queue", async () => {
  const missing = new RocketMqLog(testOptions("nobody", { topic: "mqtt_log_no_such_topic" }));
  await assert.rejects(missing.start(), /topic mqtt_log_no_such_topic does not exist/);
  await missing.stop();
});

Deno.test("rocketmq log: an idle reader stays healthy through its long polls (a held pull is answered up to 5 s late)", async () => {
  // The broker checks the pulls it holds every 5 s: one sent right after such a check with a 1 s long poll
  // is answered 5 s later, well past the long poll plus a 1 s request timeout. From the second poll on,
  // every pull of an idle log is sent right after a check.
  const log = new RocketMqLog(
    testOptions(`idle-${crypto.randomUUID().slice(0, 8)}`, { awaitMs: 1000, requestTimeoutMs: 1000 }),
  );
  try {
    await log.start();
    log.consume(() => Promise.resolve());
    const unhealthy = new Set<string>();
    // Two and a bit of the broker's checks.
    for (let turn = 0; turn < 240; turn++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      const health = log.health();
      if (!health.ok) unhealthy.add(health.detail);
    }
    assert.deepEqual([...unhealthy], []);
  } finally {
    await log.stop();
  }
});

/** Sends `body` as one message of the log, as a node's appender would; twice is a re-send. */
async function sendRaw(nodeId: string, bodies: Uint8Array[]): Promise<void> {
  const o = resolveOptions(testOptions(nodeId));
  const clients = await startClients(o, { consumer: false });
  try {
    for (const body of bodies) {
      await clients.producer.send({ topic: o.topic, body: Buffer.from(body), messageGroup: o.messageGroup });
    }
  } finally {
    await shutdownClients(clients, o);
  }
}

for (const [how, overrides] of [["by pull", {}], ["through the proxy", { nameServer: "" }]] as const) {
  Deno.test(`rocketmq log: a message RocketMQ stored twice (a re-send after a lost receipt) is applied once, read ${how}`, async () => {
    const id = `dup-${crypto.randomUUID().slice(0, 8)}`;
    if (overrides.nameServer === "") {
      await prepareOrderlyReader(nameServer, topic, consumerGroupFor(id), 5000);
    }
    const reader = new RocketMqLog(testOptions(id, overrides));
    try {
      await reader.start();
      const applied: string[] = [];
      reader.consume((entries: LogEntry[]) => {
        applied.push(...entries.map((entry) => new TextDecoder().decode(entry.body)));
        return Promise.resolve();
      });
      await new Promise((resolve) => setTimeout(resolve, 500)); // the reader's first read is out
      const writer = newWriter();
      const first = packEntries([text(`${id} a`), text(`${id} b`)], writer, 1);
      const second = packEntries([text(`${id} c`)], writer, 2);
      await sendRaw(`${id}-writer`, [first, first, second, first]);
      const mine = () => applied.filter((entry) => entry.startsWith(id));
      for (let turn = 0; turn < 200 && mine().length < 3; turn++) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      await new Promise((resolve) => setTimeout(resolve, 1000)); // time for a copy to arrive, if it would
      assert.deepEqual(mine(), [`${id} a`, `${id} b`, `${id} c`]);
      assert.equal(
        reader.stats().resendsDropped,
        2,
        "the two copies of the first message, counted for /metrics",
      );
    } finally {
      await reader.stop();
    }
  });
}
