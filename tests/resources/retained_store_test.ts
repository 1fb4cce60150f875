/**
 * Retained payloads live in the embedded store, not in memory: a broker holding 200 MiB of retained
 * messages starts without reading them, and a wildcard subscriber that reads slowly gets every one of them,
 * read from the store a page at a time as it takes them. The broker's resident memory (VmRSS, and its high
 * water mark VmHWM, from /proc: the store's file cache is not in it) stays far below the 200 MiB; a broker
 * holding every retained payload in memory is above it as soon as it has started.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { Decoder, encode, type Packet } from "../../src/codec/mod.ts";
import { connect, publishPacket } from "../helpers/clients.ts";
import { cgroupsAvailable, createMemoryCgroup, MB, startLimitedBroker } from "./support.ts";

const MESSAGES = 800;
const PAYLOAD_BYTES = 256 * 1024; // 800 × 256 KiB = 200 MiB
const RETAINED_BYTES = MESSAGES * PAYLOAD_BYTES;
/** The cgroup only guards the machine: the assertions are on the broker's resident memory. */
const LIMIT = 1024 * MB;
/**
 * Far below the retained bytes: the broker's own size (about 90 MB here) and what one subscriber has in
 * flight (its inflight window and output, a page read, garbage not collected yet).
 */
const MAX_RESIDENT = 170 * MB;
const UNAVAILABLE = " (ignored: this machine cannot create a memory cgroup)";

function report(line: string): void {
  // deno-lint-ignore no-console
  console.log(`    [retained] ${line}`);
}

/**
 * The broker process's resident memory now and at its highest, from /proc (bytes). Read by `cat`: Deno lets
 * a process read /proc only with --allow-all, and the test task grants named permissions.
 */
function resident(pid: number): { rss: number; hwm: number } {
  const output = new Deno.Command("cat", { args: [`/proc/${pid}/status`] }).outputSync();
  const status = new TextDecoder().decode(output.stdout);
  const kib = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB$`, "m").exec(status)![1]) * 1024;
  return { rss: kib("VmRSS"), hwm: kib("VmHWM") };
}

const mb = (bytes: number) => `${(bytes / MB).toFixed(0)} MB`;

/** Publishes the retained tree: QoS 1, each acknowledged (durable) before the next. */
async function publishTree(port: number): Promise<void> {
  const { client } = await connect(port, "tree-publisher", 4);
  const payload = new Uint8Array(PAYLOAD_BYTES);
  for (let i = 0; i < MESSAGES; i++) {
    payload.fill(i % 251);
    await client.sendPacket(
      publishPacket(`tree/${i % 10}/${i}`, "", 1, { packetId: i + 1, payload, retain: true }),
      4,
    );
    assert.equal((await client.readPacket()).type, "puback");
  }
  await client.close();
}

/**
 * Subscribes to `tree/#` at QoS 1 and reads slowly (64 KiB, then a pause), acknowledging each message;
 * checks each one's payload. `sample` runs between reads. Resolves with what it received.
 */
async function slowSubscriber(port: number, sample: () => void): Promise<Map<string, number>> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const write = async (packet: Packet) => {
    const bytes = encode(packet, 5);
    for (let offset = 0; offset < bytes.length;) offset += await conn.write(bytes.subarray(offset));
  };
  await write({
    type: "connect",
    protocolName: "MQTT",
    protocolVersion: 5,
    cleanStart: true,
    keepAlive: 0,
    clientId: "slow-reader",
    properties: {},
  });
  await write({
    type: "subscribe",
    packetId: 1,
    subscriptions: [{
      topicFilter: "tree/#",
      qos: 1,
      noLocal: false,
      retainAsPublished: false,
      retainHandling: 0,
    }],
    properties: {},
  });
  const decoder = new Decoder({ maxPacketSize: 1 << 20, protocolVersion: 5 });
  const received = new Map<string, number>();
  const buffer = new Uint8Array(64 * 1024);
  const deadline = Date.now() + 300_000;
  try {
    while (received.size < MESSAGES) {
      assert.ok(Date.now() < deadline, `only ${received.size} of ${MESSAGES} retained messages in 300 s`);
      const n = await conn.read(buffer);
      assert.notEqual(n, null, `the broker closed the connection after ${received.size} messages`);
      decoder.push(buffer.subarray(0, n!));
      for (let packet = decoder.next(); packet; packet = decoder.next()) {
        if (packet.type !== "publish") continue;
        assert.ok(packet.retain, `${packet.topic} without RETAIN`);
        const index = Number(packet.topic.split("/")[2]);
        assert.equal(packet.payload.byteLength, PAYLOAD_BYTES);
        assert.ok(packet.payload.every((byte) => byte === index % 251), `${packet.topic}: wrong payload`);
        received.set(packet.topic, (received.get(packet.topic) ?? 0) + 1);
        await write({ type: "puback", packetId: packet.packetId!, reasonCode: 0, properties: {} });
      }
      sample();
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  } finally {
    conn.close();
  }
  return received;
}

Deno.test({
  name:
    "retained store: 200 MiB of retained payload stay in the store across a restart and a slow wildcard " +
    "subscriber's reads; the broker's resident memory stays far below it" +
    (cgroupsAvailable ? "" : UNAVAILABLE),
  ignore: !cgroupsAvailable,
  fn: async () => {
    const dataDir = await Deno.makeTempDir({ prefix: "mqtt-proxy-retained-store-" });
    const lines = [
      "storage.type = embedded",
      "storage.durability = sync",
      `storage.dir = ${join(dataDir, "data")}`,
      `mqtt.max_retained_bytes = ${RETAINED_BYTES + MB}`,
    ];
    try {
      const first = await startLimitedBroker(lines);
      try {
        await publishTree(first.port);
      } finally {
        await first.stop();
      }
      const cgroup = createMemoryCgroup(LIMIT)!;
      const broker = await startLimitedBroker(lines, cgroup.wrap);
      try {
        const pid = broker.broker.child.pid;
        const started = resident(pid);
        report(`after a restart with ${mb(RETAINED_BYTES)} retained: VmRSS ${mb(started.rss)}`);
        let highest = started.rss;
        const received = await slowSubscriber(broker.port, () => {
          highest = Math.max(highest, resident(pid).rss);
        });
        const ended = resident(pid);
        report(
          `after a slow subscriber read them all: VmRSS ${mb(ended.rss)}, highest sampled ${mb(highest)}, ` +
            `VmHWM ${mb(ended.hwm)}`,
        );
        assert.equal(received.size, MESSAGES);
        assert.ok([...received.values()].every((count) => count === 1), "a retained message sent twice");
        assert.ok(started.rss < MAX_RESIDENT, `VmRSS ${mb(started.rss)} after the restart`);
        assert.ok(ended.hwm < MAX_RESIDENT, `VmHWM ${mb(ended.hwm)} while the subscriber read`);
        assert.ok(await broker.alive(), "the broker was killed");
      } finally {
        await broker.stop();
        await cgroup.remove();
      }
    } finally {
      await Deno.remove(dataDir, { recursive: true });
    }
  },
});
