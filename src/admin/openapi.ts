/**
 * The OpenAPI 3.1 document of the admin API, generated from the route table and its zod schemas (the
 * same ones that validate requests), so the document cannot drift from the code. Served at
 * /api/v1/openapi.json and written to docs/admin-api.openapi.json by scripts/gen_openapi.ts.
 */
import { z } from "zod";
import { API_BASE, LOGIN_PATH, LOGOUT_PATH, routes, WHOAMI_PATH } from "./routes.ts";
import { LoginRequest, LoginResult, Problem, WhoAmI } from "./schemas.ts";

type JsonSchema = Record<string, unknown>;

/** Converts a schema, moving named sub-schemas (`.meta({ id })`) into `components`. */
function converter(components: Record<string, JsonSchema>) {
  return (schema: z.ZodType, io: "input" | "output"): JsonSchema => {
    const converted = z.toJSONSchema(schema, {
      target: "draft-2020-12",
      io,
      unrepresentable: "any",
    }) as JsonSchema;
    delete converted.$schema;
    const defs = (converted.$defs ?? {}) as Record<string, JsonSchema>;
    delete converted.$defs;
    for (const [id, definition] of Object.entries(defs)) components[id] = definition;
    return JSON.parse(JSON.stringify(converted).replaceAll('"#/$defs/', '"#/components/schemas/'));
  };
}

function problemResponse(description: string) {
  return {
    description,
    content: { "application/problem+json": { schema: { $ref: "#/components/schemas/Problem" } } },
  };
}

/** Builds the whole document. */
export function buildOpenApi(): Record<string, unknown> {
  const components: Record<string, JsonSchema> = {};
  const convert = converter(components);
  convert(Problem, "output");
  const paths: Record<string, Record<string, unknown>> = {};
  const add = (method: string, path: string, operation: Record<string, unknown>) => {
    (paths[path] ??= {})[method.toLowerCase()] = operation;
  };

  for (const route of routes) {
    const parameters: unknown[] = [];
    for (const [where, schema] of [["path", route.params], ["query", route.query]] as const) {
      if (!schema) continue;
      const object = convert(schema, "input");
      const properties = (object.properties ?? {}) as Record<string, JsonSchema>;
      const required = (object.required ?? []) as string[];
      for (const [name, property] of Object.entries(properties)) {
        const { description, ...rest } = property;
        parameters.push({
          name,
          in: where,
          required: where === "path" || required.includes(name),
          ...(description ? { description } : {}),
          schema: rest,
        });
      }
    }
    const responses: Record<string, unknown> = route.response
      ? {
        "200": {
          description: "OK",
          content: { "application/json": { schema: convert(route.response, "output") } },
        },
      }
      : { "204": { description: "Done" } };
    responses["4XX"] = problemResponse("The request was refused; `errors` names the fields at fault.");
    if (route.access !== "public") responses["401"] = problemResponse("No valid bearer token.");
    if (route.access === "write") responses["403"] = problemResponse("The caller may only read.");
    add(route.method, route.path, {
      operationId: route.operationId,
      summary: route.summary,
      tags: [route.tag],
      ...(parameters.length > 0 ? { parameters } : {}),
      ...(route.body
        ? {
          requestBody: {
            required: true,
            content: { "application/json": { schema: convert(route.body, "input") } },
          },
        }
        : {}),
      responses,
      security: route.access === "public" ? [] : [{ bearer: [] }],
      ...(route.access === "write" ? { "x-required-role": "admin" } : {}),
    });
  }

  add("POST", LOGIN_PATH, {
    operationId: "login",
    summary: "Exchanges a user name and password of admin.password_file for a session token.",
    tags: ["session"],
    requestBody: {
      required: true,
      content: { "application/json": { schema: convert(LoginRequest, "input") } },
    },
    responses: {
      "200": {
        description: "Logged in",
        content: { "application/json": { schema: convert(LoginResult, "output") } },
      },
      "4XX": problemResponse("Unknown user or wrong password (answered later after each failure)."),
    },
    security: [],
  });
  add("POST", LOGOUT_PATH, {
    operationId: "logout",
    summary: "Ends the session of the bearer token.",
    tags: ["session"],
    responses: { "204": { description: "Logged out" } },
    security: [{ bearer: [] }],
  });
  add("GET", WHOAMI_PATH, {
    operationId: "whoami",
    summary: "The caller and role of the bearer token.",
    tags: ["session"],
    responses: {
      "200": { description: "OK", content: { "application/json": { schema: convert(WhoAmI, "output") } } },
      "401": problemResponse("No valid bearer token."),
    },
    security: [{ bearer: [] }],
  });
  add("GET", `${API_BASE}/openapi.json`, {
    operationId: "openapi",
    summary: "This document.",
    tags: ["session"],
    responses: { "200": { description: "OpenAPI 3.1", content: { "application/json": {} } } },
    security: [],
  });

  return {
    openapi: "3.1.0",
    info: {
      title: "mqtt-proxy admin API",
      version: "1",
      description: "Clients, sessions, subscriptions, retained messages, publishing, listeners, limits, " +
        "reload and statistics of one broker. Off unless admin.enabled = true; served on the HTTP endpoint " +
        "(http.host:http.port, loopback by default). Every write is written to the broker log as admin.audit.",
    },
    servers: [{ url: "/" }],
    paths,
    components: {
      schemas: Object.fromEntries(Object.entries(components).sort(([a], [b]) => a < b ? -1 : 1)),
      securitySchemes: {
        bearer: {
          type: "http",
          scheme: "bearer",
          description: "The token of http.auth_token_file, or a session token from POST /api/v1/login.",
        },
      },
    },
  };
}
