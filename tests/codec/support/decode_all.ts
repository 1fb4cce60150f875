/** Decodes every packet in `bytes` with a fresh decoder. */
import { Decoder, type Packet, type ProtocolVersion } from "../../../src/codec/mod.ts";

export function decodeAll(bytes: Uint8Array, version: ProtocolVersion, maxPacketSize = 1 << 20): Packet[] {
  const decoder = new Decoder({ maxPacketSize, protocolVersion: version });
  decoder.push(bytes);
  const packets: Packet[] = [];
  for (let packet = decoder.next(); packet !== undefined; packet = decoder.next()) packets.push(packet);
  return packets;
}

/** Decodes `bytes`, which must hold exactly one whole packet. */
export function decodeOne(bytes: Uint8Array, version: ProtocolVersion): Packet {
  const packets = decodeAll(bytes, version);
  if (packets.length !== 1) throw new Error(`expected one packet, got ${packets.length}`);
  return packets[0];
}
