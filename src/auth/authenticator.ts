/**
 * The CONNECT-time authenticator: password file, access-key signatures and anonymous access, with
 * failed logins slowed down per source address.
 *
 * Decision order for a CONNECT:
 * 1. No user name: accepted as anonymous when allowed, else refused with 0x87 Not authorized (what
 *    Mosquitto 2 answers; the client presented no credentials that could be "bad").
 * 2. No credential file configured: the user name is accepted unverified when anonymous access is
 *    allowed (Mosquitto's behaviour), else refused with 0x86.
 * 3. A user name in the password file is checked there; otherwise a user name whose access key
 *    (`<accessKey>` or `Signature|<accessKey>|<instanceId>`) is in the key file is checked as a
 *    signature and the client's identity becomes the access key. A wrong password, a missing
 *    password or an unknown user is refused with 0x86 Bad user name or password.
 *
 * Unknown users cost a full hash verification too, so response times do not reveal which user names
 * exist.
 */
import { randomBytes } from "node:crypto";
import { ReasonCode } from "../codec/reason_codes.ts";
import { readAuthFile } from "./auth_file.ts";
import { type Clock, type FailureDelay, LoginThrottle, systemClock } from "./login_throttle.ts";
import {
  DEFAULT_PBKDF2_ITERATIONS,
  parsePasswordFile,
  type PasswordHash,
  type PasswordTable,
  verifyPassword,
} from "./password_file.ts";
import type { Authenticator, AuthResult, Credentials } from "./port.ts";
import {
  accessKeyOfUsername,
  type AccessKeyTable,
  parseAccessKeysFile,
  verifySignature,
} from "./signature.ts";

/** Where credentials come from and how failures are slowed down. */
export interface AuthenticatorOptions {
  /** Default: true only when neither file is configured (Mosquitto 2's rule). */
  allowAnonymous?: boolean;
  passwordFile?: string;
  accessKeysFile?: string;
  /** Default: {@link DEFAULT_FAILURE_DELAY}. */
  failureDelay?: FailureDelay;
}

/** 250 ms after the first failure, doubling to 8 s: a typo costs little, a dictionary attack crawls. */
export const DEFAULT_FAILURE_DELAY: FailureDelay = { baseMs: 250, maxMs: 8_000 };

/** Login counters since start. */
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
}

interface CredentialSources {
  passwords?: PasswordTable;
  accessKeys?: AccessKeyTable;
}

async function loadSources(options: AuthenticatorOptions): Promise<CredentialSources> {
  const { passwordFile, accessKeysFile } = options;
  const [passwordText, accessKeysText] = await Promise.all([
    passwordFile === undefined ? undefined : readAuthFile(passwordFile),
    accessKeysFile === undefined ? undefined : readAuthFile(accessKeysFile),
  ]);
  return {
    passwords: passwordText === undefined ? undefined : parsePasswordFile(passwordText, passwordFile!),
    accessKeys: accessKeysText === undefined
      ? undefined
      : parseAccessKeysFile(accessKeysText, accessKeysFile!),
  };
}

function refuse(reasonCode: number, reason: string): AuthResult {
  return { ok: false, reasonCode, reason };
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
    (options.passwordFile === undefined && options.accessKeysFile === undefined);
  const throttle = new LoginThrottle(options.failureDelay ?? DEFAULT_FAILURE_DELAY, clock);
  // random bytes cost as much to check as a real hash and match no password
  const decoy: PasswordHash | undefined = options.passwordFile === undefined
    ? undefined
    : { iterations: DEFAULT_PBKDF2_ITERATIONS, salt: randomBytes(12), hash: randomBytes(64) };
  const counters: AuthStats = { successes: 0, failures: 0 };

  async function decide({ clientId, username, password }: Credentials): Promise<AuthResult> {
    const { passwords, accessKeys } = sources;
    if (username === undefined) {
      return allowAnonymous
        ? { ok: true }
        : refuse(ReasonCode.NotAuthorized, "anonymous clients are not allowed");
    }
    if (!passwords && !accessKeys) {
      return allowAnonymous ? { ok: true, username } : refuse(
        ReasonCode.BadUserNameOrPassword,
        `user "${username}" unknown: no credentials are configured`,
      );
    }
    if (password === undefined) {
      return refuse(ReasonCode.BadUserNameOrPassword, `user "${username}" sent no password`);
    }
    const stored = passwords?.get(username);
    if (stored) {
      return await verifyPassword(password, stored)
        ? { ok: true, username }
        : refuse(ReasonCode.BadUserNameOrPassword, `wrong password for user "${username}"`);
    }
    const accessKey = accessKeyOfUsername(username);
    const secretKey = accessKeys?.get(accessKey);
    if (secretKey !== undefined) {
      return verifySignature(clientId, password, secretKey)
        ? { ok: true, username: accessKey }
        : refuse(ReasonCode.BadUserNameOrPassword, `wrong signature for access key "${accessKey}"`);
    }
    if (decoy) await verifyPassword(password, decoy);
    return refuse(ReasonCode.BadUserNameOrPassword, `unknown user "${username}"`);
  }

  return {
    async authenticate(credentials) {
      await throttle.waitTurn(credentials.remoteAddress);
      const result = await decide(credentials);
      if (result.ok) {
        counters.successes += 1;
        throttle.recordSuccess(credentials.remoteAddress);
      } else {
        counters.failures += 1;
        throttle.recordFailure(credentials.remoteAddress);
      }
      return result;
    },
    async reload() {
      sources = await loadSources(options);
    },
    stats: () => ({ ...counters }),
  };
}
