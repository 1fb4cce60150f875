/**
 * A real broker in this process with the admin API on: HTTP on 127.0.0.1, an ephemeral port, a bearer
 * token file and an admin password file made per test, and every log line kept (the audit events).
 */
import { type RunningBroker, startBroker } from "../../main.ts";
import { hashPassword } from "../../src/auth/mod.ts";
import { parseConfig } from "../../src/config/mod.ts";
import { createLogger } from "../../src/observe/mod.ts";

export const TOKEN = "test-token-0123456789abcdef";

export interface AdminBroker {
  running: RunningBroker;
  /** The MQTT port of the first listener. */
  port: number;
  /** http://127.0.0.1:<port> */
  base: string;
  /** Log lines, parsed. */
  logs: Record<string, unknown>[];
  /** fetch with the bearer token (unless `token` is given as null). */
  api(path: string, init?: RequestInit & { token?: string | null }): Promise<Response>;
}

/** Users of the admin password file: alice is an admin, victor a viewer. */
export const USERS = { alice: "alice-password", victor: "victor-password" };

export async function withAdminBroker(
  properties: string,
  fn: (broker: AdminBroker) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "mqtt-proxy-admin-" });
  await Deno.writeTextFile(`${dir}/token`, `# the operator's token\n${TOKEN}\n`);
  const lines = await Promise.all(
    Object.entries(USERS).map(async ([user, password]) => `${user}:${await hashPassword(password, 10)}`),
  );
  await Deno.writeTextFile(`${dir}/admins`, lines.join("\n") + "\n");
  const text = [
    "listener.default.host = 127.0.0.1",
    "listener.default.port = 0",
    "storage.type = memory",
    "sys.interval_seconds = 0",
    "http.enabled = true",
    "http.host = 127.0.0.1",
    "http.port = 0",
    `http.auth_token_file = ${dir}/token`,
    "admin.enabled = true",
    `admin.password_file = ${dir}/admins`,
    "admin.viewers = victor",
    properties,
  ].join("\n");
  const logs: Record<string, unknown>[] = [];
  const logger = createLogger({ level: "info", write: (line) => logs.push(JSON.parse(line)) });
  const running = await startBroker(parseConfig(text, "admin-test.properties"), logger);
  const base = `http://127.0.0.1:${running.http!.port}`;
  try {
    await fn({
      running,
      port: running.listeners[0].port,
      base,
      logs,
      api(path, init = {}) {
        const { token = TOKEN, ...rest } = init;
        const headers = new Headers(rest.headers);
        if (token !== null) headers.set("authorization", `Bearer ${token}`);
        if (rest.body !== undefined && !headers.has("content-type")) {
          headers.set("content-type", "application/json");
        }
        return fetch(`${base}${path}`, { ...rest, headers });
      },
    });
  } finally {
    await running.stop();
    await Deno.remove(dir, { recursive: true });
  }
  const crashes = logs.filter((line) =>
    ["connection.crashed", "connection.failed", "admin.failed"].includes(String(line.event))
  );
  if (crashes.length > 0) throw new Error(`broker logged failures:\n${JSON.stringify(crashes, null, 1)}`);
}

/** The JSON body and status of a response. */
// deno-lint-ignore no-explicit-any -- tests read many shapes; the assertions are the type check
export async function body(response: Response): Promise<{ status: number; type: string | null; json: any }> {
  const text = await response.text();
  return {
    status: response.status,
    type: response.headers.get("content-type"),
    json: text ? JSON.parse(text) : null,
  };
}
