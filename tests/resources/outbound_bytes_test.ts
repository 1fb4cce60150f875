/**
 * A client that never reads cannot make the broker hold more than mqtt.max_outbound_bytes for it, whatever
 * the message kind: retained messages sent on SUBSCRIBE, live messages, and in-flight ones re-sent when a
 * session resumes. What is not sent waits in the session queue (QoS 1/2, within the queue limits) or is
 * dropped and counted (QoS 0). The broker runs in a memory cgroup: over the limit the kernel kills it.
 *
 * Each case has ten non-reading clients and messages of hundreds of KiB; unbounded, each client's output
 * alone would hold 50–60 MiB (ten non-readers of a 60 MiB retained tree took 850 MB).
 */
import assert from "node:assert/strict";
import { Decoder, encode, type Packet } from "../../src/codec/mod.ts";
import { connect, publishPacket, subscription } from "../helpers/clients.ts";
import { Bystander, nonReadingClient } from "../hostile/support.ts";
import { cgroupsAvailable, createMemoryCgroup, MB, startLimitedBroker } from "./support.ts";

/** The broker's memory budget in these tests: its idle size plus the messages themselves, with room. */
const LIMIT = 320 * MB;
const CLIENTS = 10;
const UNAVAILABLE = " (ignored: this machine cannot create a memory cgroup)";

function report(line: string): void {
  // deno-lint-ignore no-console
  console.log(`    [limits] ${line}`);
}

/** CONNECT (v5; persistent for an hour) followed by `packets`, as one write. */
function handshake(clientId: string, packets: Packet[]): Uint8Array {
  const connect = encode({
    type: "connect",
    protocolName: "MQTT",
    protocolVersion: 5,
    cleanStart: false,
    keepAlive: 0,
    clientId,
    properties: { sessionExpiryInterval: 3600 },
  }, 5);
  const rest = packets.map((packet) => encode(packet, 5));
  const out = new Uint8Array([connect, ...rest].reduce((sum, bytes) => sum + bytes.length, 0));
  let offset = 0;
  for (const bytes of [connect, ...rest]) {
    out.set(bytes, offset);
    offset += bytes.length;
  }
  return out;
}

function subscribePacket(filter: string, qos: 0 | 1): Packet {
  return { type: "subscribe", packetId: 1, subscriptions: [subscription(filter, qos)], properties: {} };
}

/**
 * A subscriber that reads and counts PUBLISH packets, never acknowledging them, until told to stop. (It
 * decodes as it reads: a client that keeps tens of MiB in one growing buffer would be the bottleneck.)
 */
async function countingSubscriber(port: number, clientId: string, filter: string) {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const bytes = handshake(clientId, [subscribePacket(filter, 1)]);
  for (let offset = 0; offset < bytes.length;) offset += await conn.write(bytes.subarray(offset));
  const decoder = new Decoder({ maxPacketSize: 1 << 20, protocolVersion: 5 });
  const state = { publishes: 0, suback: false };
  const reading = (async () => {
    const buffer = new Uint8Array(256 * 1024);
    try {
      for (;;) {
        const n = await conn.read(buffer);
        if (n === null) return;
        decoder.push(buffer.subarray(0, n));
        for (let packet = decoder.next(); packet; packet = decoder.next()) {
          if (packet.type === "publish") state.publishes++;
          if (packet.type === "suback") state.suback = true;
        }
      }
    } catch { /* closed by the test */ }
  })();
  const until = async (done: () => boolean, what: string) => {
    for (let i = 0; i < 600 && !done(); i++) await new Promise((resolve) => setTimeout(resolve, 50));
    assert.ok(done(), `${clientId}: ${what}`);
  };
  await until(() => state.suback, "no SUBACK");
  return {
    state,
    until,
    async close() {
      conn.close();
      await reading;
    },
  };
}

/** Publishes `count` QoS 1 messages of `size` bytes, `retain` or not, each acknowledged before the next. */
async function publishAll(port: number, prefix: string, count: number, size: number, retain: boolean) {
  const { client } = await connect(port, `pub-${prefix}`, 4);
  const payload = new Uint8Array(size).fill(0x62);
  for (let i = 0; i < count; i++) {
    await client.sendPacket(
      publishPacket(`${prefix}/${i}`, "", 1, { packetId: (i % 60000) + 1, payload, retain }),
      4,
    );
    assert.equal((await client.readPacket()).type, "puback");
  }
  await client.close();
}

/** Runs `scenario` against a broker limited to LIMIT; asserts it survived and reports its peak. */
async function withLimitedBroker(
  name: string,
  lines: string[],
  scenario: (port: number, mark: (what: string) => void) => Promise<Deno.Conn[]>,
): Promise<void> {
  const cgroup = createMemoryCgroup(LIMIT)!;
  const broker = await startLimitedBroker(lines, cgroup.wrap);
  const mark = (what: string) =>
    report(`${what}: now ${(cgroup.usage() / MB).toFixed(0)} MB, peak ${(cgroup.peak() / MB).toFixed(0)} MB`);
  const held: Deno.Conn[] = [];
  try {
    held.push(...await scenario(broker.port, mark));
    const bystander = await Bystander.start(broker.port, name, 4);
    await bystander.check(`after ${name}`);
    await bystander.close();
    assert.ok(
      await broker.alive(),
      `the broker was killed over ${LIMIT / MB} MB (${broker.broker.output()})`,
    );
    report(`${name}: peak ${(cgroup.peak() / MB).toFixed(0)} MB of ${LIMIT / MB} MB`);
  } catch (error) {
    const status = await Promise.race([broker.broker.child.status, Promise.resolve(undefined)]);
    throw new Error(
      `${name} failed; broker ${
        (await broker.alive()) ? "alive" : `dead (${status?.signal ?? status?.code})`
      }` +
        `, cgroup peak ${(cgroup.peak() / MB).toFixed(0)} MB, limit hits ${cgroup.limitHits()}`,
      { cause: error },
    );
  } finally {
    await broker.stop(); // before the non-readers go: the test is about while they stay
    for (const conn of held) conn.close();
    await cgroup.remove();
  }
}

Deno.test({
  name:
    "outbound bytes: ten non-readers subscribing to a 60 MiB retained tree stay within mqtt.max_outbound_bytes each" +
    (cgroupsAvailable ? "" : UNAVAILABLE),
  ignore: !cgroupsAvailable,
  fn: async () => {
    await withLimitedBroker("retained", ["storage.type = memory"], async (port) => {
      await publishAll(port, "tree", 240, 256 * 1024, true); // 60 MiB retained
      const held = [];
      for (let i = 0; i < CLIENTS; i++) {
        // Half at QoS 0 (what does not fit is dropped), half at QoS 1 (it waits in the session queue).
        const qos = (i % 2) as 0 | 1;
        held.push(await nonReadingClient(port, handshake(`tree-${i}`, [subscribePacket("tree/#", qos)]), 2));
      }
      return held.map(({ conn }) => conn);
    });
  },
});

Deno.test({
  name:
    "outbound bytes: ten non-readers of 100 MiB of live QoS 1 messages stay within mqtt.max_outbound_bytes each" +
    (cgroupsAvailable ? "" : UNAVAILABLE),
  ignore: !cgroupsAvailable,
  fn: async () => {
    await withLimitedBroker(
      "live",
      ["storage.type = memory", "mqtt.max_queued_messages = 10"],
      async (port) => {
        const held = [];
        for (let i = 0; i < CLIENTS; i++) {
          held.push(await nonReadingClient(port, handshake(`live-${i}`, [subscribePacket("live/#", 1)]), 2));
        }
        await publishAll(port, "live", 200, 512 * 1024, false);
        return held.map(({ conn }) => conn);
      },
    );
  },
});

Deno.test({
  name:
    "outbound bytes: ten resumed sessions with 100 unacknowledged 512 KiB messages each re-send within mqtt.max_outbound_bytes" +
    (cgroupsAvailable ? "" : UNAVAILABLE),
  ignore: !cgroupsAvailable,
  fn: async () => {
    await withLimitedBroker("resend", ["storage.type = memory"], async (port, mark) => {
      // Each subscriber reads its 100 messages (now in flight), never acknowledges, and leaves.
      const subscribers = [];
      for (let i = 0; i < CLIENTS; i++) {
        subscribers.push(await countingSubscriber(port, `resend-${i}`, "resend/#"));
      }
      await publishAll(port, "resend", 100, 512 * 1024, false);
      mark("published");
      for (const subscriber of subscribers) {
        await subscriber.until(() => subscriber.state.publishes === 100, "did not receive 100 messages");
        await subscriber.close();
      }
      mark("received and left");
      // Back, and never reading: every one of the 100 must be re-sent [MQTT-4.4.0-1].
      const held = [];
      for (let i = 0; i < CLIENTS; i++) {
        held.push(await nonReadingClient(port, handshake(`resend-${i}`, []), 1));
      }
      return held.map(({ conn }) => conn);
    });
  },
});
