/**
 * The contract between the broker and authentication/authorization. The broker calls
 * {@link Authenticator.authenticate} on CONNECT and the {@link Authorizer} on every PUBLISH and
 * SUBSCRIBE; implementations never touch sockets.
 */

/** What a client presents on CONNECT, plus what the transport knows about it. */
export interface Credentials {
  clientId: string;
  username?: string;
  password?: Uint8Array;
  remoteAddress: string;
  /**
   * Common Name of a client certificate the transport verified, on a listener that makes it the user
   * name (use_cn_as_username); "" for a verified certificate without one.
   */
  certificateCommonName?: string;
}

/**
 * The verdict on a CONNECT. On success `username` is the identity ACLs see, and is only ever set from a
 * verified credential (absent = anonymous); on failure `reasonCode` is the CONNACK reason (0x86 bad user
 * name or password, 0x87 not authorized) and `reason` is for logs only: it never contains the password,
 * and the client never sees it (a reason string telling "unknown user" from "wrong password" would let
 * anyone list the user names). `method` names how the client tried, for logs and metrics.
 */
export type AuthResult =
  | { ok: true; username?: string; method?: string }
  | { ok: false; reasonCode: number; reason: string; method?: string };

/** Decides whether a client may connect. */
export interface Authenticator {
  /**
   * A verdict that needs no waiting (an anonymous client let in) may come as it is, not in a promise: the
   * CONNECT is then handled in the turn it arrived, without the promises an asynchronous step costs.
   */
  authenticate(credentials: Credentials): AuthResult | Promise<AuthResult>;
}

/** Who is asking for a topic: the identity an authenticated connection carries. */
export interface ClientIdentity {
  clientId: string;
  username?: string;
}

/** Decides, synchronously because it sits on the message path, what a connected client may do. */
export interface Authorizer {
  canPublish(client: ClientIdentity, topic: string): boolean;
  canSubscribe(client: ClientIdentity, topicFilter: string): boolean;
  /**
   * Whether a message on this topic may be delivered to the client: checked at delivery, for every
   * message, because a wildcard subscription may reach topics a rule withholds and the rules can be
   * reloaded after a subscription was granted.
   */
  canReceive(client: ClientIdentity, topic: string): boolean;
  /**
   * `canReceive` bound to one identity, for a connection to keep: cheaper per delivery (no identity
   * lookup) and still following reloads. Optional; callers fall back to `canReceive`.
   */
  receiverFor?(client: ClientIdentity): (topic: string) => boolean;
}

/** One step of an enhanced-authentication exchange (MQTT 5 AUTH, spec §4.12). */
export type AuthStep =
  | { kind: "continue"; data: Uint8Array }
  | { kind: "success"; username: string; data?: Uint8Array }
  | { kind: "failure"; reasonCode: number; reason: string };

/** One client's conversation with a method, fed the Authentication Data of CONNECT and each AUTH. */
export interface EnhancedAuthExchange {
  step(data: Uint8Array | undefined): Promise<AuthStep>;
}

/** An enhanced authentication method, named by the CONNECT's Authentication Method property. */
export interface EnhancedAuthMethod {
  readonly name: string;
  /** `remoteAddress` is the client's, `host:port`, so that failed exchanges slow that address down. */
  start(client: { remoteAddress: string }): EnhancedAuthExchange;
}
