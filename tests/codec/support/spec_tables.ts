/**
 * Tables written from the MQTT 5 spec (§2.2.2.2 properties, §2.4 reason codes) independently of the
 * codec's own tables, so that random packets built from them check the codec.
 */
import type { Properties } from "../../../src/codec/mod.ts";

/** The packets a property may appear in (PUBACK/PUBREC/PUBREL/PUBCOMP share "ack"). */
export type Scope =
  | "connect"
  | "connack"
  | "publish"
  | "will"
  | "ack"
  | "subscribe"
  | "suback"
  | "unsubscribe"
  | "unsuback"
  | "disconnect"
  | "auth";

export type ValueKind =
  | "flag"
  | "u16"
  | "u16NonZero"
  | "u32"
  | "u32NonZero"
  | "subscriptionId"
  | "string"
  | "binary";

/** Each property's value kind and the packets that may carry it (user properties go everywhere). */
export const SPEC_PROPERTIES: [keyof Properties, ValueKind, Scope[]][] = [
  ["payloadFormatIndicator", "flag", ["publish", "will"]],
  ["messageExpiryInterval", "u32", ["publish", "will"]],
  ["contentType", "string", ["publish", "will"]],
  ["responseTopic", "string", ["publish", "will"]],
  ["correlationData", "binary", ["publish", "will"]],
  ["subscriptionIdentifiers", "subscriptionId", ["publish", "subscribe"]],
  ["sessionExpiryInterval", "u32", ["connect", "connack", "disconnect"]],
  ["assignedClientIdentifier", "string", ["connack"]],
  ["serverKeepAlive", "u16", ["connack"]],
  ["authenticationMethod", "string", ["connect", "connack", "auth"]],
  ["authenticationData", "binary", ["connect", "connack", "auth"]],
  ["requestProblemInformation", "flag", ["connect"]],
  ["willDelayInterval", "u32", ["will"]],
  ["requestResponseInformation", "flag", ["connect"]],
  ["responseInformation", "string", ["connack"]],
  ["serverReference", "string", ["connack", "disconnect"]],
  ["reasonString", "string", ["connack", "ack", "suback", "unsuback", "disconnect", "auth"]],
  ["receiveMaximum", "u16NonZero", ["connect", "connack"]],
  ["topicAliasMaximum", "u16", ["connect", "connack"]],
  ["topicAlias", "u16NonZero", ["publish"]],
  ["maximumQoS", "flag", ["connack"]],
  ["retainAvailable", "flag", ["connack"]],
  ["maximumPacketSize", "u32NonZero", ["connect", "connack"]],
  ["wildcardSubscriptionAvailable", "flag", ["connack"]],
  ["subscriptionIdentifierAvailable", "flag", ["connack"]],
  ["sharedSubscriptionAvailable", "flag", ["connack"]],
];

function codes(hexCodes: string): number[] {
  return hexCodes.split(" ").map((code) => parseInt(code, 16));
}

/** Reason codes each v5 packet may carry. */
export const SPEC_REASON_CODES = {
  connack: codes("00 80 81 82 83 84 85 86 87 88 89 8a 8c 90 95 97 99 9a 9b 9c 9d 9f"),
  pubackPubrec: codes("00 10 80 83 87 90 91 97 99"),
  pubrelPubcomp: codes("00 92"),
  suback: codes("00 01 02 80 83 87 8f 91 97 9e a1 a2"),
  unsuback: codes("00 11 80 83 87 8f 91"),
  disconnect: codes("00 04 80 81 82 83 87 89 8b 8d 8e 8f 90 93 94 95 96 97 98 99 9a 9b 9c 9d 9e 9f a0 a1 a2"),
  auth: codes("00 18 19"),
};
