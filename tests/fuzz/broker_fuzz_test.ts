/**
 * Stateful fuzzing of a running in-process broker over real sockets: FUZZ_CLIENTS (20) clients connect
 * again and again and send random sequences of valid packets (from the codec's `encode`) and invalid ones
 * (bit flips, wrong flags, truncation, noise, huge lengths, junk), while a well-behaved observer publishes
 * QoS 1 messages to itself. Checks: the broker stays up and answers every well-framed PINGREQ on a
 * connection that is still open; everything it sends decodes (a mutated CONNECT aside, whose level byte is
 * anyone's guess); its RSS stays within 512 MB of the start (the broker runs in this process, and the
 * per-packet garbage is collected lazily by V8); the observer gets
 * every QoS 1 message, once, in order.
 *
 * Seeded and replayable: the seed is printed; round r of client i draws from mulberry32 seeded with
 * (seed, i, r), so the same seed replays the same packets round by round (which connections the broker
 * closes early, and how many rounds fit in the time, still depend on timing).
 *
 *   deno test -A tests/fuzz/                                  # default: about 10 s, random seed
 *   FUZZ_SEED=1234 deno test -A tests/fuzz/                   # replay a seed
 *   FUZZ_SECONDS=600 deno test -A tests/fuzz/                 # the long run
 */
import assert from "node:assert/strict";
import type { PublishPacket } from "../../src/codec/mod.ts";
import { withBroker } from "../helpers/broker.ts";
import { connect, publishPacket, subscribe, subscription } from "../helpers/clients.ts";
import { emptyStats, fuzzClient, type FuzzStats } from "./fuzz.ts";

function envNumber(name: string, fallback: number): number {
  try {
    const value = Deno.env.get(name);
    return value === undefined || value === "" ? fallback : Number(value);
  } catch {
    return fallback; // no --allow-env
  }
}

function print(line: string): void {
  // deno-lint-ignore no-console
  console.log(`    [fuzz] ${line}`);
}

const MB = 1 << 20;

Deno.test("fuzz: random valid and invalid packets from 20 clients; the broker stays up, answers, and the observer loses nothing", async () => {
  const seed = envNumber("FUZZ_SEED", Math.floor(Math.random() * 2 ** 31));
  const seconds = envNumber("FUZZ_SECONDS", 10);
  const clients = envNumber("FUZZ_CLIENTS", 20);
  assert.ok(
    Number.isInteger(seed) && seconds > 0 && clients > 0,
    "FUZZ_SEED, FUZZ_SECONDS, FUZZ_CLIENTS must be numbers",
  );
  print(
    `seed ${seed} (replay: FUZZ_SEED=${seed} FUZZ_SECONDS=${seconds} deno test -A tests/fuzz/), ${clients} clients, ${seconds} s`,
  );
  const config = [
    "mqtt.max_packet_size = 65536",
    "mqtt.connect_timeout_ms = 2000",
    "mqtt.max_topic_alias = 10",
    "mqtt.max_queued_messages = 200",
    "mqtt.max_subscriptions_per_client = 50",
    // Every round uses a new client id; persistent sessions (3.1.1 clean session 0 never expires by default)
    // would pile up by design, so cap them: the memory bound is about leaks, not about kept sessions.
    "mqtt.max_session_expiry = 5",
  ].join("\n");
  await withBroker(config, async ({ port, running }) => {
    const startRss = Deno.memoryUsage().rss;
    let peakRss = startRss;
    const sampler = setInterval(() => peakRss = Math.max(peakRss, Deno.memoryUsage().rss), 50);

    // The observer: QoS 1 to itself on its own topic, checked for loss, duplicates and order.
    const { client: sub } = await connect(port, "observer-sub", 5);
    assert.deepEqual(await subscribe(sub, 5, [subscription("observer/seq", 1)]), [1]);
    const { client: pub } = await connect(port, "observer-pub", 5);
    const deadline = Date.now() + seconds * 1000;
    let published = 0;
    let received = 0;
    const observerErrors: string[] = [];
    const receiving = (async () => {
      while (received < published || Date.now() < deadline) {
        let packet;
        try {
          packet = await sub.readPacket();
        } catch (error) {
          if (Date.now() >= deadline && received >= published) break;
          observerErrors.push(`observer subscriber: ${(error as Error).message}`);
          return;
        }
        if (packet.type !== "publish") continue;
        const n = Number(new TextDecoder().decode((packet as PublishPacket).payload));
        if (n !== received + 1) observerErrors.push(`observer expected ${received + 1}, got ${n}`);
        received = n;
        await sub.sendPacket({
          type: "puback",
          packetId: (packet as PublishPacket).packetId!,
          reasonCode: 0,
          properties: {},
        }, 5);
      }
    })();
    const publishing = (async () => {
      while (Date.now() < deadline && observerErrors.length === 0) {
        published++;
        await pub.sendPacket(
          publishPacket("observer/seq", String(published), 1, { packetId: (published % 65535) + 1 }),
          5,
        );
        const ack = await pub.readPacket().catch((error) => ({ type: `error ${error.message}` }));
        if (ack.type !== "puback") observerErrors.push(`observer publisher got ${ack.type}`);
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    })();

    const stats: FuzzStats[] = [];
    await Promise.all(Array.from({ length: clients }, (_, index) => {
      const s = emptyStats();
      stats.push(s);
      return fuzzClient(port, index, seed, deadline, s);
    }));
    await publishing;
    await Promise.race([receiving, new Promise((resolve) => setTimeout(resolve, 5000))]);
    clearInterval(sampler);

    // The broker is still up: a new client connects and is answered, and the fuzz connections are gone.
    const { client: probe } = await connect(port, "after-fuzz", 4);
    await probe.sendPacket({ type: "pingreq" }, 4);
    assert.equal((await probe.readPacket()).type, "pingresp");
    await probe.close();
    for (let i = 0; i < 50 && running.connections.connectionCount > 2; i++) {
      await new Promise((r) => setTimeout(r, 100));
    }

    const total = stats.reduce((all, s) => ({
      connections: all.connections + s.connections,
      packetsSent: all.packetsSent + s.packetsSent,
      mutationsSent: all.mutationsSent + s.mutationsSent,
      pingsAnswered: all.pingsAnswered + s.pingsAnswered,
      pingsOnClosed: all.pingsOnClosed + s.pingsOnClosed,
      closedByServer: all.closedByServer + s.closedByServer,
      failures: [...all.failures, ...s.failures],
    }), emptyStats());
    print(
      `${total.connections} connections, ${total.packetsSent} valid packets, ${total.mutationsSent} mutations,` +
        ` ${total.pingsAnswered} PINGREQs answered (${total.pingsOnClosed} on connections being closed),` +
        ` ${total.closedByServer} closed by the broker; observer ${received}/${published} in order;` +
        ` RSS start ${(startRss / MB).toFixed(1)} MB, peak ${(peakRss / MB).toFixed(1)} MB`,
    );
    assert.deepEqual(total.failures.slice(0, 10), [], `seed ${seed}`);
    assert.deepEqual(observerErrors, [], `seed ${seed}`);
    assert.equal(
      received,
      published,
      `seed ${seed}: the observer got ${received} of ${published} QoS 1 messages`,
    );
    assert.ok(published > 0 && total.connections >= clients && total.pingsAnswered > 0, "the fuzzer did run");
    assert.equal(running.connections.connectionCount, 2, "only the observer is left connected");
    assert.ok(
      peakRss - startRss < 512 * MB,
      `seed ${seed}: RSS grew by ${((peakRss - startRss) / MB).toFixed(1)} MB`,
    );
    await Promise.all([sub.close(), pub.close()]);
  });
});
