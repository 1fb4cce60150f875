/** Packet-level helpers on top of RawClient, for scenario tests that care about flows more than bytes. */
import assert from "node:assert/strict";
import type {
  ConnackPacket,
  ConnectPacket,
  Packet,
  Properties,
  ProtocolVersion,
  PublishPacket,
  QoS,
  Subscription,
  Will,
} from "../../src/codec/mod.ts";
import { RawClient } from "./broker.ts";

export interface ConnectOptions {
  cleanStart?: boolean;
  keepAlive?: number;
  will?: Will;
  properties?: Properties;
}

/** Connects, sends CONNECT, and returns the client with its CONNACK (asserted to be a success). */
export async function connect(
  port: number,
  clientId: string,
  version: ProtocolVersion = 4,
  options: ConnectOptions = {},
): Promise<{ client: RawClient; connack: ConnackPacket }> {
  const client = await RawClient.connect(port, version);
  const packet: ConnectPacket = {
    type: "connect",
    protocolName: version === 3 ? "MQIsdp" : "MQTT",
    protocolVersion: version,
    cleanStart: options.cleanStart ?? true,
    keepAlive: options.keepAlive ?? 60,
    clientId,
    will: options.will,
    properties: options.properties ?? {},
  };
  await client.sendPacket(packet, version);
  const connack = await client.readPacket();
  assert.equal(connack.type, "connack");
  assert.equal((connack as ConnackPacket).reasonCode, 0, `CONNACK refused for ${clientId}`);
  return { client, connack: connack as ConnackPacket };
}

export function subscription(
  topicFilter: string,
  qos: QoS,
  options: Partial<Subscription> = {},
): Subscription {
  return { topicFilter, qos, noLocal: false, retainAsPublished: false, retainHandling: 0, ...options };
}

/** Sends SUBSCRIBE and returns the SUBACK reason codes. */
export async function subscribe(
  client: RawClient,
  version: ProtocolVersion,
  subscriptions: Subscription[],
  properties: Properties = {},
  packetId = 1,
): Promise<number[]> {
  await client.sendPacket({ type: "subscribe", packetId, subscriptions, properties }, version);
  const suback = await client.readPacket();
  assert.equal(suback.type, "suback");
  assert.equal((suback as { packetId: number }).packetId, packetId);
  return (suback as { reasonCodes: number[] }).reasonCodes;
}

export function publishPacket(
  topic: string,
  payload: string,
  qos: QoS = 0,
  options: Partial<PublishPacket> = {},
): PublishPacket {
  return {
    type: "publish",
    topic,
    payload: new TextEncoder().encode(payload),
    qos,
    retain: false,
    dup: false,
    packetId: qos > 0 ? 1 : undefined,
    properties: {},
    ...options,
  };
}

/** Reads the next packet and asserts it is a PUBLISH. */
export async function readPublish(client: RawClient): Promise<PublishPacket> {
  const packet: Packet = await client.readPacket();
  assert.equal(packet.type, "publish", `expected PUBLISH, got ${packet.type}`);
  return packet as PublishPacket;
}

export function text(bytes: Uint8Array): string {
  return new TextDecoder().decode(bytes);
}
