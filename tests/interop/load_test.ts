/**
 * Load: 1,000 concurrent MQTT 3.1.1 clients over raw loopback sockets (the project codec), each
 * subscribed at QoS 1 to its own topic load/<i> and publishing 100 QoS 1 messages to its neighbour's
 * topic load/<i+1>. Every message must arrive exactly once, in publish order per publisher
 * [MQTT-4.6.0-6], and every publish must be PUBACKed.
 */
import assert from "node:assert/strict";
import { Decoder, encode, type Packet } from "../../src/codec/mod.ts";
import { withBroker } from "../helpers/broker.ts";
import { sleep, withTimeout } from "./tools.ts";

const CLIENTS = 1000;
const MESSAGES = 100;
const BATCH = 100; // connections opened at once, well under the accept backlog of 511
const DEADLINE_MS = 40_000;

const decoderText = new TextDecoder();
const encoderText = new TextEncoder();

class LoadClient {
  readonly source: number; // the neighbour that publishes to us
  received = 0;
  nextSeq = 0;
  acked = 0;
  readonly errors: string[] = [];
  #decoder = new Decoder({ maxPacketSize: 1 << 20, protocolVersion: 4 });
  #writing: Promise<void> = Promise.resolve();
  #waiters = new Map<string, () => void>();
  readonly reader: Promise<void>;

  private constructor(readonly index: number, readonly conn: Deno.TcpConn) {
    this.source = (index - 1 + CLIENTS) % CLIENTS;
    this.reader = this.#readLoop();
  }

  static async open(port: number, index: number): Promise<LoadClient> {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    conn.setNoDelay(true);
    const client = new LoadClient(index, conn);
    const connack = client.#expect("connack");
    client.write(encode({
      type: "connect",
      protocolName: "MQTT",
      protocolVersion: 4,
      cleanStart: true,
      keepAlive: 120,
      clientId: `load-${index}`,
      properties: {},
    }, 4));
    await connack;
    const suback = client.#expect("suback");
    client.write(encode({
      type: "subscribe",
      packetId: 1,
      subscriptions: [{
        topicFilter: `load/${index}`,
        qos: 1,
        noLocal: false,
        retainAsPublished: false,
        retainHandling: 0,
      }],
      properties: {},
    }, 4));
    await suback;
    return client;
  }

  /** Queues bytes; writes never interleave, partial writes are completed. */
  write(bytes: Uint8Array): void {
    this.#writing = this.#writing.then(async () => {
      let offset = 0;
      while (offset < bytes.length) offset += await this.conn.write(bytes.subarray(offset));
    }).catch((error) => {
      this.errors.push(`write: ${error}`);
    });
  }

  /** All 100 PUBLISH packets (packet ids 1..100) in one buffer: the broker's Receive Maximum is 100. */
  publishAll(): void {
    const target = `load/${(this.index + 1) % CLIENTS}`;
    const packets = [];
    let size = 0;
    for (let seq = 0; seq < MESSAGES; seq++) {
      const packet = encode({
        type: "publish",
        topic: target,
        payload: encoderText.encode(`${this.index}:${seq}`),
        qos: 1,
        retain: false,
        dup: false,
        packetId: seq + 1,
        properties: {},
      }, 4);
      packets.push(packet);
      size += packet.length;
    }
    const all = new Uint8Array(size);
    let offset = 0;
    for (const packet of packets) {
      all.set(packet, offset);
      offset += packet.length;
    }
    this.write(all);
  }

  get done(): boolean {
    return this.received >= MESSAGES && this.acked >= MESSAGES;
  }

  async close(): Promise<void> {
    await this.#writing;
    try {
      this.conn.close();
    } catch { /* already closed */ }
    await this.reader;
  }

  #expect(type: string): Promise<void> {
    return withTimeout(
      new Promise<void>((resolve) => this.#waiters.set(type, resolve)),
      10_000,
      `${type} for load-${this.index}`,
    );
  }

  #handle(packet: Packet, acks: number[]): void {
    switch (packet.type) {
      case "publish": {
        const [from, seq] = decoderText.decode(packet.payload).split(":").map(Number);
        if (from !== this.source || seq !== this.nextSeq || packet.qos !== 1 || packet.dup) {
          this.errors.push(
            `load-${this.index}: got ${from}:${seq} qos ${packet.qos} dup ${packet.dup}, expected ${this.source}:${this.nextSeq}`,
          );
        }
        this.nextSeq = seq + 1;
        this.received++;
        // PUBACK, 3.1.1: 40 02 <packet id>.
        acks.push(0x40, 0x02, packet.packetId! >> 8, packet.packetId! & 0xff);
        return;
      }
      case "puback":
        this.acked++;
        return;
      case "connack":
        if (packet.reasonCode !== 0) this.errors.push(`load-${this.index}: CONNACK ${packet.reasonCode}`);
        break;
      case "suback":
        if (packet.reasonCodes[0] !== 1) this.errors.push(`load-${this.index}: SUBACK ${packet.reasonCodes}`);
        break;
      default:
        this.errors.push(`load-${this.index}: unexpected ${packet.type}`);
        return;
    }
    const waiter = this.#waiters.get(packet.type);
    this.#waiters.delete(packet.type);
    waiter?.();
  }

  async #readLoop(): Promise<void> {
    try {
      for (;;) {
        const buffer = new Uint8Array(16384); // the decoder may keep views into pushed chunks
        const n = await this.conn.read(buffer);
        if (n === null) break;
        this.#decoder.push(buffer.subarray(0, n));
        const acks: number[] = [];
        for (let packet = this.#decoder.next(); packet; packet = this.#decoder.next()) {
          this.#handle(packet, acks);
        }
        if (acks.length > 0) this.write(new Uint8Array(acks));
      }
    } catch (error) {
      if (!(error instanceof Deno.errors.BadResource || error instanceof Deno.errors.Interrupted)) {
        this.errors.push(`read: ${error}`);
      }
    }
  }
}

Deno.test(`load: ${CLIENTS} concurrent clients × ${MESSAGES} QoS 1 messages, none lost, duplicated or reordered [MQTT-4.6.0-6]`, async () => {
  await withBroker("", async ({ port }) => {
    const started = performance.now();
    const clients: LoadClient[] = [];
    try {
      for (let first = 0; first < CLIENTS; first += BATCH) {
        const batch = Array.from({ length: Math.min(BATCH, CLIENTS - first) }, (_, k) => first + k);
        clients.push(...await Promise.all(batch.map((index) => LoadClient.open(port, index))));
      }
      const connected = performance.now();
      for (const client of clients) client.publishAll();

      const deadline = Date.now() + DEADLINE_MS;
      while (!clients.every((c) => c.done) && Date.now() < deadline) await sleep(50);
      const delivered = performance.now();
      await sleep(300); // late duplicates would show up here

      const received = clients.reduce((n, c) => n + c.received, 0);
      const acked = clients.reduce((n, c) => n + c.acked, 0);
      const errors = clients.flatMap((c) => c.errors);
      // deno-lint-ignore no-console
      console.log(
        `load: ${clients.length} clients connected in ${Math.round(connected - started)} ms; ` +
          `published ${
            CLIENTS * MESSAGES
          }, PUBACKed ${acked}, delivered ${received}, errors ${errors.length}; ` +
          `traffic took ${Math.round(delivered - connected)} ms`,
      );
      assert.deepEqual(errors.slice(0, 10), [], "no loss, duplicate or reordering");
      assert.equal(clients.length, CLIENTS);
      assert.equal(acked, CLIENTS * MESSAGES, "every QoS 1 publish was acknowledged");
      assert.equal(received, CLIENTS * MESSAGES, "every message was delivered exactly once");
      const short = clients.filter((c) => c.received !== MESSAGES || c.nextSeq !== MESSAGES);
      assert.equal(short.length, 0, `clients with a wrong count: ${short.slice(0, 5).map((c) => c.index)}`);
    } finally {
      for (let first = 0; first < clients.length; first += BATCH) {
        await Promise.all(clients.slice(first, first + BATCH).map((c) => c.close()));
      }
    }
  });
});
