/**
 * The CONNECT → AUTH → re-AUTH state machine on its own: plain packets in, steps out, no sockets. The
 * credential checks are small in-test implementations of the auth ports.
 */
import assert from "node:assert/strict";
import type { Authenticator, AuthStep, EnhancedAuthMethod } from "../../src/auth/port.ts";
import { MqttError, ReasonCode } from "../../src/codec/mod.ts";
import type { AuthPacket, ConnectPacket, ProtocolVersion } from "../../src/codec/types.ts";
import { Handshake, type HandshakeContext } from "../../src/session/mod.ts";
import { limits } from "../helpers/session_limits.ts";

const bytes = (text: string) => new TextEncoder().encode(text);
const text = (data: Uint8Array | undefined) => new TextDecoder().decode(data);

/** Accepts user "alice" with password "secret". */
const passwords: Authenticator = {
  authenticate: ({ username, password }) =>
    Promise.resolve(
      username === "alice" && text(password) === "secret"
        ? { ok: true, username, method: "password" }
        : { ok: false, reasonCode: ReasonCode.BadUserNameOrPassword, reason: `bad password for ${username}` },
    ),
};

/**
 * A two-round method: the server answers the client's first data with "challenge:<data>", then accepts
 * "proof:<user>" as that user and refuses anything else.
 */
const twoRounds: EnhancedAuthMethod = {
  name: "TWO-ROUNDS",
  start: () => {
    let round = 0;
    return {
      step: (data): Promise<AuthStep> => {
        round++;
        if (round === 1) return Promise.resolve({ kind: "continue", data: bytes(`challenge:${text(data)}`) });
        const proof = text(data);
        return Promise.resolve(
          proof.startsWith("proof:")
            ? { kind: "success", username: proof.slice("proof:".length), data: bytes("welcome") }
            : { kind: "failure", reasonCode: ReasonCode.NotAuthorized, reason: `bad proof ${proof}` },
        );
      },
    };
  },
};

function handshake(overrides: Partial<HandshakeContext> = {}): Handshake {
  let next = 0;
  return new Handshake({
    settings: {
      limits,
      maxPacketSize: 1 << 20,
      maxKeepAlive: 65535,
      maxClientIdLength: 65535,
      allowZeroLengthClientId: true,
      allowControlCharacters: false,
      maxSessionExpiry: 604800,
    },
    generateClientId: () => `auto-${++next}`,
    authenticator: passwords,
    methods: new Map([[twoRounds.name, twoRounds]]),
    client: { remoteAddress: "127.0.0.1:5000" },
    ...overrides,
  });
}

function connect(fields: Partial<ConnectPacket> = {}, version: ProtocolVersion = 5): ConnectPacket {
  return {
    type: "connect",
    protocolName: "MQTT",
    protocolVersion: version,
    cleanStart: true,
    keepAlive: 60,
    clientId: "c1",
    properties: {},
    ...fields,
  };
}

function auth(reasonCode: number, data: string, method = twoRounds.name): AuthPacket {
  return {
    type: "auth",
    reasonCode,
    properties: { authenticationMethod: method, authenticationData: bytes(data) },
  };
}

const protocolError = (error: unknown) =>
  error instanceof MqttError && error.reasonCode === ReasonCode.ProtocolError;

Deno.test("handshake: a password CONNECT is admitted as its verified user, then its packets are the session's", async () => {
  const h = handshake();
  const step = await h.receive(connect({ username: "alice", password: bytes("secret") }));
  assert.equal(step.kind, "admit");
  assert(step.kind === "admit");
  assert.deepEqual([step.decision.clientId, step.username], ["c1", "alice"]);
  assert.equal(h.phase, "admitted");
  h.opened();
  assert.equal(h.phase, "connected");
  const ping = { type: "pingreq" as const };
  assert.deepEqual(await h.receive(ping), { kind: "session", packet: ping });
});

Deno.test("handshake: a wrong password is refused with 0x86 and a public reason that names no user", async () => {
  const h = handshake();
  const step = await h.receive(connect({ username: "mallory", password: bytes("guess") }));
  assert(step.kind === "refuse");
  assert.equal(step.reasonCode, ReasonCode.BadUserNameOrPassword);
  assert.match(step.reason, /mallory/, "the log learns who");
  assert.doesNotMatch(step.publicReason, /mallory/, "the client does not");
  assert.equal(h.phase, "ended");
});

Deno.test("handshake: a CONNECT the session rules refuse never reaches the authenticator", async () => {
  let asked = 0;
  const h = handshake({
    authenticator: { authenticate: () => (asked++, passwords.authenticate({} as never)) },
  });
  const step = await h.receive(connect({ clientId: "", cleanStart: false }, 4));
  assert(step.kind === "refuse");
  assert.equal(
    step.reasonCode,
    ReasonCode.ClientIdentifierNotValid,
    "sent to 3.1.1 as 0x02 Identifier rejected",
  );
  assert.equal(asked, 0);
});

Deno.test("handshake: the client's address is read only when the authenticator asks for it (an anonymous CONNECT never makes it into text)", async () => {
  let reads = 0;
  const client = {
    get remoteAddress() {
      reads++;
      return "192.0.2.1:4000";
    },
  };
  const unchecked = handshake({ authenticator: undefined, client });
  assert.equal((await unchecked.receive(connect())).kind, "admit");
  const letsAnyoneIn = handshake({ authenticator: { authenticate: () => ({ ok: true }) }, client });
  assert.equal((await letsAnyoneIn.receive(connect())).kind, "admit");
  assert.equal(reads, 0);
  const seen: string[] = [];
  const checked = handshake({
    client,
    authenticator: {
      authenticate: (
        credentials,
      ) => (seen.push(credentials.remoteAddress), passwords.authenticate(credentials)),
    },
  });
  assert.equal(
    (await checked.receive(connect({ username: "alice", password: bytes("secret") }))).kind,
    "admit",
  );
  assert.deepEqual(seen, ["192.0.2.1:4000"]);
});

Deno.test("handshake: anything but CONNECT first is a protocol error [MQTT-3.1.0-1]", async () => {
  await assert.rejects(async () => await handshake().receive({ type: "pingreq" }), protocolError);
});

Deno.test("handshake: an enhanced exchange: CONNECT, AUTH 0x18 rounds, then admitted with the method's data", async () => {
  const h = handshake();
  const first = await h.receive(
    connect({ properties: { authenticationMethod: "TWO-ROUNDS", authenticationData: bytes("hi") } }),
  );
  assert(first.kind === "challenge");
  assert.equal(first.packet.reasonCode, ReasonCode.ContinueAuthentication);
  assert.equal(text(first.packet.properties.authenticationData), "challenge:hi");
  assert.equal(h.phase, "authenticating");
  const second = await h.receive(auth(ReasonCode.ContinueAuthentication, "proof:bob"));
  assert(second.kind === "admit");
  assert.equal(second.username, "bob");
  assert.equal(second.properties.authenticationMethod, "TWO-ROUNDS");
  assert.equal(text(second.properties.authenticationData), "welcome");
});

Deno.test("handshake: during an exchange only AUTH may come; an unknown method is refused with 0x8C", async () => {
  const h = handshake();
  await h.receive(
    connect({ properties: { authenticationMethod: "TWO-ROUNDS", authenticationData: bytes("x") } }),
  );
  await assert.rejects(async () => await h.receive({ type: "pingreq" }), protocolError);
  const unknown = await handshake().receive(connect({ properties: { authenticationMethod: "NOPE" } }));
  assert(unknown.kind === "refuse");
  assert.equal(unknown.reasonCode, ReasonCode.BadAuthenticationMethod);
});

Deno.test("handshake: re-authentication (AUTH 0x19) as the same user succeeds; as another user it ends the connection", async () => {
  const h = handshake();
  await h.receive(
    connect({ properties: { authenticationMethod: "TWO-ROUNDS", authenticationData: bytes("x") } }),
  );
  await h.receive(auth(ReasonCode.ContinueAuthentication, "proof:bob"));
  h.opened();
  const again = await h.receive(auth(ReasonCode.ReAuthenticate, "y"));
  assert(again.kind === "challenge");
  const same = await h.receive(auth(ReasonCode.ContinueAuthentication, "proof:bob"));
  assert(same.kind === "reauthenticated");
  assert.equal(h.phase, "connected");
  await h.receive(auth(ReasonCode.ReAuthenticate, "z"));
  const other = await h.receive(auth(ReasonCode.ContinueAuthentication, "proof:eve"));
  assert(other.kind === "reauthentication_failed");
  assert.equal(other.reasonCode, ReasonCode.NotAuthorized);
  assert.equal(h.phase, "ended");
});

Deno.test("handshake: AUTH with another method, or AUTH from a password client, is a protocol error", async () => {
  const enhanced = handshake();
  await enhanced.receive(
    connect({ properties: { authenticationMethod: "TWO-ROUNDS", authenticationData: bytes("x") } }),
  );
  await enhanced.receive(auth(ReasonCode.ContinueAuthentication, "proof:bob"));
  enhanced.opened();
  await assert.rejects(
    async () => await enhanced.receive(auth(ReasonCode.ReAuthenticate, "y", "OTHER")),
    protocolError,
  );
  const password = handshake();
  await password.receive(connect({ username: "alice", password: bytes("secret") }));
  password.opened();
  await assert.rejects(
    async () => await password.receive(auth(ReasonCode.ReAuthenticate, "y")),
    protocolError,
  );
});
