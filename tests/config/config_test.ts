import assert from "node:assert/strict";
import { type Config, ConfigError, defaultConfig, loadConfig, parseConfig } from "../../src/config/mod.ts";

const FILE = "conf/mqtt.properties";

function rejects(text: string, message: string, env?: Record<string, string>): void {
  assert.throws(() => parseConfig(text, FILE, env), new ConfigError(message));
}

const DEFAULTS: Config = {
  listeners: [{
    name: "default",
    type: "tcp",
    host: "0.0.0.0",
    port: 1883,
    path: "/mqtt",
    requireClientCert: false,
    useCnAsUsername: false,
    maxConnections: 0,
    io: "runtime",
  }],
  mqtt: {
    maxPacketSize: 1048576,
    maxInflight: 100,
    receiveMaximum: 100,
    maxQueuedMessages: 1000,
    maxQueuedBytes: 0,
    queueDropPolicy: "drop_oldest",
    queueQos0Offline: false,
    maxKeepAlive: 65535,
    connectTimeoutMs: 10000,
    maxConnections: 0,
    maxOutboundBytes: 1048576,
    maxSessions: 1000000,
    maxPersistentSessionsPerUser: 10000,
    maxPersistentSessionsPerAddress: 1000,
    maxRetainedMessages: 1000000,
    maxRetainedBytes: 268435456,
    maxTopicAlias: 100,
    maxSubscriptionsPerClient: 10000,
    maxTopicLevels: 201,
    maxSessionExpiry: 604800,
    maxClientIdLength: 65535,
    allowZeroLengthClientId: true,
    allowControlCharacters: false,
    maxQos: 2,
    retainAvailable: true,
    wildcardSubscriptionAvailable: true,
    subscriptionIdentifiersAvailable: true,
    sharedSubscriptionAvailable: true,
    sharedSubscriptionStrategy: "round_robin",
    takeover: "same_user",
  },
  storage: { type: "embedded", dir: "data", durability: "sync", batchIntervalMs: 10, maxDiskBytes: 0 },
  auth: { aclDefault: "allow", failureDelayMs: 250, failureDelayMaxMs: 8000 },
  http: { enabled: false, host: "127.0.0.1", port: 8080, maxConnections: 32 },
  admin: { enabled: false, sessionTtlSeconds: 3600 },
  cluster: {
    enabled: false,
    nodeId: "",
    rocketmqEndpoints: "127.0.0.1:8081",
    rocketmqNameServer: "127.0.0.1:9876",
    rocketmqTopic: "mqtt_log",
    rocketmqNamespace: "",
    heartbeatMs: 1000,
    nodeTimeoutMs: 10_000,
    appendTimeoutMs: 10_000,
  },
  sys: { intervalSeconds: 10 },
  log: { level: "info", format: "auto" },
  limits: { memoryBytes: 0 },
  shutdown: { drainTimeoutMs: 5000 },
};

Deno.test("config: an empty file gives the documented defaults", () => {
  assert.deepEqual(defaultConfig(), DEFAULTS);
  assert.deepEqual(parseConfig("# nothing\n", FILE), DEFAULTS);
});

Deno.test("config: values of every type are read into camelCase fields", () => {
  const config = parseConfig(
    [
      "mqtt.max_inflight = 64",
      "mqtt.max_keepalive: 300",
      "mqtt.queue_qos0_offline = TRUE",
      "mqtt.retain_available = False",
      "mqtt.max_qos = 1",
      "mqtt.queue_drop_policy = drop_newest",
      "mqtt.server_reference = other.example:1883",
      "mqtt.max_session_expiry = 4294967295",
      "storage.batch_interval_ms = 25",
      "auth.allow_anonymous = false",
      "auth.password_file = /etc/mqtt/passwd",
      "shutdown.drain_timeout_ms = 0",
    ].join("\n"),
    FILE,
  );
  assert.equal(config.mqtt.maxInflight, 64);
  assert.equal(config.mqtt.maxKeepAlive, 300);
  assert.equal(config.mqtt.queueQos0Offline, true);
  assert.equal(config.mqtt.retainAvailable, false);
  assert.equal(config.mqtt.maxQos, 1);
  assert.equal(config.mqtt.queueDropPolicy, "drop_newest");
  assert.equal(config.mqtt.serverReference, "other.example:1883");
  assert.equal(config.mqtt.maxSessionExpiry, 4294967295);
  assert.equal(config.storage.batchIntervalMs, 25);
  assert.deepEqual(config.auth, {
    allowAnonymous: false,
    passwordFile: "/etc/mqtt/passwd",
    aclDefault: "allow",
    failureDelayMs: 250,
    failureDelayMaxMs: 8000,
  });
  assert.equal(config.shutdown.drainTimeoutMs, 0);
});

Deno.test("config: an empty optional value means unset", () => {
  const config = parseConfig("auth.acl_file =\nmqtt.server_reference =", FILE);
  assert.equal("aclFile" in config.auth, false);
  assert.equal("serverReference" in config.mqtt, false);
});

Deno.test("config: several listeners keep file order; tls takes cert and key", () => {
  const config = parseConfig(
    [
      "listener.plain.port = 1883",
      "listener.secure.type = tls",
      "listener.secure.port = 8883",
      "listener.secure.cert_file = /tls/cert.pem",
      "listener.secure.key_file = /tls/key.pem",
      "listener.secure.ca_file = /tls/ca.pem",
      "listener.secure.require_client_cert = true",
      "listener.secure.use_cn_as_username = true",
      "listener.web-1.type = ws",
      "listener.web-1.host = 127.0.0.1",
      "listener.web-1.port = 0",
      "listener.web-1.path = /ws",
      "listener.web-1.max_connections = 500",
    ].join("\n"),
    FILE,
  );
  assert.deepEqual(config.listeners, [
    {
      name: "plain",
      type: "tcp",
      host: "0.0.0.0",
      port: 1883,
      path: "/mqtt",
      requireClientCert: false,
      useCnAsUsername: false,
      maxConnections: 0,
      io: "runtime",
    },
    {
      name: "secure",
      type: "tls",
      host: "0.0.0.0",
      port: 8883,
      path: "/mqtt",
      certFile: "/tls/cert.pem",
      keyFile: "/tls/key.pem",
      caFile: "/tls/ca.pem",
      requireClientCert: true,
      useCnAsUsername: true,
      maxConnections: 0,
      io: "runtime",
    },
    {
      name: "web-1",
      type: "ws",
      host: "127.0.0.1",
      port: 0,
      path: "/ws",
      requireClientCert: false,
      useCnAsUsername: false,
      maxConnections: 500,
      io: "runtime",
    },
  ]);
});

Deno.test("config: a tls or wss listener without certificate or key is rejected at its type line", () => {
  rejects(
    "listener.secure.port = 8883\nlistener.secure.type = tls\nlistener.secure.key_file = k.pem",
    `${FILE}:2: listener.secure.cert_file: required for a tls listener`,
  );
  rejects(
    "listener.web.type = wss\nlistener.web.cert_file = c.pem",
    `${FILE}:1: listener.web.key_file: required for a wss listener`,
  );
});

Deno.test("config: epoll I/O is for tcp listeners; a ws listener with it is rejected at its type line", () => {
  rejects(
    "listener.web.type = ws\nlistener.web.io = epoll",
    `${FILE}:1: listener.web.io: epoll is for tcp listeners, not ws`,
  );
  assert.equal(parseConfig("listener.plain.io = epoll", FILE).listeners[0].io, "epoll");
});

Deno.test("config: a value of the wrong type names file, line, key and expectation", () => {
  const text = "# limits\n\nmqtt.max_inflight = abc";
  rejects(text, `${FILE}:3: mqtt.max_inflight: expected an integer from 1 to 65535, got "abc"`);
  rejects(
    "mqtt.max_inflight = 1.5",
    `${FILE}:1: mqtt.max_inflight: expected an integer from 1 to 65535, got "1.5"`,
  );
  rejects("http.enabled = yes", `${FILE}:1: http.enabled: expected true or false, got "yes"`);
  rejects("mqtt.max_qos = 3", `${FILE}:1: mqtt.max_qos: expected 0, 1 or 2, got "3"`);
  rejects(
    "listener.ws.path = mqtt",
    `${FILE}:1: listener.ws.path: expected a path starting with /, got "mqtt"`,
  );
  rejects("storage.dir =", `${FILE}:1: storage.dir: expected a non-empty string, got ""`);
});

Deno.test("config: a value out of range is rejected", () => {
  rejects(
    "mqtt.max_inflight = 0",
    `${FILE}:1: mqtt.max_inflight: expected an integer from 1 to 65535, got "0"`,
  );
  rejects(
    "listener.a.port = 65536",
    `${FILE}:1: listener.a.port: expected an integer from 0 to 65535, got "65536"`,
  );
  rejects(
    "mqtt.max_queued_messages = -1",
    `${FILE}:1: mqtt.max_queued_messages: expected an integer >= 0, got "-1"`,
  );
  rejects(
    "mqtt.max_client_id_length = 22",
    `${FILE}:1: mqtt.max_client_id_length: expected an integer from 23 to 65535, got "22"`,
  );
});

Deno.test("config: a value outside its enum lists the choices", () => {
  rejects(
    "storage.durability = fsync",
    `${FILE}:1: storage.durability: expected one of sync, batch, memory, got "fsync"`,
  );
  rejects(
    "listener.a.type = udp",
    `${FILE}:1: listener.a.type: expected one of tcp, tls, ws, wss, got "udp"`,
  );
});

Deno.test("config: an unknown key is rejected, with a suggestion when one is close", () => {
  rejects(
    "\nmqtt.max_inflite = 5",
    `${FILE}:2: mqtt.max_inflite: unknown key (did you mean mqtt.max_inflight?)`,
  );
  rejects("colour = blue", `${FILE}:1: colour: unknown key (see conf/mqtt.properties for the known keys)`);
  rejects(
    "listener.a.bind = x",
    `${FILE}:1: listener.a.bind: unknown key (a listener takes type, host, port, path, cert_file, key_file, ` +
      "ca_file, require_client_cert, use_cn_as_username, max_connections, io)",
  );
  rejects(
    "listener.Main.port = 1",
    `${FILE}:1: listener.Main.port: unknown key (listener names may contain only a-z, 0-9, _ and -)`,
  );
  rejects("toString = x", `${FILE}:1: toString: unknown key (see conf/mqtt.properties for the known keys)`);
});

Deno.test("config: a duplicate key names both lines", () => {
  rejects(
    "mqtt.max_inflight = 5\n\nmqtt.max_inflight = 6",
    `${FILE}:3: mqtt.max_inflight: duplicate key, already set on line 1`,
  );
});

Deno.test("config: environment variables override the file and add listeners", () => {
  const config = parseConfig("mqtt.max_inflight = 5\nlistener.default.port = 1883", FILE, {
    MQTT_PROXY_MQTT__MAX_INFLIGHT: "7",
    MQTT_PROXY_LISTENER__DEFAULT__PORT: "0",
    MQTT_PROXY_LISTENER__WS__TYPE: "ws",
    MQTT_PROXY_LOG__LEVEL: " debug ",
    HOME: "/root",
  });
  assert.equal(config.mqtt.maxInflight, 7);
  assert.equal(config.log.level, "debug");
  assert.deepEqual(config.listeners.map(({ name, type, port }) => [name, type, port]), [
    ["default", "tcp", 0],
    ["ws", "ws", 1883],
  ]);
});

Deno.test("config: environment errors name the variable instead of a line", () => {
  rejects(
    "mqtt.max_inflight = 5",
    'MQTT_PROXY_MQTT__MAX_INFLIGHT: mqtt.max_inflight: expected an integer from 1 to 65535, got "many"',
    { MQTT_PROXY_MQTT__MAX_INFLIGHT: "many" },
  );
  rejects(
    "",
    "MQTT_PROXY_MQTT__MAX_INFLITE: mqtt.max_inflite: unknown key (did you mean mqtt.max_inflight?)",
    {
      MQTT_PROXY_MQTT__MAX_INFLITE: "5",
    },
  );
  rejects("", "MQTT_PROXY_LISTENER__S__TYPE: listener.s.cert_file: required for a tls listener", {
    MQTT_PROXY_LISTENER__S__TYPE: "tls",
    MQTT_PROXY_LISTENER__S__KEY_FILE: "k.pem",
  });
});

Deno.test("config: loadConfig reads a file and applies the given environment", async () => {
  const path = await Deno.makeTempFile({ suffix: ".properties" });
  try {
    await Deno.writeTextFile(path, "mqtt.max_inflight = 9\nhttp.enabled = true\n");
    const config = await loadConfig(path, { MQTT_PROXY_HTTP__PORT: "0" });
    assert.equal(config.mqtt.maxInflight, 9);
    assert.deepEqual(config.http, { enabled: true, host: "127.0.0.1", port: 0, maxConnections: 32 });
    await Deno.writeTextFile(path, "mqtt.max_inflight = 9\nmqtt.max_qos = 5\n");
    await assert.rejects(
      loadConfig(path, {}),
      new ConfigError(`${path}:2: mqtt.max_qos: expected 0, 1 or 2, got "5"`),
    );
  } finally {
    await Deno.remove(path);
  }
});

Deno.test("config: a missing file is reported plainly", async () => {
  await assert.rejects(
    loadConfig("conf/x.properties", {}),
    new ConfigError("cannot read config file conf/x.properties: No such file or directory"),
  );
});
