/**
 * Serves the web dashboard from the asset module that scripts/build_dashboard.ts generates at build time
 * (so `deno compile` embeds it: no files to install, no CDN, no build step at run time). The page talks
 * to /api/v1 with a bearer token kept in sessionStorage, never in a cookie, so other sites cannot make
 * requests on its behalf.
 */
import { DASHBOARD_ASSETS } from "./assets.generated.ts";

export const DASHBOARD_BASE = "/dashboard/";

/** Scripts only from the broker itself; WebSocket connections to its MQTT listeners for the test client. */
const SECURITY_HEADERS = {
  "content-security-policy":
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
    "connect-src 'self' ws: wss:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
};

/** The dashboard's response for `path`, or undefined when the path is not the dashboard's. */
export function serveDashboard(request: Request, path: string): Response | undefined {
  if (path === "/" || path === "/dashboard") {
    return new Response(null, { status: 302, headers: { location: DASHBOARD_BASE } });
  }
  if (!path.startsWith(DASHBOARD_BASE)) return undefined;
  if (request.method !== "GET" && request.method !== "HEAD") {
    return new Response("method not allowed\n", { status: 405, headers: { allow: "GET, HEAD" } });
  }
  const name = path.slice(DASHBOARD_BASE.length) || "index.html";
  const asset = DASHBOARD_ASSETS[name];
  if (!asset) return new Response("not found\n", { status: 404, headers: { "content-type": "text/plain" } });
  return new Response(request.method === "HEAD" ? null : asset.body, {
    headers: { "content-type": asset.type, "cache-control": "no-cache", ...SECURITY_HEADERS },
  });
}
