/**
 * One client's CONNECT → AUTH → re-AUTH sequence as a state machine: which packet may come in which phase,
 * and what the connection does next. No sockets, no timers: the connection feeds it the packets of a client
 * that has no session yet (and AUTH packets later), runs the step it returns, and says when the session is
 * open. Credentials are checked through the auth ports (Authenticator, EnhancedAuthMethod).
 *
 *   awaiting_connect --CONNECT--> authenticating --(AUTH 0x18)*--> admitted --opened()--> connected
 *                                       |                                                  |   ^
 *                                       +--> ended (CONNACK ≥ 0x80)          AUTH 0x19 --+   | (AUTH 0x18)*
 *                                                                  ended (DISCONNECT) <--+---+
 */
import type { Authenticator, EnhancedAuthMethod } from "../auth/port.ts";
import { MqttError, ReasonCode } from "../codec/mod.ts";
import type { AuthPacket, ConnectPacket, Packet, Properties } from "../codec/types.ts";
import { type AuthOutcome, ClientAuthentication, type ClientEndpoint } from "./authentication.ts";
import { type ConnectDecision, type ConnectSettings, decideConnect } from "./connect.ts";

export type HandshakePhase = "awaiting_connect" | "authenticating" | "admitted" | "connected" | "ended";

/** A CONNECT that passed every check of its own. */
export type AcceptedConnect = Extract<ConnectDecision, { accepted: true }>;

/** What the connection does after a packet. */
export type HandshakeStep =
  /** Answer the CONNECT with this CONNACK reason code and close; `reason` is for the log. */
  | {
    kind: "refuse";
    reasonCode: number;
    reason: string;
    /** What the client is told instead of `reason` (the same for every credential refusal). */
    publicReason: string;
    properties: Properties;
    /** The authentication method that refused, for the login guard's counts. */
    method?: string;
  }
  /** Send this AUTH (0x18 Continue authentication) and wait for the client's next AUTH. */
  | { kind: "challenge"; packet: AuthPacket }
  /** Authenticated: open the session for `connect` as `username` (absent = anonymous); CONNACK adds `properties`. */
  | {
    kind: "admit";
    connect: ConnectPacket;
    decision: AcceptedConnect;
    username?: string;
    properties: Properties;
  }
  /** Re-authentication succeeded: send AUTH 0x00 with `properties`. */
  | { kind: "reauthenticated"; properties: Properties }
  /** Re-authentication failed: DISCONNECT with this reason code and close [MQTT-4.12.1-2]. */
  | { kind: "reauthentication_failed"; reasonCode: number; reason: string; publicReason: string }
  /** A packet of the open session: the broker's. */
  | { kind: "session"; packet: Packet };

/** What the handshake needs from the server around it. */
export interface HandshakeContext {
  settings: ConnectSettings;
  generateClientId: () => string;
  authenticator?: Authenticator;
  /** Enhanced authentication methods (v5 Authentication Method), by name. */
  methods: ReadonlyMap<string, EnhancedAuthMethod>;
  /** Read only when credentials are checked: an anonymous client's address is never made into text. */
  client: ClientEndpoint;
}

export class Handshake {
  #phase: HandshakePhase = "awaiting_connect";
  /** The CONNECT being authenticated; let go once its session is open (a connection may live for months). */
  #connect: { packet: ConnectPacket; decision: AcceptedConnect } | undefined;
  /** The CONNECT's protocol level, kept after it: AUTH on an open session is re-authentication at v5 only. */
  #version = 4;
  #requestedClientId: string | undefined;
  readonly #authentication: ClientAuthentication;

  constructor(private readonly context: HandshakeContext) {
    this.#authentication = new ClientAuthentication(
      context.authenticator,
      context.methods,
      context.client,
    );
  }

  get phase(): HandshakePhase {
    return this.#phase;
  }

  /** The client id the CONNECT asked for (before one is assigned), for refusal logs. */
  get requestedClientId(): string | undefined {
    return this.#requestedClientId;
  }

  /**
   * Whether the open session's client may re-authenticate (it used an enhanced method). When not, the
   * connection can let the handshake go and answer any AUTH with {@link authWithoutMethod}.
   */
  get reauthenticates(): boolean {
    return this.#version === 5 && this.#authentication.enhanced;
  }

  /**
   * The next step for `packet`: as it is when nothing had to wait (a CONNECT let in anonymously, or refused
   * on its own fields), else a promise of it. A packet the phase does not allow throws an MqttError with the
   * reason code to close with (0x82 Protocol Error); a step that waits rejects with it.
   */
  receive(packet: Packet): HandshakeStep | Promise<HandshakeStep> {
    switch (this.#phase) {
      case "awaiting_connect":
        return this.#begin(packet);
      case "authenticating":
        if (packet.type !== "auth") {
          throw new MqttError(ReasonCode.ProtocolError, `${packet.type} during authentication`);
        }
        return this.#authenticatedLater(this.#authentication.receive(packet));
      case "connected":
        if (packet.type === "auth" && this.#version === 5) {
          return this.#reauthenticate(packet);
        }
        return { kind: "session", packet };
      case "admitted":
      case "ended":
        // The connection awaits each step before it reads on, and reads nothing after the end.
        throw new Error(`handshake: ${packet.type} received while ${this.#phase}`);
    }
  }

  /** The session of the admitted CONNECT is open: its packets go to the broker from now on. */
  opened(): void {
    if (this.#phase !== "admitted") throw new Error(`handshake: opened() while ${this.#phase}`);
    this.#phase = "connected";
    this.#connect = undefined;
  }

  /** The connection is ending (or its session could not be opened): nothing more is accepted. */
  end(): void {
    this.#phase = "ended";
  }

  #begin(packet: Packet): HandshakeStep | Promise<HandshakeStep> {
    if (packet.type !== "connect") {
      throw new MqttError(ReasonCode.ProtocolError, `${packet.type} before CONNECT`, "[MQTT-3.1.0-1]");
    }
    this.#requestedClientId = packet.clientId;
    const decision = decideConnect(packet, this.context.settings, this.context.generateClientId);
    if (!decision.accepted) {
      this.#phase = "ended";
      const { reasonCode, reasonString, properties } = decision;
      return { kind: "refuse", reasonCode, reason: reasonString, publicReason: reasonString, properties };
    }
    this.#connect = { packet, decision };
    this.#version = packet.protocolVersion;
    this.#phase = "authenticating";
    const outcome = this.#authentication.begin(packet, decision.clientId);
    return outcome instanceof Promise ? this.#authenticatedLater(outcome) : this.#authenticated(outcome);
  }

  /** {@link #authenticated} once `outcome` settles (a method of its own: no closure where nothing waits). */
  #authenticatedLater(outcome: Promise<AuthOutcome>): Promise<HandshakeStep> {
    return outcome.then((settled) => this.#authenticated(settled));
  }

  #authenticated(outcome: AuthOutcome): HandshakeStep {
    switch (outcome.kind) {
      case "continue":
        return { kind: "challenge", packet: outcome.packet };
      case "refused": {
        this.#phase = "ended";
        const { reasonCode, reason, publicReason, method } = outcome;
        return { kind: "refuse", reasonCode, reason, publicReason, properties: {}, method };
      }
      case "accepted": {
        this.#phase = "admitted";
        const { packet, decision } = this.#connect!;
        return {
          kind: "admit",
          connect: packet,
          decision,
          username: outcome.username,
          properties: outcome.properties,
        };
      }
    }
  }

  async #reauthenticate(packet: AuthPacket): Promise<HandshakeStep> {
    const outcome = await this.#authentication.receive(packet);
    switch (outcome.kind) {
      case "continue":
        return { kind: "challenge", packet: outcome.packet };
      case "accepted":
        return { kind: "reauthenticated", properties: outcome.properties };
      case "refused":
        this.#phase = "ended";
        return {
          kind: "reauthentication_failed",
          reasonCode: outcome.reasonCode,
          reason: outcome.reason,
          publicReason: outcome.publicReason,
        };
    }
  }
}
