/** Random valid packets for every type and protocol level, built from the spec tables. */
import type {
  Packet,
  PacketTypeName,
  Properties,
  ProtocolVersion,
  QoS,
  Subscription,
  UserProperty,
} from "../../../src/codec/mod.ts";
import type { Random } from "./random.ts";
import { type Scope, SPEC_PROPERTIES, SPEC_REASON_CODES, type ValueKind } from "./spec_tables.ts";

/** Restrictions that keep packets inside what mqtt-packet can generate and parse. */
export interface RandomPacketOptions {
  /**
   * mqtt-packet refuses a password without a user name even at v5 (the spec allows it), an empty client
   * id at 3.1, and an empty client id without clean start. Its parser also drops an empty user property
   * value when the same name follows (it tests the previous value for truthiness).
   */
  mqttPacketCompatible: boolean;
}

const ALPHABET = ["a", "b", "z", "0", "9", "-", "_", " ", "é", "ß", "€", "中", "😀", "\u{10ffff}", "\ufeff"];
const TOPIC_CHARS = ALPHABET.filter((char) => char !== " ");

/** A string of up to `maxChars` characters: ASCII, 2-, 3- and 4-byte UTF-8, never U+0000. */
export function randomString(random: Random, maxChars: number, alphabet = ALPHABET): string {
  let text = "";
  const length = random.int(0, maxChars);
  // Mostly ASCII, as real traffic is, but every width appears.
  for (let i = 0; i < length; i++) {
    text += random.bool(0.7) ? random.pick(alphabet.slice(0, 4)) : random.pick(alphabet);
  }
  return text;
}

/** A non-empty topic name without wildcards. */
export function randomTopic(random: Random): string {
  const levels = random.int(1, 4);
  const parts: string[] = [];
  for (let i = 0; i < levels; i++) parts.push(randomString(random, 8, TOPIC_CHARS));
  const topic = parts.join("/");
  return topic.length > 0 ? topic : "t";
}

function randomTopicFilter(random: Random): string {
  const levels = random.int(1, 4);
  const parts: string[] = [];
  for (let i = 0; i < levels; i++) {
    parts.push(random.bool(0.2) ? "+" : randomString(random, 6, TOPIC_CHARS));
  }
  if (random.bool(0.2)) parts.push("#");
  return parts.join("/");
}

function randomUserProperties(random: Random, options: RandomPacketOptions): UserProperty[] {
  const pairs: UserProperty[] = [];
  const keys = ["k", "key", "ключ", randomString(random, 5)];
  const count = random.int(1, 4);
  // Keys repeat on purpose: user properties are a multimap.
  for (let i = 0; i < count; i++) {
    const value = randomString(random, 10);
    pairs.push([random.pick(keys), value === "" && options.mqttPacketCompatible ? "v" : value]);
  }
  return pairs;
}

function randomValue(random: Random, kind: ValueKind, scope: Scope): unknown {
  switch (kind) {
    case "flag":
      return random.int(0, 1);
    case "u16":
      return random.int(0, 0xffff);
    case "u16NonZero":
      return random.int(1, 0xffff);
    case "u32":
      return random.pick([0, 1, 0xffff_ffff, random.int(0, 0xffff_ffff)]);
    case "u32NonZero":
      return random.int(1, 0xffff_ffff);
    case "subscriptionId": {
      const count = scope === "publish" ? random.int(1, 3) : 1;
      const ids: number[] = [];
      for (let i = 0; i < count; i++) {
        ids.push(random.pick([1, 127, 128, 16_384, 268_435_455, random.int(1, 1e6)]));
      }
      return ids;
    }
    case "string":
      return randomString(random, 12);
    case "binary":
      return random.bytes(random.int(0, 20));
  }
}

/** Random properties allowed in `scope`; empty below level 5. */
export function randomProperties(
  random: Random,
  scope: Scope,
  version: ProtocolVersion,
  options: RandomPacketOptions,
): Properties {
  const properties: Record<string, unknown> = {};
  if (version < 5 || random.bool(0.3)) return properties;
  for (const [key, kind, scopes] of SPEC_PROPERTIES) {
    if (scopes.includes(scope) && random.bool(0.35)) properties[key] = randomValue(random, kind, scope);
  }
  if (properties.authenticationData !== undefined) properties.authenticationMethod ??= "SCRAM-SHA-1";
  if (random.bool(0.4)) properties.userProperties = randomUserProperties(random, options);
  return properties as Properties;
}

const randomQoS = (random: Random): QoS => random.int(0, 2) as QoS;
const randomPacketId = (random: Random): number => random.pick([1, 0xffff, random.int(1, 0xffff)]);

/** The packet types that exist at `version`. */
export function packetTypes(version: ProtocolVersion): PacketTypeName[] {
  const types: PacketTypeName[] = [
    "connect",
    "connack",
    "publish",
    "puback",
    "pubrec",
    "pubrel",
    "pubcomp",
    "subscribe",
    "suback",
    "unsubscribe",
    "unsuback",
    "pingreq",
    "pingresp",
    "disconnect",
  ];
  return version === 5 ? [...types, "auth"] : types;
}

function randomConnect(random: Random, version: ProtocolVersion, options: RandomPacketOptions): Packet {
  const cleanStart = random.bool();
  let clientId = randomString(random, 23);
  if (options.mqttPacketCompatible && clientId === "" && (version === 3 || !cleanStart)) clientId = "c";
  const packet: Packet = {
    type: "connect",
    protocolName: version === 3 ? "MQIsdp" : "MQTT",
    protocolVersion: version,
    cleanStart,
    keepAlive: random.int(0, 0xffff),
    clientId,
    properties: randomProperties(random, "connect", version, options),
  };
  if (random.bool()) {
    packet.will = {
      topic: randomTopic(random),
      payload: random.bytes(random.int(0, 40)),
      qos: randomQoS(random),
      retain: random.bool(),
      properties: randomProperties(random, "will", version, options),
    };
  }
  if (random.bool()) packet.username = randomString(random, 12);
  const passwordAllowed = packet.username !== undefined || (version === 5 && !options.mqttPacketCompatible);
  if (passwordAllowed && random.bool()) packet.password = random.bytes(random.int(0, 16));
  return packet;
}

function randomSubscription(random: Random, version: ProtocolVersion): Subscription {
  const subscription: Subscription = {
    topicFilter: randomTopicFilter(random),
    qos: randomQoS(random),
    noLocal: false,
    retainAsPublished: false,
    retainHandling: 0,
  };
  if (version === 5) {
    subscription.noLocal = random.bool();
    subscription.retainAsPublished = random.bool();
    subscription.retainHandling = random.int(0, 2) as 0 | 1 | 2;
  }
  return subscription;
}

function times<T>(random: Random, min: number, max: number, make: () => T): T[] {
  const items: T[] = [];
  const count = random.int(min, max);
  for (let i = 0; i < count; i++) items.push(make());
  return items;
}

/** A random valid packet of `type` at `version`. */
export function randomPacketOfType(
  random: Random,
  type: PacketTypeName,
  version: ProtocolVersion,
  options: RandomPacketOptions,
): Packet {
  const v5 = version === 5;
  switch (type) {
    case "connect":
      return randomConnect(random, version, options);
    case "connack": {
      const reasonCode = v5 ? random.pick(SPEC_REASON_CODES.connack) : random.int(0, 5);
      const sessionPresent = reasonCode === 0 && random.bool();
      return {
        type,
        sessionPresent,
        reasonCode,
        properties: randomProperties(random, "connack", version, options),
      };
    }
    case "publish": {
      const qos = randomQoS(random);
      const properties = randomProperties(random, "publish", version, options);
      const topic = v5 && properties.topicAlias !== undefined && random.bool(0.3) ? "" : randomTopic(random);
      const payload = random.bytes(random.pick([0, 1, random.int(0, 64), random.int(0, 300)]));
      const dup = qos > 0 && random.bool();
      const retain = random.bool();
      if (qos === 0) return { type, topic, payload, qos, retain, dup, properties };
      return { type, topic, payload, qos, retain, dup, packetId: randomPacketId(random), properties };
    }
    case "puback":
    case "pubrec":
    case "pubrel":
    case "pubcomp": {
      const codes = type === "puback" || type === "pubrec"
        ? SPEC_REASON_CODES.pubackPubrec
        : SPEC_REASON_CODES.pubrelPubcomp;
      const reasonCode = v5 && random.bool() ? random.pick(codes) : 0;
      return {
        type,
        packetId: randomPacketId(random),
        reasonCode,
        properties: randomProperties(random, "ack", version, options),
      };
    }
    case "subscribe":
      return {
        type,
        packetId: randomPacketId(random),
        subscriptions: times(random, 1, 4, () => randomSubscription(random, version)),
        properties: randomProperties(random, "subscribe", version, options),
      };
    case "suback": {
      const codes = v5 ? SPEC_REASON_CODES.suback : [0, 1, 2, 0x80];
      return {
        type,
        packetId: randomPacketId(random),
        reasonCodes: times(random, 1, 4, () => random.pick(codes)),
        properties: randomProperties(random, "suback", version, options),
      };
    }
    case "unsubscribe":
      return {
        type,
        packetId: randomPacketId(random),
        topicFilters: times(random, 1, 4, () => randomTopicFilter(random)),
        properties: randomProperties(random, "unsubscribe", version, options),
      };
    case "unsuback":
      return {
        type,
        packetId: randomPacketId(random),
        reasonCodes: v5 ? times(random, 1, 4, () => random.pick(SPEC_REASON_CODES.unsuback)) : [],
        properties: randomProperties(random, "unsuback", version, options),
      };
    case "pingreq":
    case "pingresp":
      return { type };
    case "disconnect":
      return {
        type,
        reasonCode: v5 && random.bool() ? random.pick(SPEC_REASON_CODES.disconnect) : 0,
        properties: randomProperties(random, "disconnect", version, options),
      };
    case "auth":
      return {
        type,
        reasonCode: random.pick(SPEC_REASON_CODES.auth),
        properties: randomProperties(random, "auth", version, options),
      };
  }
}

/** A random valid packet of any type that exists at `version`. */
export function randomPacket(random: Random, version: ProtocolVersion, options: RandomPacketOptions): Packet {
  return randomPacketOfType(random, random.pick(packetTypes(version)), version, options);
}
