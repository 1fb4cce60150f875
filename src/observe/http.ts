/**
 * The operations HTTP endpoint: `/metrics` (Prometheus text format), `/healthz` (liveness) and `/readyz`
 * (readiness: the store is open and the listeners are up). It binds loopback by default; with a bearer
 * token (`http.auth_token_file`) every request must carry `Authorization: Bearer <token>`, compared in
 * constant time. Answers never carry file paths or error messages: those go to the log.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { PROMETHEUS_CONTENT_TYPE } from "./metrics.ts";

/** What the endpoint asks the broker on each request. */
export interface HealthSources {
  /** The Prometheus exposition. */
  metrics(): string;
  /** False once the process should be restarted. */
  live(): boolean;
  /** Whether the broker can take clients now; `detail` says why not (shown to callers: no paths). */
  ready(): { ok: boolean; detail: string };
}

/** Who may ask: the current bearer token (reread on reload), or undefined for no authentication. */
export interface HttpAccess {
  bearerToken?: () => string | undefined;
  /** Told about a handler failure, whose detail the response does not carry. */
  onError?: (error: unknown) => void;
}

/** A running HTTP endpoint. */
export interface HttpEndpoint {
  readonly hostname: string;
  /** The bound port (useful when 0 was asked for). */
  readonly port: number;
  close(): Promise<void>;
}

const TEXT = "text/plain; charset=utf-8";

function digest(text: string): Uint8Array {
  return createHash("sha256").update(text).digest();
}

/** Whether the request carries the token; hashing first makes the comparison independent of its length. */
function hasToken(request: Request, token: string): boolean {
  const header = request.headers.get("authorization") ?? "";
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return match !== null && timingSafeEqual(digest(match[1]), digest(token));
}

/** The request handler on its own, so tests can call it without a socket. */
export function healthHandler(
  sources: HealthSources,
  access: HttpAccess = {},
): (request: Request) => Response {
  return (request) => {
    const token = access.bearerToken?.();
    if (token !== undefined && !hasToken(request, token)) {
      return new Response("unauthorized\n", {
        status: 401,
        headers: { "content-type": TEXT, "www-authenticate": 'Bearer realm="mqtt-proxy"' },
      });
    }
    if (request.method !== "GET" && request.method !== "HEAD") {
      return new Response("method not allowed\n", {
        status: 405,
        headers: { "content-type": TEXT, allow: "GET, HEAD" },
      });
    }
    const path = new URL(request.url).pathname;
    try {
      switch (path) {
        case "/metrics":
          return new Response(sources.metrics(), { headers: { "content-type": PROMETHEUS_CONTENT_TYPE } });
        case "/healthz":
          return sources.live()
            ? new Response("ok\n", { headers: { "content-type": TEXT } })
            : new Response("not alive\n", { status: 503, headers: { "content-type": TEXT } });
        case "/readyz": {
          const { ok, detail } = sources.ready();
          return new Response(`${ok ? "ready" : "not ready"}: ${detail}\n`, {
            status: ok ? 200 : 503,
            headers: { "content-type": TEXT },
          });
        }
        default:
          return new Response("not found\n", { status: 404, headers: { "content-type": TEXT } });
      }
    } catch (error) {
      // the message may name files; it goes to the log (onError), the caller learns only that it failed
      access.onError?.(error);
      return new Response("internal error\n", { status: 500, headers: { "content-type": TEXT } });
    }
  };
}

/** Serves {@link healthHandler} on `hostname:port` with `Deno.serve`. */
export function startHttpServer(
  options: { hostname: string; port: number },
  sources: HealthSources,
  onError: (error: unknown) => void = () => {},
  access: HttpAccess = {},
): HttpEndpoint {
  const handler = healthHandler(sources, { onError, ...access });
  const server = Deno.serve({
    hostname: options.hostname,
    port: options.port,
    onListen() {},
    onError(error) {
      onError(error);
      return new Response("internal error\n", { status: 500, headers: { "content-type": TEXT } });
    },
  }, handler);
  let closing: Promise<void> | undefined;
  return {
    hostname: server.addr.hostname,
    port: server.addr.port,
    close: () => closing ??= server.shutdown(),
  };
}
