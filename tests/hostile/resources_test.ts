/**
 * Hostile clients that attack resources rather than the parser: slow-loris CONNECTs, clients that never
 * read while being flooded, CONNECT floods, a 256 MB Remaining Length, and 100k subscriptions. The broker
 * runs in this process, so Deno.memoryUsage().rss measures it (plus the test's own clients). Every loop
 * is bounded in count and time; a bystander pair must keep working throughout.
 */
import assert from "node:assert/strict";
import { encode } from "../../src/codec/mod.ts";
import { hex, RawClient, toHex, withBroker } from "../helpers/broker.ts";
import { connect, publishPacket, subscribe, subscription } from "../helpers/clients.ts";
import { Bystander, MB, mb, nonReadingClient, report, RssSampler, sleep, writeWithin } from "./support.ts";

function concat(frames: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(frames.reduce((sum, f) => sum + f.length, 0));
  let offset = 0;
  for (const f of frames) {
    out.set(f, offset);
    offset += f.length;
  }
  return out;
}

function connectBytes(clientId: string, version: 4 | 5 = 5, keepAlive = 60): Uint8Array {
  return encode({
    type: "connect",
    protocolName: "MQTT",
    protocolVersion: version,
    cleanStart: true,
    keepAlive,
    clientId,
    properties: {},
  }, version);
}

Deno.test("hostile: slow-loris CONNECTs (one byte every 100 ms) are closed by the connect timeout", async () => {
  await withBroker("mqtt.connect_timeout_ms = 500", async ({ port, running }) => {
    const bystander = await Bystander.start(port, "loris");
    const connect = connectBytes("s".repeat(100)); // 115 bytes: 11.5 s at one byte per 100 ms
    const dribble = async () => {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      const started = Date.now();
      let sent = 0;
      let closedAt = 0;
      const reading = (async () => {
        const buffer = new Uint8Array(64);
        try {
          while ((await conn.read(buffer)) !== null) { /* nothing is expected */ }
        } catch { /* reset */ }
        closedAt = Date.now();
      })();
      for (; sent < connect.length && closedAt === 0 && Date.now() - started < 5000; sent++) {
        try {
          await conn.write(connect.subarray(sent, sent + 1));
        } catch {
          break;
        }
        await sleep(100);
      }
      await Promise.race([reading, sleep(5000)]);
      try {
        conn.close();
      } catch { /* already closed */ }
      await reading;
      return { sent, after: closedAt - started };
    };
    const results = await Promise.all(Array.from({ length: 20 }, dribble));
    for (const { sent, after } of results) {
      assert.ok(sent < connect.length, "the CONNECT never completed");
      assert.ok(after >= 450 && after < 2000, `closed after ${after} ms (timeout 500 ms)`);
    }
    await bystander.check("after 20 slow-loris sockets");
    assert.equal(running.connections.connectionCount, 2);
    await bystander.close();
  });
});

/**
 * Memory under a flood is bounded by V8's collection of the per-packet copies, not by the flood's size:
 * RSS climbs while garbage accumulates, then levels off. The flood runs in ROUNDS of ~64 MB; the test
 * requires the second half of the rounds to add little, and the total growth to stay well below the volume.
 */
const ROUNDS = 16;
const SECOND_HALF_GROWTH = 128 * MB;
const TOTAL_GROWTH = 512 * MB;

function checkPlateau(peaks: number[], start: number, volume: number): void {
  const half = peaks[ROUNDS / 2 - 1];
  assert.ok(
    peaks[ROUNDS - 1] - half < SECOND_HALF_GROWTH,
    `RSS kept growing with the flood: ${peaks.map(mb).join(", ")}`,
  );
  assert.ok(
    peaks[ROUNDS - 1] - start < TOTAL_GROWTH,
    `RSS grew by ${mb(peaks[ROUNDS - 1] - start)} for ${mb(volume)}`,
  );
}

Deno.test("hostile: a client that never reads, flooded with QoS 0: beyond the outbox high-water mark messages are dropped, memory levels off", async () => {
  await withBroker("", async ({ port, running }) => {
    const bystander = await Bystander.start(port, "q0flood");
    const handshake = new Uint8Array([
      ...connectBytes("slow0"),
      ...encode({
        type: "subscribe",
        packetId: 1,
        subscriptions: [subscription("flood/q0", 0)],
        properties: {},
      }, 5),
    ]);
    const { conn: slow, decoder } = await nonReadingClient(port, handshake, 2); // CONNACK, SUBACK
    const { client: publisher } = await connect(port, "flooder0", 5);
    const payload = new Uint8Array(16 * 1024).fill(0x61);
    const frame = encode(publishPacket("flood/q0", "", 0, { payload }), 5);
    const perRound = 4096; // 64 MB a round
    const total = perRound * ROUNDS;
    const sampler = new RssSampler();
    const started = performance.now();
    let worstCheck = 0;
    const peaks: number[] = [];
    for (let i = 0; i < total; i++) {
      await publisher.send(frame);
      if (i % 2048 === 2047) {
        worstCheck = Math.max(worstCheck, await bystander.check(`during the QoS 0 flood (${i})`));
      }
      if (i % perRound === perRound - 1) peaks.push(sampler.sample() && sampler.peak);
      if (performance.now() - started > 120_000) throw new Error("the flood did not finish within 120 s");
    }
    worstCheck = Math.max(worstCheck, await bystander.check("after the QoS 0 flood"));
    const rss = sampler.stop();
    const drops = running.broker.session("slow0")!.outbound.drops;
    report(
      `QoS 0 flood of ${mb(total * frame.length)} in ${
        (performance.now() - started).toFixed(0)
      } ms to a non-reader:` +
        ` RSS start ${mb(rss.start)}, peak after each 64 MB: ${peaks.map(mb).join(", ")};` +
        ` dropped ${drops.slowConsumer}, worst bystander round trip ${worstCheck.toFixed(0)} ms`,
    );
    assert.ok(drops.slowConsumer > 0, "QoS 0 messages beyond the high-water mark are dropped");
    checkPlateau(peaks, rss.start, total * frame.length);
    assert.ok(worstCheck < 2000, `bystander round trip ${worstCheck.toFixed(0)} ms`);
    // What did reach the slow client is whole packets: drain it and decode everything.
    const buffer = new Uint8Array(1 << 16);
    let packets = 0;
    const drainUntil = Date.now() + 10_000;
    for (;;) {
      const n = await Promise.race([slow.read(buffer), sleep(300).then(() => -1)]);
      if (n === null || n === -1 || Date.now() > drainUntil) break;
      decoder.push(buffer.slice(0, n));
      for (let packet = decoder.next(); packet; packet = decoder.next()) {
        assert.equal(packet.type, "publish");
        packets++;
      }
    }
    assert.ok(
      packets > 0 && packets + drops.slowConsumer <= total,
      `received ${packets}, dropped ${drops.slowConsumer}`,
    );
    slow.close();
    await publisher.close();
    await bystander.close();
  });
});

Deno.test("hostile: a client that never reads, flooded with QoS 1: inflight and queue stay within their limits, memory levels off", async () => {
  await withBroker("mqtt.max_inflight = 32\nmqtt.max_queued_messages = 1000", async ({ port, running }) => {
    const bystander = await Bystander.start(port, "q1flood");
    const handshake = new Uint8Array([
      ...connectBytes("slow1"),
      ...encode({
        type: "subscribe",
        packetId: 1,
        subscriptions: [subscription("flood/q1", 1)],
        properties: {},
      }, 5),
    ]);
    const { conn: slow } = await nonReadingClient(port, handshake, 2);
    const { client: publisher } = await connect(port, "flooder1", 5);
    const payload = new Uint8Array(16 * 1024).fill(0x62);
    const window = 100;
    const perRound = 4000; // 62.5 MB a round
    const total = perRound * ROUNDS;
    // One batch of frames, encoded once; only the packet ids change between batches (no garbage on our side).
    const frames = Array.from(
      { length: window },
      (_, i) => encode(publishPacket("flood/q1", "", 1, { payload, packetId: i + 1 }), 5),
    );
    const batch = concat(frames);
    let header = 1;
    while (frames[0][header] & 0x80) header++;
    const idOffset = header + 1 + 2 + "flood/q1".length; // fixed header + topic length + topic
    const sampler = new RssSampler();
    const started = performance.now();
    let worstCheck = 0;
    const peaks: number[] = [];
    for (let sent = 0; sent < total; sent += window) {
      for (let i = 0; i < window; i++) {
        const id = ((sent + i) % 65535) + 1;
        const at = i * frames[0].length + idOffset;
        batch[at] = id >> 8;
        batch[at + 1] = id & 0xff;
      }
      await publisher.send(batch);
      for (let i = 0; i < window; i++) assert.equal((await publisher.readPacket()).type, "puback");
      if (sent % 2000 === 0) {
        worstCheck = Math.max(worstCheck, await bystander.check(`during the QoS 1 flood (${sent})`));
      }
      if ((sent + window) % perRound === 0) peaks.push(sampler.sample() && sampler.peak);
      if (performance.now() - started > 120_000) throw new Error("the flood did not finish within 120 s");
    }
    worstCheck = Math.max(worstCheck, await bystander.check("after the QoS 1 flood"));
    const rss = sampler.stop();
    const outbound = running.broker.session("slow1")!.outbound;
    report(
      `QoS 1 flood of ${mb(total * payload.length)} in ${
        (performance.now() - started).toFixed(0)
      } ms to a non-reader:` +
        ` RSS start ${mb(rss.start)}, peak after each 62.5 MB: ${
          peaks.map(mb).join(", ")
        }; inflight ${outbound.inflight.size},` +
        ` queued ${outbound.queue.length} (${
          mb(outbound.queuedBytes)
        }), dropped ${outbound.drops.queueFull},` +
        ` worst bystander round trip ${worstCheck.toFixed(0)} ms`,
    );
    assert.ok(outbound.inflight.size <= 32, `inflight ${outbound.inflight.size}`);
    assert.ok(outbound.queue.length <= 1000, `queued ${outbound.queue.length}`);
    assert.ok(outbound.drops.queueFull >= total - 32 - 1000, `dropped ${outbound.drops.queueFull}`);
    checkPlateau(peaks, rss.start, total * payload.length);
    assert.ok(worstCheck < 2000, `bystander round trip ${worstCheck.toFixed(0)} ms`);
    slow.close();
    await publisher.close();
    await bystander.close();
  });
});

Deno.test("hostile: a CONNECT flood (2,000 connections in batches of 200) is served; nothing is left behind", async () => {
  await withBroker("", async ({ port, running }) => {
    const bystander = await Bystander.start(port, "connflood");
    const sampler = new RssSampler();
    const started = performance.now();
    let accepted = 0;
    for (let batch = 0; batch < 10; batch++) {
      const results = await Promise.all(Array.from({ length: 200 }, async (_, i) => {
        const client = await RawClient.connect(port, 4);
        await client.send(connectBytes(`flood-${batch}-${i}`, 4));
        const connack = toHex(await client.readBytes(4));
        await client.close();
        return connack;
      }));
      accepted += results.filter((r) => r === "20 02 00 00").length;
      await bystander.check(`after batch ${batch}`);
      if (performance.now() - started > 60_000) {
        throw new Error("the CONNECT flood did not finish within 60 s");
      }
    }
    const elapsed = performance.now() - started;
    for (let i = 0; i < 50 && running.connections.connectionCount > 2; i++) await sleep(100);
    const rss = sampler.stop();
    report(
      `CONNECT flood: 2000 in ${elapsed.toFixed(0)} ms; RSS peak ${mb(rss.peak)} (+${
        mb(rss.peak - rss.start)
      })`,
    );
    assert.equal(accepted, 2000);
    assert.equal(running.connections.connectionCount, 2, "every flood connection is gone");
    assert.equal(running.broker.sessionCount, 2, "clean sessions are discarded");
    await bystander.close();
  });
});

Deno.test("hostile: a 256 MB Remaining Length is refused with 0x95 before anything is buffered", async () => {
  await withBroker("", async ({ port }) => {
    const bystander = await Bystander.start(port, "huge");
    const sampler = new RssSampler();
    const junk = new Uint8Array(4 * MB).fill(0x41);
    // after CONNACK: DISCONNECT 0x95
    const { client } = await connect(port, "huge", 5);
    await client.send(hex("30 ff ff ff 7f")); // 268,435,455 bytes announced
    const written = await writeWithin(client.conn, junk, 2000).catch(() => false);
    const packet = await client.readPacket();
    assert.equal(packet.type, "disconnect");
    assert.equal((packet as { reasonCode: number }).reasonCode, 0x95);
    await client.expectClosed();
    // as the first packet: closed without a CONNACK that accepts
    const first = await RawClient.connect(port, 5);
    await first.send(hex("10 ff ff ff 7f"));
    await writeWithin(first.conn, junk, 2000).catch(() => false);
    const rest = await first.expectClosed();
    assert.ok(rest.length === 0 || (rest[0] === 0x20 && rest[3] >= 0x80), toHex(rest.subarray(0, 8)));
    // and at 3.1.1: closed
    const { client: old } = await connect(port, "huge4", 4);
    await old.send(hex("30 ff ff ff 7f"));
    await writeWithin(old.conn, junk, 2000).catch(() => false);
    assert.equal((await old.expectClosed()).length, 0);
    await bystander.check("after the 256 MB headers");
    const rss = sampler.stop();
    report(
      `256 MB Remaining Length: RSS start ${mb(rss.start)}, peak ${mb(rss.peak)} (+${
        mb(rss.peak - rss.start)
      }); junk written: ${written}`,
    );
    assert.ok(rss.peak - rss.start < 64 * MB, `RSS grew by ${mb(rss.peak - rss.start)}`);
    await bystander.close();
  });
});

Deno.test("hostile: 100,000 subscriptions from one client: those beyond mqtt.max_subscriptions_per_client get 0x97 (3.1.1: 0x80)", async () => {
  await withBroker("", async ({ port, running }) => {
    const bystander = await Bystander.start(port, "subs");
    const sampler = new RssSampler();
    const started = performance.now();
    for (const [version, total] of [[5, 100_000], [4, 12_000]] as const) {
      const { client } = await connect(port, `many-${version}`, version);
      const perPacket = 1000;
      const codes: number[] = [];
      for (let packet = 0; packet < total / perPacket; packet++) {
        const subscriptions = Array.from(
          { length: perPacket },
          (_, i) => subscription(`many/${packet * perPacket + i}`, 0),
        );
        codes.push(...await subscribe(client, version, subscriptions, {}, packet + 1));
        if (performance.now() - started > 60_000) throw new Error("subscribing did not finish within 60 s");
      }
      const refused = version === 5 ? 0x97 : 0x80;
      assert.equal(codes.length, total);
      assert.ok(
        codes.slice(0, 10_000).every((code) => code === 0),
        `v${version}: the first 10000 are granted`,
      );
      assert.ok(codes.slice(10_000).every((code) => code === refused), `v${version}: the rest are refused`);
      assert.equal(running.broker.session(`many-${version}`)!.subscriptionCount, 10_000);
      await bystander.check(`after ${total} subscriptions`);
      await client.close();
    }
    const rss = sampler.stop();
    report(
      `100k subscriptions: ${(performance.now() - started).toFixed(0)} ms, RSS peak ${mb(rss.peak)} (+${
        mb(rss.peak - rss.start)
      })`,
    );
    await bystander.close();
  });
});

Deno.test("hostile: subscribers that reset their connection while the broker writes to them end as normal disconnects (no connection.failed)", async () => {
  // The harness (withBroker) fails the test when the broker logs connection.failed or connection.crashed.
  await withBroker("", async ({ port, running }) => {
    const bystander = await Bystander.start(port, "resets");
    const { client: publisher } = await connect(port, "reset-pub", 5);
    const frame = encode(publishPacket("busy", "", 1, { payload: new Uint8Array(3000), packetId: 1 }), 5);
    let pumping = true;
    const pump = (async () => {
      for (let i = 0; i < 200_000 && pumping; i++) {
        await publisher.send(frame);
        await sleep(0);
      }
    })();
    const started = performance.now();
    await Promise.all(Array.from({ length: 20 }, async (_, worker) => {
      for (let round = 0; round < 60 && performance.now() - started < 30_000; round++) {
        if (round % 2 === 1) {
          // a subscriber that reads, then closes at some point of the stream
          const { client } = await connect(port, `reader-${worker}-${round}`, 5);
          await subscribe(client, 5, [subscription("busy", 1)]);
          await sleep(round % 5);
          client.conn.close();
          continue;
        }
        const handshake = new Uint8Array([
          ...connectBytes(`reset-${worker}-${round}`),
          ...encode({
            type: "subscribe",
            packetId: 1,
            subscriptions: [subscription("busy", 1)],
            properties: {},
          }, 5),
        ]);
        const { conn } = await nonReadingClient(port, handshake, 2);
        await sleep(20 + (round % 30)); // long enough for the broker's writes to back up
        conn.close(); // unread bytes in the receive buffer: the kernel resets the connection
      }
    }));
    pumping = false;
    await pump;
    await bystander.check("after 1200 resets");
    for (let i = 0; i < 50 && running.connections.connectionCount > 3; i++) await sleep(100);
    assert.equal(running.connections.connectionCount, 3, "only the bystanders and the publisher are left");
    await publisher.close();
    await bystander.close();
  });
});
