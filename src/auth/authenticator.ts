/**
 * The CONNECT-time authenticator: client certificates, password file, access-key signatures, SCRAM-SHA-256
 * and anonymous access, every one of them through one {@link LoginGuard} (per-address slowdown, refusals
 * answered no sooner than a floor, counters per method).
 *
 * A user name is only ever taken from a verified credential. Decision order for a plain CONNECT:
 * 1. A verified client certificate on a listener with use_cn_as_username: its Common Name is the user name
 *    (the CONNECT's user name and password are ignored); a certificate without a usable CN is refused 0x86.
 * 2. No user name: anonymous, accepted only when allowed, else refused with 0x87 Not authorized (what
 *    Mosquitto 2 answers; the client presented no credentials that could be "bad").
 * 3. A user name, but no password or access-key file to check it against: the name proves nothing. When
 *    anonymous access is allowed the client is accepted as anonymous (the name is not its identity, so ACL
 *    `user` sections do not apply to it); otherwise it is refused with 0x86.
 * 4. A user name in the password file is checked there; otherwise a user name whose access key
 *    (`<accessKey>` or `Signature|<accessKey>|<instanceId>`) is in the key file is checked as a signature
 *    and the client's identity becomes the access key. Everything else is refused with 0x86.
 *
 * Anonymous access is allowed by default only when no credential source is configured at all (password,
 * access-key or SCRAM file, or a listener with use_cn_as_username).
 *
 * Every refusal in steps 3 and 4 costs one password-hash computation when a password file is configured
 * (a decoy with the file's usual iteration count for unknown users, missing passwords and access keys), and
 * all refusals are answered no sooner than the guard's floor, so neither the answer nor its timing tells an
 * unknown user from a wrong password, an unknown access key or a wrong signature.
 */
import { randomBytes } from "node:crypto";
import { ReasonCode } from "../codec/reason_codes.ts";
import { readAuthFile } from "./auth_file.ts";
import { LoginGuard, type LoginMethod, type MethodStats } from "./login_guard.ts";
import { type Clock, type FailureDelay, systemClock } from "./login_throttle.ts";
import {
  DEFAULT_PBKDF2_ITERATIONS,
  parsePasswordFile,
  type PasswordHash,
  type PasswordTable,
  verifyPassword,
} from "./password_file.ts";
import type { Authenticator, AuthResult, Credentials, EnhancedAuthMethod } from "./port.ts";
import { parseScramFile, scramMethod, type ScramTable } from "./scram.ts";
import {
  accessKeyOfUsername,
  type AccessKeyTable,
  parseAccessKeysFile,
  verifySignature,
} from "./signature.ts";

/** Where credentials come from and how failures are slowed down. */
export interface AuthenticatorOptions {
  /** Default: true only when no credential source is configured. */
  allowAnonymous?: boolean;
  passwordFile?: string;
  accessKeysFile?: string;
  /** Enables the MQTT 5 enhanced authentication method SCRAM-SHA-256. */
  scramFile?: string;
  /** Some listener takes user names from verified client certificates (use_cn_as_username). */
  certificateUsernames?: boolean;
  /** Default: {@link DEFAULT_FAILURE_DELAY}. */
  failureDelay?: FailureDelay;
  /** Earliest answer to a refusal; default `DEFAULT_REFUSAL_FLOOR_MS` of login_guard.ts. */
  refusalFloorMs?: number;
}

/** 250 ms after the first failure, doubling to 8 s: a typo costs little, a dictionary attack crawls. */
export const DEFAULT_FAILURE_DELAY: FailureDelay = { baseMs: 250, maxMs: 8_000 };

/** Login counters since start, over all methods. */
export interface AuthStats {
  successes: number;
  failures: number;
}

/** An {@link Authenticator} whose files can be reread (on SIGHUP) and that counts its verdicts. */
export interface ReloadableAuthenticator extends Authenticator {
  /**
   * Rereads the configured files. When one is unreadable or invalid this rejects with an
   * `AuthFileError` naming file and line, and the credentials loaded before stay in force.
   */
  reload(): Promise<void>;
  stats(): AuthStats;
  /** Successes, failures and delayed attempts per method, for /metrics. */
  methodStats(): Record<LoginMethod, MethodStats>;
  /** Enhanced authentication methods (SCRAM-SHA-256 with a SCRAM file), behind the same guard. */
  readonly methods: ReadonlyMap<string, EnhancedAuthMethod>;
  /** A failed login a transport saw, such as a client certificate refused in the TLS handshake. */
  recordFailure(remoteAddress: string, method: LoginMethod): void;
}

interface CredentialSources {
  passwords?: PasswordTable;
  accessKeys?: AccessKeyTable;
  scram?: ScramTable;
  /** Random bytes that cost as much to check as the file's usual hash and match no password. */
  decoy?: PasswordHash;
}

async function readOptional(file: string | undefined): Promise<string | undefined> {
  return file === undefined ? undefined : await readAuthFile(file);
}

/** The iteration count most hashes in the file use: an unknown user's refusal costs the same. */
function typicalIterations(passwords: PasswordTable): number {
  const counts = new Map<number, number>();
  let best = 0;
  for (const { iterations } of passwords.values()) {
    const count = (counts.get(iterations) ?? 0) + 1;
    counts.set(iterations, count);
    if (count > (counts.get(best) ?? 0)) best = iterations;
  }
  return best;
}

async function loadSources(options: AuthenticatorOptions): Promise<CredentialSources> {
  const { passwordFile, accessKeysFile, scramFile } = options;
  const [passwordText, accessKeysText, scramText] = await Promise.all(
    [passwordFile, accessKeysFile, scramFile].map(readOptional),
  );
  const passwords = passwordText === undefined ? undefined : parsePasswordFile(passwordText, passwordFile!);
  return {
    passwords,
    accessKeys: accessKeysText === undefined
      ? undefined
      : parseAccessKeysFile(accessKeysText, accessKeysFile!),
    scram: scramText === undefined ? undefined : parseScramFile(scramText, scramFile!),
    decoy: passwords && {
      iterations: typicalIterations(passwords) || DEFAULT_PBKDF2_ITERATIONS,
      salt: randomBytes(12),
      hash: randomBytes(64),
    },
  };
}

type Decision = AuthResult & { method: LoginMethod };

const ANONYMOUS: Decision = Object.freeze({ ok: true, method: "anonymous" });

function refuse(method: LoginMethod, reasonCode: number, reason: string): Decision {
  return { ok: false, reasonCode, reason, method };
}

/**
 * A Common Name that can be a user name: not empty, no control characters (which would forge log lines
 * or ACL file lines) and no leading or trailing white space.
 */
function usableCommonName(name: string): boolean {
  return name !== "" && name.trim() === name && !/\p{Cc}/u.test(name);
}

/**
 * Loads the configured files and returns the authenticator; rejects with an `AuthFileError` when a
 * file is unreadable or invalid. `clock` exists for tests of the failure delay.
 */
export async function createAuthenticator(
  options: AuthenticatorOptions,
  clock: Clock = systemClock,
): Promise<ReloadableAuthenticator> {
  let sources = await loadSources(options);
  const allowAnonymous = options.allowAnonymous ??
    (options.passwordFile === undefined && options.accessKeysFile === undefined &&
      options.scramFile === undefined && !options.certificateUsernames);
  const guard = new LoginGuard({
    delay: options.failureDelay ?? DEFAULT_FAILURE_DELAY,
    refusalFloorMs: options.refusalFloorMs,
    clock,
  });

  /** The method a user name asks for: an access key by its form or when no password file exists. */
  function methodOf(username: string): LoginMethod {
    return username.startsWith("Signature|") || (!sources.passwords && sources.accessKeys)
      ? "access_key"
      : "password";
  }

  async function checkUsername(clientId: string, username: string, password?: Uint8Array): Promise<Decision> {
    const { passwords, accessKeys, decoy } = sources;
    const method = methodOf(username);
    const stored = password === undefined ? undefined : passwords?.get(username);
    if (stored) {
      return await verifyPassword(password!, stored) ? { ok: true, username, method: "password" } : refuse(
        "password",
        ReasonCode.BadUserNameOrPassword,
        `wrong password for user ${JSON.stringify(username)}`,
      );
    }
    const accessKey = accessKeyOfUsername(username);
    const secretKey = password === undefined ? undefined : accessKeys?.get(accessKey);
    let refusal: Decision;
    if (secretKey !== undefined) {
      if (verifySignature(clientId, password!, secretKey)) {
        return { ok: true, username: accessKey, method: "access_key" };
      }
      refusal = refuse(
        "access_key",
        ReasonCode.BadUserNameOrPassword,
        `wrong signature for access key ${JSON.stringify(accessKey)}`,
      );
    } else if (password === undefined) {
      refusal = refuse(
        method,
        ReasonCode.BadUserNameOrPassword,
        `user ${JSON.stringify(username)} sent no password`,
      );
    } else {
      refusal = refuse(method, ReasonCode.BadUserNameOrPassword, `unknown user ${JSON.stringify(username)}`);
    }
    // the same work as a wrong password, so the refusal takes as long
    if (decoy) await verifyPassword(password ?? new Uint8Array(), decoy);
    return refusal;
  }

  function decide({ clientId, username, password, certificateCommonName }: Credentials): Promise<Decision> {
    if (certificateCommonName !== undefined) {
      return Promise.resolve(
        usableCommonName(certificateCommonName)
          ? { ok: true, username: certificateCommonName, method: "certificate" }
          : refuse(
            "certificate",
            ReasonCode.BadUserNameOrPassword,
            `client certificate common name ${JSON.stringify(certificateCommonName)} cannot be a user name`,
          ),
      );
    }
    // Clients let in anonymously do not come here (see admitsAnonymously).
    if (username === undefined) {
      return Promise.resolve(
        refuse("anonymous", ReasonCode.NotAuthorized, "anonymous clients are not allowed"),
      );
    }
    if (!sources.passwords && !sources.accessKeys) {
      return Promise.resolve(refuse(
        methodOf(username),
        ReasonCode.BadUserNameOrPassword,
        `user ${JSON.stringify(username)} cannot be verified: no password or access-key file is configured`,
      ));
    }
    return checkUsername(clientId, username, password);
  }

  const methods = new Map<string, EnhancedAuthMethod>();
  if (options.scramFile !== undefined) {
    const scram = scramMethod(() => sources.scram!);
    methods.set(scram.name, guardedMethod(scram, guard));
  }

  /**
   * An anonymous client let in checks no secret: there is nothing to guess and no work to bound, so it does
   * not go through the guard. Through it, each such success took back one failure of its address (an
   * attacker could mix them into a password guessing run), and a connection storm from one address queued
   * four at a time behind its gate.
   */
  const admitsAnonymously = ({ username, certificateCommonName }: Credentials): boolean =>
    allowAnonymous && certificateCommonName === undefined &&
    (username === undefined || (!sources.passwords && !sources.accessKeys));

  return {
    authenticate: (credentials) => {
      if (!admitsAnonymously(credentials)) {
        return guard.run(credentials.remoteAddress, () => decide(credentials), (decision) => decision);
      }
      guard.countSuccess("anonymous");
      return ANONYMOUS;
    },
    async reload() {
      sources = await loadSources(options);
    },
    stats() {
      let successes = 0, failures = 0;
      for (const counts of Object.values(guard.stats())) {
        successes += counts.successes;
        failures += counts.failures;
      }
      return { successes, failures };
    },
    methodStats: () => guard.stats(),
    methods,
    recordFailure: (remoteAddress, method) => guard.recordFailure(remoteAddress, method),
  };
}

/**
 * An enhanced method whose exchanges go through the guard: every step after the first (which only starts
 * the exchange) waits for the address's turn, and the final verdict is counted and slows the address.
 */
function guardedMethod(method: EnhancedAuthMethod, guard: LoginGuard): EnhancedAuthMethod {
  return {
    name: method.name,
    start(client) {
      const exchange = method.start(client);
      let steps = 0;
      return {
        step: (data) =>
          guard.run(
            client.remoteAddress,
            () => exchange.step(data),
            (step) => ({
              method: "scram",
              ok: step.kind === "continue" ? undefined : step.kind === "success",
            }),
            steps++ > 0,
          ),
      };
    },
  };
}
