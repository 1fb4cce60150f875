/**
 * The stateful broker fuzzer's parts: a seeded PRNG (mulberry32), generators of the packets a client may
 * send (valid, from the codec's `encode`), mutations that turn them into invalid bytes, and one fuzzing
 * client that connects, sends a random sequence, and checks what the broker answers.
 */
import {
  Decoder,
  encode,
  type Packet,
  type Properties,
  type ProtocolVersion,
  type QoS,
  type Subscription,
} from "../../src/codec/mod.ts";

/** mulberry32: a tiny, fast, seedable 32-bit PRNG; the same seed gives the same sequence. */
export function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export class Rng {
  readonly #next: () => number;
  constructor(readonly seed: number) {
    this.#next = mulberry32(seed);
  }
  float(): number {
    return this.#next();
  }
  /** An integer in [min, max]. */
  int(min: number, max: number): number {
    return min + Math.floor(this.#next() * (max - min + 1));
  }
  bool(probability = 0.5): boolean {
    return this.#next() < probability;
  }
  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.#next() * items.length)];
  }
  bytes(length: number): Uint8Array {
    const out = new Uint8Array(length);
    for (let i = 0; i < length; i++) out[i] = Math.floor(this.#next() * 256);
    return out;
  }
}

/** Topics the fuzzers publish to; the observer's topic is not among them. */
const TOPICS = ["fz/a", "fz/b/c", "fz/é/中", "fz/$x", "$fz/sys", "fz/" + "l/".repeat(20) + "end", "fz"];
const FILTERS = [
  "#",
  "+/+",
  "fz/#",
  "fz/+",
  "fz/a",
  "$fz/#",
  "$share/g/fz/#",
  "$share/h/+/b/#",
  "observer/#",
  "+",
  "fz/+/c",
];

function properties(rng: Rng, version: ProtocolVersion, kind: "publish" | "subscribe" | "ack"): Properties {
  if (version !== 5 || rng.bool(0.5)) return {};
  const out: Properties = {};
  if (rng.bool(0.3)) out.userProperties = [["k", "v"], [rng.pick(["a", "é", ""]), "w"]];
  if (kind === "publish") {
    if (rng.bool(0.3)) out.messageExpiryInterval = rng.int(0, 5);
    if (rng.bool(0.2)) out.contentType = "text/plain";
    if (rng.bool(0.2)) out.responseTopic = "fz/reply";
    if (rng.bool(0.2)) out.correlationData = rng.bytes(rng.int(0, 8));
    if (rng.bool(0.2)) out.payloadFormatIndicator = rng.int(0, 1);
    if (rng.bool(0.2)) out.topicAlias = rng.int(1, 12);
  }
  if (kind === "subscribe" && rng.bool(0.3)) out.subscriptionIdentifiers = [rng.int(1, 1000)];
  if (kind === "ack" && rng.bool(0.2)) out.reasonString = "fuzz";
  return out;
}

function subscriptions(rng: Rng): Subscription[] {
  return Array.from({ length: rng.int(1, 3) }, () => {
    const topicFilter = rng.pick(FILTERS);
    return {
      topicFilter,
      qos: rng.int(0, 2) as QoS,
      noLocal: !topicFilter.startsWith("$share/") && rng.bool(0.2),
      retainAsPublished: rng.bool(0.2),
      retainHandling: rng.int(0, 2) as 0 | 1 | 2,
    };
  });
}

/** A well-formed packet a client may send after CONNECT (never CONNECT itself). */
export function clientPacket(rng: Rng, version: ProtocolVersion): Packet {
  const roll = rng.float();
  const packetId = rng.int(1, 40);
  if (roll < 0.4) {
    const qos = rng.int(0, 2) as QoS;
    const props = properties(rng, version, "publish");
    return {
      type: "publish",
      topic: props.topicAlias !== undefined && rng.bool(0.3) ? "" : rng.pick(TOPICS),
      payload: rng.bytes(rng.pick([0, 1, 10, 100, 2000, 20_000])),
      qos,
      retain: rng.bool(0.1),
      dup: qos > 0 && rng.bool(0.1),
      packetId: qos > 0 ? packetId : undefined,
      properties: props,
    };
  }
  if (roll < 0.55) {
    return {
      type: "subscribe",
      packetId,
      subscriptions: subscriptions(rng),
      properties: properties(rng, version, "subscribe"),
    };
  }
  if (roll < 0.62) {
    const topicFilters = Array.from({ length: rng.int(1, 3) }, () => rng.pick(FILTERS));
    return { type: "unsubscribe", packetId, topicFilters, properties: {} };
  }
  if (roll < 0.85) {
    const type = rng.pick(["puback", "pubrec", "pubrel", "pubcomp"] as const);
    const reasonCode = version === 5 && rng.bool(0.2)
      ? rng.pick(type === "pubrel" || type === "pubcomp" ? [0x92] : [0x10, 0x80, 0x87])
      : 0;
    return { type, packetId, reasonCode, properties: properties(rng, version, "ack") };
  }
  if (roll < 0.97) return { type: "pingreq" };
  if (version === 5 && roll < 0.985) {
    return { type: "auth", reasonCode: 0x19, properties: { authenticationMethod: "X" } };
  }
  return { type: "disconnect", reasonCode: version === 5 ? rng.pick([0, 0x04]) : 0, properties: {} };
}

export function connectPacket(rng: Rng, version: ProtocolVersion, clientId: string): Packet {
  const props: Properties = version === 5 && rng.bool(0.5)
    ? {
      sessionExpiryInterval: rng.pick([0, 1, 10]),
      receiveMaximum: rng.int(1, 50),
      topicAliasMaximum: rng.int(0, 10),
      maximumPacketSize: rng.pick([64, 1000, 100_000]),
    }
    : {};
  const will = rng.bool(0.2)
    ? {
      topic: rng.pick(TOPICS),
      payload: rng.bytes(5),
      qos: rng.int(0, 2) as QoS,
      retain: rng.bool(0.2),
      properties: {},
    }
    : undefined;
  return {
    type: "connect",
    protocolName: "MQTT",
    protocolVersion: version,
    cleanStart: rng.bool(0.8),
    keepAlive: rng.pick([0, 2, 30]),
    clientId,
    username: rng.bool(0.1) ? "user" : undefined,
    will,
    properties: props,
  };
}

/** Header size (type byte plus Remaining Length bytes) of a well-formed frame. */
function headerSize(frame: Uint8Array): number {
  let i = 1;
  while (i < frame.length && (frame[i] & 0x80) !== 0) i++;
  return i + 1;
}

function varInt(value: number): number[] {
  const out: number[] = [];
  do {
    let byte = value % 128;
    value = Math.floor(value / 128);
    if (value > 0) byte |= 0x80;
    out.push(byte);
  } while (value > 0);
  return out;
}

export interface Mutation {
  name: string;
  bytes: Uint8Array;
  /** True when the bytes still form whole frames (the next packet starts where the broker expects one). */
  framed: boolean;
}

/** An invalid (or at least suspicious) variant of a valid frame. */
export function mutate(rng: Rng, frame: Uint8Array): Mutation {
  const header = headerSize(frame);
  switch (rng.int(0, 6)) {
    case 0: { // one bit flipped in the body: the length still holds
      const bytes = frame.slice();
      if (bytes.length > header) bytes[rng.int(header, bytes.length - 1)] ^= 1 << rng.int(0, 7);
      return { name: "bit flip", bytes, framed: true };
    }
    case 1: { // wrong fixed-header flags or type
      const bytes = frame.slice();
      bytes[0] = rng.bool() ? (bytes[0] & 0xf0) | rng.int(0, 15) : rng.int(0, 255);
      return { name: "first byte", bytes, framed: true };
    }
    case 2: // cut short: the broker waits for the rest
      return {
        name: "truncated",
        bytes: frame.slice(0, rng.int(1, Math.max(1, frame.length - 1))),
        framed: false,
      };
    case 3: // noise
      return { name: "random bytes", bytes: rng.bytes(rng.int(1, 64)), framed: false };
    case 4: { // a Remaining Length far beyond any limit, then a little of it
      const length = rng.pick([70_000, 1 << 20, 268_435_455]);
      return {
        name: "huge length",
        bytes: new Uint8Array([frame[0], ...varInt(length), ...rng.bytes(rng.int(0, 32))]),
        framed: false,
      };
    }
    case 5: { // junk appended inside the Remaining Length
      const body = frame.subarray(header);
      const junk = rng.bytes(rng.int(1, 8));
      return {
        name: "trailing junk",
        bytes: new Uint8Array([frame[0], ...varInt(body.length + junk.length), ...body, ...junk]),
        framed: true,
      };
    }
    default: { // Remaining Length shorter than the body: the rest is read as the next packet
      const body = frame.subarray(header);
      const cut = rng.int(0, Math.max(0, body.length - 1));
      return {
        name: "short length",
        bytes: new Uint8Array([frame[0], ...varInt(cut), ...body]),
        framed: false,
      };
    }
  }
}

export function hex(bytes: Uint8Array, max = 24): string {
  return [...bytes.subarray(0, max)].map((b) => b.toString(16).padStart(2, "0")).join(" ") +
    (bytes.length > max ? " …" : "");
}

/** What one fuzzing connection saw; `failures` must stay empty. */
export interface FuzzStats {
  connections: number;
  packetsSent: number;
  mutationsSent: number;
  pingsAnswered: number;
  pingsOnClosed: number;
  closedByServer: number;
  failures: string[];
}

export function emptyStats(): FuzzStats {
  return {
    connections: 0,
    packetsSent: 0,
    mutationsSent: 0,
    pingsAnswered: 0,
    pingsOnClosed: 0,
    closedByServer: 0,
    failures: [],
  };
}

const ANSWER_TIMEOUT_MS = 3000;

/**
 * One socket to the broker with a reader that decodes everything the broker sends (it must always be
 * well-formed) and counts PINGRESPs.
 */
class FuzzConnection {
  readonly #decoder: Decoder;
  closed = false;
  pingresps = 0;
  connack: Packet | undefined;
  malformedFromServer: string | undefined;
  /**
   * Set after a mutated CONNECT: its level byte may be anything, and a broker may answer an unknown level
   * in 3.1.1 form, which this connection's decoder (set for the level we meant) cannot read.
   */
  lenient = false;
  #wake: (() => void) | undefined;
  readonly reading: Promise<void>;

  constructor(readonly conn: Deno.TcpConn, version: ProtocolVersion) {
    this.#decoder = new Decoder({ maxPacketSize: 1 << 28, protocolVersion: version });
    this.reading = this.#read();
  }

  async #read(): Promise<void> {
    const buffer = new Uint8Array(65536);
    try {
      for (;;) {
        const n = await this.conn.read(buffer);
        if (n === null) break;
        this.#decoder.push(buffer.slice(0, n));
        try {
          for (let packet = this.#decoder.next(); packet; packet = this.#decoder.next()) {
            if (packet.type === "pingresp") this.pingresps++;
            if (packet.type === "connack") this.connack = packet;
          }
        } catch (error) {
          if (!this.lenient) this.malformedFromServer = (error as Error).message;
          break;
        }
        this.#wake?.();
      }
    } catch { /* reset: same as closed */ }
    this.closed = true;
    this.#wake?.();
  }

  /** Waits until `condition` holds or `ms` pass; returns whether it held. */
  async until(condition: () => boolean, ms: number): Promise<boolean> {
    const deadline = Date.now() + ms;
    while (!condition()) {
      const left = deadline - Date.now();
      if (left <= 0) return false;
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
        timer = setTimeout(resolve, Math.min(left, 50));
      });
      clearTimeout(timer);
    }
    return true;
  }

  async send(bytes: Uint8Array): Promise<boolean> {
    try {
      let offset = 0;
      while (offset < bytes.length) offset += await this.conn.write(bytes.subarray(offset));
      return true;
    } catch {
      return false;
    }
  }

  async close(): Promise<void> {
    try {
      this.conn.close();
    } catch { /* already closed */ }
    await this.reading;
  }
}

/**
 * The generator of one round of one client: its packets depend only on (seed, client, round), so a
 * failure report's "client i round r" replays with `fuzzClient(port, i, seed, …)` even when timing made
 * other rounds end early.
 */
export function roundRng(seed: number, index: number, round: number): Rng {
  let h = (seed ^ Math.imul(index + 1, 0x9e3779b1) ^ Math.imul(round, 0x85ebca6b)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d) >>> 0;
  return new Rng(h);
}

/**
 * Runs fuzzing connections one after another until `deadline`: CONNECT (sometimes broken or missing), then
 * a random mix of valid packets, PINGREQs and mutations. Checks: a valid CONNECT is answered (CONNACK or a
 * close), every PINGREQ sent while the byte stream is still well framed is answered while the connection is
 * open, and everything the broker sends decodes.
 */
export async function fuzzClient(
  port: number,
  index: number,
  seed: number,
  deadline: number,
  stats: FuzzStats,
  options: { rounds?: number; trace?: (clientId: string, trail: string[]) => void } = {},
): Promise<void> {
  const rounds = options.rounds ?? Infinity;
  for (let round = 1; round <= rounds && Date.now() < deadline; round++) {
    const rng = roundRng(seed, index, round);
    const version: ProtocolVersion = rng.pick([4, 5, 5] as const);
    const trail: string[] = [];
    const fail = (what: string) =>
      stats.failures.push(
        `client ${index} round ${round} (v${version}): ${what}; sent: ${trail.slice(-6).join(" | ")}`,
      );
    const conn = new FuzzConnection(await Deno.connect({ hostname: "127.0.0.1", port }), version);
    stats.connections++;
    const clientId = rng.bool(0.1) ? `fz-shared-${rng.int(0, 3)}` : `fz-${index}-${round}`;
    try {
      let framed = true;
      const connect = encode(connectPacket(rng, version, clientId), version);
      if (rng.bool(0.05)) {
        const mutation = mutate(rng, connect);
        trail.push(`${mutation.name} CONNECT ${hex(mutation.bytes)}`);
        conn.lenient = true;
        await conn.send(mutation.bytes);
        stats.mutationsSent++;
        await conn.until(() => conn.closed, 200);
        continue;
      }
      trail.push(`CONNECT ${clientId}`);
      await conn.send(connect);
      if (!await conn.until(() => conn.connack !== undefined || conn.closed, ANSWER_TIMEOUT_MS)) {
        fail("no CONNACK and no close within 3 s");
        continue;
      }
      if (conn.closed) continue;
      const steps = rng.int(3, 40);
      for (let step = 0; step < steps && !conn.closed && Date.now() < deadline; step++) {
        const roll = rng.float();
        if (roll < 0.15) {
          const before = conn.pingresps;
          trail.push("PINGREQ");
          if (!await conn.send(new Uint8Array([0xc0, 0x00]))) break;
          if (!framed) continue;
          const answered = await conn.until(() => conn.pingresps > before || conn.closed, ANSWER_TIMEOUT_MS);
          if (!answered) fail("a well-framed PINGREQ on an open connection got no PINGRESP within 3 s");
          else if (conn.pingresps > before) stats.pingsAnswered++;
          else stats.pingsOnClosed++;
        } else if (roll < 0.8) {
          const packet = clientPacket(rng, version);
          const bytes = encode(packet, version);
          trail.push(`${packet.type} ${hex(bytes, 12)}`);
          if (!await conn.send(bytes)) break;
          stats.packetsSent++;
          if (packet.type === "disconnect") break;
        } else {
          const mutation = mutate(rng, encode(clientPacket(rng, version), version));
          trail.push(`${mutation.name} ${hex(mutation.bytes)}`);
          if (!await conn.send(mutation.bytes)) break;
          stats.mutationsSent++;
          framed &&= mutation.framed;
        }
        if (rng.bool(0.2)) await new Promise((resolve) => setTimeout(resolve, rng.int(0, 20)));
      }
    } finally {
      if (conn.malformedFromServer) {
        fail(`the broker sent bytes that do not decode: ${conn.malformedFromServer}`);
      }
      if (conn.closed) stats.closedByServer++;
      await conn.close();
      options.trace?.(clientId, trail);
    }
  }
}
