/**
 * Password files in the format of Mosquitto 2's `mosquitto_passwd`: one `username:hash` per line,
 * `#` comments and blank lines ignored, where
 *
 * ```
 * hash = "$7$" iterations "$" base64(salt) "$" base64(PBKDF2-HMAC-SHA512(password, salt, iterations, 64 bytes))
 * ```
 *
 * Files written by `mosquitto_passwd` (101 iterations) verify here and files written here verify in
 * Mosquitto, because both read the iteration count from the line. New hashes use
 * {@link DEFAULT_PBKDF2_ITERATIONS}: one verification measured 5 ms on an idle AMD EPYC core under
 * Deno 2.9 (1.3 µs per iteration; 6-7 ms while the machine's two cores were busy). That makes a stolen
 * file ~40x costlier to crack than Mosquitto's 101 iterations while a reconnect storm of a few hundred
 * clients is still absorbed in about a second; the per-address failure delay covers online guessing. The
 * derivation runs on Deno's worker pool (async `pbkdf2`), so it never blocks the event loop.
 */
import { Buffer } from "node:buffer";
import { pbkdf2, randomBytes, timingSafeEqual } from "node:crypto";
import { AuthFileError, meaningfulLines } from "./auth_file.ts";

/** Iterations for newly written hashes; see the module comment for how it was chosen. */
export const DEFAULT_PBKDF2_ITERATIONS = 4_000;

const SCHEME_PREFIX = "$7$";
const SALT_BYTES = 12; // Mosquitto's salt length
const HASH_BYTES = 64; // a full SHA-512 block, as Mosquitto stores
const MAX_ITERATIONS = 10_000_000; // a typo such as 50000000 would otherwise stall every login
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

/** A decoded `$7$` hash. */
export interface PasswordHash {
  iterations: number;
  salt: Uint8Array;
  hash: Uint8Array;
}

/** The users of a password file, by username. */
export type PasswordTable = ReadonlyMap<string, PasswordHash>;

function derive(
  password: Uint8Array,
  salt: Uint8Array,
  iterations: number,
  length: number,
): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    pbkdf2(
      password,
      salt,
      iterations,
      length,
      "sha512",
      (error, key) => error ? reject(error) : resolve(key),
    );
  });
}

function toBytes(password: string | Uint8Array): Uint8Array {
  return typeof password === "string" ? new TextEncoder().encode(password) : password;
}

/** Hashes a password with a fresh random salt into the `$7$...` text stored after `username:`. */
export async function hashPassword(
  password: string | Uint8Array,
  iterations: number = DEFAULT_PBKDF2_ITERATIONS,
): Promise<string> {
  const salt = randomBytes(SALT_BYTES);
  const hash = await derive(toBytes(password), salt, iterations, HASH_BYTES);
  return `${SCHEME_PREFIX}${iterations}$${salt.toString("base64")}$${Buffer.from(hash).toString("base64")}`;
}

/** Checks a password against a decoded hash; the comparison takes the same time wherever bytes differ. */
export async function verifyPassword(password: string | Uint8Array, stored: PasswordHash): Promise<boolean> {
  const candidate = await derive(toBytes(password), stored.salt, stored.iterations, stored.hash.length);
  return timingSafeEqual(candidate, stored.hash);
}

/** Decodes `$7$<iterations>$<salt>$<hash>`, or explains what is wrong with it. */
export function decodePasswordHash(encoded: string): PasswordHash | string {
  if (!encoded.startsWith(SCHEME_PREFIX)) {
    return `unsupported hash scheme (expected "${SCHEME_PREFIX}", the PBKDF2-SHA512 format of mosquitto_passwd 2)`;
  }
  const [iterationsText, saltText, hashText, ...rest] = encoded.slice(SCHEME_PREFIX.length).split("$");
  if (hashText === undefined || rest.length > 0) return "expected $7$<iterations>$<salt>$<hash>";
  const iterations = Number(iterationsText);
  if (!/^[0-9]+$/.test(iterationsText) || iterations < 1 || iterations > MAX_ITERATIONS) {
    return `iteration count must be an integer from 1 to ${MAX_ITERATIONS}`;
  }
  if (!BASE64.test(saltText) || !BASE64.test(hashText)) return "salt and hash must be base64";
  const hash = Buffer.from(hashText, "base64");
  if (hash.length !== HASH_BYTES) return `hash must decode to ${HASH_BYTES} bytes`;
  return { iterations, salt: Buffer.from(saltText, "base64"), hash };
}

/** Returns why a username cannot be stored in a password file, or undefined when it can. */
export function invalidUsernameReason(username: string): string | undefined {
  if (username === "") return "username must not be empty";
  if (username.includes(":")) return "username must not contain ':'";
  if (/[\r\n]/.test(username)) return "username must not contain a line break";
  if (username.trim() !== username) return "username must not start or end with white space";
  if (username.startsWith("#")) return "username must not start with '#' (it would read as a comment)";
  return undefined;
}

/**
 * Parses a password file. `source` names the file in errors; any malformed line or repeated user
 * rejects the whole file with an {@link AuthFileError} at that line.
 */
export function parsePasswordFile(text: string, source: string): PasswordTable {
  const table = new Map<string, PasswordHash>();
  for (const { lineNumber, content } of meaningfulLines(text)) {
    const separator = content.indexOf(":");
    if (separator <= 0) throw new AuthFileError(source, lineNumber, "expected username:hash");
    const username = content.slice(0, separator);
    if (table.has(username)) throw new AuthFileError(source, lineNumber, `user "${username}" appears twice`);
    const decoded = decodePasswordHash(content.slice(separator + 1));
    if (typeof decoded === "string") throw new AuthFileError(source, lineNumber, decoded);
    table.set(username, decoded);
  }
  return table;
}

/** Index of the line that defines `username`, or -1. Assumes the text parsed. */
function lineIndexOfUser(lines: string[], username: string): number {
  return lines.findIndex((line) => {
    const content = line.trim();
    return !content.startsWith("#") && content.slice(0, content.indexOf(":")) === username;
  });
}

/** Options for {@link addOrUpdateUser}. */
export interface PasswordEditOptions {
  /** Names the file in errors. */
  source?: string;
  iterations?: number;
}

/**
 * Returns the file text with `username`'s password set: the user's line is replaced in place, or a
 * line is appended; comments and other users are kept as they were. Rejects a malformed file rather
 * than writing one the broker could not load.
 */
export async function addOrUpdateUser(
  fileText: string,
  username: string,
  password: string | Uint8Array,
  options: PasswordEditOptions = {},
): Promise<string> {
  const source = options.source ?? "password file";
  const invalid = invalidUsernameReason(username);
  if (invalid) throw new AuthFileError(source, undefined, invalid);
  if (toBytes(password).length === 0) {
    throw new AuthFileError(source, undefined, "password must not be empty");
  }
  parsePasswordFile(fileText, source);
  const line = `${username}:${await hashPassword(password, options.iterations)}`;
  const lines = fileText === "" ? [] : fileText.replace(/\n$/, "").split("\n");
  const index = lineIndexOfUser(lines, username);
  if (index >= 0) lines[index] = line;
  else lines.push(line);
  return lines.join("\n") + "\n";
}

/** Returns the file text without `username`'s line; throws when the user is not in the file. */
export function removeUser(fileText: string, username: string, source = "password file"): string {
  parsePasswordFile(fileText, source);
  const lines = fileText.replace(/\n$/, "").split("\n");
  const index = lineIndexOfUser(lines, username);
  if (index < 0) throw new AuthFileError(source, undefined, `user "${username}" not found`);
  lines.splice(index, 1);
  return lines.length === 0 ? "" : lines.join("\n") + "\n";
}
