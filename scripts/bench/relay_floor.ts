/**
 * The latency floor for `deno task bench`: the least an MQTT relay written on Deno does per message. A bare
 * `Deno.listen` server that speaks just enough MQTT 3.1.1 for the generator's latency cases (CONNECT,
 * SUBSCRIBE to exact topics, PUBLISH at QoS 0 and 1, PUBACK, PINGREQ, DISCONNECT) and forwards each PUBLISH
 * to the subscribers of its topic, reading and writing the way mqtt-proxy does (one read pending per
 * socket into a 64 KiB buffer, the frames of one read handled in its turn, one write per connection per
 * turn). No wildcards, sessions, limits or validation: its latency at a fixed rate is Deno's own share
 * (event loop, ops, V8 beside it on the same core), and what mqtt-proxy shows above it is the broker's.
 *
 * Usage: deno run --allow-net=127.0.0.1 relay_floor.ts --port N
 */

const CONNACK = new Uint8Array([0x20, 2, 0, 0]);
const PINGRESP = new Uint8Array([0xd0, 0]);
const READ_BYTES = 64 * 1024;
const decoder = new TextDecoder();

/** One client socket: the bytes of a frame not yet complete, and what waits to be written. */
class Client {
  #partial: Uint8Array | undefined;
  #outgoing: Uint8Array[] = [];
  #writing = false;
  #nextPacketId = 0;

  constructor(readonly conn: Deno.TcpConn) {}

  /** The complete frames in `bytes` (after what an earlier read left), and keeps the incomplete rest. */
  *frames(bytes: Uint8Array): Generator<Uint8Array> {
    let data = bytes;
    if (this.#partial) {
      data = new Uint8Array(this.#partial.length + bytes.length);
      data.set(this.#partial);
      data.set(bytes, this.#partial.length);
      this.#partial = undefined;
    }
    let offset = 0;
    while (offset + 2 <= data.length) {
      let remaining = 0, multiplier = 1, cursor = offset + 1, complete = false;
      while (cursor < data.length) {
        const digit = data[cursor++];
        remaining += (digit & 0x7f) * multiplier;
        multiplier *= 128;
        if ((digit & 0x80) === 0) {
          complete = true;
          break;
        }
      }
      if (!complete || cursor + remaining > data.length) break;
      yield data.subarray(offset, cursor + remaining);
      offset = cursor + remaining;
    }
    // A frame outlives the read buffer only when it is split across reads.
    if (offset < data.length) this.#partial = data.slice(offset);
  }

  nextPacketId(): number {
    this.#nextPacketId = this.#nextPacketId % 0xffff + 1;
    return this.#nextPacketId;
  }

  /** Queues a copy of `frame`: the read buffer it may point into is read into again. */
  send(frame: Uint8Array): void {
    this.#outgoing.push(frame.slice());
  }

  /** Writes what the turn queued, as one write; a write in progress takes it when it is done. */
  async flush(): Promise<void> {
    if (this.#writing || this.#outgoing.length === 0) return;
    this.#writing = true;
    try {
      while (this.#outgoing.length > 0) {
        const chunks = this.#outgoing;
        this.#outgoing = [];
        let bytes = chunks[0];
        if (chunks.length > 1) {
          bytes = new Uint8Array(chunks.reduce((sum, chunk) => sum + chunk.length, 0));
          let at = 0;
          for (const chunk of chunks) {
            bytes.set(chunk, at);
            at += chunk.length;
          }
        }
        for (let written = 0; written < bytes.length;) {
          written += await this.conn.write(bytes.subarray(written));
        }
      }
    } finally {
      this.#writing = false;
    }
  }
}

/** Offset of a PUBLISH's topic length and the topic itself (the frame's fixed header is 1 + n bytes). */
function publishTopic(frame: Uint8Array): { topic: string; afterTopic: number } {
  let cursor = 1;
  while (frame[cursor++] & 0x80);
  const length = (frame[cursor] << 8) | frame[cursor + 1];
  const topic = decoder.decode(frame.subarray(cursor + 2, cursor + 2 + length));
  return { topic, afterTopic: cursor + 2 + length };
}

/** The exact topics of a SUBSCRIBE, and its packet id and the number of filters (for the SUBACK). */
function subscribeFilters(frame: Uint8Array): { packetId: number; filters: string[] } {
  let cursor = 1;
  while (frame[cursor++] & 0x80);
  const packetId = (frame[cursor] << 8) | frame[cursor + 1];
  cursor += 2;
  const filters: string[] = [];
  while (cursor + 2 <= frame.length) {
    const length = (frame[cursor] << 8) | frame[cursor + 1];
    filters.push(decoder.decode(frame.subarray(cursor + 2, cursor + 2 + length)));
    cursor += 2 + length + 1; // the requested QoS follows the filter
  }
  return { packetId, filters };
}

export function startRelay(port: number): { stop(): void } {
  const subscribers = new Map<string, Set<Client>>();

  const handle = (client: Client, frame: Uint8Array, touched: Set<Client>): boolean => {
    const type = frame[0] >> 4;
    switch (type) {
      case 1: // CONNECT
        client.send(CONNACK);
        touched.add(client);
        return true;
      case 3: { // PUBLISH
        const qos = (frame[0] >> 1) & 3;
        const { topic, afterTopic } = publishTopic(frame);
        if (qos > 0) {
          const packetId = frame.subarray(afterTopic, afterTopic + 2);
          client.send(new Uint8Array([0x40, 2, packetId[0], packetId[1]]));
          touched.add(client);
        }
        for (const subscriber of subscribers.get(topic) ?? []) {
          if (qos > 0) {
            const copy = frame.slice();
            const id = subscriber.nextPacketId();
            copy[afterTopic] = id >> 8;
            copy[afterTopic + 1] = id & 0xff;
            subscriber.send(copy);
          } else {
            subscriber.send(frame);
          }
          touched.add(subscriber);
        }
        return true;
      }
      case 8: { // SUBSCRIBE
        const { packetId, filters } = subscribeFilters(frame);
        for (const filter of filters) {
          let set = subscribers.get(filter);
          if (!set) subscribers.set(filter, set = new Set());
          set.add(client);
        }
        client.send(
          new Uint8Array([0x90, 2 + filters.length, packetId >> 8, packetId & 0xff, ...filters.map(() => 1)]),
        );
        touched.add(client);
        return true;
      }
      case 4: // PUBACK from a subscriber: nothing is kept to release
        return true;
      case 12: // PINGREQ
        client.send(PINGRESP);
        touched.add(client);
        return true;
      default: // DISCONNECT, or anything this floor does not speak
        return false;
    }
  };

  const listener = Deno.listen({ hostname: "127.0.0.1", port });
  void (async () => {
    for await (const conn of listener) void serveClient(conn);
  })().catch(() => {});

  async function serveClient(conn: Deno.TcpConn): Promise<void> {
    conn.setNoDelay(true);
    const client = new Client(conn);
    const buffer = new Uint8Array(READ_BYTES);
    const touched = new Set<Client>();
    try {
      reading: for (;;) {
        const n = await conn.read(buffer);
        if (n === null) break;
        for (const frame of client.frames(buffer.subarray(0, n))) {
          if (!handle(client, frame, touched)) break reading;
        }
        for (const peer of touched) peer.flush().catch(() => {});
        touched.clear();
      }
    } catch {
      // reset by the peer
    } finally {
      for (const set of subscribers.values()) set.delete(client);
      try {
        conn.close();
      } catch { /* already closed */ }
    }
  }

  return { stop: () => listener.close() };
}

if (import.meta.main) {
  const index = Deno.args.indexOf("--port");
  const port = Number(index >= 0 ? Deno.args[index + 1] : NaN);
  if (!Number.isInteger(port) || port <= 0 || port > 65535) {
    throw new Error("usage: relay_floor.ts --port <1-65535>");
  }
  // The benchmark stops the floor between runs: exit at once.
  Deno.addSignalListener("SIGTERM", () => Deno.exit(0));
  startRelay(port);
}
