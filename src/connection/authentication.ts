import type { Authenticator, EnhancedAuthExchange, EnhancedAuthMethod } from "../auth/port.ts";
import { MqttError, ReasonCode } from "../codec/mod.ts";
import type { AuthPacket, ConnectPacket, Properties } from "../codec/types.ts";

/** Where an authentication stands after a CONNECT or AUTH packet. */
export type AuthOutcome =
  /** Authenticated; `properties` carry the method and final data for CONNACK or AUTH. */
  | { kind: "accepted"; username?: string; properties: Properties }
  /** Send this AUTH (0x18 Continue authentication) and wait for the client's next AUTH. */
  | { kind: "continue"; packet: AuthPacket }
  | { kind: "refused"; reasonCode: number; reason: string };

/**
 * One client's authentication: user name and password at CONNECT through the Authenticator, or an
 * enhanced method (MQTT 5 Authentication Method, spec §4.12) over CONNECT/AUTH exchanges, and
 * re-authentication later with AUTH 0x19.
 */
export class ClientAuthentication {
  #method: EnhancedAuthMethod | undefined;
  #exchange: EnhancedAuthExchange | undefined;

  constructor(
    private readonly authenticator: Authenticator | undefined,
    private readonly methods: ReadonlyMap<string, EnhancedAuthMethod>,
    private readonly remoteAddress: string,
    private readonly certificateCommonName: string | undefined,
  ) {}

  /** True when the client authenticated with an enhanced method (it may re-authenticate with AUTH). */
  get enhanced(): boolean {
    return this.#method !== undefined;
  }

  /** True while an enhanced exchange waits for the client's AUTH. */
  get inProgress(): boolean {
    return this.#exchange !== undefined;
  }

  async begin(connect: ConnectPacket, clientId: string): Promise<AuthOutcome> {
    const methodName = connect.properties.authenticationMethod;
    if (methodName === undefined) {
      if (!this.authenticator) return { kind: "accepted", username: connect.username, properties: {} };
      const result = await this.authenticator.authenticate({
        clientId,
        username: connect.username,
        password: connect.password,
        remoteAddress: this.remoteAddress,
        certificateCommonName: this.certificateCommonName,
      });
      return result.ok
        ? { kind: "accepted", username: result.username ?? connect.username, properties: {} }
        : { kind: "refused", reasonCode: result.reasonCode, reason: result.reason };
    }
    this.#method = this.methods.get(methodName);
    if (!this.#method) {
      return {
        kind: "refused",
        reasonCode: ReasonCode.BadAuthenticationMethod,
        reason: `unsupported authentication method ${methodName}`,
      };
    }
    this.#exchange = this.#method.start();
    return await this.#step(connect.properties.authenticationData);
  }

  /** An AUTH packet from the client: the next step of an exchange, or the start of re-authentication. */
  async receive(auth: AuthPacket): Promise<AuthOutcome> {
    if (!this.#method) {
      throw new MqttError(ReasonCode.ProtocolError, "AUTH without an authentication method");
    }
    if (auth.properties.authenticationMethod !== this.#method.name) {
      throw new MqttError(ReasonCode.ProtocolError, "AUTH with a different authentication method");
    }
    if (auth.reasonCode === ReasonCode.ReAuthenticate && !this.#exchange) {
      this.#exchange = this.#method.start();
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
    if (step.kind === "failure") return { kind: "refused", reasonCode: step.reasonCode, reason: step.reason };
    const properties: Properties = { authenticationMethod: method.name };
    if (step.data) properties.authenticationData = step.data;
    return { kind: "accepted", username: step.username, properties };
  }
}
