/**
 * The Prometheus registry (text format 0.0.4) and the broker's metrics, checked against traffic the test
 * generates over real sockets, byte for byte.
 */
import assert from "node:assert/strict";
import { addOrUpdateUser } from "../../src/auth/mod.ts";
import { encode, type Packet } from "../../src/codec/mod.ts";
import {
  Counter,
  createBrokerMetrics,
  Gauge,
  Histogram,
  parseExposition,
  Registry,
  type Sample,
  TrafficMetrics,
} from "../../src/observe/mod.ts";
import { RawClient, withBroker } from "../helpers/broker.ts";
import { publishPacket, subscription } from "../helpers/clients.ts";

Deno.test("metrics: counters, gauges and histograms render in the text exposition format", () => {
  const registry = new Registry();
  const requests = registry.register(
    new Counter("app_requests_total", "Requests.\nSecond line \\ here.", ["code"]),
  );
  const temperature = registry.register(new Gauge("app_temperature", "Temperature."));
  const latency = registry.register(new Histogram("app_latency_seconds", "Latency.", [0.1, 1]));
  requests.labels("200").inc();
  requests.labels("200").inc(2);
  requests.labels('a"b\\c\nd').inc();
  temperature.set(-1.5);
  latency.observe(0.05);
  latency.observe(0.1);
  latency.observe(5);
  assert.equal(
    registry.render(),
    [
      "# HELP app_requests_total Requests.\\nSecond line \\\\ here.",
      "# TYPE app_requests_total counter",
      'app_requests_total{code="200"} 3',
      'app_requests_total{code="a\\"b\\\\c\\nd"} 1',
      "# HELP app_temperature Temperature.",
      "# TYPE app_temperature gauge",
      "app_temperature -1.5",
      "# HELP app_latency_seconds Latency.",
      "# TYPE app_latency_seconds histogram",
      'app_latency_seconds_bucket{le="0.1"} 2',
      'app_latency_seconds_bucket{le="1"} 2',
      'app_latency_seconds_bucket{le="+Inf"} 3',
      "app_latency_seconds_sum 5.15",
      "app_latency_seconds_count 3",
      "",
    ].join("\n"),
  );
  const samples = parseExposition(registry.render());
  assert.deepEqual(samples.find((s) => s.labels.code?.startsWith("a"))?.labels.code, 'a"b\\c\nd');
  assert.equal(
    samples.find((s) => s.name === "app_latency_seconds_bucket" && s.labels.le === "+Inf")?.value,
    3,
  );
});

Deno.test("metrics: invalid names, wrong label counts, negative increments and duplicates are refused", () => {
  assert.throws(() => new Counter("bad-name", "x"), /invalid metric name/);
  assert.throws(() => new Counter("ok_total", "x", ["le"]), /invalid label name/);
  assert.throws(() => new Histogram("h", "x", [1, 1]), /buckets must increase/);
  const counter = new Counter("c_total", "x", ["a"]);
  assert.throws(() => counter.labels("1", "2"), /takes 1 label/);
  assert.throws(() => counter.labels("1").inc(-1), /only goes up/);
  const registry = new Registry();
  registry.register(counter);
  assert.throws(() => registry.register(new Counter("c_total", "again")), /registered twice/);
});

Deno.test("metrics: timeFlush observes resolved and rejected flushes and passes the outcome through", async () => {
  const traffic = new TrafficMetrics();
  assert.equal(await traffic.timeFlush(new Promise((resolve) => setTimeout(() => resolve(7), 20))), 7);
  await assert.rejects(traffic.timeFlush(Promise.reject(new Error("disk full"))), /disk full/);
  const { count, sum } = traffic.storeFlushSeconds.get();
  assert.equal(count, 2);
  assert.ok(sum >= 0.015, `the 20 ms flush was timed (${sum} s)`);
});

Deno.test("metrics: two brokers' traffic metrics count apart", () => {
  const [one, two] = [new TrafficMetrics(), new TrafficMetrics()];
  one.packetsReceived.labels("publish").inc(3);
  two.packetsReceived.labels("publish").inc();
  assert.deepEqual([one.packetsReceived.get("publish"), two.packetsReceived.get("publish")], [3, 1]);
});

Deno.test("metrics: packets counted by type in runs, alternating between two types, and among three", () => {
  const traffic = new TrafficMetrics();
  const sequence = [
    ...Array(5).fill("publish"),
    ...Array(8).fill(0).map((_, i) => i % 2 === 0 ? "puback" : "publish"),
    "pingresp",
    "publish",
    "puback",
    "pingresp",
    "suback",
    "puback",
  ];
  for (const type of sequence) traffic.sent(type);
  for (const type of ["publish", "puback", "pingresp", "suback"]) {
    assert.equal(traffic.packetsSent.get(type), sequence.filter((t) => t === type).length, type);
  }
  assert.equal(traffic.packetsReceived.get("publish"), 0, "received counts apart");
});

function value(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  const found = samples.find((s) =>
    s.name === name && Object.entries(labels).every(([key, expected]) => s.labels[key] === expected)
  );
  assert.ok(found, `no sample ${name}${JSON.stringify(labels)}`);
  return found.value;
}

/** A raw 3.1.1 client that counts exactly the bytes it sends and receives. */
class CountingClient {
  sent = 0;
  received = 0;
  private constructor(readonly raw: RawClient) {}

  static async open(port: number, clientId: string, cleanStart = true): Promise<CountingClient> {
    const client = new CountingClient(await RawClient.connect(port, 4));
    await client.send({
      type: "connect",
      protocolName: "MQTT",
      protocolVersion: 4,
      cleanStart,
      keepAlive: 60,
      clientId,
      properties: {},
    });
    assert.equal((await client.read()).type, "connack");
    return client;
  }

  async send(packet: Packet): Promise<void> {
    const bytes = encode(packet, 4);
    this.sent += bytes.byteLength;
    await this.raw.send(bytes);
  }

  async read(): Promise<Packet> {
    const packet = await this.raw.readPacket();
    this.received += encode(packet, 4).byteLength; // 3.1.1 encodings are canonical
    return packet;
  }
}

Deno.test("metrics: connections, packets and bytes match the traffic of N clients publishing M messages", async () => {
  const N = 3;
  const M = 4;
  await withBroker("", async ({ port, running }) => {
    const before = parseExposition(running.metrics.render());
    const subscriber = await CountingClient.open(port, "metrics-sub");
    await subscriber.send({
      type: "subscribe",
      packetId: 1,
      subscriptions: [subscription("m/#", 1)],
      properties: {},
    });
    assert.equal((await subscriber.read()).type, "suback");
    const publishers: CountingClient[] = [];
    for (let i = 0; i < N; i++) publishers.push(await CountingClient.open(port, `metrics-pub-${i}`));
    for (const [i, publisher] of publishers.entries()) {
      for (let j = 0; j < M; j++) {
        await publisher.send(publishPacket(`m/${i}`, `message ${i}.${j}`, 1, { packetId: j + 1 }));
        assert.equal((await publisher.read()).type, "puback");
      }
    }
    for (let k = 0; k < N * M; k++) {
      const delivery = await subscriber.read();
      assert.equal(delivery.type, "publish");
      await subscriber.send({
        type: "puback",
        packetId: (delivery as { packetId: number }).packetId,
        reasonCode: 0,
        properties: {},
      });
    }
    // The last PUBACK must have been read by the broker before the scrape.
    const clients = [subscriber, ...publishers];
    const sent = clients.reduce((sum, c) => sum + c.sent, 0);
    for (let i = 0; i < 100 && running.connections.traffic().bytesReceived < sent; i++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    const after = parseExposition(running.metrics.render());
    const delta = (name: string, labels: Record<string, string> = {}) =>
      value(after, name, labels) -
      (before.some((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
        ? value(before, name, labels)
        : 0);

    assert.equal(value(after, "mqtt_connections", { listener: "default" }), N + 1);
    assert.equal(value(after, "mqtt_connections_total", { listener: "default" }), N + 1);
    assert.equal(delta("mqtt_packets_received_total", { type: "connect" }), N + 1);
    assert.equal(delta("mqtt_packets_received_total", { type: "subscribe" }), 1);
    assert.equal(delta("mqtt_packets_received_total", { type: "publish" }), N * M);
    assert.equal(delta("mqtt_packets_received_total", { type: "puback" }), N * M);
    assert.equal(delta("mqtt_packets_sent_total", { type: "connack" }), N + 1);
    assert.equal(delta("mqtt_packets_sent_total", { type: "suback" }), 1);
    assert.equal(delta("mqtt_packets_sent_total", { type: "puback" }), N * M);
    assert.equal(delta("mqtt_packets_sent_total", { type: "publish" }), N * M);
    assert.equal(value(after, "mqtt_bytes_received_total"), sent, "every byte the clients sent");
    assert.equal(
      value(after, "mqtt_bytes_sent_total"),
      clients.reduce((sum, c) => sum + c.received, 0),
      "every byte the clients received",
    );
    for (const reason of ["queue_full", "expired", "too_large", "qos0_offline", "slow_consumer"]) {
      assert.equal(value(after, "mqtt_messages_dropped_total", { reason }), 0);
    }
    assert.equal(value(after, "mqtt_auth_failures_total"), 0);
    for (const client of clients) await client.raw.close();
    for (let i = 0; i < 100 && running.connections.connectionCount > 0; i++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    const closed = parseExposition(running.metrics.render());
    assert.equal(value(closed, "mqtt_connections", { listener: "default" }), 0);
    assert.equal(value(closed, "mqtt_connections_total", { listener: "default" }), N + 1);
  });
});

Deno.test("metrics: QoS 0 to an offline session counts as dropped{reason=qos0_offline}; bad passwords as auth failures", async () => {
  const passwords = await Deno.makeTempFile();
  await Deno.writeTextFile(passwords, await addOrUpdateUser("", "alice", "right"));
  try {
    await withBroker(`auth.password_file = ${passwords}`, async ({ port, running }) => {
      const login = (clientId: string, password: string, cleanStart = true) =>
        ({
          type: "connect",
          protocolName: "MQTT",
          protocolVersion: 4,
          cleanStart,
          keepAlive: 60,
          clientId,
          username: "alice",
          password: new TextEncoder().encode(password),
          properties: {},
        }) as const;
      const offline = await RawClient.connect(port, 4);
      await offline.sendPacket(login("sleeper", "right", false), 4);
      assert.equal((await offline.readPacket()).type, "connack");
      await offline.sendPacket({
        type: "subscribe",
        packetId: 1,
        subscriptions: [subscription("d/#", 0)],
        properties: {},
      }, 4);
      assert.equal((await offline.readPacket()).type, "suback");
      await offline.sendPacket({ type: "disconnect", reasonCode: 0, properties: {} }, 4);
      await offline.expectClosed();

      const publisher = await RawClient.connect(port, 4);
      await publisher.sendPacket(login("pub", "right"), 4);
      assert.equal((await publisher.readPacket()).type, "connack");
      await publisher.sendPacket(publishPacket("d/x", "lost", 0), 4);
      await publisher.sendPacket(publishPacket("d/x", "lost too", 0), 4);

      const intruder = await RawClient.connect(port, 4);
      await intruder.sendPacket(login("intruder", "wrong"), 4);
      await intruder.expectClosed();

      const samples = parseExposition(running.metrics.render());
      for (
        let i = 0;
        i < 100 &&
        value(parseExposition(running.metrics.render()), "mqtt_messages_dropped_total", {
            reason: "qos0_offline",
          }) < 2;
        i++
      ) {
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      assert.equal(
        value(parseExposition(running.metrics.render()), "mqtt_messages_dropped_total", {
          reason: "qos0_offline",
        }),
        2,
      );
      assert.equal(value(samples, "mqtt_auth_failures_total", { method: "password" }), 1);
      await publisher.close();
    });
  } finally {
    await Deno.remove(passwords);
  }
});

Deno.test("metrics: a cluster node's series come from its sample; a single node has none", () => {
  const sources = {
    listeners: () => [],
    traffic: () => ({ bytesReceived: 0, bytesSent: 0 }),
    drops: () => ({
      queueFull: 0,
      expired: 0,
      tooLarge: 0,
      qos0Offline: 0,
      slowConsumer: 0,
      notAuthorized: 0,
    }),
    sessions: () => ({ queued: 0, inflight: 0 }),
    logins: () => ({}),
  };
  const sample = {
    up: true,
    nodes: 3,
    log: {
      entriesAppended: 120,
      appendsFailed: 2,
      messagesSent: 7,
      sendFailures: 4,
      pendingBytes: 512,
      entriesApplied: 360,
      resendsDropped: 1,
    },
  };
  const clustered = createBrokerMetrics(new TrafficMetrics(), { ...sources, cluster: () => sample });
  const values = (registry: ReturnType<typeof createBrokerMetrics>) =>
    Object.fromEntries(
      parseExposition(registry.render()).filter((s) => s.name.startsWith("mqtt_cluster_")).map((s) => [
        s.name,
        s.value,
      ]),
    );
  assert.deepEqual(values(clustered), {
    mqtt_cluster_up: 1,
    mqtt_cluster_nodes: 3,
    mqtt_cluster_log_pending_bytes: 512,
    mqtt_cluster_log_entries_appended_total: 120,
    mqtt_cluster_log_appends_failed_total: 2,
    mqtt_cluster_log_messages_sent_total: 7,
    mqtt_cluster_log_send_failures_total: 4,
    mqtt_cluster_log_entries_applied_total: 360,
    mqtt_cluster_log_resends_dropped_total: 1,
  });
  sample.up = false;
  sample.log.entriesApplied = 400;
  assert.equal(values(clustered).mqtt_cluster_up, 0, "read again at each scrape");
  assert.equal(values(clustered).mqtt_cluster_log_entries_applied_total, 400);
  assert.deepEqual(values(createBrokerMetrics(new TrafficMetrics(), sources)), {});
});
