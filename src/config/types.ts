/** One socket the broker accepts clients on, from the `listener.<name>.*` keys. */
export interface ListenerConfig {
  name: string;
  type: "tcp" | "tls" | "ws" | "wss";
  host: string;
  /** 0 binds an ephemeral port. */
  port: number;
  /** WebSocket upgrade path. */
  path: string;
  certFile?: string;
  keyFile?: string;
  caFile?: string;
  requireClientCert: boolean;
  useCnAsUsername: boolean;
  /** 0 = unlimited. */
  maxConnections: number;
  /** tcp only: Deno's sockets, or libc's from one epoll loop (src/transport/epoll.ts). */
  io: "runtime" | "epoll";
}

/**
 * The broker's whole configuration, camelCase versions of the `<section>.<key>` properties
 * documented in src/config/schema.ts (and conf/mqtt.properties). Limits of 0 mean unlimited
 * where the schema says so.
 */
export interface Config {
  /** Never empty: without any listener keys there is one tcp listener "default" on 0.0.0.0:1883. */
  listeners: ListenerConfig[];
  mqtt: {
    maxPacketSize: number;
    maxInflight: number;
    receiveMaximum: number;
    maxQueuedMessages: number;
    maxQueuedBytes: number;
    queueDropPolicy: "drop_oldest" | "drop_newest";
    queueQos0Offline: boolean;
    maxKeepAlive: number;
    connectTimeoutMs: number;
    maxConnections: number;
    maxOutboundBytes: number;
    maxSessions: number;
    maxPersistentSessionsPerUser: number;
    maxPersistentSessionsPerAddress: number;
    maxRetainedMessages: number;
    maxRetainedBytes: number;
    maxTopicAlias: number;
    maxSubscriptionsPerClient: number;
    maxTopicLevels: number;
    maxSessionExpiry: number;
    maxClientIdLength: number;
    allowZeroLengthClientId: boolean;
    allowControlCharacters: boolean;
    maxQos: 0 | 1 | 2;
    retainAvailable: boolean;
    wildcardSubscriptionAvailable: boolean;
    subscriptionIdentifiersAvailable: boolean;
    sharedSubscriptionAvailable: boolean;
    sharedSubscriptionStrategy: "round_robin" | "random";
    takeover: "allow" | "same_user" | "deny";
    serverReference?: string;
    responseInformation?: string;
  };
  storage: {
    type: "embedded" | "memory";
    dir: string;
    durability: "sync" | "batch" | "memory";
    batchIntervalMs: number;
    maxDiskBytes: number;
  };
  auth: {
    /** Unset: allow anonymous clients only when no credential source is configured. */
    allowAnonymous?: boolean;
    passwordFile?: string;
    accessKeysFile?: string;
    scramFile?: string;
    aclFile?: string;
    aclDefault: "allow" | "deny";
    failureDelayMs: number;
    failureDelayMaxMs: number;
  };
  http: { enabled: boolean; host: string; port: number; maxConnections: number; authTokenFile?: string };
  admin: { enabled: boolean; passwordFile?: string; viewers?: string; sessionTtlSeconds: number };
  cluster: {
    enabled: boolean;
    nodeId: string;
    rocketmqEndpoints: string;
    rocketmqNameServer: string;
    rocketmqTopic: string;
    rocketmqNamespace: string;
    rocketmqAccessKey?: string;
    rocketmqSecretKeyFile?: string;
    heartbeatMs: number;
    nodeTimeoutMs: number;
    appendTimeoutMs: number;
  };
  sys: { intervalSeconds: number };
  log: { level: "debug" | "info" | "warn" | "error"; format: "auto" | "json" | "text" };
  /** 0 = automatic (see src/config/schema.ts). */
  limits: { memoryBytes: number };
  shutdown: { drainTimeoutMs: number };
}
