/**
 * mqtt-proxy's composition root: argv → config → logging → broker → connection manager → listeners,
 * plus signals and graceful drain. The only file that names concrete adapters.
 */
import { Broker } from "./src/broker/mod.ts";
import { type Config, ConfigError, loadConfig } from "./src/config/mod.ts";
import { ConnectionManager } from "./src/connection/mod.ts";
import { createLogger, type Logger } from "./src/observe/mod.ts";
import type { SessionLimits } from "./src/session/mod.ts";
import { type Listener, listenTcp } from "./src/transport/mod.ts";

export const VERSION = "0.1.0";

const USAGE = `mqtt-proxy ${VERSION} — an MQTT 3.1/3.1.1/5.0 broker

Usage:
  mqtt-proxy [-c <file>]             run the broker (default config: conf/mqtt.properties)
  mqtt-proxy check-config -c <file>  validate a configuration file and exit
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
}

/** Starts a broker from a validated configuration. */
export function startBroker(config: Config, logger: Logger = createLogger({ level: config.log.level })): RunningBroker {
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
  });
  const connections = new ConnectionManager({
    broker,
    logger,
    connectTimeoutMs: config.mqtt.connectTimeoutMs,
    outboxHighWaterMark: Math.max(1 << 20, config.mqtt.maxPacketSize),
    generateClientId: () => `auto-${crypto.randomUUID()}`,
    settings: {
      limits,
      maxPacketSize: config.mqtt.maxPacketSize,
      maxKeepAlive: config.mqtt.maxKeepAlive,
      maxClientIdLength: config.mqtt.maxClientIdLength,
      allowZeroLengthClientId: config.mqtt.allowZeroLengthClientId,
      maxSessionExpiry: config.mqtt.maxSessionExpiry,
      serverReference: config.mqtt.serverReference,
    },
  }, config.mqtt.maxConnections);

  const listeners: Listener[] = [];
  try {
    for (const listenerConfig of config.listeners) {
      if (listenerConfig.type !== "tcp") {
        throw new ConfigError(`listener.${listenerConfig.name}.type: ${listenerConfig.type} is not supported yet`);
      }
      let open = 0;
      const listener = listenTcp(
        { name: listenerConfig.name, hostname: listenerConfig.host, port: listenerConfig.port },
        (accepted) => {
          connections.accept(accepted, () => open, listenerConfig.maxConnections, () => open--);
          open++;
        },
        (error) => logger.error("listener.accept_failed", { listener: listenerConfig.name, error }),
      );
      listeners.push(listener);
      logger.info("listener.started", {
        listener: listener.name,
        type: listenerConfig.type,
        host: listener.hostname,
        port: listener.port,
      });
    }
  } catch (error) {
    for (const listener of listeners) listener.close();
    throw error;
  }

  let stopping: Promise<void> | undefined;
  const stop = () =>
    stopping ??= (async () => {
      logger.info("broker.stopping", { connections: connections.connectionCount });
      for (const listener of listeners) listener.close();
      await Promise.all(listeners.map((listener) => listener.done));
      await connections.shutdown(config.shutdown.drainTimeoutMs);
      broker.stop();
      logger.info("broker.stopped", {});
    })();
  return { broker, connections, listeners, logger, stop };
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
  const running = startBroker(config, logger);
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
