import { ReasonCode } from "../codec/reason_codes.ts";
import type { ConnectPacket, Properties } from "../codec/types.ts";
import { hasWildcard } from "../topic/mod.ts";
import type { Attachment, SessionLimits } from "./types.ts";

/** Server settings that shape the answer to a CONNECT. */
export interface ConnectSettings {
  limits: SessionLimits;
  maxPacketSize: number;
  maxKeepAlive: number;
  maxClientIdLength: number;
  allowZeroLengthClientId: boolean;
  /** Control characters accepted in client ids, user names, topic names and filters (else malformed). */
  allowControlCharacters: boolean;
  maxSessionExpiry: number;
  /** When set, v5 clients are sent elsewhere with 0x9C Use Another Server. */
  serverReference?: string;
  /** Response Information for v5 clients that ask (Request Response Information = 1); `%c` is the client id. */
  responseInformation?: string;
}

/** The outcome of checking a CONNECT: refused with a reason, or accepted with everything the session needs. */
export type ConnectDecision =
  | { accepted: false; reasonCode: number; reasonString: string; properties: Properties }
  | {
    accepted: true;
    clientId: string;
    /** Seconds of silence after which the connection is dropped (0 = never): 1.5 × keep alive [MQTT-3.1.2-24]. */
    keepAliveTimeoutMs: number;
    sessionExpiryInterval: number;
    attachment: Attachment;
    /** CONNACK properties (v5): the server's limits, assigned id, server keep alive. */
    properties: Properties;
  };

/**
 * Checks a CONNECT against the server's settings: client identifier rules [MQTT-3.1.3-6/7/8], keep alive,
 * session expiry, and builds the v5 CONNACK properties that tell the client our limits (spec §3.2.2.3).
 * `generateClientId` is called only when the server must assign one.
 */
export function decideConnect(
  packet: ConnectPacket,
  settings: ConnectSettings,
  generateClientId: () => string,
): ConnectDecision {
  const v5 = packet.protocolVersion === 5;
  const refuse = (reasonCode: number, reasonString: string): ConnectDecision => ({
    accepted: false,
    reasonCode,
    reasonString,
    properties: {},
  });
  if (v5 && settings.serverReference) {
    return {
      accepted: false,
      reasonCode: ReasonCode.UseAnotherServer,
      reasonString: "use another server",
      properties: { serverReference: settings.serverReference },
    };
  }
  const will = packet.will;
  if (v5 && will && will.qos > settings.limits.maxQos) {
    return refuse(
      ReasonCode.QoSNotSupported,
      `will QoS ${will.qos} is above the maximum QoS [MQTT-3.2.2-12]`,
    );
  }
  const willResponseTopic = will?.properties.responseTopic;
  if (willResponseTopic !== undefined && hasWildcard(willResponseTopic)) {
    return refuse(ReasonCode.ProtocolError, "wildcards in the will's Response Topic [MQTT-3.3.2-14]");
  }
  if (v5 && will?.retain && !settings.limits.retainAvailable) {
    return refuse(ReasonCode.RetainNotSupported, "retained wills are not supported [MQTT-3.2.2-13]");
  }
  let clientId = packet.clientId;
  let assigned = false;
  if (clientId.length === 0) {
    // 3.1 requires 1..23 characters; 3.1.1 and 5.0 let the server assign one on a clean start [MQTT-3.1.3-6].
    if (packet.protocolVersion === 3 || !settings.allowZeroLengthClientId) {
      return refuse(ReasonCode.ClientIdentifierNotValid, "empty client identifier");
    }
    if (!packet.cleanStart && !v5) {
      return refuse(
        ReasonCode.ClientIdentifierNotValid,
        "empty client identifier needs clean session [MQTT-3.1.3-8]",
      );
    }
    clientId = generateClientId();
    assigned = true;
  }
  if (clientId.length > settings.maxClientIdLength) {
    return refuse(ReasonCode.ClientIdentifierNotValid, "client identifier too long");
  }

  const { limits } = settings;
  const properties: Properties = {};
  let keepAlive = packet.keepAlive;
  if (v5 && settings.maxKeepAlive < 65535 && (keepAlive === 0 || keepAlive > settings.maxKeepAlive)) {
    keepAlive = settings.maxKeepAlive;
    properties.serverKeepAlive = keepAlive; // [MQTT-3.2.2-21]
  }
  // 3.1.1 has no session expiry: a persistent session lives until the client cleans it (capped by config).
  const requestedExpiry = v5
    ? (packet.properties.sessionExpiryInterval ?? 0)
    : packet.cleanStart
    ? 0
    : 0xffffffff;
  const sessionExpiryInterval = Math.min(requestedExpiry, settings.maxSessionExpiry);
  if (v5) {
    if (sessionExpiryInterval !== requestedExpiry) properties.sessionExpiryInterval = sessionExpiryInterval;
    if (assigned) properties.assignedClientIdentifier = clientId;
    properties.receiveMaximum = limits.receiveMaximum;
    if (limits.maxQos < 2) properties.maximumQoS = limits.maxQos;
    properties.retainAvailable = limits.retainAvailable ? 1 : 0;
    properties.maximumPacketSize = settings.maxPacketSize;
    properties.topicAliasMaximum = limits.maxTopicAlias;
    properties.wildcardSubscriptionAvailable = limits.wildcardSubscriptionAvailable ? 1 : 0;
    properties.subscriptionIdentifierAvailable = limits.subscriptionIdentifiersAvailable ? 1 : 0;
    properties.sharedSubscriptionAvailable = limits.sharedSubscriptionAvailable ? 1 : 0;
    if (packet.properties.requestResponseInformation === 1 && settings.responseInformation) {
      properties.responseInformation = settings.responseInformation.replaceAll("%c", clientId); // [MQTT-3.1.2-28]
    }
  }
  const requested = packet.properties;
  return {
    accepted: true,
    clientId,
    keepAliveTimeoutMs: keepAlive * 1500,
    sessionExpiryInterval,
    properties,
    attachment: {
      protocolVersion: packet.protocolVersion,
      receiveMaximum: requested.receiveMaximum ?? 65535,
      maximumPacketSize: requested.maximumPacketSize,
      topicAliasMaximum: requested.topicAliasMaximum ?? 0,
      sessionExpiryInterval,
      requestProblemInformation: requested.requestProblemInformation !== 0,
      // present from the start (set once the client is admitted): a field added later would move to a
      // separate property store, one more object per connected client
      permissions: undefined,
    },
  };
}
