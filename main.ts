/**
 * mqtt-proxy's composition root: argv → config → logging → broker → connection manager → listeners,
 * plus signals and graceful drain. The only file that names concrete adapters.
 */
import { createAuthenticator, createAuthorizer, readAuthFile, runPasswdCommand } from "./src/auth/mod.ts";
import { Broker } from "./src/broker/mod.ts";
import { type Config, ConfigError, loadConfig } from "./src/config/mod.ts";
import { BufferPool, ConnectionManager, ownerUsername, willRefusal } from "./src/connection/mod.ts";
import {
  createBrokerMetrics,
  createLogger,
  type HttpEndpoint,
  type Logger,
  type Registry,
  startHttpServer,
  startSysPublisher,
  timeFlush,
} from "./src/observe/mod.ts";
import type { SessionLimits } from "./src/session/mod.ts";
import { createEmbeddedStorage } from "./src/storage/embedded/mod.ts";
import { createMemoryStorage } from "./src/storage/memory/mod.ts";
import type { StorageAdapter } from "./src/storage/port.ts";
import { type Accepted, type Listener, listenTcp, listenTls, listenWebSocket } from "./src/transport/mod.ts";

export const VERSION = "0.1.0";

const USAGE = `mqtt-proxy ${VERSION} — an MQTT 3.1/3.1.1/5.0 broker

Usage:
  mqtt-proxy [-c <file>]             run the broker (default config: conf/mqtt.properties)
  mqtt-proxy check-config -c <file>  validate a configuration file and exit
  mqtt-proxy passwd [-b|-D] <file> <user> [password]
                                     add, update (-b: password on the command line) or delete (-D) a user
  mqtt-proxy --version | --help
`;

/** A broker running in this process. */
export interface RunningBroker {
  broker: Broker;
  connections: ConnectionManager;
  listeners: Listener[];
  logger: Logger;
  /** Graceful stop: no new connections, v5 clients told 0x8B, drained within the configured deadline. */
  stop(): Promise<void>;
  /** Rereads the password, access-key, SCRAM and ACL files and the HTTP token (SIGHUP). */
  reload(): Promise<void>;
  /** The Prometheus metrics of this broker (served on /metrics when http.enabled). */
  metrics: Registry;
  /** The /metrics, /healthz and /readyz endpoint, when http.enabled. */
  http?: HttpEndpoint;
}

/** The storage adapter the configuration asks for: the embedded store by default, or none at all. */
function createStorage(config: Config, logger: Logger): StorageAdapter {
  if (config.storage.type === "memory") return createMemoryStorage();
  return createEmbeddedStorage({
    dir: config.storage.dir,
    durability: config.storage.durability,
    batchIntervalMs: config.storage.batchIntervalMs,
    maxDiskBytes: config.storage.maxDiskBytes || undefined,
    logger,
  });
}

/** Starts a broker from a validated configuration: storage recovered first, then the listeners. */
export async function startBroker(
  config: Config,
  logger: Logger = createLogger({ level: config.log.level }),
): Promise<RunningBroker> {
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
  const broker = new Broker({
    limits,
    maxSessionExpiry: config.mqtt.maxSessionExpiry,
    sharedSubscriptionStrategy: config.mqtt.sharedSubscriptionStrategy,
    storage,
    observeFlush: timeFlush,
    // A will is published long after its CONNECT: the ACL may have been reloaded since.
    authorizeWill: (clientId, owner, will) => {
      const refusal = willRefusal(will.topic, { clientId, username: ownerUsername(owner) }, authorizer);
      if (refusal !== undefined) logger.info("will.denied", { clientId, topic: will.topic, reason: refusal });
      return refusal === undefined;
    },
  });
  broker.restore(snapshot);
  logger.info("storage.recovered", {
    type: config.storage.type,
    sessions: broker.sessionCount,
    subscriptions: broker.subscriptionCount,
    retained: broker.retained.size,
  });
  const connections = new ConnectionManager({
    broker,
    logger,
    connectTimeoutMs: config.mqtt.connectTimeoutMs,
    outboxHighWaterMark: Math.max(1 << 20, config.mqtt.maxPacketSize),
    readBuffers: new BufferPool(64 * 1024, 256),
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
      maxSessionExpiry: config.mqtt.maxSessionExpiry,
      serverReference: config.mqtt.serverReference,
      responseInformation: config.mqtt.responseInformation,
    },
  }, config.mqtt.maxConnections);

  const listeners: Listener[] = [];
  const listenerCounts: { name: string; open: number; total: number }[] = [];
  const metrics = createBrokerMetrics({
    listeners: () => listenerCounts,
    traffic: () => connections.traffic(),
    drops: () => broker.stats.drops,
    logins: () => authenticator.methodStats(),
    sessions: () => broker.sessionTotals(),
  });
  let draining = false;
  let http: HttpEndpoint | undefined;
  try {
    for (const listenerConfig of config.listeners) {
      const { name, type, host: hostname, port, certFile, keyFile } = listenerConfig;
      const counts = { name, open: 0, total: 0 };
      listenerCounts.push(counts);
      const onAccept = (accepted: Accepted) => {
        // A certificate's CN becomes the user name only where the listener says so (see `authenticator`).
        if (!listenerConfig.useCnAsUsername) accepted = { ...accepted, certificateCommonName: undefined };
        const before = connections.connectionsTotal;
        connections.accept(accepted, () => counts.open, listenerConfig.maxConnections, () => counts.open--);
        if (connections.connectionsTotal === before) return; // refused over a limit: onDone never runs
        counts.open++;
        counts.total++;
      };
      const onError = (error: unknown) => logger.error("listener.accept_failed", { listener: name, error });
      const onRejected = (remote: string, error: unknown) => {
        logger.info("listener.client_rejected", { listener: name, remote, error });
        // on an mTLS listener a failed handshake is a refused credential: it slows the address like one
        if (type === "tls" && listenerConfig.caFile) authenticator.recordFailure(remote, "certificate");
      };
      if ((type === "ws" || type === "wss") && (listenerConfig.caFile || listenerConfig.requireClientCert)) {
        throw new ConfigError(`listener.${name}: client certificates are supported on tls listeners only`);
      }
      const listener = type === "tcp"
        ? listenTcp({ name, hostname, port }, onAccept, onError)
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
            handshakeTimeoutMs: config.mqtt.connectTimeoutMs,
            onHandshakeError: onRejected,
          },
          onAccept,
          onError,
        )
        : listenWebSocket(
          {
            name,
            hostname,
            port,
            path: listenerConfig.path,
            tls: type === "wss" ? { certFile: certFile!, keyFile: keyFile! } : undefined,
            maxBufferedBytes: Math.max(4 << 20, 2 * config.mqtt.maxPacketSize),
            onRejected,
          },
          onAccept,
          onError,
        );
      listeners.push(listener);
      logger.info("listener.started", {
        listener: listener.name,
        type: listenerConfig.type,
        host: listener.hostname,
        port: listener.port,
      });
    }
    if (config.http.enabled) {
      let lastStorageDetail: string | undefined;
      http = startHttpServer(
        { hostname: config.http.host, port: config.http.port },
        {
          metrics: () => metrics.render(),
          live: () => true,
          // What callers see carries no paths or error texts (the store's detail names its directory): the
          // detail goes to the log, once per change.
          ready: () => {
            const health = storage.health();
            if (!health.ok && health.detail !== lastStorageDetail) {
              logger.warn("storage.unhealthy", { detail: health.detail });
            }
            lastStorageDetail = health.ok ? undefined : health.detail;
            if (draining) return { ok: false, detail: "shutting down" };
            if (!health.ok) return { ok: false, detail: "storage unavailable" };
            return { ok: true, detail: `${listeners.length} listener(s) up` };
          },
        },
        (error) => logger.error("http.failed", { error }),
        { bearerToken: () => httpToken.value },
      );
      logger.info("http.started", { host: http.hostname, port: http.port });
      if (httpToken.value === undefined && !isLoopback(http.hostname)) {
        logger.warn("http.unauthenticated", {
          host: http.hostname,
          hint:
            "anyone who can reach this address reads /metrics; set http.auth_token_file or bind 127.0.0.1",
        });
      }
    }
  } catch (error) {
    for (const listener of listeners) listener.close();
    broker.stop();
    await storage.stop();
    throw error;
  }

  /** SIGHUP: reread credential and ACL files and the HTTP token; connections stay up, a bad file keeps the old. */
  const reload = async () => {
    const sources = [["authentication", authenticator], ["acl", authorizer], [
      "http_token",
      httpToken,
    ]] as const;
    for (const [name, source] of sources) {
      try {
        await source?.reload();
        logger.info("config.reloaded", { part: name });
      } catch (error) {
        logger.error("config.reload_failed", { part: name, error });
      }
    }
  };

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
      draining = true;
      for (const listener of listeners) listener.close();
      await Promise.all(listeners.map((listener) => listener.done));
      await connections.shutdown(config.shutdown.drainTimeoutMs);
      broker.stop();
      await storage.stop();
      await http?.close();
      logger.info("broker.stopped", {});
    })();
  return { broker, connections, listeners, logger, stop, reload, metrics, http };
}

/** The HTTP bearer token from `http.auth_token_file`, reread on reload; undefined without a file. */
class HttpToken {
  value: string | undefined;
  constructor(private readonly file: string | undefined) {}

  async reload(): Promise<void> {
    if (this.file === undefined) return;
    const token = (await readAuthFile(this.file)).trim();
    // a short token can be guessed over the network; refusing to start beats serving metrics to anyone
    if (token.length < 16 || /\s/.test(token)) {
      throw new ConfigError(
        `${this.file}: the HTTP token must be at least 16 characters without white space`,
      );
    }
    this.value = token;
  }
}

function isLoopback(hostname: string): boolean {
  return hostname === "localhost" || hostname === "::1" || hostname.startsWith("127.");
}

function argValue(args: string[], ...names: string[]): string | undefined {
  for (let i = 0; i < args.length; i++) {
    if (names.includes(args[i])) return args[i + 1];
  }
  return undefined;
}

async function main(args: string[]): Promise<number> {
  if (args.includes("--help") || args.includes("-h")) {
    await Deno.stdout.write(new TextEncoder().encode(USAGE));
    return 0;
  }
  if (args.includes("--version") || args.includes("-v")) {
    await Deno.stdout.write(new TextEncoder().encode(`mqtt-proxy ${VERSION}\n`));
    return 0;
  }
  if (args[0] === "passwd") return await runPasswdCommand(args.slice(1));
  const configPath = argValue(args, "-c", "--config") ?? "conf/mqtt.properties";
  const bootLogger = createLogger({ level: "info" });
  let config: Config;
  try {
    config = await loadConfig(configPath);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    bootLogger.error("config.invalid", { message: error.message });
    await Deno.stderr.write(new TextEncoder().encode(`mqtt-proxy: ${error.message}\n`));
    return 2;
  }
  if (args[0] === "check-config") {
    await Deno.stdout.write(new TextEncoder().encode(`${configPath}: OK\n`));
    return 0;
  }
  const logger = createLogger({ level: config.log.level });
  let running: RunningBroker;
  try {
    running = await startBroker(config, logger);
  } catch (error) {
    logger.error("broker.start_failed", { error });
    await Deno.stderr.write(
      new TextEncoder().encode(`mqtt-proxy: ${error instanceof Error ? error.message : error}\n`),
    );
    return 1;
  }
  Deno.addSignalListener("SIGHUP", () => void running.reload());
  logger.info("broker.started", { version: VERSION, config: configPath, pid: Deno.pid });
  const stopped = new Promise<void>((resolve) => {
    const onSignal = (signal: Deno.Signal) => {
      logger.info("signal.received", { signal });
      running.stop().then(resolve);
    };
    Deno.addSignalListener("SIGINT", () => onSignal("SIGINT"));
    Deno.addSignalListener("SIGTERM", () => onSignal("SIGTERM"));
  });
  await stopped;
  return 0;
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
