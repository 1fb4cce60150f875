/**
 * The little of HTTP/1.1 the listeners need: read one request head from a byte stream (bounded in size;
 * the caller bounds it in time) and write a response. Used by the WebSocket upgrade and the operations
 * endpoint, which run on our own accept loops so that every socket is counted and timed from its accept.
 */
import type { ByteStream } from "./mod.ts";

/** A parsed request line and headers (names in lower case; repeated headers joined with ", "). */
export interface RequestHead {
  method: string;
  /** The request target as sent, e.g. `/mqtt?x=1`. */
  target: string;
  version: string;
  headers: Map<string, string>;
}

/** What reading a request head came to. */
export type HeadResult =
  | { kind: "head"; head: RequestHead; /** Bytes that came after the head. */ rest: Uint8Array }
  /** Over `limit` bytes without the blank line that ends a head: answer 431. */
  | { kind: "too_large" }
  /** Not HTTP/1.x, or a malformed line: answer 400. */
  | { kind: "malformed" }
  /** The peer closed before a whole head arrived. */
  | { kind: "ended" };

const CRLFCRLF = [13, 10, 13, 10];

/** Reads until the blank line that ends a request head, at most `limit` bytes. */
export async function readRequestHead(stream: ByteStream, limit: number): Promise<HeadResult> {
  let buffer = new Uint8Array(1024);
  let length = 0;
  for (;;) {
    if (length === buffer.length) {
      if (buffer.length >= limit) return { kind: "too_large" };
      const larger = new Uint8Array(Math.min(limit, buffer.length * 4));
      larger.set(buffer);
      buffer = larger;
    }
    const n = await stream.read(buffer.subarray(length));
    if (n === null) return { kind: "ended" };
    const searchFrom = Math.max(0, length - 3);
    length += n;
    const end = indexOf(buffer, CRLFCRLF, searchFrom, length);
    if (end >= 0) {
      const head = parseHead(new TextDecoder().decode(buffer.subarray(0, end)));
      if (!head) return { kind: "malformed" };
      return { kind: "head", head, rest: buffer.slice(end + 4, length) };
    }
  }
}

function indexOf(buffer: Uint8Array, pattern: number[], from: number, to: number): number {
  outer: for (let i = from; i + pattern.length <= to; i++) {
    for (let j = 0; j < pattern.length; j++) if (buffer[i + j] !== pattern[j]) continue outer;
    return i;
  }
  return -1;
}

function parseHead(text: string): RequestHead | undefined {
  const [requestLine, ...lines] = text.split("\r\n");
  const parts = requestLine.split(" ");
  if (parts.length !== 3 || !parts[2].startsWith("HTTP/1.")) return undefined;
  const headers = new Map<string, string>();
  for (const line of lines) {
    const colon = line.indexOf(":");
    if (colon <= 0) return undefined;
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    const previous = headers.get(name);
    headers.set(name, previous === undefined ? value : `${previous}, ${value}`);
  }
  return { method: parts[0], target: parts[1], version: parts[2], headers };
}

const REASONS: Record<number, string> = {
  101: "Switching Protocols",
  200: "OK",
  400: "Bad Request",
  404: "Not Found",
  405: "Method Not Allowed",
  411: "Length Required",
  413: "Content Too Large",
  426: "Upgrade Required",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  503: "Service Unavailable",
};

/** The bytes of a response: status line, headers, and (unless a 101) a body with its length. */
export function responseBytes(status: number, headers: [string, string][], body?: Uint8Array): Uint8Array {
  const lines = [`HTTP/1.1 ${status} ${REASONS[status] ?? "Unknown"}`];
  for (const [name, value] of headers) lines.push(`${name}: ${value}`);
  if (status !== 101) lines.push(`content-length: ${body?.byteLength ?? 0}`, "connection: close");
  const head = new TextEncoder().encode(lines.join("\r\n") + "\r\n\r\n");
  if (!body?.byteLength) return head;
  const bytes = new Uint8Array(head.byteLength + body.byteLength);
  bytes.set(head);
  bytes.set(body, head.byteLength);
  return bytes;
}

/** A short plain-text response. */
export function textResponse(status: number, text: string, headers: [string, string][] = []): Uint8Array {
  return responseBytes(
    status,
    [["content-type", "text/plain; charset=utf-8"], ...headers],
    new TextEncoder().encode(text),
  );
}

/** Writes all of `bytes`. */
export async function writeAll(stream: ByteStream, bytes: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < bytes.byteLength) {
    offset += await stream.write(offset === 0 ? bytes : bytes.subarray(offset));
  }
}
