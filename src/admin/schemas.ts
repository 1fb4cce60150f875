/**
 * The admin API's data shapes as zod schemas: the one source of truth for request validation, the
 * TypeScript types of {@link AdminBrokerView}, and the OpenAPI 3.1 document (src/admin/openapi.ts).
 */
import { z } from "zod";

const MAX_PAGE = 500;

/** Query parameters arrive as text: numbers and booleans are converted before they are checked. */
const limit = z.coerce.number().int().min(1).max(MAX_PAGE).default(100)
  .describe(`Most items on a page, 1 to ${MAX_PAGE}.`);
const cursor = z.string().min(1).max(1024).optional()
  .describe("The nextCursor of the previous page; absent for the first page.");
const booleanText = z.enum(["true", "false"]).transform((text) => text === "true");

export const Protocol = z.enum(["3.1", "3.1.1", "5.0"]).describe("MQTT protocol level.");

export const ClientsQuery = z.object({
  limit,
  cursor,
  clientId: z.string().max(256).optional().describe("Only clients whose id contains this text."),
  username: z.string().max(256).optional().describe("Only clients logged in as exactly this user."),
  listener: z.string().max(64).optional().describe("Only clients of this listener."),
  protocol: Protocol.optional(),
});

export const Client = z.object({
  clientId: z.string(),
  username: z.string().nullable(),
  remoteAddress: z.string(),
  listener: z.string(),
  protocol: Protocol,
  connectedAt: z.string().describe("ISO 8601 time of the CONNECT."),
  keepAlive: z.int().describe("Seconds."),
  cleanStart: z.boolean(),
  subscriptions: z.int(),
  inflight: z.int().describe("Outbound QoS 1/2 messages awaiting acknowledgement."),
  queued: z.int().describe("Messages queued behind the inflight window."),
  bytesReceived: z.int(),
  bytesSent: z.int(),
}).meta({ id: "Client" });

export const SessionsQuery = z.object({
  limit,
  cursor,
  clientId: z.string().max(256).optional().describe("Only sessions whose client id contains this text."),
  connected: booleanText.optional().describe(
    "Only sessions whose client is (true) or is not (false) connected.",
  ),
});

export const Session = z.object({
  clientId: z.string(),
  connected: z.boolean(),
  expiryInterval: z.int().describe(
    "Seconds the session outlives its connection; 4294967295 = never expires.",
  ),
  subscriptions: z.int(),
  inflight: z.int(),
  queued: z.int(),
  queuedBytes: z.int(),
  awaitingRelease: z.int().describe("Inbound QoS 2 packet ids received and not yet released."),
}).meta({ id: "Session" });

export const Subscription = z.object({
  clientId: z.string(),
  topicFilter: z.string().describe("As subscribed, $share/<group>/ included."),
  qos: z.int().min(0).max(2),
  noLocal: z.boolean(),
  retainAsPublished: z.boolean(),
  retainHandling: z.int().min(0).max(2),
  subscriptionIdentifier: z.int().nullable(),
  shareGroup: z.string().nullable(),
}).meta({ id: "Subscription" });

export const ClientDetail = z.object({
  client: Client,
  session: Session,
  subscriptions: z.array(Subscription),
}).meta({ id: "ClientDetail" });

export const SubscriptionsQuery = z.object({
  limit,
  cursor,
  clientId: z.string().max(65535).optional().describe("Only this client's subscriptions."),
  filter: z.string().max(65535).optional().describe("Only subscriptions with exactly this topic filter."),
  topic: z.string().max(65535).optional().describe(
    "Only subscriptions that a message on this topic reaches.",
  ),
});

export const RetainedQuery = z.object({
  limit,
  cursor,
  filter: z.string().min(1).max(65535).default("#").describe("Topic filter the retained topics match."),
});

export const RetainedMessage = z.object({
  topic: z.string(),
  qos: z.int().min(0).max(2),
  payloadBytes: z.int(),
  payloadText: z.string().nullable().describe(
    "The payload as text when it is UTF-8, cut to its first 1024 characters; null for binary payloads.",
  ),
  expiresAt: z.string().nullable(),
}).meta({ id: "RetainedMessage" });

export const TopicQuery = z.object({ topic: z.string().min(1).max(65535).describe("A topic name.") });

export const KickRequest = z.object({
  reasonCode: z.union([
    z.literal(0x80),
    z.literal(0x87),
    z.literal(0x89),
    z.literal(0x97),
    z.literal(0x98),
    z.literal(0x9f),
  ]).default(0x98).describe(
    "DISCONNECT reason an MQTT 5 client hears: 0x98 Administrative action (default), 0x80, 0x87, 0x89, 0x97 or 0x9F.",
  ),
  reason: z.string().max(256).default("disconnected by an administrator")
    .describe("Reason String sent to MQTT 5 clients and written to the audit log."),
}).strict();

export const PublishRequest = z.object({
  topic: z.string().min(1).max(65535).describe("A topic name: no wildcards, not starting with $."),
  payload: z.string().default(""),
  encoding: z.enum(["utf8", "base64"]).default("utf8").describe("How `payload` is written."),
  qos: z.union([z.literal(0), z.literal(1), z.literal(2)]).default(0),
  retain: z.boolean().default(false),
  contentType: z.string().max(1024).optional(),
  messageExpiryInterval: z.int().min(0).max(4_294_967_295).optional().describe("Seconds."),
  userProperties: z.array(z.tuple([z.string().max(1024), z.string().max(65535)])).max(64).optional(),
}).strict();

export const PublishResult = z.object({
  topic: z.string(),
  reached: z.int().describe("Clients the message was routed to."),
});

export const Listener = z.object({
  name: z.string(),
  type: z.enum(["tcp", "tls", "ws", "wss"]),
  host: z.string(),
  port: z.int(),
  path: z.string().nullable().describe("WebSocket path (ws and wss)."),
  clientCertificates: z.boolean().describe("Whether the listener verifies client certificates."),
  connections: z.int(),
  connectionsTotal: z.int(),
  maxConnections: z.int().describe("0 = unlimited."),
  io: z.enum(["runtime", "epoll"]).describe(
    "A tcp listener's socket I/O: Deno's sockets, or libc's from one epoll loop.",
  ),
}).meta({ id: "Listener" });

export const Limits = z.record(z.string(), z.union([z.number(), z.string(), z.boolean()]))
  .describe("The mqtt.* and shutdown.* settings in force, by configuration key.");

export const Stats = z.object({
  version: z.string(),
  uptimeSeconds: z.number(),
  clientsConnected: z.int().describe("$SYS/broker/clients/connected"),
  clientsTotal: z.int().describe("$SYS/broker/clients/total"),
  clientsDisconnected: z.int().describe("$SYS/broker/clients/disconnected"),
  messagesReceived: z.int().describe("$SYS/broker/messages/received"),
  messagesSent: z.int().describe("$SYS/broker/messages/sent"),
  messagesDropped: z.int().describe("$SYS/broker/messages/dropped"),
  drops: z.record(z.string(), z.int()).describe("messagesDropped by reason."),
  bytesReceived: z.int().describe("$SYS/broker/bytes/received"),
  bytesSent: z.int().describe("$SYS/broker/bytes/sent"),
  subscriptions: z.int().describe("$SYS/broker/subscriptions/count"),
  retained: z.int().describe("$SYS/broker/retained messages/count"),
  inflight: z.int(),
  queued: z.int(),
  storeFlushes: z.int().describe("Storage flushes (group commits) since start."),
  storeFlushSeconds: z.number().describe("Their total duration; Δseconds/Δflushes is the mean latency."),
}).meta({ id: "Stats" });

export const ClusterStatus = z.object({
  enabled: z.boolean().describe("cluster.enabled: false on a single node (the rest is then empty)."),
  nodeId: z.string().nullable(),
  up: z.boolean().describe("This node can use the cluster log (as /readyz says)."),
  detail: z.string(),
  nodes: z.array(z.object({
    nodeId: z.string(),
    run: z.number().describe(
      "When that node's process started (ms since the epoch): another value means it restarted.",
    ),
    self: z.boolean(),
    alive: z.boolean().describe("False once this node asked the log to declare it gone."),
    lastHeardMsAgo: z.int().describe("Since its last heartbeat was applied here."),
  })).describe("This node first, then every node it heard of and has not seen declared gone."),
  log: z.object({
    entriesAppended: z.int(),
    appendsFailed: z.int(),
    messagesSent: z.int(),
    sendFailures: z.int(),
    pendingBytes: z.int(),
    entriesApplied: z.int(),
    resendsDropped: z.int(),
  }).nullable().describe("The cluster log's counters since this node started (as on /metrics)."),
}).meta({ id: "ClusterStatus" });

export const ReloadResult = z.object({
  reloaded: z.array(z.string()),
  failed: z.array(z.object({ part: z.string(), error: z.string() })),
});

export const LoginRequest = z.object({
  username: z.string().min(1).max(256),
  password: z.string().min(1).max(1024),
}).strict();

export const Role = z.enum(["admin", "viewer"]).describe("admin may change things; viewer may only look.");

export const LoginResult = z.object({
  token: z.string().describe("Send as Authorization: Bearer <token>."),
  expiresAt: z.string(),
  role: Role,
});

export const WhoAmI = z.object({ caller: z.string(), role: Role });

export const ClientIdPath = z.object({ clientId: z.string().min(1).max(65535) });

/** A page of a list, with the cursor of the next one (null on the last page). */
export function page<T extends z.ZodType>(item: T) {
  return z.object({ data: z.array(item), nextCursor: z.string().nullable() });
}

/** RFC 9457 problem details, with the invalid fields named. */
export const Problem = z.object({
  type: z.string(),
  title: z.string(),
  status: z.int(),
  detail: z.string().optional(),
  errors: z.array(z.object({ field: z.string(), message: z.string() })).optional(),
}).meta({ id: "Problem" });

export type ClientsQuery = z.output<typeof ClientsQuery>;
export type SessionsQuery = z.output<typeof SessionsQuery>;
export type SubscriptionsQuery = z.output<typeof SubscriptionsQuery>;
export type RetainedQuery = z.output<typeof RetainedQuery>;
export type Client = z.output<typeof Client>;
export type Session = z.output<typeof Session>;
export type Subscription = z.output<typeof Subscription>;
export type ClientDetail = z.output<typeof ClientDetail>;
export type RetainedMessage = z.output<typeof RetainedMessage>;
export type PublishRequest = z.output<typeof PublishRequest>;
export type PublishResult = z.output<typeof PublishResult>;
export type Listener = z.output<typeof Listener>;
export type Limits = z.output<typeof Limits>;
export type Stats = z.output<typeof Stats>;
export type ClusterStatus = z.output<typeof ClusterStatus>;
export type ReloadResult = z.output<typeof ReloadResult>;
export type Role = z.output<typeof Role>;
/** One page of a list. */
export interface Page<T> {
  data: T[];
  nextCursor: string | null;
}
