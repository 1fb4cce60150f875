/**
 * MQTT over WebSocket (ws and wss): MQTT.js on ws:// and wss://, raw WebSockets that split a CONNECT
 * across two messages or pack CONNECT+SUBSCRIBE into one, subprotocol and path handling, text frames,
 * TCP flow control reaching a client that sends faster than it is read, and the shutdown DISCONNECT
 * reaching a WebSocket client.
 */
import assert from "node:assert/strict";
import { Decoder, encode, type Packet, type ProtocolVersion } from "../../src/codec/mod.ts";
import { type ByteStream, listenWebSocket } from "../../src/transport/mod.ts";
import { withBroker } from "../helpers/broker.ts";
import { endJs, sleep, withTimeout } from "../interop/tools.ts";
import { connectUrl } from "../interop/tools.ts";
import { roundTrip, testCerts } from "./support.ts";

const WS = "listener.default.type = ws";

/** A raw WebSocket client that decodes what the broker sends. */
class RawWs {
  readonly packets: Packet[] = [];
  readonly closed: Promise<CloseEvent>;
  readonly #decoder: Decoder;
  #wake: (() => void) | undefined;

  private constructor(readonly socket: WebSocket, version: ProtocolVersion) {
    this.#decoder = new Decoder({ maxPacketSize: 1 << 20, protocolVersion: version });
    socket.binaryType = "arraybuffer";
    socket.onmessage = (event) => {
      this.#decoder.push(new Uint8Array(event.data as ArrayBuffer));
      for (let packet = this.#decoder.next(); packet; packet = this.#decoder.next()) {
        this.packets.push(packet);
      }
      this.#wake?.();
    };
    this.closed = new Promise((resolve) =>
      socket.onclose = (event) => {
        resolve(event);
        this.#wake?.();
      }
    );
  }

  static async open(
    url: string,
    protocols: string[] = ["mqtt"],
    version: ProtocolVersion = 4,
  ): Promise<RawWs> {
    const socket = new WebSocket(url, protocols);
    await withTimeout(
      new Promise<void>((resolve, reject) => {
        socket.onopen = () => resolve();
        socket.onerror = (event) => reject(new Error(`WebSocket failed: ${(event as ErrorEvent).message}`));
      }),
      5000,
      `open ${url}`,
    );
    return new RawWs(socket, version);
  }

  async take(count: number): Promise<Packet[]> {
    const deadline = Date.now() + 5000;
    while (this.packets.length < count) {
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(`expected ${count} packets, got ${JSON.stringify(this.packets.map((p) => p.type))}`);
      }
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
        timer = setTimeout(resolve, left);
      });
      clearTimeout(timer);
    }
    return this.packets.splice(0, count);
  }

  async close(): Promise<void> {
    if (this.socket.readyState === WebSocket.OPEN) this.socket.close();
    await withTimeout(this.closed, 5000, "WebSocket close");
  }
}

function connectPacket(clientId: string, version: ProtocolVersion = 4): Uint8Array {
  return encode({
    type: "connect",
    protocolName: version === 3 ? "MQIsdp" : "MQTT",
    protocolVersion: version,
    cleanStart: true,
    keepAlive: 30,
    clientId,
    properties: {},
  }, version);
}

function subscribePacket(topicFilter: string): Uint8Array {
  return encode({
    type: "subscribe",
    packetId: 7,
    subscriptions: [{ topicFilter, qos: 1, noLocal: false, retainAsPublished: false, retainHandling: 0 }],
    properties: {},
  }, 4);
}

Deno.test("ws: MQTT.js over ws://127.0.0.1:<port>/mqtt publishes and receives (3.1.1 and 5)", async () => {
  await withBroker(WS, async ({ port }) => {
    const url = `ws://127.0.0.1:${port}/mqtt`;
    const sub = await connectUrl(url, { clientId: "ws-sub", protocolVersion: 4 });
    const pub = await connectUrl(url, { clientId: "ws-pub", protocolVersion: 5 });
    try {
      const message = await roundTrip(sub, pub, "ws/t", "over websocket");
      assert.equal(message.payload, "over websocket");
      const big = "x".repeat(200_000); // one PUBLISH far larger than any single read
      await pub.client.publishAsync("ws/t", big, { qos: 1 });
      const [, second] = await sub.inbox.take(2);
      assert.equal(second.payload.length, big.length);
    } finally {
      await endJs(sub.client, pub.client);
    }
  });
});

Deno.test("ws: a CONNECT split across two messages, then CONNECT+SUBSCRIBE packed in one message", async () => {
  await withBroker(WS, async ({ port }) => {
    const url = `ws://127.0.0.1:${port}/mqtt`;
    const split = await RawWs.open(url);
    assert.equal(split.socket.protocol, "mqtt");
    const connect = connectPacket("split");
    split.socket.send(connect.subarray(0, 5));
    await sleep(50);
    assert.equal(split.packets.length, 0, "half a CONNECT gets no answer");
    split.socket.send(connect.subarray(5));
    const [connack] = await split.take(1);
    assert.equal(connack.type, "connack");

    const packed = await RawWs.open(url);
    const both = new Uint8Array([...connectPacket("packed"), ...subscribePacket("ws/packed")]);
    packed.socket.send(both);
    const [ack, suback] = await packed.take(2);
    assert.equal(ack.type, "connack");
    assert.equal(suback.type, "suback");
    assert.deepEqual(suback.type === "suback" && suback.reasonCodes, [1]);

    // A PUBLISH from `split`, byte by byte, reaches `packed`.
    const publish = encode(
      {
        type: "publish",
        topic: "ws/packed",
        payload: new TextEncoder().encode("bytes"),
        qos: 0,
        retain: false,
        dup: false,
        properties: {},
      },
      4,
    );
    for (const byte of publish) split.socket.send(new Uint8Array([byte]));
    const [delivered] = await packed.take(1);
    assert.equal(delivered.type, "publish");
    assert.equal(delivered.type === "publish" && new TextDecoder().decode(delivered.payload), "bytes");
    await split.close();
    await packed.close();
  });
});

Deno.test("ws: subprotocol mqttv3.1 is accepted for MQTT 3.1 clients; a foreign one is refused; other paths are 404", async () => {
  await withBroker(WS, async ({ port }) => {
    const old = await RawWs.open(`ws://127.0.0.1:${port}/mqtt`, ["mqttv3.1"], 3);
    assert.equal(old.socket.protocol, "mqttv3.1");
    old.socket.send(connectPacket("v31", 3));
    const [connack] = await old.take(1);
    assert.equal(connack.type, "connack");
    await old.close();

    await assert.rejects(RawWs.open(`ws://127.0.0.1:${port}/mqtt`, ["chat"]), /WebSocket failed/);
    await assert.rejects(RawWs.open(`ws://127.0.0.1:${port}/other`), /WebSocket failed/);
    const notFound = await fetch(`http://127.0.0.1:${port}/other`);
    assert.equal(notFound.status, 404);
    await notFound.body?.cancel();
    const plain = await fetch(`http://127.0.0.1:${port}/mqtt`);
    assert.equal(plain.status, 426, "a plain GET on the MQTT path is told to upgrade");
    await plain.body?.cancel();
  });
});

Deno.test("ws: a text message closes the connection (MQTT §6: binary only)", async () => {
  await withBroker(WS, async ({ port }) => {
    const client = await RawWs.open(`ws://127.0.0.1:${port}/mqtt`);
    client.socket.send("CONNECT please");
    const event = await withTimeout(client.closed, 5000, "close after a text frame");
    assert.equal(event.code, 1003);
  });
});

Deno.test("ws: a client that sends faster than it is read meets TCP flow control: the server buffers nothing for it", async () => {
  const held: ByteStream[] = [];
  const listener = await listenWebSocket(
    { name: "t", hostname: "127.0.0.1", port: 0 },
    (accepted) => {
      held.push(accepted.stream);
      // One read runs the upgrade and takes the first bytes; then this reader stops.
      void accepted.stream.read(new Uint8Array(16)).catch(() => null);
    },
    (error) => {
      throw error;
    },
  );
  try {
    const client = await RawWs.open(`ws://127.0.0.1:${listener.port}/mqtt`);
    const sent = 64 << 20;
    for (let offset = 0; offset < sent; offset += 16 * 1024) client.socket.send(new Uint8Array(16 * 1024));
    // Wait until the client's send buffer stops draining: what the kernels hold is all that left it.
    let previous = -1;
    for (let i = 0; i < 50 && client.socket.bufferedAmount !== previous; i++) {
      previous = client.socket.bufferedAmount;
      await sleep(100);
    }
    const left = sent - client.socket.bufferedAmount;
    assert.ok(left < 24 << 20, `${left} bytes left the client: the server read what nobody asked for`);
    assert.equal(client.socket.readyState, WebSocket.OPEN);
    client.socket.close();
  } finally {
    for (const stream of held) stream.close();
    listener.close();
    await listener.done;
  }
});

Deno.test("ws: on shutdown a v5 WebSocket client receives DISCONNECT 0x8B before the close", async () => {
  let raw: RawWs | undefined;
  await withBroker(WS, async ({ port, running }) => {
    raw = await RawWs.open(`ws://127.0.0.1:${port}/mqtt`, ["mqtt"], 5);
    raw.socket.send(connectPacket("v5-ws", 5));
    const [connack] = await raw.take(1);
    assert.equal(connack.type, "connack");
    await running.stop();
  });
  const [disconnect] = await raw!.take(1);
  assert.equal(disconnect.type, "disconnect");
  assert.equal(disconnect.type === "disconnect" && disconnect.reasonCode, 0x8b);
  await withTimeout(raw!.closed, 5000, "closed after DISCONNECT");
});

Deno.test("wss: MQTT.js over wss:// with the test CA publishes and receives", async () => {
  const certs = await testCerts();
  const config = [
    "listener.default.type = wss",
    `listener.default.cert_file = ${certs.serverCert}`,
    `listener.default.key_file = ${certs.serverKey}`,
    "listener.default.path = /secure",
  ].join("\n");
  await withBroker(config, async ({ port }) => {
    const url = `wss://127.0.0.1:${port}/secure`;
    const options = { ca: certs.pem.ca, rejectUnauthorized: true };
    const sub = await connectUrl(url, { ...options, clientId: "wss-sub" });
    const pub = await connectUrl(url, { ...options, clientId: "wss-pub", protocolVersion: 5 });
    try {
      const message = await roundTrip(sub, pub, "wss/t", "secure websocket");
      assert.equal(message.payload, "secure websocket");
    } finally {
      await endJs(sub.client, pub.client);
    }
    await assert.rejects(
      connectUrl(`wss://127.0.0.1:${port}/secure`, {
        clientId: "distrust",
        ca: certs.pem.rogueCert,
        rejectUnauthorized: true,
      }),
    );
  });
});
