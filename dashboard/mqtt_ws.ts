/// <reference lib="dom" />
/**
 * A small MQTT 5 client over WebSocket for the dashboard's test client, built on the broker's own codec
 * (src/codec is pure TypeScript without Deno APIs, so it runs in the browser as it is).
 */
import { Decoder, encode, type Packet } from "../src/codec/mod.ts";

export interface TestMessage {
  topic: string;
  payload: string;
  qos: number;
  retain: boolean;
}

export interface MqttWsEvents {
  onMessage(message: TestMessage): void;
  onStatus(status: string): void;
}

/** One connection; `connect` resolves after a successful CONNACK. */
export class MqttWsClient {
  #socket: WebSocket | undefined;
  readonly #decoder = new Decoder({ maxPacketSize: 1 << 20, protocolVersion: 5 });
  #nextId = 1;
  #connack: ((packet: Packet) => void) | undefined;

  constructor(private readonly events: MqttWsEvents) {}

  connect(url: string, clientId: string, username?: string, password?: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const socket = new WebSocket(url, ["mqtt"]);
      socket.binaryType = "arraybuffer";
      this.#socket = socket;
      socket.onopen = () => {
        this.#send({
          type: "connect",
          protocolName: "MQTT",
          protocolVersion: 5,
          clientId,
          cleanStart: true,
          keepAlive: 60,
          properties: {},
          ...(username ? { username } : {}),
          ...(password ? { password: new TextEncoder().encode(password) } : {}),
        });
      };
      this.#connack = (packet) => {
        if (packet.type === "connack" && packet.reasonCode === 0) {
          this.events.onStatus("connected");
          resolve();
        } else {
          const code = packet.type === "connack" ? packet.reasonCode : -1;
          reject(new Error(`refused: reason 0x${code.toString(16)}`));
          socket.close();
        }
      };
      socket.onmessage = (event) => {
        this.#decoder.push(new Uint8Array(event.data as ArrayBuffer));
        for (let packet = this.#decoder.next(); packet; packet = this.#decoder.next()) this.#receive(packet);
      };
      socket.onerror = () => reject(new Error(`cannot open ${url}`));
      socket.onclose = () => this.events.onStatus("disconnected");
    });
  }

  subscribe(topicFilter: string, qos: 0 | 1 | 2): void {
    this.#send({
      type: "subscribe",
      packetId: this.#packetId(),
      subscriptions: [{ topicFilter, qos, noLocal: false, retainAsPublished: false, retainHandling: 0 }],
      properties: {},
    });
  }

  publish(topic: string, payload: string, qos: 0 | 1 | 2, retain: boolean): void {
    this.#send({
      type: "publish",
      topic,
      payload: new TextEncoder().encode(payload),
      qos,
      retain,
      dup: false,
      ...(qos > 0 ? { packetId: this.#packetId() } : {}),
      properties: {},
    });
  }

  close(): void {
    if (this.#socket?.readyState === WebSocket.OPEN) {
      this.#send({ type: "disconnect", reasonCode: 0, properties: {} });
    }
    this.#socket?.close();
  }

  #receive(packet: Packet): void {
    switch (packet.type) {
      case "connack":
        return this.#connack?.(packet);
      case "publish":
        this.events.onMessage({
          topic: packet.topic,
          payload: new TextDecoder().decode(packet.payload),
          qos: packet.qos,
          retain: packet.retain,
        });
        if (packet.qos === 1) {
          this.#send({ type: "puback", packetId: packet.packetId!, reasonCode: 0, properties: {} });
        }
        if (packet.qos === 2) {
          this.#send({ type: "pubrec", packetId: packet.packetId!, reasonCode: 0, properties: {} });
        }
        return;
      case "pubrel":
        return this.#send({ type: "pubcomp", packetId: packet.packetId, reasonCode: 0, properties: {} });
      case "pubrec":
        return this.#send({ type: "pubrel", packetId: packet.packetId, reasonCode: 0, properties: {} });
      case "suback":
        return this.events.onStatus(packet.reasonCodes[0] < 0x80 ? "subscribed" : "subscription refused");
      case "disconnect":
        return this.events.onStatus(`disconnected by the broker (0x${packet.reasonCode.toString(16)})`);
    }
  }

  #packetId(): number {
    const id = this.#nextId;
    this.#nextId = id === 65535 ? 1 : id + 1;
    return id;
  }

  #send(packet: Packet): void {
    this.#socket?.send(encode(packet, 5));
  }
}
