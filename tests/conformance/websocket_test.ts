/** Conformance: MQTT over WebSocket (MQTT 3.1.1 §6, MQTT 5.0 §6) against the broker's ws listener. */
import assert from "node:assert/strict";
import { Decoder, encode, type Packet } from "../../src/codec/mod.ts";
import { withBroker } from "../helpers/broker.ts";
import { connectFrame, frame, str } from "./support.ts";

const WS_LISTENER =
  "listener.ws.type = ws\nlistener.ws.host = 127.0.0.1\nlistener.ws.port = 0\nlistener.ws.path = /mqtt";

/** A WebSocket client that collects binary frames and decodes the MQTT packets in them. */
class WsClient {
  readonly packets: Packet[] = [];
  readonly frameKinds: string[] = [];
  closed = false;
  #decoder = new Decoder({ maxPacketSize: 1 << 20, protocolVersion: 4 });
  #wake: (() => void) | undefined;

  private constructor(readonly socket: WebSocket) {
    socket.binaryType = "arraybuffer";
    socket.onmessage = (event) => {
      this.frameKinds.push(event.data instanceof ArrayBuffer ? "binary" : "text");
      if (event.data instanceof ArrayBuffer) {
        this.#decoder.push(new Uint8Array(event.data));
        for (let packet = this.#decoder.next(); packet; packet = this.#decoder.next()) {
          this.packets.push(packet);
        }
      }
      this.#wake?.();
    };
    socket.onclose = () => {
      this.closed = true;
      this.#wake?.();
    };
    socket.onerror = () => {};
  }

  static async open(port: number, protocols: string[] = ["mqtt"]): Promise<WsClient> {
    const socket = new WebSocket(`ws://127.0.0.1:${port}/mqtt`, protocols);
    await new Promise<void>((resolve, reject) => {
      socket.onopen = () => resolve();
      socket.onerror = () => reject(new Error("WebSocket did not open"));
    });
    return new WsClient(socket);
  }

  /** Waits until `condition` holds, at most 5 s. */
  async until(condition: () => boolean, what: string): Promise<void> {
    const deadline = Date.now() + 5000;
    while (!condition()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}`);
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
        timer = setTimeout(resolve, left);
      });
      clearTimeout(timer);
    }
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.socket.close();
    return this.until(() => this.closed, "close");
  }
}

async function withWsBroker(fn: (port: number) => Promise<void>): Promise<void> {
  await withBroker(WS_LISTENER, async ({ running }) => {
    const listener = running.listeners.find((l) => l.name === "ws");
    assert.ok(listener, "the ws listener is running");
    await fn(listener.port);
  });
}

Deno.test("[MQTT-6.0.0-4] the server selects the WebSocket subprotocol mqtt", async () => {
  await withWsBroker(async (port) => {
    const client = await WsClient.open(port, ["mqtt"]);
    assert.equal(client.socket.protocol, "mqtt");
    await client.close();
  });
});

Deno.test("[MQTT-6.0.0-2] MQTT packets split across WebSocket frames, and several in one frame, are read correctly", async () => {
  await withWsBroker(async (port) => {
    const client = await WsClient.open(port);
    const connect = connectFrame({ clientId: "ws-split" });
    for (const [from, to] of [[0, 1], [1, 5], [5, connect.length]]) {
      client.socket.send(connect.slice(from, to));
    }
    await client.until(() => client.packets.length >= 1, "CONNACK");
    assert.equal(client.packets[0].type, "connack");
    const subscribe = frame(0x82, [0, 1, ...str("ws/t"), 0]);
    const publish = encode({
      type: "publish",
      topic: "ws/t",
      payload: new TextEncoder().encode("hi"),
      qos: 0,
      retain: false,
      dup: false,
      properties: {},
    }, 4);
    client.socket.send(new Uint8Array([...subscribe, 0xc0, 0x00]));
    await client.until(() => client.packets.length >= 3, "SUBACK and PINGRESP");
    client.socket.send(new Uint8Array([...publish.subarray(0, 3)]));
    client.socket.send(new Uint8Array([...publish.subarray(3), 0xc0, 0x00]));
    await client.until(() => client.packets.length >= 5, "PUBLISH and PINGRESP");
    assert.deepEqual(client.packets.map((p) => p.type), [
      "connack",
      "suback",
      "pingresp",
      "publish",
      "pingresp",
    ]);
    await client.close();
  });
});

Deno.test("[MQTT-6.0.0-1] MQTT travels in binary frames: the server sends binary frames and closes on a text frame", async () => {
  await withWsBroker(async (port) => {
    const client = await WsClient.open(port);
    client.socket.send(connectFrame({ clientId: "ws-text" }));
    await client.until(() => client.packets.length >= 1, "CONNACK");
    assert.deepEqual(client.frameKinds, ["binary"]);
    client.socket.send("\u00c0\u0000"); // a PINGREQ's bytes as a text frame
    await client.until(() => client.closed, "the close after a text frame");
    assert.ok(!client.packets.some((p) => p.type === "pingresp"), "the text frame was not read as MQTT");
  });
});
