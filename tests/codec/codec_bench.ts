/**
 * PUBLISH decode and encode against mqtt-packet on the same packets. Each group's baseline is
 * mqtt-packet, so the summary prints how many times faster (or slower) our codec is.
 * Run: deno bench -A tests/codec/codec_bench.ts
 */
import { Buffer } from "node:buffer";
import mqttPacket from "mqtt-packet";
import {
  Decoder,
  encode,
  encodePublish,
  type ProtocolVersion,
  type PublishPacket,
} from "../../src/codec/mod.ts";

interface Case {
  name: string;
  version: ProtocolVersion;
  payloadSize: number;
  properties: PublishPacket["properties"];
}

const CASES: Case[] = [
  { name: "v3.1.1 QoS1 64 B", version: 4, payloadSize: 64, properties: {} },
  { name: "v3.1.1 QoS1 1 KiB", version: 4, payloadSize: 1024, properties: {} },
  { name: "v5 QoS1 64 B", version: 5, payloadSize: 64, properties: {} },
];

const TOPIC = "sensors/building-7/floor-3/room-12/temperature";

let sink = 0;

for (const { name, version, payloadSize, properties } of CASES) {
  const payload = new Uint8Array(payloadSize).map((_, i) => i & 0xff);
  const packet: PublishPacket = {
    type: "publish",
    topic: TOPIC,
    payload,
    qos: 1,
    retain: false,
    dup: false,
    packetId: 4711,
    properties,
  };
  const theirPacket = {
    cmd: "publish" as const,
    topic: TOPIC,
    payload: Buffer.from(payload),
    qos: 1 as const,
    retain: false,
    dup: false,
    messageId: 4711,
  };
  const frame = encode(packet, version);
  const frameBuffer = Buffer.from(frame);

  const parser = mqttPacket.parser({ protocolVersion: version });
  parser.on("packet", (parsed: { messageId?: number }) => sink += parsed.messageId ?? 0);
  Deno.bench(`mqtt-packet parse ${name}`, { group: `decode ${name}`, baseline: true }, () => {
    parser.parse(frameBuffer);
  });

  const decoder = new Decoder({ maxPacketSize: 1 << 20, protocolVersion: version });
  Deno.bench(`codec decode ${name}`, { group: `decode ${name}` }, () => {
    decoder.push(frame);
    sink += (decoder.next() as PublishPacket).payload.length;
  });

  Deno.bench(`mqtt-packet generate ${name}`, { group: `encode ${name}`, baseline: true }, () => {
    sink += mqttPacket.generate(theirPacket, { protocolVersion: version }).length;
  });
  Deno.bench(`codec encode ${name}`, { group: `encode ${name}` }, () => {
    sink += encode(packet, version).length;
  });

  decoder.push(frame);
  const decoded = decoder.next() as PublishPacket;
  Deno.bench(`codec encodePublish frame, new packet id ${name}`, { group: `encode ${name}` }, () => {
    sink += encodePublish(decoded, version, { packetId: 4712 }).length;
  });
}

globalThis.addEventListener("unload", () => {
  if (sink === 0) throw new Error("benchmarks did no work");
});
