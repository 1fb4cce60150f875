/**
 * SCRAM-SHA-256 (RFC 5802, RFC 7677) as an MQTT 5 enhanced authentication method (spec §4.12): the
 * password never crosses the wire and the server proves it knows the credentials too.
 *
 * Credentials file, one user per line, the format PostgreSQL uses:
 *   `alice:SCRAM-SHA-256$4096:<salt base64>$<StoredKey base64>:<ServerKey base64>`
 * `scramCredentialLine(user, password)` writes such a line.
 *
 * An unknown user gets an exchange that looks like a known one's: a salt that is stable for that name but
 * derived with a secret only this process knows (so a client cannot recompute it and learn the user is
 * made up), the iteration count most users in the file have, and the same proof computation before the
 * refusal. Every failure carries the same reason; the detail is for the log.
 */
import { createHash, createHmac, pbkdf2, randomBytes, timingSafeEqual } from "node:crypto";
import { AuthFileError, meaningfulLines, readAuthFile } from "./auth_file.ts";
import type { AuthStep, EnhancedAuthExchange, EnhancedAuthMethod } from "./port.ts";

export const SCRAM_SHA_256 = "SCRAM-SHA-256";
const DEFAULT_ITERATIONS = 4096;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

interface ScramCredential {
  salt: Uint8Array;
  iterations: number;
  storedKey: Uint8Array;
  serverKey: Uint8Array;
}

export type ScramTable = Map<string, ScramCredential>;

function hmac(key: Uint8Array, data: string | Uint8Array): Uint8Array {
  return new Uint8Array(createHmac("sha256", key).update(data).digest());
}

function sha256(data: Uint8Array): Uint8Array {
  return new Uint8Array(createHash("sha256").update(data).digest());
}

function b64(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes));
}

function unb64(text: string): Uint8Array {
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

function saltPassword(password: string, salt: Uint8Array, iterations: number): Promise<Uint8Array> {
  return new Promise((resolve, reject) =>
    pbkdf2(
      password,
      salt,
      iterations,
      32,
      "sha256",
      (error, key) => error ? reject(error) : resolve(new Uint8Array(key)),
    )
  );
}

/** A credentials line for `user` (salted, derived keys only: the password is not stored). */
export async function scramCredentialLine(user: string, password: string, iterations = DEFAULT_ITERATIONS) {
  const salt = new Uint8Array(randomBytes(16));
  const salted = await saltPassword(password, salt, iterations);
  const storedKey = sha256(hmac(salted, "Client Key"));
  const serverKey = hmac(salted, "Server Key");
  return `${user}:${SCRAM_SHA_256}$${iterations}:${b64(salt)}$${b64(storedKey)}:${b64(serverKey)}`;
}

export function parseScramFile(text: string, source: string): ScramTable {
  const table: ScramTable = new Map();
  const format = /^([^:]+):SCRAM-SHA-256\$(\d+):([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+):([A-Za-z0-9+/=]+)$/;
  for (const { lineNumber, content } of meaningfulLines(text)) {
    const match = format.exec(content);
    if (!match) {
      throw new AuthFileError(
        source,
        lineNumber,
        "expected user:SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>",
      );
    }
    const [, user, iterations, salt, storedKey, serverKey] = match;
    table.set(user, {
      iterations: Number(iterations),
      salt: unb64(salt),
      storedKey: unb64(storedKey),
      serverKey: unb64(serverKey),
    });
  }
  return table;
}

/** Parses `a=1,b=2` SCRAM attributes. */
function attributes(message: string): Map<string, string> {
  const map = new Map<string, string>();
  for (const part of message.split(",")) {
    const eq = part.indexOf("=");
    if (eq > 0) map.set(part.slice(0, eq), part.slice(eq + 1));
  }
  return map;
}

const failure = (reason: string): AuthStep => ({ kind: "failure", reasonCode: 0x87, reason });

/** The iteration count most credentials in the table use; an unknown user is given the same. */
function typicalIterations(table: ScramTable): number {
  const counts = new Map<number, number>();
  let best = DEFAULT_ITERATIONS;
  for (const { iterations } of table.values()) {
    const count = (counts.get(iterations) ?? 0) + 1;
    counts.set(iterations, count);
    if (count > (counts.get(best) ?? 0)) best = iterations;
  }
  return best;
}

/** What an exchange needs from its method: the credentials and the secret behind made-up salts. */
interface ScramSource {
  table: ScramTable;
  decoyIterations: number;
  /** Random per process: keys the made-up credentials of unknown users. */
  secret: Uint8Array;
}

/** One SCRAM conversation: client-first → server-first → client-final → server-final. */
class ScramExchange implements EnhancedAuthExchange {
  #state: "first" | "final" | "done" = "first";
  #user = "";
  #nonce = "";
  #authMessagePrefix = "";
  #credential: ScramCredential | undefined;
  #known = false;

  constructor(private readonly source: () => ScramSource) {}

  step(data: Uint8Array | undefined): Promise<AuthStep> {
    const message = data ? decoder.decode(data) : "";
    if (this.#state === "first") return Promise.resolve(this.#first(message));
    if (this.#state === "final") return Promise.resolve(this.#final(message));
    return Promise.resolve(failure("SCRAM exchange already finished"));
  }

  #first(message: string): AuthStep {
    // gs2 header: "n,," (no channel binding, no authzid).
    if (!message.startsWith("n,,")) return failure("SCRAM: channel binding is not supported");
    const bare = message.slice(3);
    const attrs = attributes(bare);
    const user = attrs.get("n")?.replaceAll("=2C", ",").replaceAll("=3D", "=");
    const clientNonce = attrs.get("r");
    if (!user || !clientNonce) return failure("SCRAM: malformed client-first-message");
    this.#user = user;
    const source = this.source();
    this.#credential = source.table.get(user);
    // An unknown user gets a made-up credential so the exchange looks the same; it fails at the proof.
    const credential = this.#credential ?? {
      salt: hmac(source.secret, `salt:${user}`).slice(0, 16),
      iterations: source.decoyIterations,
      storedKey: hmac(source.secret, `stored:${user}`),
      serverKey: hmac(source.secret, `server:${user}`),
    };
    this.#credential = credential;
    this.#known = source.table.has(user);
    this.#nonce = clientNonce + b64(new Uint8Array(randomBytes(18)));
    const serverFirst = `r=${this.#nonce},s=${b64(credential.salt)},i=${credential.iterations}`;
    this.#authMessagePrefix = `${bare},${serverFirst}`;
    this.#state = "final";
    return { kind: "continue", data: encoder.encode(serverFirst) };
  }

  #final(message: string): AuthStep {
    this.#state = "done";
    const proofAt = message.lastIndexOf(",p=");
    if (proofAt < 0) return failure("SCRAM: malformed client-final-message");
    const withoutProof = message.slice(0, proofAt);
    const attrs = attributes(withoutProof);
    if (attrs.get("r") !== this.#nonce) return failure("SCRAM: nonce mismatch");
    if (attrs.get("c") !== "biws") return failure("SCRAM: unexpected channel binding");
    const credential = this.#credential!;
    const authMessage = `${this.#authMessagePrefix},${withoutProof}`;
    const proof = unb64(message.slice(proofAt + 3));
    const signature = hmac(credential.storedKey, authMessage);
    if (proof.length !== signature.length) return failure("SCRAM: malformed proof");
    const clientKey = proof.map((byte, i) => byte ^ signature[i]);
    // the made-up credential of an unknown user goes through the same computation before it fails
    const matches = timingSafeEqual(sha256(clientKey), credential.storedKey);
    if (!this.#known) return failure(`SCRAM: unknown user ${JSON.stringify(this.#user)}`);
    if (!matches) return failure(`SCRAM: wrong proof for user ${JSON.stringify(this.#user)}`);
    const serverSignature = hmac(credential.serverKey, authMessage);
    return { kind: "success", username: this.#user, data: encoder.encode(`v=${b64(serverSignature)}`) };
  }
}

/** The SCRAM-SHA-256 method over the credentials `table()` returns at each exchange (it may be reloaded). */
export function scramMethod(table: () => ScramTable): EnhancedAuthMethod {
  const secret = new Uint8Array(randomBytes(32));
  let seen: ScramTable | undefined;
  let source: ScramSource | undefined;
  const current = (): ScramSource => {
    const now = table();
    if (now !== seen) [seen, source] = [now, { table: now, decoyIterations: typicalIterations(now), secret }];
    return source!;
  };
  return { name: SCRAM_SHA_256, start: () => new ScramExchange(current) };
}

/** The SCRAM-SHA-256 method over a credentials file; `reload()` rereads it (SIGHUP). */
export async function createScramMethod(
  file: string,
): Promise<EnhancedAuthMethod & { reload(): Promise<void> }> {
  let table = parseScramFile(await readAuthFile(file), file);
  return {
    ...scramMethod(() => table),
    async reload() {
      table = parseScramFile(await readAuthFile(file), file);
    },
  };
}
