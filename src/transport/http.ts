/**
 * A small HTTP/1.1 server for the operations endpoint (`/metrics`, `/healthz`, `/readyz`, the admin API),
 * on our own accept loop instead of `Deno.serve`, whose accept loop stops for good (and rejects unhandled)
 * when the process runs out of descriptors. One request per connection (`connection: close`), at most
 * `maxConnections` open, each with `requestTimeoutMs` to send its request (head, and a body of at most
 * `maxBodyBytes` announced by Content-Length).
 */
import { readRequestHead, responseBytes, textResponse, writeAll } from "./http_head.ts";
import { acceptLoop } from "./tcp.ts";

/** A running HTTP endpoint. */
export interface HttpEndpoint {
  readonly hostname: string;
  /** The bound port (useful when 0 was asked for). */
  readonly port: number;
  close(): Promise<void>;
}

export interface HttpServeOptions {
  hostname: string;
  port: number;
  /** Connections open at once; more are closed at accept. */
  maxConnections?: number;
  /** A connection that has not sent a whole request in this time is closed. */
  requestTimeoutMs?: number;
  /** Largest request body taken (413 beyond). Default 4 MiB. */
  maxBodyBytes?: number;
}

const MAX_HEAD_BYTES = 16 * 1024;

/**
 * Serves `handler` on `hostname:port` (`remote` is the caller's `host:port`); `onError` hears of accept
 * failures and handler errors.
 */
export function serveHttp(
  options: HttpServeOptions,
  handler: (request: Request, remote: string) => Response | Promise<Response>,
  onError: (error: unknown) => void = () => {},
): HttpEndpoint {
  const maxConnections = options.maxConnections ?? 32;
  const requestTimeoutMs = options.requestTimeoutMs ?? 10_000;
  const maxBodyBytes = options.maxBodyBytes ?? 4 << 20;
  const listener = Deno.listen({ hostname: options.hostname, port: options.port, transport: "tcp" });
  const address = listener.addr as Deno.NetAddr;
  const open = new Set<Deno.Conn>();
  const tasks = new Set<Promise<void>>();
  let closed = false;

  const serveOne = async (conn: Deno.Conn) => {
    const timer = setTimeout(() => close(conn), requestTimeoutMs);
    try {
      const result = await readRequestHead(conn, MAX_HEAD_BYTES);
      if (result.kind === "ended") return;
      let response: Uint8Array;
      if (result.kind === "too_large") response = textResponse(431, "request head too large\n");
      else if (result.kind === "malformed") response = textResponse(400, "malformed request\n");
      else {
        const { method, target, headers } = result.head;
        const body = await readBody(conn, headers, result.rest, maxBodyBytes);
        clearTimeout(timer);
        if (typeof body === "number") {
          response = textResponse(body, body === 413 ? "body too large\n" : "bad body\n");
        } else {
          const host = headers.get("host") ?? `${address.hostname}:${address.port}`;
          const request = new Request(new URL(target, `http://${host}`), {
            method,
            headers: [...headers],
            body: body.byteLength > 0 && method !== "GET" && method !== "HEAD" ? body : undefined,
          });
          const remote = conn.remoteAddr as Deno.NetAddr;
          response = await toBytes(
            await handler(request, `${remote.hostname}:${remote.port}`),
            method === "HEAD",
          );
        }
      }
      await writeAll(conn, response);
      await conn.closeWrite();
    } catch (error) {
      if (!(error instanceof Deno.errors.BadResource || error instanceof Deno.errors.ConnectionReset)) {
        onError(error);
      }
    } finally {
      clearTimeout(timer);
      close(conn);
    }
  };

  const close = (conn: Deno.Conn) => {
    if (!open.delete(conn)) return;
    try {
      conn.close();
    } catch { /* already closed */ }
  };

  const done = acceptLoop(listener, () => closed, (conn) => {
    if (open.size >= maxConnections) {
      conn.close();
      return;
    }
    open.add(conn);
    const task = serveOne(conn).finally(() => tasks.delete(task));
    tasks.add(task);
  }, onError);

  let closing: Promise<void> | undefined;
  return {
    hostname: address.hostname,
    port: address.port,
    close: () =>
      closing ??= (async () => {
        closed = true;
        listener.close();
        await done;
        for (const conn of [...open]) close(conn);
        await Promise.all(tasks);
      })(),
  };
}

/**
 * The request body announced by Content-Length (what came with the head, then the rest), or the status to
 * answer: 413 over `max`, 400 for a bad length or a body cut short, 411 for a chunked one.
 */
async function readBody(
  conn: Deno.Conn,
  headers: Map<string, string>,
  rest: Uint8Array,
  max: number,
): Promise<Uint8Array<ArrayBuffer> | number> {
  if (headers.has("transfer-encoding")) return 411;
  const announced = headers.get("content-length");
  if (announced === undefined) return new Uint8Array(0);
  const length = Number(announced);
  if (!Number.isSafeInteger(length) || length < 0) return 400;
  if (length > max) return 413;
  const body = new Uint8Array(length);
  let filled = Math.min(rest.byteLength, length);
  body.set(rest.subarray(0, filled));
  while (filled < length) {
    const n = await conn.read(body.subarray(filled));
    if (n === null) return 400;
    filled += n;
  }
  return body;
}

async function toBytes(response: Response, headOnly: boolean): Promise<Uint8Array> {
  const body = new Uint8Array(await response.arrayBuffer());
  const headers: [string, string][] = [...response.headers];
  if (!headOnly) return responseBytes(response.status, headers, body);
  // A HEAD response tells the length of the body it leaves out.
  const bytes = responseBytes(response.status, headers, body);
  return bytes.subarray(0, bytes.byteLength - body.byteLength);
}
