/** The per-client MQTT session state machine. No sockets. */
export * from "./types.ts";
export { publishAck, Session, shareFrame } from "./session.ts";
export { EffectList } from "./effect_list.ts";
export { copyPayload, FramedMessage, payloadSize, withoutFrame } from "./message.ts";
export { Fifo } from "./fifo.ts";
export * from "./connect.ts";
export { emptyDropCounts, estimatedSize, type SharedSessionState, sharedState } from "./outbound.ts";
export {
  type AuthOutcome,
  authWithoutMethod,
  ClientAuthentication,
  publicRefusalReason,
} from "./authentication.ts";
export * from "./handshake.ts";
