/**
 * Crash tests with a real process: the broker runs as a child with the embedded store (durability sync),
 * clients publish QoS 1 and 2 to persistent sessions that are online and offline, the broker is killed
 * with SIGKILL at random moments over several rounds and restarted, and every message whose PUBACK or
 * PUBREC the publisher received must reach every subscriber: QoS 2 exactly once, QoS 1 in order and until
 * the subscriber acknowledged it. In the second test the subscribers come and go while messages flow (a
 * DISCONNECT, a dropped socket, a takeover by a new connection) and acknowledge late or not at all.
 * Replay a run with CRASH_SEED=<seed> (CRASH_ROUNDS=<n> for more rounds).
 */
import assert from "node:assert/strict";
import type { Packet, QoS, Will } from "../../src/codec/mod.ts";
import { RawClient } from "../helpers/broker.ts";
import { publishPacket, subscription } from "../helpers/clients.ts";
import { type BrokerProcess, freePort, startBrokerProcess } from "../helpers/process.ts";

const ROUNDS = 3;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function mulberry32(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

async function connectRaw(
  port: number,
  clientId: string,
  cleanStart: boolean,
  will?: Will,
): Promise<RawClient> {
  const client = await RawClient.connect(port, 4);
  try {
    await client.sendPacket({
      type: "connect",
      protocolName: "MQTT",
      protocolVersion: 4,
      cleanStart,
      keepAlive: 0,
      clientId,
      will,
      properties: {},
    }, 4);
    const connack = await client.readPacket();
    assert.ok(connack.type === "connack" && connack.reasonCode === 0, `${clientId} refused`);
  } catch (error) {
    await client.close(); // the broker died before its CONNACK
    throw error;
  }
  return client;
}

/**
 * How a subscriber answers a QoS 1 PUBLISH (PUBACK) or a QoS 2 one (PUBREC): at once, a little later on the
 * same connection, or never (the broker must send it again when the client is back).
 */
interface AckPolicy {
  later: number;
  never: number;
  random: () => number;
}

const ACK_AT_ONCE: AckPolicy = { later: 0, never: 0, random: () => 1 };

/** A persistent subscriber that keeps its QoS 2 state across connections and broker restarts. */
class Subscriber {
  /** Application-level deliveries, in arrival order: "publisher:seq:qos". */
  readonly delivered: string[] = [];
  /** The QoS 1 messages ("publisher:seq") it sent a PUBACK for, on any connection. */
  readonly acknowledged = new Set<string>();
  /** QoS 2 packet ids received and not yet released: a resend with one of these is not a new message. */
  readonly #awaitingRelease = new Set<number>();
  #client: RawClient | undefined;
  #loop: Promise<void> | undefined;

  constructor(readonly clientId: string, private policy: AckPolicy = ACK_AT_ONCE) {}

  async connect(port: number, subscribeTo?: string[], policy?: AckPolicy): Promise<void> {
    if (policy) this.policy = policy;
    this.#client = await connectRaw(port, this.clientId, false);
    if (subscribeTo) {
      await this.#client.sendPacket({
        type: "subscribe",
        packetId: 1,
        subscriptions: subscribeTo.map((filter) => subscription(filter, 2)),
        properties: {},
      }, 4);
      // Nothing else is sent to it before: the subscription is in the store once this is here.
      assert.equal((await this.#client.readPacket()).type, "suback");
    }
    this.#loop = this.#read(this.#client);
  }

  async disconnect(): Promise<void> {
    await this.#client?.send([0xe0, 0]).catch(() => {}); // the broker may be dead already
    await this.drop();
  }

  /** Closes the socket without a DISCONNECT, as a client that loses its network does. */
  async drop(): Promise<void> {
    const client = this.#client;
    this.#client = undefined;
    await client?.close();
    await this.#loop;
  }

  /**
   * Connects, stays a random while, leaves (DISCONNECT, a dropped socket, or a new connection that takes
   * the session over) and comes back, until it cannot connect (the broker was killed).
   */
  async comeAndGo(port: number, random: () => number): Promise<void> {
    try {
      await this.connect(port);
    } catch {
      return;
    }
    for (;;) {
      await sleep(50 + random() * 300);
      const leave = random();
      if (leave < 0.8) {
        if (leave < 0.4) await this.disconnect();
        else await this.drop();
        await sleep(random() * 80);
        try {
          await this.connect(port);
        } catch {
          return;
        }
      } else if (!(await this.#takeOver(port))) {
        return;
      }
    }
  }

  /** Connects again while the last connection is still open, which the broker then closes (a takeover). */
  async #takeOver(port: number): Promise<boolean> {
    const old = this.#client;
    const oldLoop = this.#loop;
    let connected = true;
    try {
      await this.connect(port);
    } catch {
      connected = false;
      this.#client = undefined;
    }
    await old?.close();
    await oldLoop;
    return connected;
  }

  /** Waits until nothing has arrived for `quietMs`. */
  async settle(quietMs: number): Promise<void> {
    let count = -1;
    while (count !== this.delivered.length) {
      count = this.delivered.length;
      await sleep(quietMs);
    }
  }

  /** Answers `packet` on `client` now, later or never, as the policy draws. */
  #answer(client: RawClient, packet: Packet, acknowledged?: string): void {
    const { later, never, random } = this.policy;
    const draw = random();
    if (draw < never) return;
    const send = () => {
      if (this.#client !== client) return; // that connection is gone: the broker sends it again
      client.sendPacket(packet, 4).then(
        () => acknowledged !== undefined && this.acknowledged.add(acknowledged),
        () => {}, // the broker may be dead already: the next read ends the loop
      );
    };
    if (draw < never + later) setTimeout(send, 1 + random() * 30);
    else send();
  }

  async #read(client: RawClient): Promise<void> {
    for (;;) {
      let packet: Packet;
      try {
        packet = await client.readPacket();
      } catch {
        if (client.closedByServer) return;
        continue; // no traffic for a while
      }
      if (packet.type === "publish") {
        const text = new TextDecoder().decode(packet.payload);
        const packetId = packet.packetId!;
        if (packet.qos === 1) {
          this.delivered.push(`${text}:1`);
          this.#answer(client, { type: "puback", packetId, reasonCode: 0, properties: {} }, text);
        } else if (packet.qos === 2) {
          if (!this.#awaitingRelease.has(packetId)) this.delivered.push(`${text}:2`);
          this.#awaitingRelease.add(packetId);
          this.#answer(client, { type: "pubrec", packetId, reasonCode: 0, properties: {} });
        } else {
          this.delivered.push(`${text}:0`);
        }
      } else if (packet.type === "pubrel") {
        this.#awaitingRelease.delete(packet.packetId);
        await client.sendPacket(
          { type: "pubcomp", packetId: packet.packetId, reasonCode: 0, properties: {} },
          4,
        )
          .catch(() => {});
      }
    }
  }
}

/** Publishes numbered messages until the broker dies; records which ones were acknowledged. */
async function publishUntilCrash(
  port: number,
  publisher: string,
  qos: QoS,
  firstSeq: number,
  acked: Set<string>,
  topicPrefix = "crash",
): Promise<number> {
  const client = await connectRaw(port, publisher, true);
  let seq = firstSeq;
  const pending = new Map<number, string>();
  const reader = (async () => {
    for (;;) {
      let packet: Packet;
      try {
        packet = await client.readPacket();
      } catch {
        if (client.closedByServer) return;
        continue;
      }
      if (packet.type === "puback" || packet.type === "pubrec") {
        const key = pending.get(packet.packetId);
        if (key && packet.reasonCode < 0x80) acked.add(key);
        pending.delete(packet.packetId);
        if (packet.type === "pubrec") {
          await client.sendPacket({
            type: "pubrel",
            packetId: packet.packetId,
            reasonCode: 0,
            properties: {},
          }, 4)
            .catch(() => {});
        }
      }
    }
  })();
  try {
    while (!client.closedByServer && seq < firstSeq + 100_000) {
      if (pending.size >= 20) {
        await sleep(1);
        continue;
      }
      const packetId = (seq % 65535) + 1;
      const key = `${publisher}:${seq}`;
      pending.set(packetId, key);
      await client.sendPacket(publishPacket(`${topicPrefix}/${publisher}`, key, qos, { packetId }), 4);
      seq++;
    }
  } catch {
    // the broker died mid-write
  }
  await client.close();
  await reader;
  return seq;
}

/**
 * Every message the broker acknowledged reached every subscriber: QoS 1 ones until the subscriber
 * acknowledged them (one it received but did not acknowledge must come again), QoS 2 ones exactly once;
 * new QoS 1 messages from one publisher ("p1") arrive in order.
 */
function assertNothingLost(subscribers: Subscriber[], acked: Set<string>, qos2: Set<string>): void {
  for (const subscriber of subscribers) {
    const seen = new Map<string, number>();
    for (const entry of subscriber.delivered) {
      const key = entry.slice(0, entry.lastIndexOf(":"));
      seen.set(key, (seen.get(key) ?? 0) + 1);
    }
    const missing = [...acked].filter((key) => !seen.has(key));
    assert.deepEqual(
      missing.slice(0, 10),
      [],
      `${subscriber.clientId} lost ${missing.length} acknowledged messages`,
    );
    const neverAcknowledged = [...acked].filter((key) => !qos2.has(key) && !subscriber.acknowledged.has(key));
    assert.deepEqual(
      neverAcknowledged.slice(0, 10),
      [],
      `${subscriber.clientId}: ${neverAcknowledged.length} acknowledged QoS 1 messages received but not sent again until acknowledged`,
    );
    const duplicated = [...qos2].filter((key) => (seen.get(key) ?? 0) > 1);
    assert.deepEqual(duplicated.slice(0, 10), [], `${subscriber.clientId} got QoS 2 messages twice`);
    // QoS 1 may be repeated after a crash, but new messages from one publisher arrive in order.
    const firstSeen = new Set<number>();
    let last = -1;
    for (const entry of subscriber.delivered) {
      if (!entry.startsWith("p1:")) continue;
      const seq = Number(entry.split(":")[1]);
      if (firstSeen.has(seq)) continue;
      firstSeen.add(seq);
      assert.ok(seq > last, `${subscriber.clientId}: QoS 1 message ${seq} arrived after ${last}`);
      last = seq;
    }
  }
}

async function writeConfig(dir: string, port: number, settings: string[] = []): Promise<string> {
  const configPath = `${dir}/mqtt.properties`;
  await Deno.writeTextFile(
    configPath,
    [
      "listener.default.host = 127.0.0.1",
      `listener.default.port = ${port}`,
      "storage.type = embedded",
      `storage.dir = ${dir}/data`,
      "storage.durability = sync",
      "mqtt.max_queued_messages = 0",
      "log.level = warn",
      "sys.interval_seconds = 0",
      ...settings,
    ].join("\n"),
  );
  return configPath;
}

Deno.test("crash: kill -9 at random moments loses no acknowledged QoS 1/2 message, retained, subscription or will", async () => {
  const seed = Number(Deno.env.get("CRASH_SEED") ?? Date.now() % 1_000_000);
  const random = mulberry32(seed);
  const dir = await Deno.makeTempDir({ prefix: "mqtt-proxy-crash-" });
  const port = freePort();
  const configPath = await writeConfig(dir, port);

  const online = new Subscriber("sub-online");
  const offline = new Subscriber("sub-offline");
  const watcher = new Subscriber("will-watcher");
  const acked = new Set<string>();
  const qos2 = new Set<string>();
  const next = { q1: 0, q2: 0 };
  let broker: BrokerProcess | undefined;
  try {
    for (let round = 0; round < ROUNDS; round++) {
      broker = await startBrokerProcess(configPath, port);
      const first = round === 0;
      await online.connect(port, first ? ["crash/#"] : undefined);
      await watcher.connect(port, first ? ["wills/#"] : undefined);
      if (first) {
        await offline.connect(port, ["crash/#"]);
        await offline.disconnect();
        const retainer = await connectRaw(port, "retainer", true);
        await retainer.sendPacket(
          publishPacket("kept/retained", "survives", 1, { packetId: 1, retain: true }),
          4,
        );
        assert.equal((await retainer.readPacket()).type, "puback");
        await retainer.close();
      }
      const will: Will = {
        topic: `wills/round-${round}`,
        payload: new TextEncoder().encode(`died-${round}`),
        qos: 1,
        retain: false,
        properties: {},
      };
      const willer = await connectRaw(port, `willer-${round}`, true, will);
      const ackedBefore = new Set<string>();
      const runs = [
        publishUntilCrash(port, "p1", 1, next.q1, ackedBefore),
        publishUntilCrash(port, "p2", 2, next.q2, ackedBefore),
      ];
      await sleep(300 + random() * 700);
      await broker.kill9();
      [next.q1, next.q2] = await Promise.all(runs);
      for (const key of ackedBefore) {
        acked.add(key);
        if (key.startsWith("p2:")) qos2.add(key);
      }
      await Promise.all([online.disconnect(), watcher.disconnect(), willer.close()]);
    }
    broker = await startBrokerProcess(configPath, port);
    await Promise.all([online.connect(port), offline.connect(port), watcher.connect(port)]);
    await Promise.all([online.settle(1500), offline.settle(1500), watcher.settle(500)]);

    const fresh = await connectRaw(port, "fresh", true);
    await fresh.sendPacket({
      type: "subscribe",
      packetId: 1,
      subscriptions: [subscription("kept/#", 1)],
      properties: {},
    }, 4);
    assert.equal((await fresh.readPacket()).type, "suback");
    const retained = await fresh.readPacket();
    assert.ok(retained.type === "publish" && retained.retain, "the retained message did not survive");
    await fresh.close();

    // deno-lint-ignore no-console
    console.log(
      `crash seed ${seed}: ${acked.size} acknowledged (${qos2.size} QoS 2); delivered online ${online.delivered.length}, offline ${offline.delivered.length}; wills ${watcher.delivered.length}`,
    );
    assertNothingLost([online, offline], acked, qos2);
    const wills = new Set(watcher.delivered.map((entry) => entry.split(":")[0]));
    assert.equal(wills.size, ROUNDS, `wills published after restarts: ${[...wills].join(", ")}`);
  } finally {
    await Promise.all([online.disconnect(), offline.disconnect(), watcher.disconnect()]).catch(() => {});
    if (broker) await broker.terminate().catch(() => {});
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("crash: subscribers that come and go, acknowledging late or never, lose no acknowledged message across kill -9", async () => {
  const seed = Number(Deno.env.get("CRASH_SEED") ?? Date.now() % 1_000_000);
  const rounds = Number(Deno.env.get("CRASH_ROUNDS") ?? ROUNDS);
  const random = mulberry32(seed);
  const dir = await Deno.makeTempDir({ prefix: "mqtt-proxy-crash-churn-" });
  const port = freePort();
  // The default window (kept deliveries in flight meet clients leaving), or a small one (most deliveries
  // wait in the queue behind it, go offline with the client and are paged back).
  const maxInflight = random() < 0.5 ? 8 : 100;
  const configPath = await writeConfig(dir, port, [`mqtt.max_inflight = ${maxInflight}`]);
  // Deliveries the store keeps until its next write (sent, not yet acknowledged) meet clients that leave
  // with them unacknowledged, acknowledge them on a connection that is then dropped, or come back for them.
  const policy: AckPolicy = { later: 0.2, never: 0.1, random };
  const subscribers = ["churn-a", "churn-b", "churn-c"].map((id) => new Subscriber(id, policy));
  const acked = new Set<string>();
  const qos2 = new Set<string>();
  const next = { q1: 0, q2: 0 };
  let broker: BrokerProcess | undefined;
  try {
    for (let round = 0; round < rounds; round++) {
      broker = await startBrokerProcess(configPath, port);
      if (round === 0) {
        for (const subscriber of subscribers) {
          await subscriber.connect(port, ["churn/#"]);
          await subscriber.disconnect();
        }
      }
      const ackedBefore = new Set<string>();
      const runs = [
        publishUntilCrash(port, "p1", 1, next.q1, ackedBefore, "churn"),
        publishUntilCrash(port, "p2", 2, next.q2, ackedBefore, "churn"),
      ];
      const comings = subscribers.map((subscriber) => subscriber.comeAndGo(port, random));
      await sleep(300 + random() * 1200);
      await broker.kill9();
      [next.q1, next.q2] = await Promise.all(runs);
      await Promise.all(comings);
      for (const key of ackedBefore) {
        acked.add(key);
        if (key.startsWith("p2:")) qos2.add(key);
      }
    }
    broker = await startBrokerProcess(configPath, port);
    await Promise.all(subscribers.map((subscriber) => subscriber.connect(port, undefined, ACK_AT_ONCE)));
    await Promise.all(subscribers.map((subscriber) => subscriber.settle(1500)));
    // deno-lint-ignore no-console
    console.log(
      `crash churn seed ${seed}, max_inflight ${maxInflight}: ${acked.size} acknowledged (${qos2.size} QoS 2) over ${rounds} rounds; delivered ${
        subscribers.map((subscriber) => subscriber.delivered.length).join(", ")
      }`,
    );
    assertNothingLost(subscribers, acked, qos2);
  } finally {
    await Promise.all(subscribers.map((subscriber) => subscriber.disconnect())).catch(() => {});
    if (broker) await broker.terminate().catch(() => {});
    await Deno.remove(dir, { recursive: true });
  }
});
