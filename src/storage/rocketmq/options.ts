/**
 * Options of the RocketMQ cluster log, their defaults, and the names it derives from them.
 */
import { createHash } from "node:crypto";
import { format } from "node:util";

/** Where the adapter reports what an operator should see (same shape as the storage logger). */
export interface ClusterLogLogger {
  info(event: string, fields?: Record<string, unknown>): void;
  warn(event: string, fields?: Record<string, unknown>): void;
  error(event: string, fields?: Record<string, unknown>): void;
}

export interface RocketMqLogOptions {
  /** The proxy's gRPC address(es), `host:port;host:port`. */
  endpoints: string;
  /** This node's id: names its consumer group, i.e. its durable cursor in the log. */
  nodeId: string;
  /** The FIFO topic with exactly one queue that carries the log. Default `mqtt_log`. */
  topic?: string;
  /** RocketMQ namespace; the proxy prefixes topic and group names with `<namespace>%`. Default none. */
  namespace?: string;
  /** Access key and secret for an ACL-enabled RocketMQ (gRPC requests are signed with them). */
  credentials?: { accessKey: string; accessSecret: string };
  /**
   * The name server's remoting address (`host:port`). When set, start() makes this node's group orderly
   * and, when new, starts it at the log's tail, over the remoting admin protocol (the gRPC API cannot),
   * and the log is read from the broker the name server names, by offset over remoting (pull_reader.ts).
   * When empty (an ACL-enabled RocketMQ: remoting requests are not signed here), an operator must have
   * created the group with consumeMessageOrderly=true, and the log is read by popping that group through
   * the proxy (reader.ts); a non-orderly group would hand entries out of order after a redelivery.
   * Default `127.0.0.1:9876`.
   */
  nameServer?: string;
  /** Overrides the consumer group derived from nodeId (`mqtt-node-<nodeId>`). */
  consumerGroup?: string;
  /** The FIFO message group every node sends with. Default `mqtt-log`. */
  messageGroup?: string;
  /** One gRPC request's timeout (the client takes >= 1000). Default 3000. */
  requestTimeoutMs?: number;
  /** How long start() may take before it rejects (the client's own startup has no timeout). Default 20000. */
  startTimeoutMs?: number;
  /** An append resolves or rejects within about this long, retries included. Default 10000. */
  appendTimeoutMs?: number;
  /** Entries are packed into RocketMQ messages of at most this many bytes. Default 1 MiB. */
  maxBatchBytes?: number;
  /**
   * The largest message the service takes; a single entry larger than maxBatchBytes goes alone in a
   * message up to this size, a larger one is refused. Default 4 MiB less 16 KiB (the broker and proxy cap
   * a message at 4 MiB including its properties).
   */
  maxMessageBytes?: number;
  /** Appends waiting to be sent beyond this many bytes are refused at once. Default 64 MiB. */
  maxPendingBytes?: number;
  /**
   * A lone message smaller than `lingerBytes` waits up to `lingerMs` after its first entry for more before it
   * is sent: fewer, larger messages at moderate rates. Defaults 2 ms and 64 KiB; 0 ms sends at once.
   */
  lingerMs?: number;
  lingerBytes?: number;
  /** RocketMQ messages per receive or pull. Default 32 (the proxy's cap). */
  receiveBatch?: number;
  /**
   * How long a popped batch stays invisible to redelivery; renewed while apply runs (only when the log is
   * read through the proxy). Min 10000. Default 30000.
   */
  invisibleMs?: number;
  /**
   * Long-poll duration of one pull (the broker holds it that long when nothing is there; stop() drops
   * it) or receive (the proxy clamps it to 5–20 s; stop() waits for it). Default 5000.
   */
  awaitMs?: number;
  /** How long stop() waits for appends in flight and the batch being applied. Default 15000. */
  stopTimeoutMs?: number;
  logger?: ClusterLogLogger;
}

export type ResolvedOptions = Required<Omit<RocketMqLogOptions, "credentials">> & {
  credentials: RocketMqLogOptions["credentials"];
};

const MIB = 1024 * 1024;

export function resolveOptions(options: RocketMqLogOptions): ResolvedOptions {
  const resolved: ResolvedOptions = {
    topic: "mqtt_log",
    namespace: "",
    nameServer: "127.0.0.1:9876",
    consumerGroup: consumerGroupFor(options.nodeId),
    messageGroup: "mqtt-log",
    requestTimeoutMs: 3000,
    startTimeoutMs: 20000,
    appendTimeoutMs: 10000,
    maxBatchBytes: MIB,
    maxMessageBytes: 4 * MIB - 16 * 1024,
    maxPendingBytes: 64 * MIB,
    lingerMs: 2,
    lingerBytes: 64 * 1024,
    receiveBatch: 32,
    invisibleMs: 30000,
    awaitMs: 5000,
    stopTimeoutMs: 15000,
    logger: silentLogger,
    ...withoutUndefined(options),
    endpoints: options.endpoints,
    nodeId: options.nodeId,
    credentials: options.credentials,
  };
  if (!resolved.nodeId) throw new RangeError("nodeId must not be empty");
  if (resolved.requestTimeoutMs < 1000) throw new RangeError("requestTimeoutMs must be >= 1000");
  if (resolved.invisibleMs < 10000) {
    throw new RangeError("invisibleMs must be >= 10000 (the proxy's minimum)");
  }
  if (resolved.maxBatchBytes > resolved.maxMessageBytes) {
    throw new RangeError("maxBatchBytes must not exceed maxMessageBytes");
  }
  return resolved;
}

function withoutUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/**
 * This node's consumer group: `mqtt-node-<nodeId>` when the id is within RocketMQ's group alphabet
 * ([A-Za-z0-9_-]) and short; otherwise the id with other characters replaced, cut, and a hash of the
 * whole id appended, so two ids never share a cursor.
 */
export function consumerGroupFor(nodeId: string): string {
  const safe = nodeId.replace(/[^A-Za-z0-9_-]/g, "_");
  if (safe === nodeId && nodeId.length <= 64) return `mqtt-node-${nodeId}`;
  const hash = createHash("sha256").update(nodeId).digest("hex").slice(0, 16);
  return `mqtt-node-${safe.slice(0, 48)}-${hash}`;
}

/** A resource name as the broker stores it (the proxy wraps names with the namespace). */
export function brokerName(namespace: string, name: string): string {
  return namespace ? `${namespace}%${name}` : name;
}

export const silentLogger: ClusterLogLogger = { info() {}, warn() {}, error() {} };

/**
 * The client logs printf-style; its default logger writes ~/logs/rocketmq and breaks after the first
 * client's shutdown, so every client gets this one. Client errors (one per failed request during an
 * outage) become at most one warning per 5 s.
 */
export function clientLogger(logger: ClusterLogLogger): {
  info(...args: unknown[]): void;
  warn(...args: unknown[]): void;
  error(...args: unknown[]): void;
  debug(...args: unknown[]): void;
} {
  let quietUntil = 0;
  const report = (args: unknown[]) => {
    const now = Date.now();
    if (now < quietUntil) return;
    quietUntil = now + 5000;
    logger.warn("cluster_log_client", { message: format(...args) });
  };
  return { info() {}, debug() {}, warn: report, error: report };
}

/** Rejects with `message` when `promise` has not settled within `ms`. */
export function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** An error's message, with its causes (the client wraps the gRPC error that says what went wrong). */
export function describe(error: unknown): string {
  const parts: string[] = [];
  for (
    let e: unknown = error;
    e !== undefined && parts.length < 4;
    e = e instanceof Error ? e.cause : undefined
  ) {
    parts.push(e instanceof Error ? e.message : String(e));
  }
  return parts.join(": ");
}
