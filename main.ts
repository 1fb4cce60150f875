/**
 * mqtt-proxy's composition root: argv → config → logging → broker → connection manager → listeners,
 * plus signals and graceful drain. The only file that names concrete adapters.
 */
import {
  bearerTokenOf,
  createAuthenticator,
  createAuthorizer,
  readBearerTokenFile,
  runPasswdCommand,
  tokenMatches,
} from "./src/auth/mod.ts";
import { type AdminApp, createAdminApp, createBrokerView } from "./src/admin/mod.ts";
import { getHeapStatistics } from "node:v8";
import { Broker, type Clock, MemoryBudget, ownerUsername, systemClock } from "./src/broker/mod.ts";
import { parseCommandLine } from "./src/cli/args.ts";
import { ClusterNode, type ClusterNodeOptions } from "./src/cluster/mod.ts";
import { describeListenError, exposure, logFormat } from "./src/cli/exposure.ts";
import { preflight } from "./src/cli/preflight.ts";
import { type Config, ConfigError, loadConfig } from "./src/config/mod.ts";
import { BufferPool, clientPermissions, ConnectionManager, willRefusal } from "./src/connection/mod.ts";
import {
  createBrokerMetrics,
  createLogger,
  httpHandler,
  type Logger,
  MemoryReclaimer,
  rateLimited,
  type Registry,
  startSysPublisher,
  TrafficMetrics,
} from "./src/observe/mod.ts";
import type { SessionLimits } from "./src/session/mod.ts";
import { createEmbeddedStorage } from "./src/storage/embedded/mod.ts";
import { createMemoryStorage } from "./src/storage/memory/mod.ts";
import type { StorageAdapter } from "./src/storage/port.ts";
import {
  type Accepted,
  epollStopped,
  type HttpEndpoint,
  listenEpollTcp,
  type Listener,
  listenTcp,
  listenTls,
  listenWebSocket,
  serveHttp,
} from "./src/transport/mod.ts";

export const VERSION = "0.1.0";

/** How often the memory in use is compared with limits.memory_bytes. */
const MEMORY_SAMPLE_MS = 250;

/** Permissions rebuilt for a session whose client is connected elsewhere: its holder logs the denials. */
const IGNORE_DENIALS = { publishDenied() {} };

/** A failure that repeats (accepting at EMFILE) is logged at most this often, with the count it skipped. */
const ACCEPT_ERROR_LOG_MS = 10_000;

/** A broker running in this process. */
export interface RunningBroker {
  broker: Broker;
  connections: ConnectionManager;
  listeners: Listener[];
  logger: Logger;
  /** Graceful stop: no new connections, v5 clients told 0x8B, drained within the configured deadline. */
  stop(): Promise<void>;
  /** Rereads the password, access-key, SCRAM, ACL and admin files and the HTTP token (SIGHUP). */
  reload(): Promise<{ reloaded: string[]; failed: { part: string; error: string }[] }>;
  /** The Prometheus metrics of this broker (served on /metrics when http.enabled). */
  metrics: Registry;
  /** The /metrics, /healthz and /readyz endpoint, when http.enabled. */
  http?: HttpEndpoint;
}

/** The memory store: storage type `memory`, or durability `memory`, which keeps nothing on disk. */
function usesMemoryStorage(config: Config): boolean {
  return config.storage.type === "memory" || config.storage.durability === "memory";
}

/** The storage adapter the configuration asks for: the embedded store by default, or none at all. */
function createStorage(config: Config, logger: Logger): StorageAdapter {
  if (config.storage.type === "memory" || config.storage.durability === "memory") {
    return createMemoryStorage();
  }
  return createEmbeddedStorage({
    dir: config.storage.dir,
    durability: config.storage.durability,
    batchIntervalMs: config.storage.batchIntervalMs,
    maxDiskBytes: config.storage.maxDiskBytes || undefined,
    logger,
  });
}

/**
 * Joins the cluster of `config.cluster`: the RocketMQ log (the client is loaded only here, so a single
 * node never needs it) and the node that replicates the broker through it.
 */
async function startClusterNode(
  config: Config,
  logger: Logger,
  clock: Clock,
  meta: ReadonlyMap<string, string>,
  createBroker: ClusterNodeOptions["createBroker"],
  permissionsFor: ClusterNodeOptions["permissionsFor"],
): Promise<ClusterNode> {
  const { RocketMqLog } = await import("./src/storage/rocketmq/mod.ts");
  const settings = config.cluster;
  const nodeId = settings.nodeId || Deno.hostname();
  const secret = settings.rocketmqSecretKeyFile
    ? (await Deno.readTextFile(settings.rocketmqSecretKeyFile)).split("\n")[0].trim()
    : undefined;
  const log = new RocketMqLog({
    endpoints: settings.rocketmqEndpoints,
    nodeId,
    topic: settings.rocketmqTopic,
    namespace: settings.rocketmqNamespace,
    nameServer: settings.rocketmqNameServer,
    credentials: settings.rocketmqAccessKey && secret
      ? { accessKey: settings.rocketmqAccessKey, accessSecret: secret }
      : undefined,
    appendTimeoutMs: settings.appendTimeoutMs,
    logger,
  });
  await log.start();
  logger.info("cluster.started", {
    nodeId,
    endpoints: settings.rocketmqEndpoints,
    topic: settings.rocketmqTopic,
  });
  return new ClusterNode({
    nodeId,
    log,
    clock,
    logger,
    heartbeatMs: settings.heartbeatMs,
    nodeTimeoutMs: settings.nodeTimeoutMs,
    applied: meta.has("cluster.applied") ? { position: BigInt(meta.get("cluster.applied")!) } : undefined,
    joinInterrupted: meta.has("cluster.join"),
    createBroker,
    permissionsFor,
  });
}

/** What a test (or an embedding program) may inject into a broker. */
export interface BrokerEnvironment {
  /** Time, timers and chance for sessions, wills and shared subscriptions (default: the real clock). */
  clock?: Clock;
}

/** Starts a broker from a validated configuration: storage recovered first, then the listeners. */
export async function startBroker(
  config: Config,
  logger: Logger = createLogger({ level: config.log.level }),
  environment: BrokerEnvironment = {},
): Promise<RunningBroker> {
  // The same checks as check-config, so that what it calls OK starts and what it refuses does not.
  const problems = await preflight(config);
  if (problems.length > 0) throw new ConfigError(problems.join("\n"));
  const traffic = new TrafficMetrics();
  const storage = createStorage(config, logger);
  const snapshot = await storage.start();
  const authenticator = await createAuthenticator({
    allowAnonymous: config.auth.allowAnonymous,
    passwordFile: config.auth.passwordFile,
    accessKeysFile: config.auth.accessKeysFile,
    scramFile: config.auth.scramFile,
    certificateUsernames: config.listeners.some((listener) => listener.useCnAsUsername),
    failureDelay: { baseMs: config.auth.failureDelayMs, maxMs: config.auth.failureDelayMaxMs },
  });
  const authorizer = config.auth.aclFile
    ? await createAuthorizer({ aclFile: config.auth.aclFile, defaultPolicy: config.auth.aclDefault })
    : undefined;
  const httpToken = new HttpToken(config.http.authTokenFile);
  await httpToken.reload();
  const limits: SessionLimits = {
    maxInflight: config.mqtt.maxInflight,
    receiveMaximum: config.mqtt.receiveMaximum,
    maxQueuedMessages: config.mqtt.maxQueuedMessages,
    maxQueuedBytes: config.mqtt.maxQueuedBytes,
    queueDropPolicy: config.mqtt.queueDropPolicy,
    queueQos0Offline: config.mqtt.queueQos0Offline,
    maxTopicAlias: config.mqtt.maxTopicAlias,
    maxSubscriptionsPerClient: config.mqtt.maxSubscriptionsPerClient,
    maxTopicLevels: config.mqtt.maxTopicLevels,
    maxQos: config.mqtt.maxQos,
    retainAvailable: config.mqtt.retainAvailable,
    wildcardSubscriptionAvailable: config.mqtt.wildcardSubscriptionAvailable,
    subscriptionIdentifiersAvailable: config.mqtt.subscriptionIdentifiersAvailable,
    sharedSubscriptionAvailable: config.mqtt.sharedSubscriptionAvailable,
  };
  const clock = environment.clock ?? systemClock;
  // A client's rules rebuilt from who owns its session: for a cluster node running a session whose client
  // is connected elsewhere (its holder logs the denials).
  const permissionsFor = (clientId: string, owner: string | undefined) =>
    clientPermissions({ clientId, username: ownerUsername(owner) }, authorizer, IGNORE_DENIALS);
  const memoryBudget = new MemoryBudget(config.limits.memoryBytes || automaticMemoryBudget());
  const brokerOptions = {
    memoryBudget,
    limits,
    maxSessionExpiry: config.mqtt.maxSessionExpiry,
    sharedSubscriptionStrategy: config.mqtt.sharedSubscriptionStrategy,
    storage,
    observeFlush: traffic.timeFlush,
    retainedLimits: { maxMessages: config.mqtt.maxRetainedMessages, maxBytes: config.mqtt.maxRetainedBytes },
    // The memory store keeps payloads in memory anyway; a cluster's nodes must send a SUBSCRIBE's retained
    // messages in the same turn, which a read from the store would not allow.
    retainedPayloadsInStore: !usesMemoryStorage(config) && !config.cluster.enabled,
    // The memory store keeps nothing across a restart, so on a single node sessions hold their own queues.
    queuesInStore: !usesMemoryStorage(config) || config.cluster.enabled,
    sessionQuota: {
      maxSessions: config.mqtt.maxSessions,
      maxPersistentPerUser: config.mqtt.maxPersistentSessionsPerUser,
      maxPersistentPerAddress: config.mqtt.maxPersistentSessionsPerAddress,
    },
    clock,
    permissionsFor,
    // A will is published long after its CONNECT: the ACL may have been reloaded since.
    authorizeWill: (clientId: string, owner: string | undefined, will: { topic: string }) => {
      const refusal = willRefusal(will.topic, { clientId, username: ownerUsername(owner) }, authorizer);
      if (refusal !== undefined) logger.info("will.denied", { clientId, topic: will.topic, reason: refusal });
      return refusal === undefined;
    },
  };
  const cluster = config.cluster.enabled
    ? await startClusterNode(
      config,
      logger,
      clock,
      snapshot.meta,
      (hooks) => new Broker({ ...brokerOptions, ...hooks }),
      permissionsFor,
    )
    : undefined;
  const broker = cluster?.broker ?? new Broker(brokerOptions);
  // Quiet is measured by the broker's messages and connects.
  const reclaimer = new MemoryReclaimer(
    logger,
    () => broker.stats.messagesReceived + broker.stats.messagesSent + broker.stats.connectsAccepted,
    performance.now(),
  );
  const sampleMemory = () => {
    const before = Deno.memoryUsage();
    reclaimer.sampled(before.heapUsed + before.external, performance.now());
    const { heapUsed, external } = Deno.memoryUsage(); // after the collection the reclaimer may have run
    const turned = memoryBudget.sample(
      heapUsed + external,
      () => reclaimer.collectForBudget(performance.now()),
    );
    const fields = { usedBytes: memoryBudget.usedBytes, limitBytes: memoryBudget.limitBytes };
    if (turned === "over") logger.warn("memory.over_budget", { ...fields, refusing: "new client messages" });
    else if (turned === "under") logger.info("memory.under_budget", fields);
  };
  sampleMemory();
  const memoryTimer = setInterval(sampleMemory, MEMORY_SAMPLE_MS);
  Deno.unrefTimer(memoryTimer); // sampling never keeps the process alive (a failed start exits)
  await broker.restore(snapshot);
  cluster?.start();
  logger.info("storage.recovered", {
    type: config.storage.type,
    sessions: broker.sessionCount,
    subscriptions: broker.subscriptionCount,
    retained: broker.retained.size,
  });
  const connections = new ConnectionManager({
    broker: cluster ?? broker,
    traffic,
    logger,
    connectTimeoutMs: config.mqtt.connectTimeoutMs,
    outboxHighWaterMark: config.mqtt.maxOutboundBytes,
    // Large buffers for busy connections' reads and writes; small write buffers for the first frames of a
    // turn (acks, a CONNACK: a connection storm holds one each while it is written).
    readBuffers: new BufferPool(64 * 1024, 256),
    writeBuffers: new BufferPool(4 * 1024, 256),
    generateClientId: () => `auto-${crypto.randomUUID()}`,
    // A verified client certificate's CN reaches the authenticator only from listeners with
    // use_cn_as_username (see onAccept): there the certificate is the credential and its CN the user name.
    authenticator,
    authorizer,
    authMethods: authenticator.methods,
    takeover: config.mqtt.takeover,
    settings: {
      limits,
      maxPacketSize: config.mqtt.maxPacketSize,
      maxKeepAlive: config.mqtt.maxKeepAlive,
      maxClientIdLength: config.mqtt.maxClientIdLength,
      allowZeroLengthClientId: config.mqtt.allowZeroLengthClientId,
      allowControlCharacters: config.mqtt.allowControlCharacters,
      maxSessionExpiry: config.mqtt.maxSessionExpiry,
      serverReference: config.mqtt.serverReference,
      responseInformation: config.mqtt.responseInformation,
    },
  }, config.mqtt.maxConnections);

  const listeners: Listener[] = [];
  const listenerCounts: { name: string; open: number; total: number }[] = [];
  const metrics = createBrokerMetrics(traffic, {
    listeners: () => listenerCounts,
    traffic: () => connections.traffic(),
    drops: () => broker.stats.drops,
    logins: () => authenticator.methodStats(),
    sessions: () => broker.sessionTotals(),
    memory: () => ({
      usedBytes: memoryBudget.usedBytes,
      limitBytes: memoryBudget.limitBytes,
      refused: memoryBudget.refused,
    }),
    cluster: cluster ? () => cluster.metrics() : undefined,
  });
  let draining = false;
  let http: HttpEndpoint | undefined;
  let admin: AdminApp | undefined;
  try {
    for (const listenerConfig of config.listeners) {
      const { name, type, port, certFile, keyFile } = listenerConfig;
      const { host: hostname, restricted } = exposure(config, listenerConfig);
      if (restricted) {
        logger.warn("listener.loopback_only", {
          listener: name,
          configured: listenerConfig.host,
          host: hostname,
          why: "no credentials are configured and auth.allow_anonymous is not set",
          fix:
            "configure auth.password_file (or another credential), or set auth.allow_anonymous = true to " +
            "let anonymous clients in from the network",
        });
      }
      const counts = { name, open: 0, total: 0 };
      listenerCounts.push(counts);
      const onAccept = (accepted: Accepted) =>
        connections.accept(accepted, counts, listenerConfig.maxConnections);
      // Out of descriptors (EMFILE/ENFILE), accept fails every 100 ms until some are free: log it, not each.
      const onError = rateLimited<unknown>(
        ACCEPT_ERROR_LOG_MS,
        (error, suppressed) => logger.error("listener.accept_failed", { listener: name, error, suppressed }),
      );
      const onRejected = (remote: string, error: unknown) => {
        logger.info("listener.client_rejected", { listener: name, remote, error });
        // on an mTLS listener a failed handshake is a refused credential: it slows the address like one
        if (type === "tls" && listenerConfig.caFile) authenticator.recordFailure(remote, "certificate");
      };
      const listener = await (async () =>
        type === "tcp"
          ? (listenerConfig.io === "epoll" ? listenEpollTcp : listenTcp)(
            { name, hostname, port },
            onAccept,
            onError,
          )
          : type === "tls"
          ? await listenTls(
            {
              name,
              hostname,
              port,
              certFile: certFile!,
              keyFile: keyFile!,
              caFile: listenerConfig.caFile,
              requireClientCert: listenerConfig.requireClientCert,
              // A certificate's CN becomes the user name only where the listener says so (see `authenticator`).
              useCommonName: listenerConfig.useCnAsUsername,
              onHandshakeError: onRejected,
            },
            onAccept,
            onError,
          )
          : await listenWebSocket(
            {
              name,
              hostname,
              port,
              path: listenerConfig.path,
              tls: type === "wss" ? { certFile: certFile!, keyFile: keyFile! } : undefined,
              onRejected,
            },
            onAccept,
            onError,
          ))().catch((error) => {
          throw describeListenError(`listener ${name} (${type})`, hostname, port, error);
        });
      listeners.push(listener);
      logger.info("listener.started", {
        listener: listener.name,
        type: listenerConfig.type,
        host: listener.hostname,
        port: listener.port,
      });
    }
    if (config.admin.enabled) {
      const view = createBrokerView({
        broker,
        cluster,
        connections,
        traffic,
        config,
        version: VERSION,
        startedAt: Date.now(),
        listeners: () =>
          listeners.map((listener, index) => ({
            name: listener.name,
            hostname: listener.hostname,
            port: listener.port,
            open: listenerCounts[index].open,
            total: listenerCounts[index].total,
          })),
        reload: () => reload(),
      });
      admin = await createAdminApp(config, view, logger);
    }
    if (config.http.enabled) {
      const { host, port } = config.http;
      let lastStorageDetail: string | undefined;
      try {
        const onHttpError = rateLimited<unknown>(
          ACCEPT_ERROR_LOG_MS,
          (error, suppressed) => logger.error("http.failed", { error, suppressed }),
        );
        const options = {
          hostname: host,
          port,
          maxConnections: config.http.maxConnections,
          requestTimeoutMs: config.mqtt.connectTimeoutMs,
        };
        http = serveHttp(
          options,
          httpHandler(
            {
              metrics: () => metrics.render(),
              live: () => true,
              // What callers see carries no paths or error texts (the store's detail names its directory):
              // the detail goes to the log, once per change.
              ready: () => {
                const health = storage.health();
                if (!health.ok && health.detail !== lastStorageDetail) {
                  logger.warn("storage.unhealthy", { detail: health.detail });
                }
                lastStorageDetail = health.ok ? undefined : health.detail;
                if (draining) return { ok: false, detail: "shutting down" };
                if (!health.ok) return { ok: false, detail: "storage unavailable" };
                const clustered = cluster?.health();
                if (clustered && !clustered.ok) return { ok: false, detail: clustered.detail };
                const detail = `${listeners.length} listener(s) up`;
                return { ok: true, detail: clustered ? `${detail}; ${clustered.detail}` : detail };
              },
            },
            admin?.handle,
            { authorized: (request) => httpToken.admits(request), onError: onHttpError },
          ),
          onHttpError,
        );
      } catch (error) {
        throw describeListenError("the HTTP endpoint (http.port)", host, port, error);
      }
      logger.info("http.started", {
        host: http.hostname,
        port: http.port,
        ...(admin ? { dashboard: `http://${hostForUrl(http.hostname)}:${http.port}/dashboard/` } : {}),
      });
      if (httpToken.value === undefined && !isLoopback(http.hostname)) {
        logger.warn("http.unauthenticated", {
          host: http.hostname,
          hint:
            "anyone who can reach this address reads /metrics; set http.auth_token_file or bind 127.0.0.1",
        });
      }
    }
  } catch (error) {
    clearInterval(memoryTimer);
    for (const listener of listeners) listener.close();
    broker.stop();
    await storage.stop();
    throw error;
  }

  /** SIGHUP: reread credential, ACL and admin files and the HTTP token; connections stay up, a bad file keeps the old. */
  async function reload() {
    const sources = [["authentication", authenticator], ["acl", authorizer], ["admin", admin], [
      "http_token",
      httpToken,
    ]] as const;
    const result = { reloaded: [] as string[], failed: [] as { part: string; error: string }[] };
    for (const [name, source] of sources) {
      if (!source) continue;
      try {
        await source.reload();
        logger.info("config.reloaded", { part: name });
        result.reloaded.push(name);
      } catch (error) {
        logger.error("config.reload_failed", { part: name, error });
        result.failed.push({ part: name, error: error instanceof Error ? error.message : String(error) });
      }
    }
    return result;
  }

  const stopSys = config.sys.intervalSeconds > 0
    ? startSysPublisher({
      version: VERSION,
      intervalSeconds: config.sys.intervalSeconds,
      sample: () => ({
        clientsConnected: broker.stats.connectedClients,
        clientsTotal: broker.sessionCount,
        messagesReceived: broker.stats.messagesReceived,
        messagesSent: broker.stats.messagesSent,
        messagesDropped: Object.values(broker.stats.drops).reduce((sum, count) => sum + count, 0),
        subscriptions: broker.subscriptionCount,
        retained: broker.retained.size,
        ...connections.traffic(),
      }),
      publish: (topic, payload) =>
        broker.publish({
          topic,
          payload: new TextEncoder().encode(payload),
          qos: 0,
          retain: true,
          properties: {},
          publisherId: "",
        }),
    })
    : undefined;

  let stopping: Promise<void> | undefined;
  const stop = () =>
    stopping ??= (async () => {
      logger.info("broker.stopping", { connections: connections.connectionCount });
      stopSys?.();
      clearInterval(memoryTimer);
      draining = true;
      for (const listener of listeners) listener.close();
      await Promise.all(listeners.map((listener) => listener.done));
      await connections.shutdown(config.shutdown.drainTimeoutMs);
      await epollStopped();
      await cluster?.stop();
      broker.stop();
      await storage.stop();
      await http?.close();
      logger.info("broker.stopped", {});
    })();
  return { broker, connections, listeners, logger, stop, reload, metrics, http };
}

/**
 * `limits.memory_bytes = 0`: half the machine's memory, and at most three quarters of the JavaScript heap's
 * limit, which the heap part of the usage cannot pass without ending the process.
 */
function automaticMemoryBudget(): number {
  return Math.floor(Math.min(Deno.systemMemoryInfo().total / 2, getHeapStatistics().heap_size_limit * 0.75));
}

/** A host as it goes into a URL: IPv6 in brackets, a wildcard address as loopback. */
function hostForUrl(host: string): string {
  if (host === "0.0.0.0") return "127.0.0.1";
  if (host === "::") return "[::1]";
  return host.includes(":") ? `[${host}]` : host;
}

async function write(stream: { write(bytes: Uint8Array): Promise<number> }, text: string): Promise<void> {
  const bytes = new TextEncoder().encode(text);
  let written = 0;
  while (written < bytes.length) written += await stream.write(bytes.subarray(written));
}

/** The HTTP bearer token from `http.auth_token_file`, reread on reload; undefined without a file. */
class HttpToken {
  value: string | undefined;
  constructor(private readonly file: string | undefined) {}

  async reload(): Promise<void> {
    if (this.file !== undefined) this.value = await readBearerTokenFile(this.file);
  }

  /** Whether a request may be answered: there is no token, or it carries it. */
  admits(request: Request): boolean {
    if (this.value === undefined) return true;
    const presented = bearerTokenOf(request);
    return presented !== undefined && tokenMatches(presented, this.value);
  }
}

function isLoopback(hostname: string): boolean {
  return hostname === "localhost" || hostname === "::1" || hostname.startsWith("127.");
}

async function main(args: string[]): Promise<number> {
  const invocation = parseCommandLine(args, VERSION);
  switch (invocation.command) {
    case "help":
      await write(Deno.stdout, invocation.text);
      return 0;
    case "version":
      await write(Deno.stdout, `mqtt-proxy ${VERSION}\n`);
      return 0;
    case "error":
      await write(Deno.stderr, `mqtt-proxy: ${invocation.message}\n`);
      return 2;
    case "passwd":
    case "scram":
      return await runPasswdCommand(invocation.args, undefined, invocation.command);
  }
  const { configPath } = invocation;
  let config: Config;
  try {
    config = await loadConfig(configPath);
    const problems = await preflight(config);
    if (problems.length > 0) throw new ConfigError(problems.join("\n"));
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    await write(Deno.stderr, `mqtt-proxy: ${configPath}: ${error.message.replaceAll("\n", "\n  ")}\n`);
    return 2;
  }
  if (invocation.command === "check-config") {
    await write(Deno.stdout, `${configPath}: OK\n`);
    return 0;
  }
  const logger = createLogger({ level: config.log.level, format: logFormat(config.log.format) });
  let running: RunningBroker;
  try {
    running = await startBroker(config, logger);
  } catch (error) {
    logger.error("broker.start_failed", { error });
    await write(Deno.stderr, `mqtt-proxy: ${error instanceof Error ? error.message : error}\n`);
    return 1;
  }
  // Signal handlers first: whoever reads "broker.started" may signal at once.
  const stopped = new Promise<void>((resolve) => {
    // One line per signal received, saying what it does.
    Deno.addSignalListener("SIGHUP", () => {
      logger.info("signal.received", { signal: "SIGHUP", action: "reload" });
      void running.reload();
    });
    let stopping = false;
    const onStop = (signal: Deno.Signal) => {
      logger.info("signal.received", { signal, action: stopping ? "already stopping" : "stop" });
      if (stopping) return;
      stopping = true;
      running.stop().then(resolve);
    };
    Deno.addSignalListener("SIGINT", () => onStop("SIGINT"));
    Deno.addSignalListener("SIGTERM", () => onStop("SIGTERM"));
  });
  logger.info("broker.started", { version: VERSION, config: configPath, pid: Deno.pid });
  await stopped;
  return 0;
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
