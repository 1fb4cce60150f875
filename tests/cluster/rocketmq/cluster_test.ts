/**
 * The cluster over a real Apache RocketMQ: three broker processes, real MQTT clients (MQTT.js, raw
 * packets where the wire matters). Needs `scripts/rocketmq.sh start`; fails (never skips) without it.
 */
import assert from "node:assert/strict";
import { requireRocketMq } from "../../storage/rocketmq/rocketmq_env.ts";
import { connectJs, endJs, LiveProcess, sleep, WAIT_MS, withTimeout } from "../../interop/tools.ts";
import type { Packet } from "../../../src/codec/mod.ts";
import { hashPassword } from "../../../src/auth/mod.ts";
import { parseExposition } from "../../../src/observe/mod.ts";
import { connect, publishPacket, readPublish, subscribe, subscription, text } from "../../helpers/clients.ts";
import { NODE_TIMEOUT_MS, withCluster } from "./nodes.ts";

requireRocketMq();

Deno.test("cluster over RocketMQ: QoS 0, 1 and 2 at 3.1.1 and 5.0 cross nodes once each, in order, with v5 properties", async () => {
  await withCluster(async (cluster) => {
    const [a, b, c] = [await cluster.start("a"), await cluster.start("b"), await cluster.start("c")];
    const onB = await connectJs(b.port, { clientId: "sub-b", protocolVersion: 5 });
    const onC = await connectJs(c.port, { clientId: "sub-c", protocolVersion: 4 });
    const publisher = await connectJs(a.port, { clientId: "pub-a", protocolVersion: 5 });
    // The order on the wire: MQTT.js hands a QoS 2 message to the application only at PUBREL, after
    // later QoS 0 ones, so its 'message' order is not the broker's.
    const wire = (client: typeof onB.client): string[] => {
      const order: string[] = [];
      client.on("packetreceive", (packet) => {
        if (packet.cmd === "publish") order.push(String(packet.payload));
      });
      return order;
    };
    const [wireB, wireC] = [wire(onB.client), wire(onC.client)];
    try {
      await onB.client.subscribeAsync("x/#", { qos: 2 });
      await onC.client.subscribeAsync("x/#", { qos: 2 });
      await sleep(500); // the subscriptions are announced through the log
      const sent: string[] = [];
      for (let i = 0; i < 30; i++) {
        const qos = (i % 3) as 0 | 1 | 2;
        sent.push(`${i}`);
        await publisher.client.publishAsync(`x/${qos}`, `${i}`, {
          qos,
          properties: { userProperties: { n: `${i}` }, contentType: "text/plain" },
        });
      }
      const [gotB] = await Promise.all([onB.inbox.take(30, 15_000), onC.inbox.take(30, 15_000)]);
      assert.deepEqual(wireB, sent, "node b: each once, in order");
      assert.deepEqual(wireC, sent, "node c: each once, in order");
      const qosOf = new Map(gotB.map((m) => [m.payload, m.qos]));
      assert.deepEqual(sent.map((payload) => qosOf.get(payload)), sent.map((_, i) => i % 3));
      const fourth = gotB.find((m) => m.payload === "4")!;
      assert.deepEqual({ ...fourth.packet.properties?.userProperties }, { n: "4" });
      assert.equal(fourth.packet.properties?.contentType, "text/plain");
      await onB.inbox.expectCount(30, 500);
      await onC.inbox.expectCount(30, 0);
      // What an operator scrapes: the node that took the publishes appended them, the others applied them.
      const [onA, onNodeB] = [await clusterMetrics(a.httpPort), await clusterMetrics(b.httpPort)];
      assert.equal(onA.mqtt_cluster_up, 1);
      assert.equal(onA.mqtt_cluster_nodes, 3);
      assert.ok(onA.mqtt_cluster_log_entries_appended_total >= 30, JSON.stringify(onA));
      assert.ok(onA.mqtt_cluster_log_messages_sent_total >= 1, JSON.stringify(onA));
      assert.ok(onNodeB.mqtt_cluster_log_entries_applied_total >= 30, JSON.stringify(onNodeB));
    } finally {
      await endJs(onB.client, onC.client, publisher.client);
    }
  });
});

/** A node's mqtt_cluster_* series from /metrics. */
async function clusterMetrics(httpPort: number): Promise<Record<string, number>> {
  const text =
    await (await fetch(`http://127.0.0.1:${httpPort}/metrics`, { signal: AbortSignal.timeout(WAIT_MS) }))
      .text();
  return Object.fromEntries(
    parseExposition(text).filter((s) => s.name.startsWith("mqtt_cluster_")).map((s) => [s.name, s.value]),
  );
}

Deno.test("cluster over RocketMQ: a $share group across nodes gets each message exactly once", async () => {
  await withCluster(async (cluster) => {
    const nodes = [await cluster.start("a"), await cluster.start("b"), await cluster.start("c")];
    const members = await Promise.all(
      nodes.map((node, i) => connectJs(node.port, { clientId: `member-${i}`, protocolVersion: 5 })),
    );
    const publisher = await connectJs(nodes[0].port, { clientId: "pub", protocolVersion: 5 });
    try {
      for (const member of members) await member.client.subscribeAsync("$share/g/jobs/#", { qos: 1 });
      await sleep(500);
      for (let i = 0; i < 60; i++) await publisher.client.publishAsync(`jobs/${i}`, `${i}`, { qos: 1 });
      const deadline = Date.now() + 15_000;
      const count = () => members.reduce((sum, member) => sum + member.inbox.messages.length, 0);
      while (count() < 60 && Date.now() < deadline) await sleep(50);
      await sleep(500);
      const all = members.flatMap((member) => member.inbox.messages.map((m) => Number(m.payload)));
      assert.deepEqual(all.sort((x, y) => x - y), Array.from({ length: 60 }, (_, i) => i), "exactly once");
      for (const member of members) assert.ok(member.inbox.messages.length >= 10, "spread over the nodes");
    } finally {
      await endJs(publisher.client, ...members.map((member) => member.client));
    }
  });
});

Deno.test("cluster over RocketMQ: kill -9 of a node right after its PUBACKs loses nothing for any subscriber", async () => {
  await withCluster(async (cluster) => {
    const [a, b] = [await cluster.start("a"), await cluster.start("b")];
    const live = await connectJs(b.port, { clientId: "live", protocolVersion: 5 });
    const away = await connectJs(b.port, {
      clientId: "away",
      protocolVersion: 5,
      clean: false,
      properties: { sessionExpiryInterval: 600 },
    });
    await live.client.subscribeAsync("k/#", { qos: 1 });
    await away.client.subscribeAsync("k/#", { qos: 1 });
    await endJs(away.client);
    await sleep(500);
    try {
      const { client } = await connect(a.port, "publisher", 4);
      for (let i = 1; i <= 50; i++) {
        await client.sendPacket(publishPacket("k/1", `${i}`, 1, { packetId: i }), 4);
      }
      for (let i = 1; i <= 50; i++) assert.equal((await client.readPacket()).type, "puback");
      await cluster.kill("a"); // every one of the 50 was acknowledged
      const got = await live.inbox.take(50, 15_000);
      assert.deepEqual(got.map((m) => m.payload), Array.from({ length: 50 }, (_, i) => `${i + 1}`));
      const back = await connectJs(b.port, { clientId: "away", protocolVersion: 5, clean: false });
      const queued = await back.inbox.take(50, 15_000);
      assert.deepEqual(queued.map((m) => m.payload), Array.from({ length: 50 }, (_, i) => `${i + 1}`));
      await endJs(back.client);
    } finally {
      await endJs(live.client);
    }
  });
});

Deno.test("cluster over RocketMQ: a persistent session resumes on another node with its queue, packet ids and QoS 2 stage, also after kill -9", async () => {
  await withCluster(async (cluster) => {
    const [a, b, c] = [await cluster.start("a"), await cluster.start("b"), await cluster.start("c")];
    const connectOptions = { properties: { sessionExpiryInterval: 600, receiveMaximum: 2 } };
    const onA = (await connect(a.port, "device", 5, { ...connectOptions, cleanStart: false })).client;
    assert.deepEqual(await subscribe(onA, 5, [subscription("cmd/#", 2)]), [2]);
    await sleep(300);
    const publisher = (await connect(b.port, "pub", 5)).client;
    for (let i = 1; i <= 4; i++) {
      await publisher.sendPacket(publishPacket("cmd/x", `m${i}`, 2, { packetId: i }), 5);
      assert.equal((await publisher.readPacket()).type, "pubrec");
      await publisher.sendPacket({ type: "pubrel", packetId: i, reasonCode: 0, properties: {} }, 5);
      assert.equal((await publisher.readPacket()).type, "pubcomp");
    }
    const m1 = await readPublish(onA);
    const m2 = await readPublish(onA);
    assert.deepEqual([text(m1.payload), text(m2.payload)], ["m1", "m2"], "window of 2");
    await onA.sendPacket({ type: "pubrec", packetId: m1.packetId!, reasonCode: 0, properties: {} }, 5);
    assert.equal((await onA.readPacket()).type, "pubrel");
    await sleep(300); // the PUBREC is in the log
    await cluster.kill("a");

    const { client: onC, connack } = await connect(c.port, "device", 5, {
      ...connectOptions,
      cleanStart: false,
    });
    assert.equal(connack.sessionPresent, true);
    const pubrel = await onC.readPacket();
    assert.deepEqual([pubrel.type, (pubrel as { packetId: number }).packetId], ["pubrel", m1.packetId]);
    const resent = await readPublish(onC);
    assert.deepEqual([text(resent.payload), resent.packetId, resent.dup], ["m2", m2.packetId, true]);
    await onC.sendPacket({ type: "pubcomp", packetId: m1.packetId!, reasonCode: 0, properties: {} }, 5);
    // Complete every flow as a client would, collecting what is delivered, until m4.
    const rest: string[] = [];
    let next = resent as Packet;
    while (!rest.includes("m4")) {
      if (next.type === "publish") {
        rest.push(text(next.payload));
        await onC.sendPacket({ type: "pubrec", packetId: next.packetId!, reasonCode: 0, properties: {} }, 5);
      } else if (next.type === "pubrel") {
        await onC.sendPacket({ type: "pubcomp", packetId: next.packetId, reasonCode: 0, properties: {} }, 5);
      }
      next = await onC.readPacket();
    }
    assert.deepEqual(rest, ["m2", "m3", "m4"]);
    await Promise.all([onC.close(), publisher.close()]);
  });
});

Deno.test("cluster over RocketMQ: connecting on another node takes the client id over (v5 DISCONNECT 0x8E)", async () => {
  await withCluster(async (cluster) => {
    const [a, b] = [await cluster.start("a"), await cluster.start("b")];
    const first = (await connect(a.port, "same-id", 5)).client;
    const second = (await connect(b.port, "same-id", 5)).client;
    const disconnect = await first.readPacket();
    assert.deepEqual([disconnect.type, (disconnect as { reasonCode: number }).reasonCode], [
      "disconnect",
      0x8e,
    ]);
    await first.expectClosed();
    await second.sendPacket({ type: "pingreq" }, 5);
    assert.equal((await second.readPacket()).type, "pingresp");
    await second.close();
  });
});

Deno.test("cluster over RocketMQ: retained messages reach every node, and a node that joins with an empty disk", async () => {
  await withCluster(async (cluster) => {
    const [a, b] = [await cluster.start("a"), await cluster.start("b")];
    const publisher = await connectJs(a.port, { clientId: "pub", protocolVersion: 5 });
    await publisher.client.publishAsync("r/1", "one", { qos: 1, retain: true });
    await publisher.client.publishAsync("r/2", "two", { qos: 1, retain: true });
    await endJs(publisher.client);
    await sleep(500);
    const onB = await connectJs(b.port, { clientId: "reader-b", protocolVersion: 5 });
    await onB.client.subscribeAsync("r/#", { qos: 1 });
    assert.deepEqual((await onB.inbox.take(2)).map((m) => m.payload).sort(), ["one", "two"]);
    await endJs(onB.client);
    const c = await cluster.start("c"); // a new node: its state comes from another node
    const onC = await connectJs(c.port, { clientId: "reader-c", protocolVersion: 5 });
    await onC.client.subscribeAsync("r/#", { qos: 1 });
    assert.deepEqual((await onC.inbox.take(2)).map((m) => m.payload).sort(), ["one", "two"]);
    await endJs(onC.client);
  });
});

Deno.test("cluster over RocketMQ: a node that joins while the node answering it is killed -9 half-way asks again and gets everything from another", async () => {
  await withCluster(async (cluster) => {
    // Node ids sort by name: a answers a joining node while it is alive, b after it.
    const [a, b] = [await cluster.start("a"), await cluster.start("b")];
    // About 40 MB of state: 10 offline sessions with 200 messages of 20 kB queued each, and one, exported
    // first, that ends after a's answer started: the state c finally installs must not have it.
    const devices = ["ended-meanwhile", ...Array.from({ length: 10 }, (_, i) => `device-${i}`)];
    for (const clientId of devices) {
      const device = await connectJs(a.port, {
        clientId,
        protocolVersion: 5,
        clean: false,
        properties: { sessionExpiryInterval: 3600 },
      });
      await device.client.subscribeAsync("big/#", { qos: 1 });
      await endJs(device.client);
    }
    const publisher = await connectJs(b.port, { clientId: "big-pub", protocolVersion: 5 });
    const payload = (i: number) => `${i}:`.padEnd(20_000, "x");
    for (let i = 0; i < 200; i++) await publisher.client.publishAsync(`big/${i}`, payload(i), { qos: 1 });

    const c = await cluster.launch("c", ["log.level = info"]);
    for (let waited = 0; !c.process.output().includes('"cluster.join_answered"'); waited += 10) {
      if (waited > 60_000) throw new Error(`no node answered c within 60 s:\n${c.process.output()}`);
      await sleep(10);
    }
    await cluster.kill("a");
    const replacing = await connectJs(b.port, {
      clientId: "ended-meanwhile",
      protocolVersion: 5,
      clean: true,
    });
    await endJs(replacing.client);
    await publisher.client.publishAsync("big/late", "late", { qos: 1 });
    await endJs(publisher.client);

    await cluster.ready(c);
    const output = c.process.output();
    assert.match(
      output,
      /"cluster\.join_restarted"/,
      "c asked again after a died half-way through its answer",
    );
    assert.match(output, /"cluster\.joined"[^\n]*"from":"b-/, "c installed b's answer");
    const ended = await connectJs(c.port, {
      clientId: "ended-meanwhile",
      protocolVersion: 5,
      clean: false,
      properties: { sessionExpiryInterval: 3600 },
    });
    assert.equal(ended.connack.sessionPresent, false, "nothing of a's answer was kept");
    await endJs(ended.client);
    for (const clientId of devices.slice(1)) {
      const device = await connectJs(c.port, {
        clientId,
        protocolVersion: 5,
        clean: false,
        properties: { sessionExpiryInterval: 3600 },
      });
      assert.equal(device.connack.sessionPresent, true, clientId);
      const got = await device.inbox.take(201);
      assert.deepEqual(
        got.map((m) => m.payload === "late" ? "late" : m.payload.split(":")[0] + `:${m.payload.length}`),
        [...Array.from({ length: 200 }, (_, i) => `${i}:20000`), "late"],
        clientId,
      );
      await endJs(device.client);
    }
  });
});

Deno.test("cluster over RocketMQ: the will of a client whose node dies goes out once, within the node timeout", async () => {
  await withCluster(async (cluster) => {
    const admin = await adminConfig();
    const [a, b, c] = [
      await cluster.start("a"),
      await cluster.start("b", admin.lines),
      await cluster.start("c"),
    ];
    const watchB = await connectJs(b.port, { clientId: "watch-b", protocolVersion: 5 });
    const watchC = await connectJs(c.port, { clientId: "watch-c", protocolVersion: 4 });
    await watchB.client.subscribeAsync("status/#", { qos: 1 });
    await watchC.client.subscribeAsync("status/#", { qos: 1 });
    const device = await connectJs(a.port, {
      clientId: "dev",
      protocolVersion: 5,
      will: {
        topic: "status/dev",
        payload: new TextEncoder().encode("gone") as never,
        qos: 1,
        retain: false,
      },
    });
    try {
      await sleep(500);
      const killed = Date.now();
      await cluster.kill("a");
      const [willB, willC] = await Promise.all([watchB.inbox.take(1, 20_000), watchC.inbox.take(1, 20_000)]);
      const elapsed = Date.now() - killed;
      assert.deepEqual([willB[0].payload, willC[0].payload], ["gone", "gone"]);
      assert.ok(elapsed < NODE_TIMEOUT_MS + 5000, `will after ${elapsed} ms`);
      await watchB.inbox.expectCount(1, 2000);
      await watchC.inbox.expectCount(1, 0);
      // The operator's view on b: a gone, c alive.
      const token = await admin.login(b.httpPort);
      const response = await fetch(`http://127.0.0.1:${b.httpPort}/api/v1/cluster`, {
        headers: { authorization: `Bearer ${token}` },
        signal: AbortSignal.timeout(WAIT_MS),
      });
      const status = await response.json();
      assert.equal(response.status, 200, JSON.stringify(status));
      const seen = (prefix: string) =>
        status.nodes.find((node: { nodeId: string }) => node.nodeId.startsWith(prefix));
      // A node declared gone is forgotten once the log confirms it.
      assert.deepEqual(
        [status.enabled, status.up, seen("b-")?.self, seen("a-")?.alive ?? "forgotten", seen("c-")?.alive],
        [true, true, true, "forgotten", true],
        JSON.stringify(status),
      );
      // The same view on the dashboard's cluster page, in a real browser.
      const shown = await dashboardClusterView(`http://127.0.0.1:${b.httpPort}`, token, ["b-", "c-"]);
      assert.match(shown, /^cluster-view up=true applied=[1-9]\d* nodes=b-[^:]+:true,c-[^:]+:true$/);
    } finally {
      await endJs(watchB.client, watchC.client, device.client);
      await Deno.remove(admin.dir, { recursive: true });
    }
  });
});

const CHROMIUM = "/usr/bin/chromium";

/**
 * The dashboard's cluster page of the node at `base`, read by tests/admin/dashboard_driver.ts in headless
 * Chromium once a row for each node prefix is shown: its "cluster-view" line.
 */
async function dashboardClusterView(base: string, token: string, prefixes: string[]): Promise<string> {
  try {
    await Deno.stat(CHROMIUM);
  } catch {
    throw new Error(`MISSING TOOL chromium at ${CHROMIUM}: apt-get install -y chromium`);
  }
  const here = (path: string) => decodeURIComponent(new URL(path, import.meta.url).pathname);
  const driver = new LiveProcess(
    Deno.execPath(),
    [
      "run",
      "-A",
      `--config=${here("../../../deno.json")}`,
      here("../../admin/dashboard_driver.ts"),
      "cluster",
      CHROMIUM,
      base,
      token,
      prefixes.join(","),
    ],
    120_000,
  );
  try {
    const line = await driver.waitForLine((line) => line.startsWith("cluster-view"), 60_000).catch(
      (error) => {
        throw new Error(`${error.message}\ndriver:\n${driver.lines.join("\n")}\n${driver.stderr}`);
      },
    );
    const status = await driver.finish();
    assert.equal(status.code, 0, `${driver.lines.join("\n")}\n${driver.stderr}`);
    return line;
  } finally {
    driver.kill("SIGKILL");
    await driver.finish();
  }
}

/** The admin API on a node, with an admin password file in a temporary directory (/readyz stays open). */
async function adminConfig(): Promise<
  { lines: string[]; dir: string; login(httpPort: number): Promise<string> }
> {
  const dir = await Deno.makeTempDir({ prefix: "mqtt-proxy-cluster-admin-" });
  await Deno.writeTextFile(`${dir}/admins`, `alice:${await hashPassword("alice-password", 10)}\n`);
  return {
    lines: ["admin.enabled = true", `admin.password_file = ${dir}/admins`],
    dir,
    async login(httpPort) {
      const response = await fetch(`http://127.0.0.1:${httpPort}/api/v1/login`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ username: "alice", password: "alice-password" }),
        signal: AbortSignal.timeout(WAIT_MS),
      });
      const body = await response.json();
      assert.equal(response.status, 200, JSON.stringify(body));
      return body.token;
    },
  };
}

Deno.test("cluster over RocketMQ: Will Delay is cancelled when the client comes back on another node in time", async () => {
  await withCluster(async (cluster) => {
    const [a, b] = [await cluster.start("a"), await cluster.start("b")];
    const watch = await connectJs(b.port, { clientId: "watch", protocolVersion: 5 });
    await watch.client.subscribeAsync("status/#", { qos: 1 });
    const options = {
      clientId: "delayed",
      protocolVersion: 5 as const,
      clean: false,
      properties: { sessionExpiryInterval: 60 },
      will: {
        topic: "status/delayed",
        payload: new TextEncoder().encode("gone") as never,
        qos: 1 as const,
        retain: false,
        properties: { willDelayInterval: 3 },
      },
    };
    const first = await connectJs(a.port, options);
    first.client.stream.destroy(); // an abnormal disconnect: the will is armed with its delay
    await sleep(1000);
    const back = await connectJs(b.port, options);
    await watch.inbox.expectCount(0, 4000);
    await endJs(back.client, watch.client);
  });
});

Deno.test("cluster over RocketMQ: while RocketMQ's proxy is down, local subscribers are served and /readyz says so; it recovers by itself", async () => {
  await withCluster(async (cluster) => {
    const a = await cluster.start("a", ["log.level = info"]);
    const local = await connectJs(a.port, { clientId: "local", protocolVersion: 5 });
    await local.client.subscribeAsync("l/#", { qos: 0 });
    const publisher = await connectJs(a.port, { clientId: "pub", protocolVersion: 5 });
    const proxy = await stopRocketMqProxy();
    try {
      await withTimeout(
        publisher.client.publishAsync("l/1", "during the outage", { qos: 0 }),
        WAIT_MS,
        "QoS 0 PUBLISH during the outage",
      );
      assert.deepEqual((await local.inbox.take(1)).map((m) => m.payload), ["during the outage"]);
      const deadline = Date.now() + 15_000;
      let readiness = await cluster.readiness(a);
      while (readiness.ok && Date.now() < deadline) {
        await sleep(200);
        readiness = await cluster.readiness(a);
      }
      assert.equal(readiness.ok, false, "/readyz reports the cluster log down");
      assert.match(readiness.text, /cluster/);
    } finally {
      await proxy.restart();
    }
    await cluster.ready(a, 60_000);
    // Bounded: MQTT.js waits for a PUBACK forever, and a lost one must fail this test, not hang the suite.
    assert.ok(
      publisher.client.connected,
      `the publisher is still connected after the outage; node a:\n${a.process.output().slice(-4000)}`,
    );
    await withTimeout(
      publisher.client.publishAsync("l/2", "after", { qos: 1 }),
      20_000,
      `QoS 1 PUBLISH after the outage (publisher connected: ${publisher.client.connected}); node a:\n${
        a.process.output().slice(-4000)
      }`,
    );
    assert.deepEqual((await local.inbox.take(2, 15_000)).map((m) => m.payload), [
      "during the outage",
      "after",
    ]);
    await endJs(local.client, publisher.client);
  });
});

/** kill -9 of the RocketMQ proxy started by scripts/rocketmq.sh (its pid file), and a way to start it again. */
async function stopRocketMqProxy(): Promise<{ restart(): Promise<void> }> {
  const { runtimeDir } = await import("../../storage/rocketmq/rocketmq_env.ts");
  const pid = Number((await Deno.readTextFile(`${runtimeDir}/proxy.pid`)).trim());
  Deno.kill(pid, "SIGKILL");
  return {
    async restart() {
      const script = new URL("../../../scripts/rocketmq.sh", import.meta.url).pathname;
      const result = await withTimeout(
        new Deno.Command("bash", { args: [script, "start"], stdout: "piped", stderr: "piped" }).output(),
        120_000,
        "scripts/rocketmq.sh start",
      );
      if (!result.success) {
        throw new Error(`rocketmq.sh start failed: ${new TextDecoder().decode(result.stderr)}`);
      }
    },
  };
}

Deno.test("cluster over RocketMQ: a node restarts and a new node joins while traffic flows; nothing is lost", async () => {
  await withCluster(async (cluster) => {
    const [a, b] = [await cluster.start("a"), await cluster.start("b")];
    await cluster.start("c");
    const subscriber = await connectJs(b.port, {
      clientId: "steady",
      protocolVersion: 5,
      clean: false,
      properties: { sessionExpiryInterval: 600 },
    });
    await subscriber.client.subscribeAsync("flow/#", { qos: 1 });
    const publisher = await connectJs(a.port, { clientId: "flow-pub", protocolVersion: 5 });
    await sleep(500);
    let sent = 0;
    let stop = false;
    const publishing = (async () => {
      while (!stop && sent < 2000) {
        await publisher.client.publishAsync("flow/1", `${sent}`, { qos: 1 });
        sent++;
      }
    })();
    try {
      await sleep(300);
      await cluster.kill("c");
      await cluster.start("c"); // with its disk
      await cluster.start("d"); // a new node: state from another
      await sleep(300);
    } finally {
      stop = true;
      await publishing;
    }
    const got = await subscriber.inbox.take(sent, 30_000);
    assert.deepEqual(got.map((m) => Number(m.payload)), Array.from({ length: sent }, (_, i) => i));
    await endJs(subscriber.client, publisher.client);
  });
});

Deno.test("cluster over RocketMQ: the ACL holds across nodes, for persistent sessions replayed on every node too", async () => {
  await withCluster(async (cluster) => {
    const acl = await Deno.makeTempFile({ suffix: ".acl" });
    await Deno.writeTextFile(acl, "allow readwrite #\ndeny subscribe secret/#\ndeny publish locked/#\n");
    try {
      const extra = [`auth.acl_file = ${acl}`, "auth.acl_default = deny"];
      const [a, b] = [await cluster.start("a", extra), await cluster.start("b", extra)];
      const reader = await connectJs(b.port, {
        clientId: "reader",
        protocolVersion: 5,
        clean: false,
        properties: { sessionExpiryInterval: 600 },
      });
      await reader.client.subscribeAsync("#", { qos: 1 });
      const writer = await connectJs(a.port, { clientId: "writer", protocolVersion: 5 });
      await sleep(500);
      await writer.client.publishAsync("secret/x", "hidden", { qos: 1 });
      await writer.client.publishAsync("open/x", "visible", { qos: 1 });
      const refused = await writer.client.publishAsync("locked/x", "refused", { qos: 1 }).then(
        (packet) => (packet as { reasonCode?: number } | undefined)?.reasonCode ?? 0,
        (error) => (error as { code?: number }).code,
      );
      assert.equal(refused, 0x87, "a PUBLISH the ACL forbids is refused (v5 0x87)");
      const got = await reader.inbox.take(1, 10_000);
      assert.deepEqual(got.map((m) => m.payload), ["visible"]);
      await reader.inbox.expectCount(1, 1000);
      await endJs(reader.client, writer.client);
    } finally {
      await Deno.remove(acl);
    }
  });
});
