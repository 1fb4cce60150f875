/**
 * Test harness: a real broker in this process on 127.0.0.1, an ephemeral port, and a raw client that
 * speaks bytes over a real socket. Tests compare exact bytes where the wire format is the point.
 */
import { type RunningBroker, startBroker } from "../../main.ts";
import { Decoder, encode, type Packet, type ProtocolVersion } from "../../src/codec/mod.ts";
import { parseConfig } from "../../src/config/mod.ts";
import { createLogger } from "../../src/observe/mod.ts";

export interface TestBroker {
  port: number;
  running: RunningBroker;
  /** The JSON log lines written so far (level warn and above). */
  logLines: readonly string[];
}

/**
 * The default listener's I/O when `TEST_LISTENER_IO` names one: CI runs the MQTT suites once more with
 * `epoll`, so that every exchange they check also crosses src/transport/epoll.ts.
 */
const testIo = Deno.env.get("TEST_LISTENER_IO");

/** Starts a broker with `properties` lines on top of a loopback listener, runs `fn`, always stops it. */
export async function withBroker(
  properties: string,
  fn: (broker: TestBroker) => Promise<void>,
): Promise<void> {
  const io = testIo && !/^\s*listener\.default\.type\s*=/m.test(properties)
    ? [`listener.default.io = ${testIo}`]
    : [];
  const defaults = [
    "listener.default.host = 127.0.0.1",
    "listener.default.port = 0",
    "storage.type = memory",
    ...io,
  ]
    .filter((line) =>
      !new RegExp(`^\\s*${line.split(" ")[0].replaceAll(".", "\\.")}\\s*=`, "m").test(properties)
    );
  const text = `${defaults.join("\n")}\n${properties}`;
  const config = parseConfig(text, "test.properties");
  const lines: string[] = [];
  const logger = createLogger({ level: "warn", write: (line) => lines.push(line) });
  const running = await startBroker(config, logger);
  try {
    await fn({ port: running.listeners[0].port, running, logLines: lines });
  } finally {
    await running.stop();
  }
  const crashes = lines.filter((line) =>
    line.includes('"connection.crashed"') || line.includes('"connection.failed"')
  );
  if (crashes.length > 0) throw new Error(`broker logged failures:\n${crashes.join("\n")}`);
}

const READ_TIMEOUT_MS = 5000;

/**
 * A client that writes raw bytes and reads raw bytes or decoded packets. A background reader collects
 * what the server sends; every wait has a timeout so a broken broker fails the test instead of hanging it.
 */
export class RawClient {
  readonly #decoder: Decoder;
  /** Packets decoded by {@link expectSilence}, for the next reads. */
  readonly #held: Packet[] = [];
  #buffered = new Uint8Array(0);
  #ended = false;
  #wake: (() => void) | undefined;
  readonly #reader: Promise<void>;

  private constructor(readonly conn: Deno.TcpConn, version: ProtocolVersion) {
    this.#decoder = new Decoder({ maxPacketSize: 1 << 28, protocolVersion: version });
    this.#reader = this.#readLoop();
  }

  static async connect(port: number, version: ProtocolVersion = 4): Promise<RawClient> {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    conn.setNoDelay(true);
    return new RawClient(conn, version);
  }

  set version(version: ProtocolVersion) {
    this.#decoder.protocolVersion = version;
  }

  async send(data: Uint8Array | number[]): Promise<void> {
    const bytes = data instanceof Uint8Array ? data : new Uint8Array(data);
    let offset = 0;
    while (offset < bytes.length) offset += await this.conn.write(bytes.subarray(offset));
  }

  async sendPacket(packet: Packet, version: ProtocolVersion): Promise<void> {
    await this.send(encode(packet, version));
  }

  /** Reads exactly `n` bytes; throws on timeout or end of stream. */
  async readBytes(n: number): Promise<Uint8Array> {
    await this.#waitFor(() => this.#buffered.length >= n || this.#ended);
    if (this.#buffered.length < n) {
      throw new Error(`connection closed after ${this.#buffered.length} of ${n} bytes`);
    }
    const out = this.#buffered.slice(0, n);
    this.#buffered = this.#buffered.slice(n);
    return out;
  }

  /** Reads the next whole packet. */
  async readPacket(): Promise<Packet> {
    const held = this.#held.shift();
    if (held) return held;
    for (;;) {
      if (this.#buffered.length > 0) {
        this.#decoder.push(this.#buffered);
        this.#buffered = new Uint8Array(0);
      }
      const packet = this.#decoder.next();
      if (packet) return packet;
      if (this.#ended) throw new Error("connection closed while waiting for a packet");
      await this.#waitFor(() => this.#buffered.length > 0 || this.#ended);
    }
  }

  /** Resolves with any bytes left once the server has closed the connection. */
  async expectClosed(): Promise<Uint8Array> {
    await this.#waitFor(() => this.#ended);
    return this.#buffered;
  }

  /** True when nothing arrives within `ms` (to assert that a message is NOT delivered). */
  async expectSilence(ms: number): Promise<boolean> {
    await new Promise((resolve) => setTimeout(resolve, ms));
    // Packets that came in the same read as the last one read are in the decoder, not in the buffer.
    const decoded = this.#decoder.next();
    if (decoded) this.#held.push(decoded);
    return this.#held.length === 0 && this.#buffered.length === 0;
  }

  get closedByServer(): boolean {
    return this.#ended;
  }

  async close(): Promise<void> {
    try {
      this.conn.close();
    } catch { /* already closed */ }
    await this.#reader;
  }

  async #readLoop(): Promise<void> {
    const buffer = new Uint8Array(65536);
    try {
      for (;;) {
        const n = await this.conn.read(buffer);
        if (n === null) break;
        const joined = new Uint8Array(this.#buffered.length + n);
        joined.set(this.#buffered);
        joined.set(buffer.subarray(0, n), this.#buffered.length);
        this.#buffered = joined;
        this.#wake?.();
      }
    } catch { /* reset or closed by us: same as the end of the stream */ }
    this.#ended = true;
    this.#wake?.();
  }

  async #waitFor(condition: () => boolean): Promise<void> {
    const deadline = Date.now() + READ_TIMEOUT_MS;
    while (!condition()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`nothing from the broker within ${READ_TIMEOUT_MS} ms`);
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
        timer = setTimeout(resolve, left);
      });
      clearTimeout(timer);
      this.#wake = undefined;
    }
  }
}

/** Bytes from a hex string with spaces, e.g. "10 0c 00 04". */
export function hex(text: string): Uint8Array {
  const clean = text.replace(/\s+/g, "");
  const out = new Uint8Array(clean.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(clean.slice(i * 2, i * 2 + 2), 16);
  return out;
}

export function toHex(bytes: Uint8Array): string {
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join(" ");
}
