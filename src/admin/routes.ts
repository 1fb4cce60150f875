/**
 * The admin API's routes, declared once: method, path, who may call it, the zod schemas of its inputs
 * and output, and what it does through the {@link AdminBrokerView}. The request handler (api.ts) and the
 * OpenAPI document (openapi.ts) are both derived from this table.
 */
import { z } from "zod";
import * as S from "./schemas.ts";
import { type AdminBrokerView, AdminRefusal } from "./view.ts";

/** Who may call a route: anyone, any logged-in caller, or an admin (every write). */
export type Access = "public" | "read" | "write";

/** What a route's handler receives, validated. */
export interface RouteInput {
  params: Record<string, string>;
  query: Record<string, unknown>;
  body: unknown;
}

export interface Route {
  method: "GET" | "POST" | "DELETE";
  /** With `{name}` path parameters, e.g. `/api/v1/clients/{clientId}`. */
  path: string;
  operationId: string;
  summary: string;
  tag: string;
  access: Access;
  params?: z.ZodObject;
  query?: z.ZodObject;
  body?: z.ZodType;
  /** The 200 response; undefined for 204 No Content. */
  response?: z.ZodType;
  /** What the audit log names as the target of a write. */
  target?: (input: RouteInput) => string;
  handle(view: AdminBrokerView, input: RouteInput): unknown;
}

/** The API's base path. */
export const API_BASE = "/api/v1";

/** Routes that the request handler serves itself (login needs the auth module, not the broker view). */
export const LOGIN_PATH = `${API_BASE}/login`;
export const LOGOUT_PATH = `${API_BASE}/logout`;
export const WHOAMI_PATH = `${API_BASE}/whoami`;

const clientId = (input: RouteInput) => input.params.clientId;

/** Every route of the broker view; login, logout, whoami and the OpenAPI document are added by api.ts. */
export const routes: Route[] = [
  {
    method: "GET",
    path: `${API_BASE}/clients`,
    operationId: "listClients",
    summary: "Connected clients, filtered, in client id order, a page at a time.",
    tag: "clients",
    access: "read",
    query: S.ClientsQuery,
    response: S.page(S.Client),
    handle: (view, { query }) => view.clients(query as S.ClientsQuery),
  },
  {
    method: "GET",
    path: `${API_BASE}/clients/{clientId}`,
    operationId: "getClient",
    summary: "One connected client with its session, subscriptions, in-flight and queued messages.",
    tag: "clients",
    access: "read",
    params: S.ClientIdPath,
    response: S.ClientDetail,
    handle: (view, input) => {
      const detail = view.client(clientId(input));
      if (!detail) throw new AdminRefusal(404, `client ${clientId(input)} is not connected`);
      return detail;
    },
  },
  {
    method: "POST",
    path: `${API_BASE}/clients/{clientId}/kick`,
    operationId: "kickClient",
    summary: "Disconnects a client; MQTT 5 clients hear the reason code. Its session stays per its expiry.",
    tag: "clients",
    access: "write",
    params: S.ClientIdPath,
    body: S.KickRequest,
    target: clientId,
    handle: (view, input) => {
      const { reasonCode, reason } = input.body as z.output<typeof S.KickRequest>;
      if (!view.kick(clientId(input), reasonCode, reason)) {
        throw new AdminRefusal(404, `client ${clientId(input)} is not connected`);
      }
    },
  },
  {
    method: "GET",
    path: `${API_BASE}/sessions`,
    operationId: "listSessions",
    summary: "Sessions, connected or not, in client id order, a page at a time.",
    tag: "sessions",
    access: "read",
    query: S.SessionsQuery,
    response: S.page(S.Session),
    handle: (view, { query }) => view.sessions(query as S.SessionsQuery),
  },
  {
    method: "DELETE",
    path: `${API_BASE}/sessions/{clientId}`,
    operationId: "deleteSession",
    summary: "Ends the session of a client that is not connected (409 when it is); a pending will goes out.",
    tag: "sessions",
    access: "write",
    params: S.ClientIdPath,
    target: clientId,
    handle: (view, input) => view.deleteSession(clientId(input)),
  },
  {
    method: "GET",
    path: `${API_BASE}/subscriptions`,
    operationId: "listSubscriptions",
    summary: "Subscriptions of one client, with one filter, or reached by one topic.",
    tag: "subscriptions",
    access: "read",
    query: S.SubscriptionsQuery,
    response: S.page(S.Subscription),
    handle: (view, { query }) => view.subscriptions(query as S.SubscriptionsQuery),
  },
  {
    method: "GET",
    path: `${API_BASE}/retained`,
    operationId: "listRetained",
    summary: "Retained messages whose topic matches a filter, in topic order.",
    tag: "retained",
    access: "read",
    query: S.RetainedQuery,
    response: S.page(S.RetainedMessage),
    handle: (view, { query }) => view.retained(query as S.RetainedQuery),
  },
  {
    method: "DELETE",
    path: `${API_BASE}/retained`,
    operationId: "deleteRetained",
    summary: "Deletes the retained message of one topic; subscribers are not sent anything.",
    tag: "retained",
    access: "write",
    query: S.TopicQuery,
    target: (input) => String(input.query.topic),
    handle: async (view, input) => {
      const topic = String(input.query.topic);
      if (topic.includes("+") || topic.includes("#")) {
        throw new AdminRefusal(422, "a topic name, not a filter", "query.topic");
      }
      if (!(await view.deleteRetained(topic))) {
        throw new AdminRefusal(404, `no retained message on ${topic}`);
      }
    },
  },
  {
    method: "POST",
    path: `${API_BASE}/publish`,
    operationId: "publish",
    summary: "Publishes a message as the broker; answers once a QoS 1/2 or retained message is durable.",
    tag: "messages",
    access: "write",
    body: S.PublishRequest,
    response: S.PublishResult,
    target: (input) => (input.body as S.PublishRequest).topic,
    handle: async (view, input) => {
      const request = input.body as S.PublishRequest;
      return { topic: request.topic, reached: await view.publish(request) };
    },
  },
  {
    method: "GET",
    path: `${API_BASE}/listeners`,
    operationId: "listListeners",
    summary: "The listeners with their bound addresses and connection counts.",
    tag: "broker",
    access: "read",
    response: z.array(S.Listener),
    handle: (view) => view.listeners(),
  },
  {
    method: "GET",
    path: `${API_BASE}/limits`,
    operationId: "getLimits",
    summary: "The protocol limits and shutdown settings in force.",
    tag: "broker",
    access: "read",
    response: S.Limits,
    handle: (view) => view.limits(),
  },
  {
    method: "GET",
    path: `${API_BASE}/stats`,
    operationId: "getStats",
    summary: "The $SYS figures and a few more, for dashboards.",
    tag: "broker",
    access: "read",
    response: S.Stats,
    handle: (view) => view.stats(),
  },
  {
    method: "GET",
    path: `${API_BASE}/cluster`,
    operationId: "getCluster",
    summary:
      "This node's view of the cluster: the nodes it sees, whether the cluster log is up, its counters.",
    tag: "broker",
    access: "read",
    response: S.ClusterStatus,
    handle: (view) => view.cluster(),
  },
  {
    method: "POST",
    path: `${API_BASE}/reload`,
    operationId: "reload",
    summary: "Rereads the password, access-key, SCRAM, ACL and admin files, as SIGHUP does.",
    tag: "broker",
    access: "write",
    response: S.ReloadResult,
    target: () => "configuration files",
    handle: (view) => view.reload(),
  },
];

/** Matches a concrete path against a template; returns the decoded parameters, or undefined. */
export function matchPath(template: string, path: string): Record<string, string> | undefined {
  const want = template.split("/");
  const got = path.split("/");
  if (want.length !== got.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < want.length; i++) {
    const name = /^\{(\w+)\}$/.exec(want[i])?.[1];
    if (name === undefined) {
      if (want[i] !== got[i]) return undefined;
      continue;
    }
    try {
      params[name] = decodeURIComponent(got[i]);
    } catch {
      return undefined;
    }
    if (params[name] === "") return undefined;
  }
  return params;
}
