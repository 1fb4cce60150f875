/**
 * A minimal MQTT 3.1.1 client over Deno.connect for the big-queue benchmark: just the packets it needs
 * (CONNECT, SUBSCRIBE, PUBLISH QoS 1, PUBACK, DISCONNECT), written by hand so that 100,000 sessions and
 * 1,000,000 messages cost the driver little. Not a general client: no keep-alive, no QoS 2, no retries.
 */

const encoder = new TextEncoder();

export interface Packet {
  /** The fixed header's first byte. */
  header: number;
  body: Uint8Array;
}

function remainingLength(length: number): number[] {
  const bytes: number[] = [];
  do {
    let byte = length % 128;
    length = Math.floor(length / 128);
    if (length > 0) byte |= 0x80;
    bytes.push(byte);
  } while (length > 0);
  return bytes;
}

function frame(header: number, body: Uint8Array): Uint8Array {
  const length = remainingLength(body.length);
  const out = new Uint8Array(1 + length.length + body.length);
  out[0] = header;
  out.set(length, 1);
  out.set(body, 1 + length.length);
  return out;
}

function utf8Field(text: string): Uint8Array {
  const bytes = encoder.encode(text);
  const out = new Uint8Array(2 + bytes.length);
  out[0] = bytes.length >> 8;
  out[1] = bytes.length & 0xff;
  out.set(bytes, 2);
  return out;
}

/** The parts as one array (a lone part as it is). */
export function concat(parts: Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0];
  const out = new Uint8Array(parts.reduce((total, part) => total + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** CONNECT, MQTT 3.1.1, no keep-alive; `clean` false asks for a persistent session. */
export function connectPacket(clientId: string, clean: boolean): Uint8Array {
  const variable = new Uint8Array([0, 4, 77, 81, 84, 84, 4, clean ? 0x02 : 0x00, 0, 0]);
  return frame(0x10, concat([variable, utf8Field(clientId)]));
}

export function subscribePacket(packetId: number, filter: string, qos: 0 | 1): Uint8Array {
  return frame(
    0x82,
    concat([new Uint8Array([packetId >> 8, packetId & 0xff]), utf8Field(filter), new Uint8Array([qos])]),
  );
}

/** PUBLISH QoS 1 written into `out` at `offset`; returns the offset after it. */
export function writePublish(
  out: Uint8Array,
  offset: number,
  topic: Uint8Array,
  packetId: number,
  payload: Uint8Array,
): number {
  const bodyLength = 2 + topic.length + 2 + payload.length;
  out[offset++] = 0x32;
  for (const byte of remainingLength(bodyLength)) out[offset++] = byte;
  out[offset++] = topic.length >> 8;
  out[offset++] = topic.length & 0xff;
  out.set(topic, offset);
  offset += topic.length;
  out[offset++] = packetId >> 8;
  out[offset++] = packetId & 0xff;
  out.set(payload, offset);
  return offset + payload.length;
}

export function pubackPacket(packetId: number): Uint8Array {
  return new Uint8Array([0x40, 2, packetId >> 8, packetId & 0xff]);
}

export const DISCONNECT = new Uint8Array([0xe0, 0]);

/** A parsed PUBLISH (QoS from the header; packetId 0 for QoS 0). */
export interface Publish {
  topic: string;
  packetId: number;
  dup: boolean;
  payload: Uint8Array;
}

export function parsePublish(packet: Packet): Publish {
  const { body } = packet;
  const topicLength = (body[0] << 8) | body[1];
  const topic = new TextDecoder().decode(body.subarray(2, 2 + topicLength));
  const qos = (packet.header >> 1) & 3;
  let offset = 2 + topicLength;
  let packetId = 0;
  if (qos > 0) {
    packetId = (body[offset] << 8) | body[offset + 1];
    offset += 2;
  }
  return { topic, packetId, dup: (packet.header & 0x08) !== 0, payload: body.subarray(offset) };
}

/**
 * One connection: `next()` yields whole packets in order (undefined once the broker closed the socket),
 * `write` sends bytes. Reads go through one growing buffer, packets are copied out of it.
 */
export class WireClient {
  readonly #conn: Deno.TcpConn;
  #buffer = new Uint8Array(64 * 1024);
  #start = 0;
  #end = 0;
  #closed = false;

  private constructor(conn: Deno.TcpConn) {
    this.#conn = conn;
  }

  static async open(port: number): Promise<WireClient> {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    // A DISCONNECT written right after a batch of PUBACKs would otherwise wait for their TCP ACK (Nagle),
    // which the broker's kernel delays by up to 40 ms: per session, whatever the broker.
    conn.setNoDelay(true);
    return new WireClient(conn);
  }

  async write(bytes: Uint8Array): Promise<void> {
    let written = 0;
    while (written < bytes.length) written += await this.#conn.write(bytes.subarray(written));
  }

  /** The next whole packet, or undefined when the socket ended. */
  async next(): Promise<Packet | undefined> {
    for (;;) {
      const packet = this.#parse();
      if (packet) return packet;
      if (this.#closed) return undefined;
      if (this.#end === this.#buffer.length) {
        if (this.#start > 0) {
          this.#buffer.copyWithin(0, this.#start, this.#end);
          this.#end -= this.#start;
          this.#start = 0;
        } else {
          const bigger = new Uint8Array(this.#buffer.length * 2);
          bigger.set(this.#buffer);
          this.#buffer = bigger;
        }
      }
      let n: number | null = null;
      try {
        n = await this.#conn.read(this.#buffer.subarray(this.#end));
      } catch {
        n = null;
      }
      if (n === null) this.#closed = true;
      else this.#end += n;
    }
  }

  /** A whole packet already read, without waiting for the socket. */
  buffered(): Packet | undefined {
    return this.#parse();
  }

  #parse(): Packet | undefined {
    const available = this.#end - this.#start;
    if (available < 2) return undefined;
    let length = 0, multiplier = 1, index = this.#start + 1;
    for (;;) {
      if (index >= this.#end) return undefined;
      const byte = this.#buffer[index++];
      length += (byte & 0x7f) * multiplier;
      if ((byte & 0x80) === 0) break;
      multiplier *= 128;
    }
    if (this.#end - index < length) return undefined;
    const packet = { header: this.#buffer[this.#start], body: this.#buffer.slice(index, index + length) };
    this.#start = index + length;
    if (this.#start === this.#end) this.#start = this.#end = 0;
    return packet;
  }

  close(): void {
    try {
      this.#conn.close();
    } catch {
      // already closed
    }
  }
}

/** Connects and returns the client with its CONNACK's session-present flag; throws on a refusal. */
export async function connect(
  port: number,
  clientId: string,
  clean: boolean,
): Promise<{ client: WireClient; sessionPresent: boolean }> {
  const client = await WireClient.open(port);
  await client.write(connectPacket(clientId, clean));
  const connack = await client.next();
  if (!connack || connack.header !== 0x20 || connack.body[1] !== 0) {
    client.close();
    throw new Error(`${clientId}: CONNACK ${connack ? connack.body[1] : "none (closed)"}`);
  }
  return { client, sessionPresent: (connack.body[0] & 1) === 1 };
}
