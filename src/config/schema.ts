/**
 * The single source of truth for the broker's configuration: every key with its type, range or enum,
 * default and description. The parser, `defaultConfig()`, the `Config` type check and the shipped
 * `conf/mqtt.properties` (scripts/gen_config.ts) all derive from these declarations.
 */
import { z } from "zod";
import { choice, flag, integer, key, objectOf, optionalFlag, optionalText, text } from "./keys.ts";

/** Largest delay `setTimeout` honours; longer timeouts would fire immediately. */
const MAX_TIMER_MS = 2_147_483_647;

/** Keys of one listener, written `listener.<name>.<key>`. */
export const listenerKeys = {
  type: choice(
    ["tcp", "tls", "ws", "wss"],
    "tcp",
    "Transport: plain TCP, TLS, WebSocket, or WebSocket over TLS.",
  ),
  host: text("0.0.0.0", "Address to bind; 0.0.0.0 means every IPv4 interface, :: every IPv6 one."),
  port: integer({ min: 0, max: 65535 }, 1883, "Port to bind; 0 picks a free port (used by tests)."),
  path: key({
    schema: z.string().startsWith("/").default("/mqtt"),
    kind: "string",
    expected: "a path starting with /",
    description: "HTTP path that accepts the WebSocket upgrade (ws and wss listeners).",
  }),
  cert_file: optionalText("PEM certificate chain presented to clients; required for tls and wss."),
  key_file: optionalText("PEM private key of cert_file; required for tls and wss."),
  ca_file: optionalText("PEM bundle of the CAs that client certificates must chain to."),
  require_client_cert: flag(false, "Reject TLS clients that present no valid certificate (mutual TLS)."),
  use_cn_as_username: flag(
    false,
    "Take the MQTT username from the client certificate's Common Name instead of the CONNECT packet.",
  ),
  max_connections: integer(
    { min: 0 },
    0,
    "Most clients connected through this listener at once; 0 = unlimited.",
  ),
  io: choice(
    ["runtime", "epoll"],
    "runtime",
    "Socket I/O of a tcp listener: runtime = Deno's sockets; epoll = libc's socket calls from one epoll " +
      "loop (Linux x86-64 with glibc; host an IP address or localhost): an idle client holds about 1.8 KB " +
      "instead of 4.3 and connects are faster, but at a moderate steady rate it costs more CPU.",
  ),
};

/** The listener names accept these characters only, so that `listener.<name>.<key>` splits unambiguously. */
export const LISTENER_NAME = /^[a-z0-9_-]+$/;

/** Every key outside the listeners, as `<section>.<key>`. */
export const settingKeys = {
  "mqtt.max_packet_size": integer(
    { min: 2, max: 268_435_460 },
    1_048_576,
    "Largest MQTT packet accepted or sent, in bytes; advertised to MQTT 5 clients as Maximum Packet Size.",
  ),
  "mqtt.max_inflight": integer(
    { min: 1, max: 65535 },
    100,
    "Outbound QoS 1/2 messages awaiting acknowledgement per client, capped by the client's Receive Maximum (more than Mosquitto's 20: a window of 100 doubles one subscriber's throughput).",
  ),
  "mqtt.receive_maximum": integer(
    { min: 1, max: 65535 },
    100,
    "Inbound QoS 1/2 messages a client may have unacknowledged; advertised to MQTT 5 clients.",
  ),
  "mqtt.max_queued_messages": integer(
    { min: 0 },
    1000,
    "Messages queued per session beyond the inflight window (offline or slow clients); 0 = unlimited.",
  ),
  "mqtt.max_queued_bytes": integer({ min: 0 }, 0, "Payload bytes queued per session; 0 = unlimited."),
  "mqtt.queue_drop_policy": choice(
    ["drop_oldest", "drop_newest"],
    "drop_oldest",
    "Which message a full session queue discards.",
  ),
  "mqtt.queue_qos0_offline": flag(false, "Queue QoS 0 messages for offline persistent sessions too."),
  "mqtt.max_keepalive": integer(
    { min: 0, max: 65535 },
    65535,
    "Longest keep alive in seconds; MQTT 5 clients asking for more are told this Server Keep Alive.",
  ),
  "mqtt.connect_timeout_ms": integer(
    { min: 1, max: MAX_TIMER_MS },
    10_000,
    "Milliseconds a new connection has to send CONNECT before it is closed.",
  ),
  "mqtt.max_connections": integer(
    { min: 0 },
    0,
    "Most clients connected at once over all listeners; 0 = unlimited.",
  ),
  "mqtt.max_outbound_bytes": integer(
    { min: 1024, max: 1_073_741_824 },
    1_048_576,
    "Bytes waiting to be written to one client's socket (live, retained and re-sent messages). Past it, QoS 1/2 messages wait in the session queue and QoS 0 messages are dropped (counted as slow_consumer).",
  ),
  "mqtt.max_sessions": integer(
    { min: 0 },
    1_000_000,
    "Most sessions at once, connected and offline persistent ones together; a CONNECT that would create one more is refused (0x97 Quota exceeded; 3.1.1: 0x03 Server unavailable). 0 = unlimited.",
  ),
  "mqtt.max_persistent_sessions_per_user": integer(
    { min: 0 },
    10_000,
    "Most persistent sessions (session expiry > 0) one authenticated user name may own; 0 = unlimited.",
  ),
  "mqtt.max_persistent_sessions_per_address": integer(
    { min: 0 },
    1000,
    "Most persistent sessions that clients from one IP address may own (anonymous clients and every other); 0 = unlimited.",
  ),
  "mqtt.max_retained_messages": integer(
    { min: 0 },
    1_000_000,
    "Most retained messages held; a new retained topic past it is refused (0x97 Quota exceeded; 3.1.1 publishers are disconnected). 0 = unlimited.",
  ),
  "mqtt.max_retained_bytes": integer(
    { min: 0, max: Number.MAX_SAFE_INTEGER },
    268_435_456,
    "Most bytes of retained payload and topic (the payloads stay in the embedded store on a single node, in memory with the memory store or in a cluster); a retained message that would pass it is refused like one over max_retained_messages. 0 = unlimited.",
  ),
  "mqtt.max_topic_alias": integer(
    { min: 0, max: 65535 },
    100,
    "Topic Alias Maximum advertised to MQTT 5 clients; 0 disables inbound topic aliases.",
  ),
  "mqtt.max_subscriptions_per_client": integer(
    { min: 0 },
    10_000,
    "Most subscriptions one session may hold; 0 = unlimited.",
  ),
  "mqtt.max_topic_levels": integer(
    { min: 1, max: 65535 },
    201,
    "Most '/'-separated levels in a topic or filter (201 = Mosquitto's limit of 200 '/', so nothing Mosquitto accepts is refused).",
  ),
  "mqtt.max_session_expiry": integer(
    { min: 0, max: 4_294_967_295 },
    604_800,
    "Cap in seconds on the Session Expiry Interval MQTT 5 clients request, and the expiry of MQTT 3.1/3.1.1 persistent sessions (clean session 0); 7 days by default, 4294967295 = never expire.",
  ),
  "mqtt.max_client_id_length": integer(
    { min: 23, max: 65535 },
    65535,
    "Longest client identifier in bytes (MQTT requires at least 23 to be accepted).",
  ),
  "mqtt.allow_zero_length_client_id": flag(
    true,
    "Accept an empty client identifier and assign one (clean sessions only before MQTT 5).",
  ),
  "mqtt.allow_control_characters": flag(
    false,
    "Accept control characters (U+0001-U+001F, U+007F-U+009F) in client identifiers, user names, topic names and filters; false treats them as a malformed packet, as Mosquitto does.",
  ),
  "mqtt.max_qos": key({
    schema: z.literal([0, 1, 2]).default(2),
    kind: "integer",
    expected: "0, 1 or 2",
    description:
      "Highest QoS granted to subscriptions and accepted on PUBLISH; advertised to MQTT 5 clients.",
  }),
  "mqtt.retain_available": flag(true, "Support retained messages."),
  "mqtt.wildcard_subscription_available": flag(true, "Accept subscriptions with the + and # wildcards."),
  "mqtt.subscription_identifiers_available": flag(true, "Support MQTT 5 Subscription Identifiers."),
  "mqtt.shared_subscription_available": flag(true, "Support $share/<group>/<filter> shared subscriptions."),
  "mqtt.shared_subscription_strategy": choice(
    ["round_robin", "random"],
    "round_robin",
    "How a shared subscription group picks the member that receives each message.",
  ),
  "mqtt.takeover": choice(
    ["allow", "same_user", "deny"],
    "same_user",
    "Whether a CONNECT may disconnect the connected client that holds its client id: allow = anyone may (MQTT's default), same_user = only the same authenticated user, deny = no one. A different user always starts a fresh session.",
  ),
  "mqtt.server_reference": optionalText(
    "When set, MQTT 5 clients are redirected here (CONNACK reason 0x9C, Use another server).",
  ),
  "mqtt.response_information": optionalText(
    "Sent as Response Information to MQTT 5 clients that request it: the base of their response topics; %c is the client id.",
  ),

  "storage.type": choice(
    ["embedded", "memory"],
    "embedded",
    "Where sessions and retained messages live: the embedded on-disk store, or memory only (lost on restart).",
  ),
  "storage.dir": text(
    "data",
    "Directory of the embedded store, relative to the working directory (in a source checkout ./data is git-ignored; the systemd unit runs in /var/lib/mqtt-proxy). Only one broker may use it at a time.",
  ),
  "storage.durability": choice(
    ["sync", "batch", "memory"],
    "sync",
    "When writes reach the disk: before each acknowledgement, in batches every batch_interval_ms, or never.",
  ),
  "storage.max_disk_bytes": integer(
    { min: 0, max: Number.MAX_SAFE_INTEGER },
    0,
    "Cap on the store's size on disk; past it QoS 1/2 messages are refused (0x97) instead of acknowledged. 0 = no cap.",
  ),
  "storage.batch_interval_ms": integer(
    { min: 1, max: 60_000 },
    10,
    "Milliseconds between disk flushes when durability is batch.",
  ),

  "auth.allow_anonymous": optionalFlag(
    "Accept clients that present no credentials; unset = allow only when no credential source is configured (password, access key or SCRAM file, or a listener with use_cn_as_username).",
  ),
  "auth.password_file": optionalText("File of username:password-hash lines."),
  "auth.access_keys_file": optionalText("File of access keys accepted as credentials."),
  "auth.scram_file": optionalText(
    "File of SCRAM-SHA-256 credentials; enables the MQTT 5 enhanced authentication method SCRAM-SHA-256.",
  ),
  "auth.acl_file": optionalText("File of topic access rules."),
  "auth.acl_default": choice(["allow", "deny"], "allow", "What the ACL decides when no rule matches."),
  "auth.failure_delay_ms": integer(
    { min: 0, max: 60_000 },
    250,
    "After a failed login, the next login from the same IP address (IPv6: /64) waits this long, doubling with each failure; 0 turns the slowdown off.",
  ),
  "auth.failure_delay_max_ms": integer(
    { min: 0, max: 600_000 },
    8_000,
    "Longest wait the login slowdown imposes on one address.",
  ),

  "http.enabled": flag(false, "Serve the HTTP endpoint for health and metrics."),
  "http.host": text("127.0.0.1", "Address the HTTP endpoint binds."),
  "http.port": integer({ min: 0, max: 65535 }, 8080, "Port the HTTP endpoint binds."),
  "http.max_connections": integer(
    { min: 1, max: 10_000 },
    32,
    "Most HTTP connections open at once; more are closed at accept. Each has mqtt.connect_timeout_ms to send its request.",
  ),
  "http.auth_token_file": optionalText(
    "File whose first line is a bearer token (at least 16 characters, no spaces); when set, every HTTP request (/metrics, /healthz, /readyz, the admin API) needs 'Authorization: Bearer <token>'. Reread on SIGHUP.",
  ),

  "admin.enabled": flag(
    false,
    "Serve the admin API (/api/v1) and the web dashboard (/dashboard/) on the HTTP endpoint; needs http.enabled and http.auth_token_file or admin.password_file.",
  ),
  "admin.password_file": optionalText(
    "Dashboard and API users, one username:hash per line (mqtt-proxy passwd writes them); they log in at /api/v1/login.",
  ),
  "admin.viewers": optionalText(
    "Comma-separated users of admin.password_file who may look but not change anything.",
  ),
  "admin.session_ttl_seconds": integer(
    { min: 60, max: 604_800 },
    3600,
    "Seconds a dashboard login stays valid.",
  ),

  "cluster.enabled": flag(
    false,
    "Run as one node of a cluster that shares sessions, subscriptions, retained and will messages through Apache RocketMQ 5 (docs/cluster.md).",
  ),
  "cluster.node_id": text(
    "",
    "This node's name, unique in the cluster and kept across restarts (it names the node's RocketMQ consumer group); empty = the host name.",
  ),
  "cluster.rocketmq.endpoints": text(
    "127.0.0.1:8081",
    "The RocketMQ proxy's gRPC address(es), host:port;host:port.",
  ),
  "cluster.rocketmq.name_server": text(
    "127.0.0.1:9876",
    "The RocketMQ name server (host:port): at start it creates this node's consumer group, and it names the broker the node reads the log from by offset; empty = the operator created the group (orderly), and the log is read through the proxy instead (slower: a round trip per batch).",
  ),
  "cluster.rocketmq.topic": text(
    "mqtt_log",
    "The FIFO topic with exactly one queue that carries the cluster log (scripts/rocketmq.sh creates it).",
  ),
  "cluster.rocketmq.namespace": text("", "RocketMQ namespace of the topic and groups; empty = none."),
  "cluster.rocketmq.access_key": optionalText("Access key for an ACL-enabled RocketMQ."),
  "cluster.rocketmq.secret_key_file": optionalText(
    "File whose first line is the secret key of cluster.rocketmq.access_key.",
  ),
  "cluster.heartbeat_ms": integer(
    { min: 100, max: 60_000 },
    1000,
    "Milliseconds between this node's heartbeats in the cluster log.",
  ),
  "cluster.node_timeout_ms": integer(
    { min: 1000, max: 600_000 },
    10_000,
    "A node silent this long is declared gone: its clients are disconnected, their wills go out, and they may resume on another node.",
  ),
  "cluster.append_timeout_ms": integer(
    { min: 1000, max: MAX_TIMER_MS },
    10_000,
    "How long a write to the cluster log may take before the client is answered with an error (RocketMQ unreachable).",
  ),

  "sys.interval_seconds": integer(
    { min: 0, max: 86_400 },
    10,
    "Seconds between $SYS topic updates; 0 turns them off.",
  ),

  "log.level": choice(["debug", "info", "warn", "error"], "info", "Least severe log level written."),
  "log.format": choice(
    ["auto", "json", "text"],
    "auto",
    "Log line format: JSON lines, human-readable text, or auto (text when stdout is a terminal, JSON otherwise).",
  ),

  "limits.memory_bytes": integer(
    { min: 0, max: Number.MAX_SAFE_INTEGER },
    0,
    "Memory the broker may use (JavaScript heap in use plus buffers: queues, retained messages, in-flight and outbound frames). Over it, new client messages are not taken (QoS 0 dropped, QoS 1/2 refused with 0x97 Quota exceeded; 3.1.1 publishers are disconnected) until usage falls below 90% of it. 0 = automatic: half of the machine's memory, at most three quarters of the JavaScript heap limit.",
  ),

  "shutdown.drain_timeout_ms": integer(
    { min: 0, max: MAX_TIMER_MS },
    5000,
    "Milliseconds to let clients finish in-flight work on shutdown before connections are closed.",
  ),
};

/** The section of a `<section>.<key>` name. */
export type SectionOf<K extends string> = K extends `${infer Section}.${string}` ? Section : never;

/** Section headings of the generated file; every section needs one. */
export const sectionTitles: Record<"listener" | SectionOf<keyof typeof settingKeys>, string> = {
  listener: "Listeners, as listener.<name>.<key> with <name> made of a-z, 0-9, _ and -. " +
    "When no listener is configured, one named default listens on TCP 0.0.0.0:1883.",
  mqtt: "MQTT protocol limits and features",
  storage: "Persistence of sessions and retained messages",
  auth: "Authentication and authorisation",
  http: "HTTP endpoint",
  admin: "Admin API and web dashboard (served on the HTTP endpoint)",
  cluster: "Cluster over Apache RocketMQ 5",
  sys: "$SYS topics",
  log: "Logging (on stdout)",
  limits: "Memory",
  shutdown: "Shutdown",
};

/**
 * Validates the keys of one listener and fills in defaults; tls and wss need a certificate and key, and
 * epoll I/O is for tcp.
 */
export const listenerSchema = objectOf(listenerKeys).superRefine((listener, context) => {
  if (listener.io === "epoll" && listener.type !== "tcp") {
    context.addIssue({
      code: "custom",
      path: ["io"],
      message: `epoll is for tcp listeners, not ${listener.type}`,
    });
  }
  if (listener.type !== "tls" && listener.type !== "wss") return;
  for (const field of ["cert_file", "key_file"] as const) {
    if (listener[field] === undefined) {
      context.addIssue({
        code: "custom",
        path: [field],
        message: `required for a ${listener.type} listener`,
      });
    }
  }
});

/** Validates every key outside the listeners and fills in defaults. */
export const settingsSchema = objectOf(settingKeys);
