/**
 * `deno task bench --cluster`: three mqtt-proxy nodes over the Apache RocketMQ that scripts/rocketmq.sh runs,
 * publishers on one node and subscribers on another, against the same load on one node; then the time a
 * client takes to resume on another node after its node was killed, and each node's memory.
 *
 *   deno task bench --cluster [--quick] [--duration S] [--case qos0|qos1|latency]... [--cluster-only]
 *                             [--write-docs]
 *
 * --case (repeatable) runs only those cases and --cluster-only skips the one-node runs and the resume after
 * kill -9: for iterating on the cluster's own figures (neither may be combined with --write-docs).
 *
 * Nothing is pinned (three brokers and three JVMs share the machine's two cores; the C generator runs on
 * core 1). --write-docs replaces the "Measured" section of docs/cluster.md.
 */
import type { PubSubCase } from "./cases.ts";
import { buildGenerator, type PubSubResult, runPubSub } from "./generator.ts";
import { cpuSeconds } from "./brokers.ts";
import { capture, freePort, note, print, residentBytes, sleep, stopChild } from "./util.ts";

const REPO = new URL("../../", import.meta.url).pathname;
const TOPIC = Deno.env.get("ROCKETMQ_LOCAL_BENCH_TOPIC") ?? "mqtt_log_bench";
const ENDPOINTS = Deno.env.get("ROCKETMQ_LOCAL_ENDPOINTS") ?? "127.0.0.1:8081";
const NAME_SERVER = Deno.env.get("ROCKETMQ_LOCAL_NAMESRV") ?? "127.0.0.1:9876";

/**
 * Unacknowledged QoS 1 PUBLISHes per publisher, and undelivered messages per subscriber, cross-node; the
 * latter stays within a subscriber's queue (mqtt.max_inflight + mqtt.max_queued_messages), or the broker
 * drops what a slow subscriber cannot take, as configured.
 */
const CLUSTER_INFLIGHT = 1000;
const CLUSTER_E2E_WINDOW = 1000;

interface Node {
  name: string;
  port: number;
  httpPort: number;
  child: Deno.ChildProcess;
}

interface Row {
  case: string;
  single?: PubSubResult;
  cluster?: PubSubResult;
}

function pubsub(name: string, qos: 0 | 1, rate: number): PubSubCase {
  return {
    kind: "pubsub",
    name,
    title: name,
    group: rate > 0 ? "latency" : "throughput",
    pubs: 10,
    subs: 10,
    topology: "pair",
    qos,
    payload: 64,
    rate,
    durable: false,
  };
}

/** The nodes count as idle when together they use less than this share of a core over a second. */
const IDLE_CPU_SHARE = 0.15;
const SETTLE_MAX_MS = 60_000;

/**
 * Waits until the nodes are idle. A saturating QoS 0 case leaves up to the append backlog (64 MiB) on the
 * publishing node, which it goes on sending for seconds after the case: that is the case's cost, and it
 * would otherwise land in the next case's latency.
 */
async function settle(nodes: Node[]): Promise<void> {
  const started = Date.now();
  const busy = async () => {
    const before = await Promise.all(nodes.map((node) => cpuSeconds(node.child.pid)));
    await sleep(1000);
    const after = await Promise.all(nodes.map((node) => cpuSeconds(node.child.pid)));
    return after.reduce((sum: number, value, i) => sum + (value ?? 0) - (before[i] ?? 0), 0) >=
      IDLE_CPU_SHARE;
  };
  while (Date.now() - started < SETTLE_MAX_MS && await busy()) { /* the next second */ }
  note(`  settled in ${((Date.now() - started) / 1000).toFixed(0)} s`);
}

/** The cases, by the name `--case` selects them with. */
const CASES: Record<string, PubSubCase> = {
  qos0: pubsub("QoS 0 10→10 64 B", 0, 0),
  qos1: pubsub("QoS 1 10→10 64 B", 1, 0),
  latency: pubsub("latency QoS 1 at 2k msg/s", 1, 2000),
};

async function permissions(): Promise<string[]> {
  const config = JSON.parse(await Deno.readTextFile(`${REPO}deno.json`));
  const task: string = config.tasks.compile.split("&&").find((part: string) => part.includes("deno compile"));
  return task.split(/\s+/).filter((word) => word.startsWith("--allow-"));
}

async function startNode(dir: string, name: string, cluster: boolean, run: string): Promise<Node> {
  const port = freePort();
  const httpPort = freePort();
  const lines = [
    "listener.default.host = 127.0.0.1",
    `listener.default.port = ${port}`,
    "auth.allow_anonymous = true",
    `storage.dir = ${dir}/${name}`,
    "http.enabled = true",
    `http.port = ${httpPort}`,
    "log.level = warn",
    "sys.interval_seconds = 0",
  ];
  if (cluster) {
    lines.push(
      "cluster.enabled = true",
      `cluster.node_id = bench-${name}-${run}`,
      `cluster.rocketmq.endpoints = ${ENDPOINTS}`,
      `cluster.rocketmq.name_server = ${NAME_SERVER}`,
      `cluster.rocketmq.topic = ${TOPIC}`,
      "cluster.heartbeat_ms = 500",
      "cluster.node_timeout_ms = 3000",
    );
  }
  await Deno.writeTextFile(`${dir}/${name}.properties`, lines.join("\n"));
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", ...(await permissions()), "main.ts", "-c", `${dir}/${name}.properties`],
    cwd: REPO,
    stdout: "null",
    stderr: "inherit",
  }).spawn();
  const node = { name, port, httpPort, child };
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    try {
      const response = await fetch(`http://127.0.0.1:${httpPort}/readyz`);
      await response.body?.cancel();
      if (response.ok) return node;
    } catch { /* not listening yet */ }
    await sleep(100);
  }
  await stopChild(child);
  throw new Error(`node ${name} did not become ready within 60 s`);
}

/** A raw MQTT 3.1.1 CONNECT with a persistent session; resolves with the CONNACK's session present flag. */
async function connectPersistent(
  port: number,
  clientId: string,
): Promise<{ present: boolean; conn: Deno.TcpConn }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const id = new TextEncoder().encode(clientId);
  const body = [0, 4, 77, 81, 84, 84, 4, 0x00, 0, 60, id.length >> 8, id.length & 0xff, ...id];
  await conn.write(new Uint8Array([0x10, body.length, ...body]));
  const connack = new Uint8Array(4);
  let read = 0;
  while (read < 4) {
    const n = await conn.read(connack.subarray(read));
    if (n === null) throw new Error("closed before CONNACK");
    read += n;
  }
  if (connack[3] !== 0) throw new Error(`CONNACK ${connack[3]}`);
  return { present: (connack[2] & 1) === 1, conn };
}

/** Kill -9 of the node holding a persistent session, then the time until another node resumes it. */
async function resumeAfterKill(nodes: Node[]): Promise<number> {
  const first = await connectPersistent(nodes[0].port, "bench-resume");
  await sleep(500);
  nodes[0].child.kill("SIGKILL");
  await nodes[0].child.status;
  const killedAt = performance.now();
  first.conn.close();
  for (;;) {
    try {
      const { present, conn } = await connectPersistent(nodes[2].port, "bench-resume");
      conn.close();
      if (!present) throw new Error("session not present after the resume");
      return performance.now() - killedAt;
    } catch (error) {
      if (performance.now() - killedAt > 30_000) throw error;
      await sleep(20);
    }
  }
}

function format(result: PubSubResult | undefined, field: "rate" | "p50" | "p99"): string {
  if (!result) return "–";
  if (field === "rate") return Math.round(result.msgsPerSecond).toLocaleString("en-US");
  const us = field === "p50" ? result.latencyUs.p50 : result.latencyUs.p99;
  return us >= 1000 ? `${(us / 1000).toFixed(1)} ms` : `${Math.round(us)} µs`;
}

export async function runClusterBench(args: string[]): Promise<number> {
  const quick = args.includes("--quick");
  const durationArg = args.indexOf("--duration");
  const durationS = durationArg >= 0 ? Number(args[durationArg + 1]) : quick ? 2 : 5;
  const rocketmq = await capture("bash", [`${REPO}scripts/rocketmq.sh`, "start"]);
  if (!rocketmq.ok) throw new Error(`scripts/rocketmq.sh start failed:\n${rocketmq.text}`);
  const dir = await Deno.makeTempDir({ prefix: "mqtt-proxy-bench-cluster-" });
  const binary = await buildGenerator(dir);
  const run = crypto.randomUUID().slice(0, 8);
  const selected = args.flatMap((arg, index) => args[index - 1] === "--case" ? [arg] : []);
  const clusterOnly = args.includes("--cluster-only");
  if ((selected.length > 0 || clusterOnly) && args.includes("--write-docs")) {
    throw new Error("--write-docs needs every case and the one-node runs (no --case, no --cluster-only)");
  }
  const known = new Set(Object.keys(CASES));
  const unknown = selected.filter((key) => !known.has(key));
  if (unknown.length > 0) {
    throw new Error(`unknown --case ${unknown.join(", ")} (known: ${[...known].join(", ")})`);
  }
  const cases = Object.entries(CASES)
    .filter(([key]) => selected.length === 0 || selected.includes(key))
    .map(([, testCase]) => testCase);
  const rows: Row[] = cases.map((c) => ({ case: c.name }));
  let resumeMs: number | undefined;
  const rss: string[] = [];
  /** Every node started, stopped in `finally` too: a failed run must not leave nodes running. */
  const started: Node[] = [];
  try {
    if (!clusterOnly) {
      note("single node");
      const single = await startNode(dir, "single", false, run);
      started.push(single);
      for (const [index, testCase] of cases.entries()) {
        rows[index].single = await runPubSub(binary, single.port, testCase, durationS, 1, {
          layout: "unpinned",
          brokerPid: single.child.pid,
        });
        note(`  ${testCase.name}: ${format(rows[index].single, "rate")} msg/s`);
      }
      await stopChild(single.child);
    }

    note("three nodes over RocketMQ: publishers on a, subscribers on b");
    const nodes = [];
    for (const name of ["a", "b", "c"]) {
      const node = await startNode(dir, name, true, run);
      started.push(node);
      nodes.push(node);
    }
    for (const [index, testCase] of cases.entries()) {
      if (index > 0) await settle(nodes);
      // A message crosses RocketMQ before its PUBACK and its delivery: tens of ms, so the windows must be deeper
      // than on one node for the pipeline to stay full.
      rows[index].cluster = await runPubSub(binary, nodes[0].port, testCase, durationS, 1, {
        layout: "unpinned",
        brokerPid: nodes[0].child.pid,
      }, {
        subscriberPort: nodes[1].port,
        inflight: CLUSTER_INFLIGHT,
        e2eWindow: CLUSTER_E2E_WINDOW,
      });
      note(`  ${testCase.name}: ${format(rows[index].cluster, "rate")} msg/s`);
    }
    for (const node of nodes) {
      const bytes = await residentBytes(node.child.pid);
      rss.push(`${node.name} ${bytes === undefined ? "?" : `${Math.round(bytes / 1e6)} MB`}`);
    }
    if (clusterOnly) {
      for (const node of nodes) await stopChild(node.child);
    } else {
      resumeMs = await resumeAfterKill(nodes);
      for (const node of nodes.slice(1)) await stopChild(node.child);
    }
  } finally {
    for (const node of started) await stopChild(node.child); // no-op for those already stopped
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
  const lines = [
    `Measured by \`deno task bench --cluster\` on ${
      new Date().toISOString().slice(0, 10)
    } (2 cores shared by three`,
    "nodes, three RocketMQ JVMs and the C generator; nothing pinned; one run per case of " +
    `${durationS} s; before each case after the first, the nodes are left until idle).`,
    "",
    "| case | one node | three nodes, cross-node | cross-node p50 / p99 | lost / duplicated |",
    "| --- | --- | --- | --- | --- |",
    ...rows.map((row) =>
      `| ${row.case} | ${format(row.single, "rate")} msg/s | ${format(row.cluster, "rate")} msg/s | ` +
      `${format(row.cluster, "p50")} / ${format(row.cluster, "p99")} | ${row.cluster?.lost ?? "–"} / ` +
      `${row.cluster?.duplicates ?? "–"} |`
    ),
    "",
    ...(resumeMs === undefined ? [] : [
      `Resume on another node after kill -9 of the client's node: ${
        resumeMs.toFixed(0)
      } ms (until CONNACK with`,
      "session present; no node timeout is involved: the claim itself fences the dead node).",
      "",
    ]),
    `Memory per node (RSS after the runs): ${rss.join(", ")}.`,
  ];
  print(lines.join("\n"));
  if (args.includes("--write-docs")) {
    const path = `${REPO}docs/cluster.md`;
    const doc = await Deno.readTextFile(path);
    const start = doc.indexOf("<!-- bench:cluster -->");
    const end = doc.indexOf("<!-- /bench:cluster -->");
    if (start < 0 || end < 0) throw new Error("docs/cluster.md has no <!-- bench:cluster --> section");
    await Deno.writeTextFile(
      path,
      `${doc.slice(0, start)}<!-- bench:cluster -->\n${lines.join("\n")}\n${doc.slice(end)}`,
    );
  }
  const failed = rows.some((row) =>
    (!clusterOnly && !row.single) || !row.cluster || row.cluster.lost > 0 || row.cluster.errors.length > 0
  );
  return failed ? 1 : 0;
}
