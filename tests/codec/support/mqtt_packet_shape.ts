/**
 * Conversion between our packet shape and mqtt-packet's (cmd/messageId/granted/clean/keepalive, Buffers,
 * boolean "byte" properties, user properties as an object, `subscriptionIdentifier` as a number or list),
 * plus helpers that run mqtt-packet's parser and generator.
 */
import { Buffer } from "node:buffer";
import mqttPacket from "mqtt-packet";
import type { Packet as TheirPacket } from "mqtt-packet";
import type { Packet, Properties, ProtocolVersion, QoS, UserProperty } from "../../../src/codec/mod.ts";

// deno-lint-ignore no-explicit-any
type Loose = Record<string, any>;

/** Properties that mqtt-packet reads and writes as booleans. */
const BOOLEAN_PROPERTIES = new Set([
  "payloadFormatIndicator",
  "requestProblemInformation",
  "requestResponseInformation",
  "retainAvailable",
  "wildcardSubscriptionAvailable",
  "subscriptionIdentifierAvailable",
  "sharedSubscriptionAvailable",
]);
const RENAMED: Record<string, string> = {
  subscriptionIdentifierAvailable: "subscriptionIdentifiersAvailable",
  subscriptionIdentifiers: "subscriptionIdentifier",
};
const RENAMED_BACK = Object.fromEntries(Object.entries(RENAMED).map(([ours, theirs]) => [theirs, ours]));

function propertiesToTheirs(properties: Properties): Loose {
  const theirs: Loose = {};
  for (const [key, value] of Object.entries(properties)) {
    if (value === undefined) continue;
    const name = RENAMED[key] ?? key;
    if (BOOLEAN_PROPERTIES.has(key)) {
      theirs[name] = value === 1;
    } else if (key === "subscriptionIdentifiers") {
      const ids = value as number[];
      theirs[name] = ids.length === 1 ? ids[0] : ids;
    } else if (key === "userProperties") {
      const object: Record<string, string | string[]> = Object.create(null);
      for (const [pairName, pairValue] of value as UserProperty[]) {
        const previous = object[pairName];
        if (previous === undefined) object[pairName] = pairValue;
        else if (Array.isArray(previous)) previous.push(pairValue);
        else object[pairName] = [previous, pairValue];
      }
      theirs[name] = object;
    } else if (value instanceof Uint8Array) {
      theirs[name] = Buffer.from(value);
    } else {
      theirs[name] = value;
    }
  }
  return theirs;
}

function propertiesFromTheirs(theirs: Loose | undefined): Properties {
  const properties: Loose = {};
  for (const [name, value] of Object.entries(theirs ?? {})) {
    const key = RENAMED_BACK[name] ?? name;
    if (BOOLEAN_PROPERTIES.has(key)) {
      properties[key] = value ? 1 : 0;
    } else if (key === "subscriptionIdentifiers") {
      properties[key] = Array.isArray(value) ? value : [value];
    } else if (key === "userProperties") {
      const pairs: UserProperty[] = [];
      for (const [pairName, pairValue] of Object.entries(value as Record<string, string | string[]>)) {
        for (const one of Array.isArray(pairValue) ? pairValue : [pairValue]) pairs.push([pairName, one]);
      }
      properties[key] = pairs;
    } else {
      properties[key] = value instanceof Uint8Array ? new Uint8Array(value) : value;
    }
  }
  return properties as Properties;
}

/** Our packet in mqtt-packet's shape, for its generator. */
export function toTheirs(packet: Packet, version: ProtocolVersion): Loose {
  const cmd = packet.type;
  switch (packet.type) {
    case "connect": {
      const theirs: Loose = {
        cmd,
        protocolId: packet.protocolName,
        protocolVersion: packet.protocolVersion,
        clean: packet.cleanStart,
        keepalive: packet.keepAlive,
        clientId: packet.clientId,
        properties: propertiesToTheirs(packet.properties),
      };
      if (packet.username !== undefined) theirs.username = packet.username;
      if (packet.password !== undefined) theirs.password = Buffer.from(packet.password);
      if (packet.will !== undefined) {
        const { topic, payload, qos, retain, properties } = packet.will;
        theirs.will = {
          topic,
          payload: Buffer.from(payload),
          qos,
          retain,
          properties: propertiesToTheirs(properties),
        };
      }
      return theirs;
    }
    case "connack": {
      const code = version === 5 ? { reasonCode: packet.reasonCode } : { returnCode: packet.reasonCode };
      return {
        cmd,
        sessionPresent: packet.sessionPresent,
        ...code,
        properties: propertiesToTheirs(packet.properties),
      };
    }
    case "publish": {
      const { topic, qos, retain, dup } = packet;
      const theirs: Loose = { cmd, topic, payload: Buffer.from(packet.payload), qos, retain, dup };
      if (packet.packetId !== undefined) theirs.messageId = packet.packetId;
      theirs.properties = propertiesToTheirs(packet.properties);
      return theirs;
    }
    case "puback":
    case "pubrec":
    case "pubrel":
    case "pubcomp":
      return {
        cmd,
        messageId: packet.packetId,
        reasonCode: packet.reasonCode,
        properties: propertiesToTheirs(packet.properties),
      };
    case "subscribe":
      return {
        cmd,
        messageId: packet.packetId,
        subscriptions: packet.subscriptions.map((s) => ({
          topic: s.topicFilter,
          qos: s.qos,
          nl: s.noLocal,
          rap: s.retainAsPublished,
          rh: s.retainHandling,
        })),
        properties: propertiesToTheirs(packet.properties),
      };
    case "suback":
    case "unsuback":
      return {
        cmd,
        messageId: packet.packetId,
        granted: packet.reasonCodes,
        properties: propertiesToTheirs(packet.properties),
      };
    case "unsubscribe":
      return {
        cmd,
        messageId: packet.packetId,
        unsubscriptions: packet.topicFilters,
        properties: propertiesToTheirs(packet.properties),
      };
    case "pingreq":
    case "pingresp":
      return { cmd };
    case "disconnect":
    case "auth":
      return { cmd, reasonCode: packet.reasonCode, properties: propertiesToTheirs(packet.properties) };
  }
}

/** A packet parsed by mqtt-packet, in our shape. */
export function fromTheirs(theirs: Loose, version: ProtocolVersion): Packet {
  const properties = propertiesFromTheirs(theirs.properties);
  const v5 = version === 5;
  const type = theirs.cmd as Packet["type"];
  switch (type) {
    case "connect": {
      const packet: Packet = {
        type,
        protocolName: theirs.protocolId,
        protocolVersion: theirs.protocolVersion,
        cleanStart: theirs.clean,
        keepAlive: theirs.keepalive,
        clientId: theirs.clientId,
        properties,
      };
      if (theirs.will !== undefined) {
        const { topic, payload, qos, retain } = theirs.will;
        packet.will = {
          topic,
          payload,
          qos,
          retain,
          properties: propertiesFromTheirs(theirs.will.properties),
        };
      }
      if (theirs.username !== undefined) packet.username = theirs.username;
      if (theirs.password !== undefined) packet.password = theirs.password;
      return packet;
    }
    case "connack":
      return {
        type,
        sessionPresent: theirs.sessionPresent,
        reasonCode: v5 ? theirs.reasonCode : theirs.returnCode,
        properties,
      };
    case "publish": {
      const { topic, payload, retain, dup } = theirs;
      const qos = theirs.qos as QoS;
      if (qos === 0) return { type, topic, payload, qos, retain, dup, properties };
      return { type, topic, payload, qos, retain, dup, packetId: theirs.messageId, properties };
    }
    case "puback":
    case "pubrec":
    case "pubrel":
    case "pubcomp":
      return { type, packetId: theirs.messageId, reasonCode: v5 ? theirs.reasonCode ?? 0 : 0, properties };
    case "subscribe":
      return {
        type,
        packetId: theirs.messageId,
        subscriptions: theirs.subscriptions.map((s: Loose) => ({
          topicFilter: s.topic,
          qos: s.qos,
          noLocal: s.nl ?? false,
          retainAsPublished: s.rap ?? false,
          retainHandling: s.rh ?? 0,
        })),
        properties,
      };
    case "suback":
      return { type, packetId: theirs.messageId, reasonCodes: theirs.granted, properties };
    case "unsuback":
      return { type, packetId: theirs.messageId, reasonCodes: v5 ? theirs.granted : [], properties };
    case "unsubscribe":
      return { type, packetId: theirs.messageId, topicFilters: theirs.unsubscriptions, properties };
    case "pingreq":
    case "pingresp":
      return { type };
    case "disconnect":
    case "auth":
      return { type, reasonCode: v5 ? theirs.reasonCode ?? 0 : 0, properties };
  }
}

/** Parses one packet with mqtt-packet; throws what its parser reports. */
export function theirParse(bytes: Uint8Array, version: ProtocolVersion): Loose {
  const parser = mqttPacket.parser({ protocolVersion: version });
  const packets: Loose[] = [];
  let failure: unknown;
  parser.on("packet", (packet: Loose) => packets.push(packet));
  parser.on("error", (error: unknown) => failure ??= error);
  parser.parse(Buffer.from(bytes));
  if (failure !== undefined) throw failure;
  if (packets.length !== 1) throw new Error(`mqtt-packet parsed ${packets.length} packets`);
  return packets[0];
}

/** Generates bytes with mqtt-packet. */
export function theirGenerate(theirs: Loose, version: ProtocolVersion): Uint8Array {
  return new Uint8Array(mqttPacket.generate(theirs as TheirPacket, { protocolVersion: version }));
}
