/**
 * Access-key / secret-key logins as used by apache/rocketmq-mqtt and Alibaba Cloud MQTT
 * (the Paho demo's `ConnectionOptionWrapper`):
 *
 * ```
 * password = Base64(HMAC-SHA1(key = secretKey, data = clientId))      (UTF-8 throughout)
 * username = <accessKey>                                               (apache/rocketmq-mqtt)
 *          | "Signature|" <accessKey> "|" <instanceId>                 (Alibaba Cloud)
 * ```
 *
 * The instance id only tells a cloud which tenant to route to; one broker is one instance, so it is
 * accepted as given. The secret keys live in a file of `accessKey = secretKey` lines with `#` comments.
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import { AuthFileError, meaningfulLines } from "./auth_file.ts";

/** Secret keys by access key. */
export type AccessKeyTable = ReadonlyMap<string, string>;

const SIGNATURE_PREFIX = "Signature|";

/** The password a client with this secret key must present for this client id. */
export function signClientId(clientId: string, secretKey: string): string {
  return createHmac("sha1", secretKey).update(clientId).digest("base64");
}

/**
 * The access key a username names: everything between `Signature|` and the next `|` for the
 * Alibaba Cloud form, else the whole username.
 */
export function accessKeyOfUsername(username: string): string {
  if (!username.startsWith(SIGNATURE_PREFIX)) return username;
  const rest = username.slice(SIGNATURE_PREFIX.length);
  const end = rest.indexOf("|");
  return end < 0 ? rest : rest.slice(0, end);
}

/** Whether `password` is the signature of `clientId` under `secretKey`; constant time in the content. */
export function verifySignature(clientId: string, password: Uint8Array, secretKey: string): boolean {
  const expected = new TextEncoder().encode(signClientId(clientId, secretKey));
  // a length mismatch reveals only that the password is not a SHA-1 signature, which is public
  return password.length === expected.length && timingSafeEqual(password, expected);
}

/**
 * Parses an access-key file: `accessKey = secretKey` per line (split at the first `=`, so base64
 * secrets ending in `=` are fine), `#` comments. Malformed lines and repeated keys are rejected with
 * an {@link AuthFileError} at that line.
 */
export function parseAccessKeysFile(text: string, source: string): AccessKeyTable {
  const keys = new Map<string, string>();
  for (const { lineNumber, content } of meaningfulLines(text)) {
    const separator = content.indexOf("=");
    const accessKey = content.slice(0, Math.max(separator, 0)).trim();
    const secretKey = content.slice(separator + 1).trim();
    if (separator < 0 || accessKey === "" || secretKey === "") {
      throw new AuthFileError(source, lineNumber, "expected accessKey = secretKey");
    }
    if (accessKey.includes("|")) {
      throw new AuthFileError(source, lineNumber, "access key must not contain '|'");
    }
    if (keys.has(accessKey)) {
      throw new AuthFileError(source, lineNumber, `access key "${accessKey}" appears twice`);
    }
    keys.set(accessKey, secretKey);
  }
  return keys;
}
