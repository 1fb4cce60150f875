/**
 * The operations HTTP endpoint: `/metrics` (Prometheus text format), `/healthz` (liveness) and `/readyz`
 * (readiness: the store is open and the listeners are up), plus the routes of an app on the same port (the
 * admin API and dashboard). It binds loopback by default; with a bearer token (`http.auth_token_file`)
 * every request must carry it. Answers never carry file paths or error messages: those go to the log.
 */
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

/** Who may ask, and where failures go. */
export interface HttpAccess {
  /** Whether the request may be answered (e.g. it carries the bearer token); absent = everyone. */
  authorized?: (request: Request) => boolean;
  /** Told about a handler failure, whose detail the response does not carry. */
  onError?: (error: unknown) => void;
}

const TEXT = "text/plain; charset=utf-8";

/** The request handler on its own, so tests can call it without a socket. */
export function healthHandler(
  sources: HealthSources,
  access: HttpAccess = {},
): (request: Request) => Response {
  return (request) => {
    if (access.authorized && !access.authorized(request)) {
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

/**
 * More routes on the same endpoint (the admin API and dashboard), with their own authentication: a
 * response, or undefined to leave the request to the health handler. `remote` is the caller's address.
 */
export type HttpApp = (request: Request, remote: string) => Promise<Response> | undefined;

/**
 * The whole endpoint's handler: `app` first (when given), then {@link healthHandler}. main.ts serves it
 * with the transport's `serveHttp`, on an accept loop of our own.
 */
export function httpHandler(
  sources: HealthSources,
  app?: HttpApp,
  access: HttpAccess = {},
): (request: Request, remote: string) => Promise<Response> | Response {
  const health = healthHandler(sources, access);
  if (app === undefined) return health;
  return async (request, remote) => {
    try {
      return await (app(request, remote) ?? health(request));
    } catch (error) {
      // the message may name files; it goes to the log (onError), the caller learns only that it failed
      access.onError?.(error);
      return new Response("internal error\n", { status: 500, headers: { "content-type": TEXT } });
    }
  };
}
