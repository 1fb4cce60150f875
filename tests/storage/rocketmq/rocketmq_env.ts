/**
 * Where the RocketMQ that `scripts/rocketmq.sh start` runs is, for the tests that need it, and a check
 * that fails loudly (never skips) when it is not there.
 */
import { ClusterLogFactory } from "../../../src/storage/cluster_log_conformance.ts";
import { RocketMqLog, type RocketMqLogOptions } from "../../../src/storage/rocketmq/mod.ts";

export const endpoints = Deno.env.get("ROCKETMQ_LOCAL_ENDPOINTS") ?? "127.0.0.1:8081";
export const nameServer = Deno.env.get("ROCKETMQ_LOCAL_NAMESRV") ?? "127.0.0.1:9876";
/** A topic of the tests' own (created by scripts/rocketmq.sh), so they never read the cluster's log. */
export const topic = Deno.env.get("ROCKETMQ_LOCAL_TEST_TOPIC") ?? "mqtt_log_test";
/** The runtime dir of scripts/rocketmq.sh: its pid files tell which JVM to kill. */
export const runtimeDir = Deno.env.get("ROCKETMQ_LOCAL_HOME") ??
  `${Deno.env.get("HOME")}/.local/state/mqtt-proxy/rocketmq`;

export const appendTimeoutMs = 8000;

/** Options for a test's log: short long polls (the script's proxy allows 1 s) so stop() is quick. */
export function testOptions(nodeId: string, overrides: Partial<RocketMqLogOptions> = {}): RocketMqLogOptions {
  return { endpoints, nameServer, topic, nodeId, awaitMs: 1000, appendTimeoutMs, ...overrides };
}

export function rocketMqFactory(outage?: ClusterLogFactory["outage"]): ClusterLogFactory {
  return {
    open: (nodeId) => new RocketMqLog(testOptions(nodeId)),
    outage,
    appendTimeoutMs,
    waitMs: 90_000,
  };
}

/** Registers a test that fails with a clear message when RocketMQ is not running. */
export function requireRocketMq(): void {
  Deno.test(`RocketMQ runs (proxy ${endpoints}, name server ${nameServer}); else: scripts/rocketmq.sh start`, async () => {
    for (const address of [endpoints.split(";")[0], nameServer]) {
      const colon = address.lastIndexOf(":");
      try {
        const conn = await Deno.connect({
          hostname: address.slice(0, colon),
          port: Number(address.slice(colon + 1)),
        });
        conn.close();
      } catch (error) {
        throw new Error(
          `RocketMQ is not reachable at ${address} (${error}); start it with scripts/rocketmq.sh start`,
        );
      }
    }
  });
}
