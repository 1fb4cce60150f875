/**
 * The HTTP endpoint's bearer token (`http.auth_token_file`): read from a file, compared in constant time.
 * One small module so that every HTTP path that needs the token (the admin API, and /metrics once it
 * requires one) checks it the same way.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { AuthFileError, meaningfulLines, readAuthFile } from "./auth_file.ts";

/** Shorter tokens are refused: they could be guessed over the network. */
export const MIN_TOKEN_LENGTH = 16;

/** Reads the token: the file's first line that is neither blank nor a `#` comment. */
export async function readBearerTokenFile(path: string): Promise<string> {
  const [first] = meaningfulLines(await readAuthFile(path));
  if (!first) throw new AuthFileError(path, undefined, "no token in the file");
  if (first.content.length < MIN_TOKEN_LENGTH || /\s/.test(first.content)) {
    throw new AuthFileError(
      path,
      first.lineNumber,
      `the token must be at least ${MIN_TOKEN_LENGTH} characters without spaces`,
    );
  }
  return first.content;
}

/** The token of an `Authorization: Bearer <token>` header, if the request has one. */
export function bearerTokenOf(request: Request): string | undefined {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(request.headers.get("authorization") ?? "");
  return match?.[1];
}

/** Whether `presented` is `expected`, in time that does not depend on where they differ. */
export function tokenMatches(presented: string, expected: string): boolean {
  const digest = (text: string) => createHash("sha256").update(text).digest();
  return timingSafeEqual(digest(presented), digest(expected));
}
