/**
 * Helpers for the hostile-input tests: a well-behaved pair of clients that must keep working next to
 * the attacker, an RSS sampler, and a socket that connects and then never reads again.
 */
import assert from "node:assert/strict";
import { Decoder, type ProtocolVersion } from "../../src/codec/mod.ts";
import { RawClient } from "../helpers/broker.ts";
import { connect, publishPacket, readPublish, subscribe, subscription, text } from "../helpers/clients.ts";

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * A publisher and a subscriber on their own topic. `check()` sends one QoS 1 message and requires it
 * back within the RawClient timeout, and a PINGREQ answered; used after every attack.
 */
export class Bystander {
  #sequence = 0;
  private constructor(
    readonly publisher: RawClient,
    readonly subscriber: RawClient,
    readonly topic: string,
    readonly version: ProtocolVersion,
  ) {}

  static async start(port: number, name = "bystander", version: ProtocolVersion = 5): Promise<Bystander> {
    const topic = `${name}/topic`;
    const { client: subscriber } = await connect(port, `${name}-sub`, version);
    const codes = await subscribe(subscriber, version, [subscription(topic, 1)]);
    assert.deepEqual(codes, [1]);
    const { client: publisher } = await connect(port, `${name}-pub`, version);
    return new Bystander(publisher, subscriber, topic, version);
  }

  /** One message through the broker, in order, and a PINGREQ answered; returns the round trip in ms. */
  async check(what = ""): Promise<number> {
    const started = performance.now();
    const payload = `m${++this.#sequence}`;
    const packetId = (this.#sequence % 65535) + 1;
    await this.publisher.sendPacket(publishPacket(this.topic, payload, 1, { packetId }), this.version);
    const ack = await this.publisher.readPacket();
    assert.equal(ack.type, "puback", `bystander publisher ${what}`);
    const got = await readPublish(this.subscriber);
    assert.equal(text(got.payload), payload, `bystander lost or reordered a message ${what}`);
    await this.subscriber.sendPacket({
      type: "puback",
      packetId: got.packetId!,
      reasonCode: 0,
      properties: {},
    }, this.version);
    await this.subscriber.sendPacket({ type: "pingreq" }, this.version);
    assert.equal((await this.subscriber.readPacket()).type, "pingresp", `bystander ping ${what}`);
    assert.equal(
      this.publisher.closedByServer || this.subscriber.closedByServer,
      false,
      `bystander closed ${what}`,
    );
    return performance.now() - started;
  }

  async close(): Promise<void> {
    await Promise.all([this.publisher.close(), this.subscriber.close()]);
  }
}

/** Samples the process RSS (the broker runs in this process) every `intervalMs` and keeps the peak. */
export class RssSampler {
  peak = 0;
  readonly start: number;
  #timer: ReturnType<typeof setInterval>;

  constructor(intervalMs = 20) {
    this.start = Deno.memoryUsage().rss;
    this.peak = this.start;
    this.#timer = setInterval(() => this.sample(), intervalMs);
  }

  sample(): number {
    const rss = Deno.memoryUsage().rss;
    if (rss > this.peak) this.peak = rss;
    return rss;
  }

  stop(): { start: number; peak: number; end: number } {
    clearInterval(this.#timer);
    const end = this.sample();
    return { start: this.start, peak: this.peak, end };
  }
}

export const MB = 1 << 20;

export function mb(bytes: number): string {
  return `${(bytes / MB).toFixed(1)} MB`;
}

/** Prints one line of measurements (peak RSS is part of the test report). */
export function report(line: string): void {
  // deno-lint-ignore no-console
  console.log(`    [hostile] ${line}`);
}

/**
 * A socket that sends `handshake`, reads the first `packets` packets of the answer (CONNACK, SUBACK) and
 * then never reads again, so that the kernel buffers fill and the broker's writes back up. The returned
 * decoder holds whatever arrived after those packets, to continue from when the test drains the socket.
 */
export async function nonReadingClient(
  port: number,
  handshake: Uint8Array,
  packets: number,
): Promise<{ conn: Deno.TcpConn; decoder: Decoder }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  let offset = 0;
  while (offset < handshake.length) offset += await conn.write(handshake.subarray(offset));
  const decoder = new Decoder({ maxPacketSize: 1 << 20, protocolVersion: 5 });
  const buffer = new Uint8Array(256);
  const deadline = Date.now() + 5000;
  for (let seen = 0; seen < packets;) {
    if (Date.now() > deadline) throw new Error("no handshake answer within 5 s");
    const packet = decoder.next();
    if (packet) {
      seen++;
      continue;
    }
    const n = await conn.read(buffer);
    if (n === null) throw new Error(`closed after ${seen} of ${packets} handshake packets`);
    decoder.push(buffer.slice(0, n));
  }
  return { conn, decoder };
}

/** Writes all of `bytes`, giving up (false) after `timeoutMs` if the peer stopped reading. */
export async function writeWithin(conn: Deno.Conn, bytes: Uint8Array, timeoutMs: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<false>((resolve) => timer = setTimeout(() => resolve(false), timeoutMs));
  const write = (async () => {
    let offset = 0;
    while (offset < bytes.length) offset += await conn.write(bytes.subarray(offset));
    return true;
  })();
  try {
    return await Promise.race([write, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
