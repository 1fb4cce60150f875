/**
 * Cluster tests with separate broker processes (main.ts, the compile task's permissions) on loopback, one
 * Apache RocketMQ (scripts/rocketmq.sh), and real MQTT clients. Each test's nodes have names of their own,
 * so their consumer groups are new and start at the log's tail: what other tests wrote is never read.
 */
import { type BrokerProcess, freePort, startBrokerProcess } from "../../helpers/process.ts";
import { endpoints, nameServer, topic } from "../../storage/rocketmq/rocketmq_env.ts";

export const HEARTBEAT_MS = 500;
export const NODE_TIMEOUT_MS = 3000;

/** One broker process of a test cluster. */
export interface Node {
  name: string;
  port: number;
  httpPort: number;
  dataDir: string;
  process: BrokerProcess;
}

/** Nodes of one test; `stop()` ends every process still running (by pid) and removes their files. */
export class ProcessCluster {
  readonly #run = crypto.randomUUID().slice(0, 8);
  readonly #dir = Deno.makeTempDirSync({ prefix: "mqtt-proxy-cluster-" });
  readonly nodes = new Map<string, Node>();

  /** Starts node `name` (again, with the same data directory, if it ran before) and waits until it is ready. */
  async start(name: string, extra: string[] = []): Promise<Node> {
    const node = await this.launch(name, extra);
    await this.ready(node);
    return node;
  }

  /** Starts node `name` and returns once it listens: it may still be joining the cluster. */
  async launch(name: string, extra: string[] = []): Promise<Node> {
    const previous = this.nodes.get(name);
    const port = previous?.port ?? freePort();
    // Two ports asked for one after the other can be the same one (the first was closed before the second).
    let httpPort = previous?.httpPort ?? freePort();
    while (httpPort === port) httpPort = freePort();
    const dataDir = previous?.dataDir ?? `${this.#dir}/${name}`;
    const configPath = `${this.#dir}/${name}.properties`;
    await Deno.writeTextFile(
      configPath,
      [
        "listener.default.host = 127.0.0.1",
        `listener.default.port = ${port}`,
        "auth.allow_anonymous = true",
        `storage.dir = ${dataDir}`,
        "http.enabled = true",
        "http.host = 127.0.0.1",
        `http.port = ${httpPort}`,
        "cluster.enabled = true",
        `cluster.node_id = ${name}-${this.#run}`,
        `cluster.rocketmq.endpoints = ${endpoints}`,
        `cluster.rocketmq.name_server = ${nameServer}`,
        `cluster.rocketmq.topic = ${topic}`,
        `cluster.heartbeat_ms = ${HEARTBEAT_MS}`,
        `cluster.node_timeout_ms = ${NODE_TIMEOUT_MS}`,
        ...(extra.some((line) => line.startsWith("log.level")) ? [] : ["log.level = warn"]),
        ...extra,
      ].join("\n"),
    );
    const process = await startBrokerProcess(configPath, port);
    const node = { name, port, httpPort, dataDir, process };
    this.nodes.set(name, node);
    return node;
  }

  /** Waits until the node's /readyz says it takes clients (it has joined the cluster). */
  async ready(node: Node, ms = 30_000): Promise<void> {
    const deadline = Date.now() + ms;
    let last = "";
    while (Date.now() < deadline) {
      try {
        const response = await fetch(`http://127.0.0.1:${node.httpPort}/readyz`, {
          signal: AbortSignal.timeout(5_000),
        });
        last = await response.text();
        if (response.ok) return;
      } catch (error) {
        last = String(error);
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error(`node ${node.name} not ready within ${ms} ms: ${last}\n${node.process.output()}`);
  }

  /** The node's /readyz answer. */
  async readiness(node: Node): Promise<{ ok: boolean; text: string }> {
    const response = await fetch(`http://127.0.0.1:${node.httpPort}/readyz`, {
      signal: AbortSignal.timeout(5_000),
    });
    return { ok: response.ok, text: await response.text() };
  }

  /** kill -9 of one node's process. */
  async kill(name: string): Promise<void> {
    await this.nodes.get(name)!.process.kill9();
  }

  /** Removes a node's data directory: its next start has no state. */
  async wipe(name: string): Promise<void> {
    await Deno.remove(this.nodes.get(name)!.dataDir, { recursive: true }).catch(() => {});
  }

  /** Ends every node still running, as a crash would (faster than a graceful stop, and just as valid). */
  async stop(): Promise<void> {
    await Promise.all([...this.nodes.values()].map(async ({ process }) => {
      try {
        await process.kill9();
      } catch { /* already ended */ }
    }));
    await Deno.remove(this.#dir, { recursive: true }).catch(() => {});
  }
}

/** Runs `body` with a fresh process cluster, always stopping it. */
export async function withCluster(body: (cluster: ProcessCluster) => Promise<void>): Promise<void> {
  const cluster = new ProcessCluster();
  try {
    await body(cluster);
  } finally {
    await cluster.stop();
  }
}
