/**
 * Shared by the security suite: a real broker on 127.0.0.1 whose log lines the test can read, credential
 * files in a temporary directory, raw CONNECTs with any credentials, and /metrics samples by label.
 */
import assert from "node:assert/strict";
import { type RunningBroker, startBroker } from "../../main.ts";
import { hashPassword, signClientId } from "../../src/auth/mod.ts";
import type { ConnackPacket, Properties, ProtocolVersion, Will } from "../../src/codec/mod.ts";
import { parseConfig } from "../../src/config/mod.ts";
import { createLogger, parseExposition } from "../../src/observe/mod.ts";
import { RawClient } from "../helpers/broker.ts";

/** One parsed JSON log line. */
export type LogRecord = Record<string, unknown> & { event: string };

export interface SecureBroker {
  port: number;
  running: RunningBroker;
  /** Every log line so far (debug and up), parsed. */
  logs: LogRecord[];
  /** The lines of one event. */
  events(event: string): LogRecord[];
}

/**
 * Starts a broker from `properties` (a loopback listener on port 0 and memory storage unless given),
 * logging at debug into memory, runs `fn`, always stops it.
 */
export async function withSecureBroker(
  properties: string,
  fn: (broker: SecureBroker) => Promise<void>,
): Promise<void> {
  const defaults = [
    "listener.default.host = 127.0.0.1",
    "listener.default.port = 0",
    "storage.type = memory",
    "sys.interval_seconds = 0",
  ].filter((line) =>
    !new RegExp(`^\\s*${line.split(" ")[0].replaceAll(".", "\\.")}\\s*=`, "m").test(properties)
  );
  const config = parseConfig(`${defaults.join("\n")}\n${properties}`, "security-test.properties");
  const logs: LogRecord[] = [];
  const logger = createLogger({ level: "debug", write: (line) => logs.push(JSON.parse(line)) });
  const running = await startBroker(config, logger);
  try {
    await fn({
      port: running.listeners[0].port,
      running,
      logs,
      events: (event) => logs.filter((line) => line.event === event),
    });
  } finally {
    await running.stop();
  }
  const crashes = logs.filter((line) =>
    line.event === "connection.crashed" || line.event === "connection.failed"
  );
  assert.deepEqual(crashes, [], "the broker logged connection failures");
}

/** Files in a fresh temporary directory; removed by `await using`. */
export async function tempFiles<Name extends string>(
  files: Record<Name, string>,
): Promise<{ paths: Record<Name, string>; dir: string; [Symbol.asyncDispose](): Promise<void> }> {
  const dir = await Deno.makeTempDir({ prefix: "mqtt-security-" });
  const paths = {} as Record<Name, string>;
  for (const [name, text] of Object.entries(files) as [Name, string][]) {
    paths[name] = `${dir}/${name}`;
    await Deno.writeTextFile(paths[name], text);
  }
  return { paths, dir, [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }) };
}

/** A password file of `users`; hashes use `iterations` (few, so that tests stay fast, unless timing matters). */
export async function passwordFile(users: Record<string, string>, iterations = 10): Promise<string> {
  let text = "";
  for (const [user, password] of Object.entries(users)) {
    text += `${user}:${await hashPassword(password, iterations)}\n`;
  }
  return text;
}

export interface ConnectAttempt {
  version?: ProtocolVersion;
  clientId?: string;
  username?: string;
  password?: string | Uint8Array;
  cleanStart?: boolean;
  will?: Will;
  properties?: Properties;
}

/** Sends one CONNECT and returns the client with the CONNACK, whatever its reason code. */
export async function tryConnect(
  port: number,
  attempt: ConnectAttempt = {},
): Promise<{ client: RawClient; connack: ConnackPacket }> {
  const version = attempt.version ?? 5;
  const client = await RawClient.connect(port, version);
  const password = typeof attempt.password === "string"
    ? new TextEncoder().encode(attempt.password)
    : attempt.password;
  await client.sendPacket({
    type: "connect",
    protocolName: version === 3 ? "MQIsdp" : "MQTT",
    protocolVersion: version,
    cleanStart: attempt.cleanStart ?? true,
    keepAlive: 60,
    clientId: attempt.clientId ?? `c-${crypto.randomUUID().slice(0, 8)}`,
    username: attempt.username,
    password,
    will: attempt.will,
    properties: attempt.properties ?? {},
  }, version);
  const connack = await client.readPacket();
  assert.equal(connack.type, "connack");
  return { client, connack: connack as ConnackPacket };
}

/** Sends one CONNECT, asserts the CONNACK reason and closes the client. */
export async function expectConnack(
  port: number,
  attempt: ConnectAttempt,
  reasonCode: number,
): Promise<void> {
  const { client, connack } = await tryConnect(port, attempt);
  await client.close();
  assert.equal(
    connack.reasonCode,
    reasonCode,
    `CONNACK 0x${connack.reasonCode.toString(16)} for ${JSON.stringify({ ...attempt, password: "…" })}`,
  );
}

/** The Aliyun/RocketMQ-style signature a device with `secret` sends as its password. */
export function signature(clientId: string, secret: string): string {
  return signClientId(clientId, secret);
}

/** Fetches and parses /metrics; `headers` for the bearer token. */
export async function scrape(port: number, headers: HeadersInit = {}) {
  const response = await fetch(`http://127.0.0.1:${port}/metrics`, { headers });
  assert.equal(response.status, 200);
  return parseExposition(await response.text());
}

/** The value of a sample by name and labels (0 when absent). */
export function sample(
  samples: ReturnType<typeof parseExposition>,
  name: string,
  labels: Record<string, string> = {},
): number {
  const found = samples.find((s) =>
    s.name === name && Object.entries(labels).every(([key, value]) => s.labels[key] === value)
  );
  return found?.value ?? 0;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Asserts that nothing but the answer to a PINGREQ arrives: every delivery the broker queued for this client
 * before the PINGREQ would come first. (RawClient.expectSilence looks at raw bytes only and misses a
 * PUBLISH that arrived in the same segment as the packet read before it.)
 */
export async function assertNothingQueued(
  client: RawClient,
  version: ProtocolVersion,
  what: string,
): Promise<void> {
  await client.sendPacket({ type: "pingreq" }, version);
  const next = await client.readPacket();
  const shown = next.type === "publish" ? `PUBLISH ${next.topic}` : next.type;
  assert.equal(next.type, "pingresp", `${what}: got ${shown}`);
}

/** Waits (bounded) until `condition` holds. */
export async function waitFor(condition: () => boolean, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(10);
  }
}
