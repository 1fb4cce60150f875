/**
 * Byte builders and expectations shared by the conformance tests. Malformed frames are written byte by
 * byte here; well-formed ones come from the codec's `encode` through the helpers in tests/helpers/.
 */
import assert from "node:assert/strict";
import type {
  ConnackPacket,
  DisconnectPacket,
  Packet,
  Properties,
  ProtocolVersion,
  PublishPacket,
  QoS,
  Subscription,
  Will,
} from "../../src/codec/mod.ts";
import { addOrUpdateUser } from "../../src/auth/mod.ts";
import { RawClient } from "../helpers/broker.ts";
import { connect, publishPacket, readPublish, subscribe, subscription } from "../helpers/clients.ts";

export { connect, publishPacket, readPublish, subscribe, subscription };

const encoder = new TextEncoder();

/** The Variable Byte Integer encoding of `value` (spec §1.5.5). */
export function varInt(value: number): number[] {
  const out: number[] = [];
  do {
    let byte = value % 128;
    value = Math.floor(value / 128);
    if (value > 0) byte |= 0x80;
    out.push(byte);
  } while (value > 0);
  return out;
}

/** A length-prefixed UTF-8 string; raw bytes are taken as they are (to write ill-formed UTF-8). */
export function str(text: string | number[]): number[] {
  const bytes = typeof text === "string" ? [...encoder.encode(text)] : text;
  return [bytes.length >> 8, bytes.length & 0xff, ...bytes];
}

/** A whole packet: first byte, remaining length, body. */
export function frame(first: number, body: number[]): Uint8Array {
  return new Uint8Array([first, ...varInt(body.length), ...body]);
}

/**
 * A CONNECT frame written by hand: `flags` and `payload` (everything after the client id field, or the
 * whole payload when `clientId` is undefined) are taken as given so that broken ones can be built.
 */
export function connectFrame(options: {
  version?: ProtocolVersion;
  clientId?: string | number[];
  flags?: number;
  keepAlive?: number;
  /** v5 property bytes (without the length prefix). */
  properties?: number[];
  /** Bytes after the client id. */
  rest?: number[];
  protocolName?: string;
}): Uint8Array {
  const version = options.version ?? 4;
  const name = options.protocolName ?? (version === 3 ? "MQIsdp" : "MQTT");
  const keepAlive = options.keepAlive ?? 60;
  const body = [...str(name), version, options.flags ?? 0x02, keepAlive >> 8, keepAlive & 0xff];
  if (version === 5) body.push(...varInt(options.properties?.length ?? 0), ...(options.properties ?? []));
  if (options.clientId !== undefined) body.push(...str(options.clientId));
  body.push(...(options.rest ?? []));
  return frame(0x10, body);
}

/** Connects a raw socket and sends `bytes` as its first packet. */
export async function rawConnect(
  port: number,
  bytes: Uint8Array,
  version: ProtocolVersion = 4,
): Promise<RawClient> {
  const client = await RawClient.connect(port, version);
  await client.send(bytes);
  return client;
}

/** Reads the CONNACK. */
export async function readConnack(client: RawClient): Promise<ConnackPacket> {
  const packet = await client.readPacket();
  assert.equal(packet.type, "connack", `expected CONNACK, got ${packet.type}`);
  return packet as ConnackPacket;
}

/**
 * The answer to a broken packet after CONNACK: at v5 a DISCONNECT with `reasonCode` and then a closed
 * socket; below v5 a closed socket with nothing sent.
 */
export async function expectDisconnect(
  client: RawClient,
  version: ProtocolVersion,
  reasonCode: number | number[],
): Promise<void> {
  if (version === 5) {
    const packet = await client.readPacket();
    assert.equal(packet.type, "disconnect", `expected DISCONNECT, got ${packet.type}`);
    const got = (packet as DisconnectPacket).reasonCode;
    const allowed = Array.isArray(reasonCode) ? reasonCode : [reasonCode];
    assert.ok(
      allowed.includes(got),
      `DISCONNECT reason 0x${got.toString(16)}, expected ${allowed.map((c) => `0x${c.toString(16)}`)}`,
    );
  }
  const rest = await client.expectClosed();
  assert.equal(rest.length, 0, `bytes after the close: ${[...rest]}`);
}

/** A refused connection before CONNACK: either nothing or a CONNACK with a refusing code, then closed. */
export async function expectClosedBeforeConnack(client: RawClient): Promise<Uint8Array> {
  const rest = await client.expectClosed();
  if (rest.length > 0) {
    assert.equal(rest[0], 0x20, "only a CONNACK may be sent");
    assert.notEqual(rest[3], 0, "the CONNACK must refuse");
  }
  return rest;
}

export function will(
  topic: string,
  payload: string,
  qos: QoS = 0,
  retain = false,
  properties: Properties = {},
): Will {
  return { topic, payload: encoder.encode(payload), qos, retain, properties };
}

/** Publishes `payload` on `topic` and, for QoS 1/2, completes the acknowledgement flow. */
export async function publish(
  client: RawClient,
  version: ProtocolVersion,
  topic: string,
  payload: string,
  qos: QoS = 0,
  options: Partial<PublishPacket> = {},
): Promise<Packet | undefined> {
  await client.sendPacket(publishPacket(topic, payload, qos, options), version);
  if (qos === 0) return undefined;
  const ack = await client.readPacket();
  if (qos === 2 && ack.type === "pubrec" && ack.reasonCode < 0x80) {
    await client.sendPacket(
      { type: "pubrel", packetId: ack.packetId, reasonCode: 0, properties: {} },
      version,
    );
    const comp = await client.readPacket();
    assert.equal(comp.type, "pubcomp");
  }
  return ack;
}

/** Subscribes and asserts the granted codes. */
export async function subscribeOk(
  client: RawClient,
  version: ProtocolVersion,
  filters: Array<[string, QoS] | Subscription>,
  properties: Properties = {},
  packetId = 1,
): Promise<void> {
  const subs = filters.map((f) => Array.isArray(f) ? subscription(f[0], f[1]) : f);
  const codes = await subscribe(client, version, subs, properties, packetId);
  assert.deepEqual(codes, subs.map((s) => s.qos));
}

export function text(bytes: Uint8Array): string {
  return new TextDecoder().decode(bytes);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Acknowledges a received QoS 1/2 PUBLISH (PUBACK, or PUBREC → PUBREL → PUBCOMP). */
export async function ack(client: RawClient, version: ProtocolVersion, packet: PublishPacket): Promise<void> {
  if (packet.qos === 1) {
    await client.sendPacket(
      { type: "puback", packetId: packet.packetId!, reasonCode: 0, properties: {} },
      version,
    );
  } else if (packet.qos === 2) {
    await client.sendPacket(
      { type: "pubrec", packetId: packet.packetId!, reasonCode: 0, properties: {} },
      version,
    );
    const rel = await client.readPacket();
    assert.equal(rel.type, "pubrel");
    await client.sendPacket(
      { type: "pubcomp", packetId: packet.packetId!, reasonCode: 0, properties: {} },
      version,
    );
  }
}

/** A DISCONNECT (normal) and wait for the close. */
export async function disconnect(
  client: RawClient,
  version: ProtocolVersion,
  properties: Properties = {},
): Promise<void> {
  await client.sendPacket({ type: "disconnect", reasonCode: 0, properties }, version);
  await client.expectClosed();
}

/** Writes a temporary file and returns its path (removed by the OS temp cleanup; tests remove it too). */
export async function tempFile(contents: string): Promise<string> {
  const path = await Deno.makeTempFile({ prefix: "mqtt-conformance-" });
  await Deno.writeTextFile(path, contents);
  return path;
}

/** A password file with the given users (few PBKDF2 iterations: tests only). */
export async function passwordFile(users: Record<string, string>): Promise<string> {
  let contents = "";
  for (const [user, password] of Object.entries(users)) {
    contents = await addOrUpdateUser(contents, user, password, { iterations: 1000 });
  }
  return await tempFile(contents);
}
