/**
 * The operator's side of the broker: the admin HTTP API (/api/v1, OpenAPI at /api/v1/openapi.json) and
 * the web dashboard (/dashboard/), both on the HTTP endpoint and both off unless `admin.enabled`.
 *
 * @module
 */
import type { Config } from "../config/mod.ts";
import type { HttpApp, Logger } from "../observe/mod.ts";
import { adminApi, maxBodyBytes } from "./api.ts";
import { AdminAuth } from "./auth.ts";
import { serveDashboard } from "./dashboard/serve.ts";
import type { AdminBrokerView } from "./view.ts";

export { type BrokerViewSources, createBrokerView } from "./broker_view.ts";
export { buildOpenApi } from "./openapi.ts";
export type { AdminBrokerView } from "./view.ts";

/** The admin routes for the HTTP endpoint, and the reload of their credential files. */
export interface AdminApp {
  handle: HttpApp;
  /** Rereads http.auth_token_file and admin.password_file. */
  reload(): Promise<void>;
}

/** Builds the admin API and dashboard; rejects when their credential files are missing or malformed. */
export async function createAdminApp(
  config: Config,
  view: AdminBrokerView,
  logger: Logger,
): Promise<AdminApp> {
  const auth = await AdminAuth.create({
    tokenFile: config.http.authTokenFile,
    passwordFile: config.admin.passwordFile,
    viewers: (config.admin.viewers ?? "").split(",").map((user) => user.trim()).filter((user) => user !== ""),
    sessionTtlMs: config.admin.sessionTtlSeconds * 1000,
  });
  const api = adminApi({ view, auth, logger, maxBodyBytes: maxBodyBytes(config.mqtt.maxPacketSize) });
  return {
    handle(request, remote) {
      const path = new URL(request.url).pathname;
      if (path.startsWith("/api/")) return api(request, remote);
      const page = serveDashboard(request, path);
      return page === undefined ? undefined : Promise.resolve(page);
    },
    reload: () => auth.reload(),
  };
}
