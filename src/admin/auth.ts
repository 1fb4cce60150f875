/**
 * Who may use the admin API: the operator's bearer token (`http.auth_token_file`, role admin), or a user
 * of `admin.password_file` who logged in at /api/v1/login and holds a session token (role admin, or
 * viewer when listed in `admin.viewers`). Session tokens live in memory only: a restart logs everyone out.
 */
import { randomBytes } from "node:crypto";
import {
  bearerTokenOf,
  DEFAULT_FAILURE_DELAY,
  hashPassword,
  LoginThrottle,
  parsePasswordFile,
  type PasswordTable,
  readBearerTokenFile,
  tokenMatches,
  verifyPassword,
} from "../auth/mod.ts";
import { readAuthFile } from "../auth/auth_file.ts";
import type { Role } from "./schemas.ts";

/** An authenticated caller, as the audit log names it. */
export interface Caller {
  /** "token" for the bearer token, "user:<name>" for a logged-in user. */
  name: string;
  role: Role;
}

export interface AdminAuthOptions {
  tokenFile?: string;
  passwordFile?: string;
  /** Users of the password file who may only read. */
  viewers: string[];
  sessionTtlMs: number;
  now?: () => number;
}

/** Logins held at most; the oldest is dropped first. */
const MAX_SESSIONS = 1000;

interface LoginSession {
  user: string;
  role: Role;
  expiresAt: number;
}

/** The admin API's authentication; {@link reload} rereads both files (SIGHUP). */
export class AdminAuth {
  #token: string | undefined;
  #users: PasswordTable = new Map();
  readonly #sessions = new Map<string, LoginSession>();
  readonly #throttle = new LoginThrottle(DEFAULT_FAILURE_DELAY);
  readonly #now: () => number;
  /** Verified against when the user is unknown, so that the answer takes as long as for a known one. */
  #decoy: PasswordTable | undefined;

  private constructor(private readonly options: AdminAuthOptions) {
    this.#now = options.now ?? Date.now;
  }

  static async create(options: AdminAuthOptions): Promise<AdminAuth> {
    if (options.tokenFile === undefined && options.passwordFile === undefined) {
      throw new Error("admin.enabled needs http.auth_token_file or admin.password_file");
    }
    const auth = new AdminAuth(options);
    await auth.reload();
    return auth;
  }

  /** Rereads the token and password files; on error the old ones stay and the error is thrown. */
  async reload(): Promise<void> {
    const token = this.options.tokenFile === undefined
      ? undefined
      : await readBearerTokenFile(this.options.tokenFile);
    const users = this.options.passwordFile === undefined
      ? new Map()
      : parsePasswordFile(await readAuthFile(this.options.passwordFile), this.options.passwordFile);
    this.#token = token;
    this.#users = users;
    // Logins of users who were removed, or whose role changed, end now.
    for (const [id, session] of this.#sessions) {
      if (!users.has(session.user) || this.#roleOf(session.user) !== session.role) this.#sessions.delete(id);
    }
  }

  /** The caller of a request, or undefined when its bearer token is missing, wrong or expired. */
  authenticate(request: Request): Caller | undefined {
    const presented = bearerTokenOf(request);
    if (presented === undefined) return undefined;
    if (this.#token !== undefined && tokenMatches(presented, this.#token)) {
      return { name: "token", role: "admin" };
    }
    const session = this.#sessions.get(presented);
    if (!session) return undefined;
    if (session.expiresAt <= this.#now()) {
      this.#sessions.delete(presented);
      return undefined;
    }
    return { name: `user:${session.user}`, role: session.role };
  }

  /** Checks a user's password (slowed down per address after failures) and opens a session. */
  async login(
    username: string,
    password: string,
    address: string,
  ): Promise<{ token: string; expiresAt: number; role: Role } | undefined> {
    await this.#throttle.waitTurn(address);
    const stored = this.#users.get(username);
    const hash = stored ?? (await this.#decoyHash());
    const ok = await verifyPassword(password, hash) && stored !== undefined;
    if (!ok) {
      this.#throttle.recordFailure(address);
      return undefined;
    }
    this.#throttle.recordSuccess(address);
    const token = randomBytes(32).toString("base64url");
    const session = {
      user: username,
      role: this.#roleOf(username),
      expiresAt: this.#now() + this.options.sessionTtlMs,
    };
    this.#sessions.set(token, session);
    if (this.#sessions.size > MAX_SESSIONS) this.#sessions.delete(this.#sessions.keys().next().value!);
    return { token, expiresAt: session.expiresAt, role: session.role };
  }

  /** Ends the session of the request's token (the static token cannot be logged out). */
  logout(request: Request): void {
    const presented = bearerTokenOf(request);
    if (presented !== undefined) this.#sessions.delete(presented);
  }

  #roleOf(user: string): Role {
    return this.options.viewers.includes(user) ? "viewer" : "admin";
  }

  async #decoyHash() {
    this.#decoy ??= parsePasswordFile(`decoy:${await hashPassword(randomBytes(16))}\n`, "decoy");
    return this.#decoy.get("decoy")!;
  }
}
