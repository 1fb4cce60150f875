import assert from "node:assert/strict";
import { ClusterLogError } from "../../../src/storage/cluster_log.ts";
import { runClusterLogConformance } from "../../../src/storage/cluster_log_conformance.ts";
import { RocketMqLog } from "../../../src/storage/rocketmq/mod.ts";
import { requireRocketMq, rocketMqFactory, testOptions } from "./rocketmq_env.ts";

requireRocketMq();
runClusterLogConformance("rocketmq", rocketMqFactory());

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
