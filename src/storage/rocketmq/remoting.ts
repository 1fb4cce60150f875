/**
 * A minimal client of RocketMQ's remoting protocol (the TCP protocol of the name server and the broker),
 * enough for the few admin requests the gRPC client cannot make: create a topic, create an orderly consumer
 * group, read and set a group's offset. Frames: int32 length, int32 (serialize type << 24 | header length),
 * a JSON header, the body. Only the JSON header encoding is spoken; one request at a time per connection
 * is not required (responses are matched by `opaque`).
 */

/** `MQVersion.Version.V5_5_0.ordinal()`: the version a 5.5.0 client announces. */
const CLIENT_VERSION = 513;
/** Bit 0 of `flag` marks a response. */
const RESPONSE_FLAG = 1;
/** A pull answer holds up to the broker's maxTransferBytesOnMessageInMemory (8 MiB in scripts/rocketmq.sh), or one larger message. */
const MAX_FRAME_BYTES = 64 * 1024 * 1024;
const READ_BUFFER_BYTES = 64 * 1024;
/** The least free space a read is given. */
const MIN_READ_BYTES = 16 * 1024;

/** One response: `code` 0 is success; `remark` says why not. */
export interface RemotingResponse {
  code: number;
  remark: string;
  extFields: Record<string, string>;
  body: Uint8Array;
}

interface Pending {
  resolve(response: RemotingResponse): void;
  reject(error: Error): void;
  timer: ReturnType<typeof setTimeout>;
}

/** Splits `host:port` (or `[v6]:port`). */
export function parseAddress(address: string): { hostname: string; port: number } {
  const colon = address.lastIndexOf(":");
  const port = Number(address.slice(colon + 1));
  if (colon <= 0 || !Number.isInteger(port) || port <= 0 || port > 65535) {
    throw new Error(`not a host:port address: "${address}"`);
  }
  return { hostname: address.slice(0, colon).replace(/^\[(.*)\]$/, "$1"), port };
}

/**
 * Parses a JSON body written by RocketMQ's fastjson, which writes maps with number keys unquoted
 * (`{"brokerAddrs":{0:"127.0.0.1:10911"}}`); quotes such keys first.
 */
export function parseRocketMqJson(bytes: Uint8Array): unknown {
  const text = new TextDecoder().decode(bytes);
  return JSON.parse(text.replace(/([{,])\s*(-?\d+)\s*:/g, '$1"$2":'));
}

/** One TCP connection to a name server or broker. */
export class RemotingConnection {
  readonly #conn: Deno.TcpConn;
  readonly #pending = new Map<number, Pending>();
  #nextOpaque = 1;
  #closed = false;
  readonly #reading: Promise<void>;

  private constructor(conn: Deno.TcpConn, readonly address: string) {
    this.#conn = conn;
    this.#reading = this.#readLoop();
  }

  /** Connects, or rejects after `timeoutMs`. */
  static async open(address: string, timeoutMs: number): Promise<RemotingConnection> {
    const { hostname, port } = parseAddress(address);
    const signal = AbortSignal.timeout(timeoutMs);
    try {
      const conn = await Deno.connect({ hostname, port, signal });
      return new RemotingConnection(conn, address);
    } catch (error) {
      throw new Error(`cannot connect to RocketMQ at ${address}: ${message(error)}`);
    }
  }

  /** Sends one request and waits for its response, at most `timeoutMs`. */
  request(
    code: number,
    extFields: Record<string, string>,
    body: Uint8Array = new Uint8Array(0),
    timeoutMs = 5000,
  ): Promise<RemotingResponse> {
    if (this.#closed) return Promise.reject(new Error(`connection to ${this.address} is closed`));
    const opaque = this.#nextOpaque++;
    const header = new TextEncoder().encode(JSON.stringify({
      code,
      language: "OTHER",
      version: CLIENT_VERSION,
      opaque,
      flag: 0,
      extFields,
      serializeTypeCurrentRPC: "JSON",
    }));
    const frame = new Uint8Array(8 + header.length + body.length);
    const view = new DataView(frame.buffer);
    view.setInt32(0, 4 + header.length + body.length);
    view.setInt32(4, header.length); // serialize type 0 (JSON) in the top byte
    frame.set(header, 8);
    frame.set(body, 8 + header.length);
    return new Promise<RemotingResponse>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(opaque);
        reject(
          new Error(`RocketMQ at ${this.address} did not answer request ${code} within ${timeoutMs} ms`),
        );
      }, timeoutMs);
      this.#pending.set(opaque, { resolve, reject, timer });
      this.#writeAll(frame).catch((error) => this.#fail(error));
    });
  }

  async close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      try {
        this.#conn.close();
      } catch { /* already closed by the peer */ }
    }
    await this.#reading;
  }

  async #writeAll(bytes: Uint8Array): Promise<void> {
    for (let offset = 0; offset < bytes.length;) {
      offset += await this.#conn.write(bytes.subarray(offset));
    }
  }

  /**
   * Reads frames into one buffer that is compacted in place and grown to fit the frame being read (a pull
   * answer is up to 8 MiB; merging every 64 KiB read into a new array copied it again on every read), and
   * that goes back to its small size once a large frame has been handed on.
   */
  async #readLoop(): Promise<void> {
    let buffer = new Uint8Array(READ_BUFFER_BYTES);
    let start = 0;
    let end = 0;
    try {
      for (;;) {
        const pending = end - start;
        let room = MIN_READ_BYTES;
        if (pending >= 4) room = Math.max(room, 4 + this.#frameLength(buffer, start) - pending);
        if (buffer.length - end < room) {
          if (pending + room <= buffer.length) {
            buffer.copyWithin(0, start, end);
          } else {
            const grown = new Uint8Array(Math.max(pending + room, buffer.length * 2));
            grown.set(buffer.subarray(start, end));
            buffer = grown;
          }
          start = 0;
          end = pending;
        }
        const n = await this.#conn.read(buffer.subarray(end));
        if (n === null) break;
        end += n;
        while (end - start >= 4) {
          const length = this.#frameLength(buffer, start);
          if (end - start < 4 + length) break;
          this.#dispatch(buffer.subarray(start + 4, start + 4 + length));
          start += 4 + length;
        }
        if (start === end) {
          start = end = 0;
          if (buffer.length > READ_BUFFER_BYTES) buffer = new Uint8Array(READ_BUFFER_BYTES);
        }
      }
      this.#fail(new Error(`RocketMQ at ${this.address} closed the connection`));
    } catch (error) {
      this.#fail(this.#closed ? new Error(`connection to ${this.address} is closed`) : error);
    }
  }

  #frameLength(buffer: Uint8Array, at: number): number {
    const length = new DataView(buffer.buffer, buffer.byteOffset + at, 4).getInt32(0);
    if (length < 4 || length > MAX_FRAME_BYTES) throw new Error(`bad frame length ${length}`);
    return length;
  }

  #dispatch(frame: Uint8Array): void {
    const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
    const typeAndLength = view.getInt32(0);
    if (typeAndLength >>> 24 !== 0) throw new Error("RocketMQ answered in a header encoding other than JSON");
    const headerLength = typeAndLength & 0xffffff;
    const header = JSON.parse(new TextDecoder().decode(frame.subarray(4, 4 + headerLength))) as {
      code: number;
      opaque: number;
      flag: number;
      remark?: string | null;
      extFields?: Record<string, string> | null;
    };
    if ((header.flag & RESPONSE_FLAG) === 0) return; // a request from the server (e.g. a client check): not ours
    const pending = this.#pending.get(header.opaque);
    if (!pending) return; // answered after its timeout
    this.#pending.delete(header.opaque);
    clearTimeout(pending.timer);
    pending.resolve({
      code: header.code,
      remark: header.remark ?? "",
      extFields: header.extFields ?? {},
      body: frame.slice(4 + headerLength),
    });
  }

  #fail(error: unknown): void {
    this.#closed = true;
    try {
      this.#conn.close();
    } catch { /* already closed */ }
    for (const [opaque, pending] of this.#pending) {
      this.#pending.delete(opaque);
      clearTimeout(pending.timer);
      pending.reject(error instanceof Error ? error : new Error(String(error)));
    }
  }
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
