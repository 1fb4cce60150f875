/**
 * The admin API's request handler: JSON over HTTP under /api/v1. Every route but login and the OpenAPI
 * document needs a bearer token; every write needs the admin role and is written to the log as an
 * `admin.audit` event naming the caller; bad input gets an RFC 9457 problem naming the field. No request
 * can take the broker down: whatever a handler throws becomes a problem response.
 */
import type { z } from "zod";
import type { Logger } from "../observe/mod.ts";
import type { AdminAuth, Caller } from "./auth.ts";
import { buildOpenApi } from "./openapi.ts";
import {
  API_BASE,
  LOGIN_PATH,
  LOGOUT_PATH,
  matchPath,
  type Route,
  type RouteInput,
  routes,
  WHOAMI_PATH,
} from "./routes.ts";
import { LoginRequest } from "./schemas.ts";
import { type AdminBrokerView, AdminRefusal } from "./view.ts";

export const OPENAPI_PATH = `${API_BASE}/openapi.json`;

/** Largest request body read: a publish of the largest MQTT packet, base64-encoded, fits. */
export function maxBodyBytes(maxPacketSize: number): number {
  return Math.ceil(maxPacketSize / 3) * 4 + 64 * 1024;
}

interface FieldError {
  field: string;
  message: string;
}

const PROBLEM_TYPES: Record<number, string> = {
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  409: "Conflict",
  413: "Content Too Large",
  415: "Unsupported Media Type",
  422: "Unprocessable Content",
  500: "Internal Server Error",
  503: "Service Unavailable",
};

/** An RFC 9457 problem response. */
export function problem(
  status: number,
  detail: string,
  errors?: FieldError[],
  headers: HeadersInit = {},
): Response {
  const body = {
    type: "about:blank",
    title: PROBLEM_TYPES[status] ?? "Error",
    status,
    detail,
    ...(errors && errors.length > 0 ? { errors } : {}),
  };
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/problem+json", "cache-control": "no-store", ...headers },
  });
}

function json(data: unknown, status = 200): Response {
  if (data === undefined) {
    return new Response(null, { status: 204, headers: { "cache-control": "no-store" } });
  }
  return new Response(JSON.stringify(data), {
    status,
    headers: { "content-type": "application/json", "cache-control": "no-store" },
  });
}

/** Turns zod issues into field errors, `where` being "query", "path" or "body". */
function fieldErrors(where: string, error: z.ZodError): FieldError[] {
  return error.issues.map((issue) => {
    let path = issue.path.map(String);
    // An unknown key is reported on the object; name the key itself.
    if (issue.code === "unrecognized_keys") path = [...path, ...issue.keys];
    return { field: [where, ...path].join("."), message: issue.message };
  });
}

class BadRequest extends Error {
  constructor(readonly response: Response) {
    super("bad request");
  }
}

function parse(where: string, schema: z.ZodType | undefined, value: unknown): unknown {
  if (!schema) return value;
  const result = schema.safeParse(value);
  if (!result.success) {
    throw new BadRequest(problem(400, `invalid ${where}`, fieldErrors(where, result.error)));
  }
  return result.data;
}

async function readJson(request: Request, limit: number): Promise<unknown> {
  const type = request.headers.get("content-type") ?? "";
  const text = await readText(request, limit);
  if (text === "") return {};
  if (!/^application\/(.+\+)?json\b/i.test(type)) {
    throw new BadRequest(problem(415, "send the body as application/json"));
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new BadRequest(
      problem(400, `body is not JSON: ${error instanceof Error ? error.message : error}`, [{
        field: "body",
        message: "not JSON",
      }]),
    );
  }
}

/** Reads at most `limit` bytes; a longer body is refused without being buffered whole. */
async function readText(request: Request, limit: number): Promise<string> {
  if (!request.body) return "";
  const declared = Number(request.headers.get("content-length") ?? "0");
  if (declared > limit) throw new BadRequest(problem(413, `body over ${limit} bytes`));
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of request.body) {
    size += chunk.byteLength;
    if (size > limit) throw new BadRequest(problem(413, `body over ${limit} bytes`));
    chunks.push(chunk);
  }
  const bytes = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return new TextDecoder().decode(bytes);
}

export interface AdminApiOptions {
  view: AdminBrokerView;
  auth: AdminAuth;
  logger: Logger;
  maxBodyBytes: number;
}

/**
 * The handler for everything under /api/v1: returns undefined for other paths. `remote` is the caller's
 * address, for the audit log and the login slowdown.
 */
export function adminApi(options: AdminApiOptions): (request: Request, remote: string) => Promise<Response> {
  const { view, auth, logger } = options;
  let openApi: string | undefined;

  const audit = (
    caller: string,
    request: Request,
    route: string,
    target: string,
    status: number,
    remote: string,
  ) => logger.info("admin.audit", { caller, method: request.method, route, target, status, remote });

  const login = async (request: Request, remote: string): Promise<Response> => {
    const body = parse("body", LoginRequest, await readJson(request, 4096)) as z.output<typeof LoginRequest>;
    const session = await auth.login(body.username, body.password, remote);
    audit(`user:${body.username}`, request, LOGIN_PATH, body.username, session ? 200 : 401, remote);
    if (!session) return problem(401, "unknown user or wrong password");
    return json({
      token: session.token,
      expiresAt: new Date(session.expiresAt).toISOString(),
      role: session.role,
    });
  };

  const serveRoute = async (
    route: Route,
    params: Record<string, string>,
    request: Request,
    remote: string,
  ) => {
    let caller: Caller | undefined;
    if (route.access !== "public") {
      caller = auth.authenticate(request);
      if (!caller) {
        if (route.access === "write") audit("anonymous", request, route.path, "", 401, remote);
        return problem(401, "send Authorization: Bearer <token>", undefined, {
          "www-authenticate": "Bearer",
        });
      }
    }
    const input: RouteInput = { params: {}, query: {}, body: undefined };
    let status = 500;
    try {
      if (route.access === "write" && caller?.role !== "admin") {
        status = 403;
        return problem(403, `${caller?.name} may only read`);
      }
      input.params = parse("path", route.params, params) as Record<string, string>;
      const url = new URL(request.url);
      input.query = parse("query", route.query, Object.fromEntries(url.searchParams)) as Record<
        string,
        unknown
      >;
      if (route.body) input.body = parse("body", route.body, await readJson(request, options.maxBodyBytes));
      const response = json(await route.handle(view, input));
      status = response.status;
      return response;
    } catch (error) {
      if (error instanceof BadRequest) {
        status = error.response.status;
        return error.response;
      }
      if (error instanceof AdminRefusal) {
        status = error.status;
        return problem(
          error.status,
          error.message,
          error.field ? [{ field: error.field, message: error.message }] : undefined,
        );
      }
      logger.error("admin.failed", { route: route.path, error });
      return problem(500, "the request failed; see the broker log");
    } finally {
      if (route.access === "write") {
        audit(caller?.name ?? "anonymous", request, route.path, safeTarget(route, input), status, remote);
      }
    }
  };

  return async (request, remote) => {
    const path = new URL(request.url).pathname;
    try {
      if (path === OPENAPI_PATH && request.method === "GET") {
        return json(JSON.parse(openApi ??= JSON.stringify(buildOpenApi())));
      }
      if (path === LOGIN_PATH && request.method === "POST") return await login(request, remote);
      if (path === LOGOUT_PATH && request.method === "POST") {
        auth.logout(request);
        return json(undefined);
      }
      if (path === WHOAMI_PATH && request.method === "GET") {
        const caller = auth.authenticate(request);
        if (!caller) {
          return problem(401, "send Authorization: Bearer <token>", undefined, {
            "www-authenticate": "Bearer",
          });
        }
        return json({ caller: caller.name, role: caller.role });
      }
      let allowed: string[] = [];
      for (const route of routes) {
        const params = matchPath(route.path, path);
        if (!params) continue;
        if (route.method === request.method) return await serveRoute(route, params, request, remote);
        allowed.push(route.method);
      }
      if ([LOGIN_PATH, LOGOUT_PATH].includes(path)) allowed = ["POST"];
      if ([WHOAMI_PATH, OPENAPI_PATH].includes(path)) allowed = ["GET"];
      if (allowed.length > 0) {
        return problem(405, `use ${allowed.join(" or ")}`, undefined, { allow: allowed.join(", ") });
      }
      return problem(404, `no such API path: ${path}`);
    } catch (error) {
      if (error instanceof BadRequest) return error.response;
      logger.error("admin.failed", { path, error });
      return problem(500, "the request failed; see the broker log");
    }
  };
}

/** The audit target, even when the input did not validate. */
function safeTarget(route: Route, input: RouteInput): string {
  try {
    return route.target?.(input) ?? "";
  } catch {
    return "";
  }
}
