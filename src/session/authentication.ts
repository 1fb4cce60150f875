import type {
  Authenticator,
  AuthResult,
  Credentials,
  EnhancedAuthExchange,
  EnhancedAuthMethod,
} from "../auth/port.ts";
import { MqttError, ReasonCode } from "../codec/mod.ts";
import type { AuthPacket, ConnectPacket, Properties } from "../codec/types.ts";

/** Where an authentication stands after a CONNECT or AUTH packet. */
export type AuthOutcome =
  /** Authenticated; `username` is verified (absent = anonymous); `properties` go into CONNACK or AUTH. */
  | { kind: "accepted"; username?: string; properties: Properties }
  /** Send this AUTH (0x18 Continue authentication) and wait for the client's next AUTH. */
  | { kind: "continue"; packet: AuthPacket }
  /** `reason` is for the log; the client hears `publicReason`, the same for every refusal with this code. */
  | { kind: "refused"; reasonCode: number; reason: string; publicReason: string; method?: string };

/**
 * What a refused client is told: one text per reason code, so that the answer never tells an unknown user
 * from a wrong password, an unknown access key or a wrong signature (the log has the detail).
 */
export function publicRefusalReason(reasonCode: number): string {
  switch (reasonCode) {
    case ReasonCode.BadUserNameOrPassword:
      return "bad user name or password";
    case ReasonCode.NotAuthorized:
      return "not authorized";
    case ReasonCode.BadAuthenticationMethod:
      return "bad authentication method";
    default:
      return "authentication failed";
  }
}

function refused(reasonCode: number, reason: string, method?: string): AuthOutcome {
  return { kind: "refused", reasonCode, reason, publicReason: publicRefusalReason(reasonCode), method };
}

/** The outcome of the Authenticator's verdict on a CONNECT's user name and password. */
function outcomeOf(result: AuthResult): AuthOutcome {
  return result.ok
    ? { kind: "accepted", username: result.username, properties: {} }
    : refused(result.reasonCode, result.reason, result.method);
}

/** The client's end of its connection: `host:port`, and a verified certificate's Common Name if any. */
export interface ClientEndpoint {
  readonly remoteAddress: string;
  /** Set when the listener uses the certificate's Common Name as the user name. */
  readonly certificateCommonName?: string;
}

/**
 * A CONNECT's credentials, the client's end read through: an authenticator that lets an anonymous client in
 * never has its address made into text (about 230 B and a formatting per CONNECT on io = epoll).
 */
class ConnectCredentials implements Credentials {
  constructor(
    readonly clientId: string,
    readonly username: string | undefined,
    readonly password: Uint8Array | undefined,
    private readonly client: ClientEndpoint,
  ) {}

  get remoteAddress(): string {
    return this.client.remoteAddress;
  }

  get certificateCommonName(): string | undefined {
    return this.client.certificateCommonName;
  }
}

/** An AUTH from a client that did not authenticate with an enhanced method [MQTT-4.12.0-7]. */
export function authWithoutMethod(): MqttError {
  return new MqttError(ReasonCode.ProtocolError, "AUTH without an authentication method");
}

/**
 * One client's authentication: user name and password at CONNECT through the Authenticator, or an
 * enhanced method (MQTT 5 Authentication Method, spec §4.12) over CONNECT/AUTH exchanges, and
 * re-authentication later with AUTH 0x19.
 */
export class ClientAuthentication {
  #method: EnhancedAuthMethod | undefined;
  #exchange: EnhancedAuthExchange | undefined;
  /** Set once an enhanced exchange succeeded: a re-authentication must prove the same user. */
  #authenticatedAs: { username: string } | undefined;

  constructor(
    private readonly authenticator: Authenticator | undefined,
    private readonly methods: ReadonlyMap<string, EnhancedAuthMethod>,
    private readonly client: ClientEndpoint,
  ) {}

  /** True when the client authenticated with an enhanced method (it may re-authenticate with AUTH). */
  get enhanced(): boolean {
    return this.#method !== undefined;
  }

  /** True while an enhanced exchange waits for the client's AUTH. */
  get inProgress(): boolean {
    return this.#exchange !== undefined;
  }

  /**
   * The outcome of a CONNECT: as it is when nothing had to wait (no authenticator, or one whose verdict
   * came at once), else a promise of it.
   */
  begin(connect: ConnectPacket, clientId: string): AuthOutcome | Promise<AuthOutcome> {
    const methodName = connect.properties.authenticationMethod;
    if (methodName === undefined) {
      // nothing verifies the CONNECT's user name here, so it is not the client's identity
      if (!this.authenticator) return { kind: "accepted", properties: {} };
      const result = this.authenticator.authenticate(
        new ConnectCredentials(clientId, connect.username, connect.password, this.client),
      );
      return result instanceof Promise ? result.then(outcomeOf) : outcomeOf(result);
    }
    this.#method = this.methods.get(methodName);
    if (!this.#method) {
      return refused(ReasonCode.BadAuthenticationMethod, `unsupported authentication method ${methodName}`);
    }
    this.#exchange = this.#method.start({ remoteAddress: this.client.remoteAddress });
    return this.#step(connect.properties.authenticationData);
  }

  /** An AUTH packet from the client: the next step of an exchange, or the start of re-authentication. */
  async receive(auth: AuthPacket): Promise<AuthOutcome> {
    if (!this.#method) throw authWithoutMethod();
    if (auth.properties.authenticationMethod !== this.#method.name) {
      throw new MqttError(ReasonCode.ProtocolError, "AUTH with a different authentication method");
    }
    if (auth.reasonCode === ReasonCode.ReAuthenticate && !this.#exchange) {
      this.#exchange = this.#method.start({ remoteAddress: this.client.remoteAddress });
    } else if (auth.reasonCode !== ReasonCode.ContinueAuthentication || !this.#exchange) {
      throw new MqttError(
        ReasonCode.ProtocolError,
        `unexpected AUTH reason 0x${auth.reasonCode.toString(16)}`,
      );
    }
    return await this.#step(auth.properties.authenticationData);
  }

  async #step(data: Uint8Array | undefined): Promise<AuthOutcome> {
    const method = this.#method!;
    const step = await this.#exchange!.step(data);
    if (step.kind === "continue") {
      return {
        kind: "continue",
        packet: {
          type: "auth",
          reasonCode: ReasonCode.ContinueAuthentication,
          properties: { authenticationMethod: method.name, authenticationData: step.data },
        },
      };
    }
    this.#exchange = undefined;
    if (step.kind === "failure") return refused(step.reasonCode, step.reason, method.name);
    if (this.#authenticatedAs && this.#authenticatedAs.username !== step.username) {
      // the connection's identity (ACL, session owner) was fixed at CONNECT; it cannot change under it
      return refused(
        ReasonCode.NotAuthorized,
        `re-authenticated as ${JSON.stringify(step.username)}, not ${
          JSON.stringify(this.#authenticatedAs.username)
        }`,
        method.name,
      );
    }
    this.#authenticatedAs = { username: step.username };
    const properties: Properties = { authenticationMethod: method.name };
    if (step.data) properties.authenticationData = step.data;
    return { kind: "accepted", username: step.username, properties };
  }
}
