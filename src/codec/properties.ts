/**
 * MQTT 5 properties (spec §2.2.2.2): each identifier's wire type and the packets that may carry it.
 * A property outside its packets, or with an unknown identifier, makes a Malformed Packet (0x81); a
 * second copy of a once-only property is a Protocol Error (0x82).
 */
import type { Cursor } from "./cursor.ts";
import { malformed, MqttError, protocolError } from "./errors.ts";
import { ReasonCode } from "./reason_codes.ts";
import { Sink } from "./sink.ts";
import type { Properties, UserProperty } from "./types.ts";

/** The property sets of the spec: one bit per packet kind (PUBACK/PUBREC/PUBREL/PUBCOMP share one). */
export const PropertyScope = {
  connect: 1 << 0,
  connack: 1 << 1,
  publish: 1 << 2,
  will: 1 << 3,
  publishAck: 1 << 4,
  subscribe: 1 << 5,
  suback: 1 << 6,
  unsubscribe: 1 << 7,
  unsuback: 1 << 8,
  disconnect: 1 << 9,
  auth: 1 << 10,
} as const;

type WireType = "byte" | "twoBytes" | "fourBytes" | "varInt" | "string" | "binary" | "pair";

/** Checks a decoded numeric value; throws the spec's reason code when it is out of range. */
type ValueCheck = (value: number, name: string) => void;

interface PropertyDefinition {
  id: number;
  key: keyof Properties;
  wireType: WireType;
  scopes: number;
  /** Scopes in which the property may appear more than once. */
  repeatableIn: number;
  check?: ValueCheck;
}

const zeroOrOne: ValueCheck = (value, name) => {
  if (value > 1) throw protocolError(`${name} must be 0 or 1, got ${value}`);
};
const nonZero: ValueCheck = (value, name) => {
  if (value === 0) throw protocolError(`${name} must not be 0`);
};
const topicAliasNonZero: ValueCheck = (value) => {
  if (value === 0) throw new MqttError(ReasonCode.TopicAliasInvalid, "Topic alias 0", "[MQTT-3.3.2-8]");
};

const S = PropertyScope;
const ALL_SCOPES = 0x7ff;

function define(
  id: number,
  key: keyof Properties,
  wireType: WireType,
  scopes: number,
  check?: ValueCheck,
  repeatableIn = 0,
): PropertyDefinition {
  return { id, key, wireType, scopes, repeatableIn, check };
}

const DEFINITIONS: readonly PropertyDefinition[] = [
  define(0x01, "payloadFormatIndicator", "byte", S.publish | S.will, zeroOrOne),
  define(0x02, "messageExpiryInterval", "fourBytes", S.publish | S.will),
  define(0x03, "contentType", "string", S.publish | S.will),
  define(0x08, "responseTopic", "string", S.publish | S.will),
  define(0x09, "correlationData", "binary", S.publish | S.will),
  define(0x0b, "subscriptionIdentifiers", "varInt", S.publish | S.subscribe, nonZero, S.publish),
  define(0x11, "sessionExpiryInterval", "fourBytes", S.connect | S.connack | S.disconnect),
  define(0x12, "assignedClientIdentifier", "string", S.connack),
  define(0x13, "serverKeepAlive", "twoBytes", S.connack),
  define(0x15, "authenticationMethod", "string", S.connect | S.connack | S.auth),
  define(0x16, "authenticationData", "binary", S.connect | S.connack | S.auth),
  define(0x17, "requestProblemInformation", "byte", S.connect, zeroOrOne),
  define(0x18, "willDelayInterval", "fourBytes", S.will),
  define(0x19, "requestResponseInformation", "byte", S.connect, zeroOrOne),
  define(0x1a, "responseInformation", "string", S.connack),
  define(0x1c, "serverReference", "string", S.connack | S.disconnect),
  define(
    0x1f,
    "reasonString",
    "string",
    S.connack | S.publishAck | S.suback | S.unsuback | S.disconnect | S.auth,
  ),
  define(0x21, "receiveMaximum", "twoBytes", S.connect | S.connack, nonZero),
  define(0x22, "topicAliasMaximum", "twoBytes", S.connect | S.connack),
  define(0x23, "topicAlias", "twoBytes", S.publish, topicAliasNonZero),
  define(0x24, "maximumQoS", "byte", S.connack, zeroOrOne),
  define(0x25, "retainAvailable", "byte", S.connack, zeroOrOne),
  define(0x26, "userProperties", "pair", ALL_SCOPES, undefined, ALL_SCOPES),
  define(0x27, "maximumPacketSize", "fourBytes", S.connect | S.connack, nonZero),
  define(0x28, "wildcardSubscriptionAvailable", "byte", S.connack, zeroOrOne),
  define(0x29, "subscriptionIdentifierAvailable", "byte", S.connack, zeroOrOne),
  define(0x2a, "sharedSubscriptionAvailable", "byte", S.connack, zeroOrOne),
];

const BY_ID: (PropertyDefinition | undefined)[] = [];
const BY_KEY = new Map<string, PropertyDefinition>();
for (const definition of DEFINITIONS) {
  BY_ID[definition.id] = definition;
  BY_KEY.set(definition.key, definition);
}

function hex(value: number): string {
  return `0x${value.toString(16).padStart(2, "0")}`;
}

function readValue(
  cursor: Cursor,
  definition: PropertyDefinition,
): number | string | Uint8Array | UserProperty {
  switch (definition.wireType) {
    case "byte":
      return cursor.byte(definition.key);
    case "twoBytes":
      return cursor.twoBytes(definition.key);
    case "fourBytes":
      return cursor.fourBytes(definition.key);
    case "varInt":
      return cursor.varInt(definition.key);
    case "string":
      return cursor.string(definition.key);
    case "binary":
      return cursor.binary(definition.key);
    case "pair":
      return [cursor.string("user property name"), cursor.string("user property value")];
  }
}

/**
 * Reads a property length and the properties after it, allowed in `scope`. Binary values are views of
 * the cursor's buffer.
 */
export function decodeProperties(cursor: Cursor, scope: number): Properties {
  const length = cursor.varInt("property length");
  const properties: Properties = {};
  if (length === 0) return properties;
  if (length > cursor.remaining) throw malformed("Property length exceeds the packet");
  const packetEnd = cursor.end;
  cursor.end = cursor.pos + length;
  const record = properties as Record<string, unknown>;
  while (cursor.pos < cursor.end) {
    const id = cursor.byte("property identifier");
    const definition = BY_ID[id];
    if (definition === undefined) throw malformed(`Unknown property identifier ${hex(id)}`);
    const key = definition.key;
    if ((definition.scopes & scope) === 0) throw malformed(`Property ${key} is not allowed in this packet`);
    const repeatable = (definition.repeatableIn & scope) !== 0;
    if (!repeatable && record[key] !== undefined) throw protocolError(`Property ${key} appears twice`);
    const value = readValue(cursor, definition);
    if (definition.check !== undefined) definition.check(value as number, key);
    if (key === "userProperties") {
      (properties.userProperties ??= []).push(value as UserProperty);
    } else if (key === "subscriptionIdentifiers") {
      (properties.subscriptionIdentifiers ??= []).push(value as number);
    } else {
      record[key] = value;
    }
  }
  cursor.end = packetEnd;
  if (properties.authenticationData !== undefined && properties.authenticationMethod === undefined) {
    throw protocolError("Authentication data without authentication method");
  }
  return properties;
}

function emitValue(sink: Sink, definition: PropertyDefinition, value: unknown): void {
  const key = definition.key;
  switch (definition.wireType) {
    case "byte":
      sink.byte(definition.id);
      sink.byte(value as number, key);
      return;
    case "twoBytes":
      sink.byte(definition.id);
      sink.twoBytes(value as number, key);
      return;
    case "fourBytes":
      sink.byte(definition.id);
      sink.fourBytes(value as number, key);
      return;
    case "string":
      sink.byte(definition.id);
      sink.string(value as string, key);
      return;
    case "binary":
      sink.byte(definition.id);
      sink.binary(value as Uint8Array, key);
      return;
    case "varInt":
      for (const identifier of value as number[]) {
        sink.byte(definition.id);
        sink.varInt(identifier, key);
      }
      return;
    case "pair":
      for (const [name, pairValue] of value as readonly UserProperty[]) {
        sink.byte(definition.id);
        sink.string(name, "user property name");
        sink.string(pairValue, "user property value");
      }
      return;
  }
}

function emitPropertyList(sink: Sink, properties: Properties, scope: number): void {
  const record = properties as Record<string, unknown>;
  for (const key in record) {
    const value = record[key];
    if (value === undefined) continue;
    const definition = BY_KEY.get(key);
    if (definition === undefined) throw malformed(`Unknown property ${key}`);
    if ((definition.scopes & scope) === 0) throw malformed(`Property ${key} is not allowed in this packet`);
    if (
      definition.key === "subscriptionIdentifiers" && (scope & S.publish) === 0 &&
      (value as number[]).length > 1
    ) {
      throw protocolError("Only one subscription identifier is allowed here");
    }
    emitValue(sink, definition, value);
  }
}

/** Bytes of the property list alone, without its length prefix. */
export function propertiesContentLength(properties: Properties, scope: number): number {
  const measure = new Sink(undefined);
  emitPropertyList(measure, properties, scope);
  return measure.pos;
}

/**
 * Emits the property length and the properties, in the object's key order (a decoded packet keeps wire
 * order, so decode → encode reproduces the bytes).
 */
export function emitProperties(sink: Sink, properties: Properties, scope: number): void {
  const contentLength = propertiesContentLength(properties, scope);
  sink.varInt(contentLength, "property length");
  if (contentLength > 0) emitPropertyList(sink, properties, scope);
}

/** True when `properties` puts at least one property on the wire, so a short-form ack cannot be used. */
/**
 * The properties of every decoded PUBLISH or acknowledgement that has none (all of 3.1/3.1.1, most of 5.0):
 * one frozen object instead of one per message. Code that adds properties copies first (writing throws).
 */
export const NO_PROPERTIES: Properties = Object.freeze({});

export function hasProperties(properties: Properties): boolean {
  const record = properties as Record<string, unknown>;
  for (const key in record) {
    const value = record[key];
    if (value !== undefined && !(Array.isArray(value) && value.length === 0)) return true;
  }
  return false;
}
