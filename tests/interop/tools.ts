/**
 * Shared plumbing for the interop suites: MQTT.js clients with an inbox, external programs run under a
 * hard timeout (killed by their own handle), and checks that fail loudly when a client tool is missing.
 */
import assert from "node:assert/strict";
import mqtt, { type IClientOptions, type IConnackPacket, type IPublishPacket, type MqttClient } from "mqtt";

/** Hard cap for one external program; it is SIGKILLed by its own handle past this. */
export const CHILD_TIMEOUT_MS = 10_000;
/** How long a test waits for a message that should come. */
export const WAIT_MS = 5_000;

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Races `promise` against a timer; the timer is always cleared. */
export async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

// ------------------------------------------------------------------------------------------------
// MQTT.js
// ------------------------------------------------------------------------------------------------

export interface Received {
  topic: string;
  payload: string;
  qos: number;
  retain: boolean;
  packet: IPublishPacket;
}

/** Messages a client received, in order, with bounded waits. */
export class Inbox {
  readonly messages: Received[] = [];
  #wake: (() => void) | undefined;

  push(message: Received): void {
    this.messages.push(message);
    this.#wake?.();
  }

  /** Resolves with the first `count` messages once that many arrived; throws after `ms`. */
  async take(count: number, ms = WAIT_MS): Promise<Received[]> {
    const deadline = Date.now() + ms;
    while (this.messages.length < count) {
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(
          `expected ${count} messages within ${ms} ms, got ${this.messages.length}: ` +
            JSON.stringify(this.messages.map((m) => `${m.topic}=${m.payload}`)),
        );
      }
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
        timer = setTimeout(resolve, left);
      });
      clearTimeout(timer);
      this.#wake = undefined;
    }
    return this.messages.slice(0, count);
  }

  /** Asserts that the inbox still holds exactly `count` messages after `ms` of waiting. */
  async expectCount(count: number, ms = 300): Promise<void> {
    await sleep(ms);
    assert.equal(
      this.messages.length,
      count,
      `unexpected messages: ${JSON.stringify(this.messages.map((m) => `${m.topic}=${m.payload}`))}`,
    );
  }

  clear(): void {
    this.messages.length = 0;
  }
}

export interface JsClient {
  client: MqttClient;
  connack: IConnackPacket;
  inbox: Inbox;
}

/**
 * Connects MQTT.js to `url` (no automatic reconnect) and returns the client, its CONNACK and an inbox that
 * was attached before the connection opened, so messages sent right after CONNACK are not missed. Rejects
 * with the client's error when it is refused.
 */
export async function connectUrl(url: string, options: IClientOptions): Promise<JsClient> {
  const inbox = new Inbox();
  const client = mqtt.connect(url, {
    reconnectPeriod: 0,
    connectTimeout: WAIT_MS,
    keepalive: 60,
    ...options,
  });
  client.on("message", (topic, payload, packet) => {
    inbox.push({ topic, payload: payload.toString(), qos: packet.qos, retain: packet.retain, packet });
  });
  try {
    const connack = await withTimeout(
      new Promise<IConnackPacket>((resolve, reject) => {
        client.once("connect", resolve);
        client.once("error", reject);
        client.once("close", () => reject(new Error("connection closed before CONNACK")));
      }),
      WAIT_MS + 1000,
      `MQTT.js connect ${url} ${options.clientId ?? ""}`,
    );
    return { client, connack, inbox };
  } catch (error) {
    await withTimeout(client.endAsync(true), 3000, "MQTT.js end").catch(() => {});
    throw error;
  }
}

/** {@link connectUrl} over plain TCP to the broker on 127.0.0.1:`port`. */
export function connectJs(port: number, options: IClientOptions): Promise<JsClient> {
  return connectUrl(`mqtt://127.0.0.1:${port}`, options);
}

/** Ends MQTT.js clients (force: no DISCONNECT handshake wait), bounded in time. */
export async function endJs(...clients: (MqttClient | undefined)[]): Promise<void> {
  await Promise.all(
    clients.map(async (client) => {
      if (!client) return;
      try {
        await withTimeout(client.endAsync(true), 3000, "MQTT.js end");
      } catch { /* already gone */ }
    }),
  );
}

/** A normal DISCONNECT (reason 0), waiting until the socket is closed. */
export async function disconnectJs(client: MqttClient): Promise<void> {
  await withTimeout(client.endAsync(false), 3000, "MQTT.js graceful end");
}

/** Resolves when MQTT.js reports its connection closed (e.g. after a takeover or a will test). */
export function closed(client: MqttClient, ms = WAIT_MS): Promise<void> {
  if (client.disconnected) return Promise.resolve();
  return withTimeout(new Promise<void>((resolve) => client.once("close", () => resolve())), ms, "close");
}

// ------------------------------------------------------------------------------------------------
// External programs
// ------------------------------------------------------------------------------------------------

export const PYTHON = "/usr/bin/python3";

const HINTS: Record<string, string> = {
  mosquitto_pub: "install Debian's mosquitto-clients: apt-get install -y mosquitto-clients",
  mosquitto_sub: "install Debian's mosquitto-clients: apt-get install -y mosquitto-clients",
  paho: "install Debian's python3-paho-mqtt for /usr/bin/python3: apt-get install -y python3-paho-mqtt",
};

/** Throws (never skips) when a client program the suite needs is not installed. */
export async function requireTool(tool: "mosquitto_pub" | "mosquitto_sub" | "paho"): Promise<void> {
  const [cmd, args] = tool === "paho" ? [PYTHON, ["-c", "import paho.mqtt.client"]] : [tool, ["--help"]];
  let ok = false;
  let detail = "";
  try {
    const out = await new Deno.Command(cmd, { args, stdout: "null", stderr: "piped" }).output();
    // mosquitto_* --help exits 1 after printing usage; "found and runnable" is what matters for those.
    ok = tool === "paho" ? out.success : true;
    detail = new TextDecoder().decode(out.stderr).trim();
  } catch (error) {
    detail = String(error);
  }
  if (!ok) throw new Error(`MISSING TOOL ${tool}: ${HINTS[tool]} (${detail})`);
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

/** Runs a program to completion; SIGKILLs it by its own handle after `timeoutMs`. */
export async function run(cmd: string, args: string[], timeoutMs = CHILD_TIMEOUT_MS): Promise<RunResult> {
  const child = new Deno.Command(cmd, { args, stdin: "null", stdout: "piped", stderr: "piped" }).spawn();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      child.kill("SIGKILL");
    } catch { /* already exited */ }
  }, timeoutMs);
  try {
    const out = await child.output();
    const decoder = new TextDecoder();
    return {
      code: out.code,
      stdout: decoder.decode(out.stdout),
      stderr: decoder.decode(out.stderr),
      timedOut,
    };
  } finally {
    clearTimeout(timer);
  }
}

/** Runs a program and asserts it exited 0 in time. */
export async function runOk(cmd: string, args: string[], timeoutMs = CHILD_TIMEOUT_MS): Promise<RunResult> {
  const result = await run(cmd, args, timeoutMs);
  assert.ok(!result.timedOut, `${cmd} ${args.join(" ")} was killed after ${timeoutMs} ms\n${result.stderr}`);
  assert.equal(
    result.code,
    0,
    `${cmd} ${args.join(" ")} exited ${result.code}\n${result.stdout}\n${result.stderr}`,
  );
  return result;
}

/**
 * A long-running program whose stdout is read line by line while it runs, so a test can wait for
 * "subscribed" before publishing. Killed by its own handle after `timeoutMs` at the latest.
 */
export class LiveProcess {
  readonly lines: string[] = [];
  readonly status: Promise<Deno.CommandStatus>;
  stderr = "";
  #child: Deno.ChildProcess;
  #timer: ReturnType<typeof setTimeout>;
  #wake: (() => void) | undefined;
  #done = false;
  readonly #pumps: Promise<void>[];

  constructor(readonly cmd: string, readonly args: string[], timeoutMs = CHILD_TIMEOUT_MS) {
    this.#child = new Deno.Command(cmd, { args, stdin: "null", stdout: "piped", stderr: "piped" }).spawn();
    this.#timer = setTimeout(() => this.kill("SIGKILL"), timeoutMs);
    this.#pumps = [this.#pumpStdout(), this.#pumpStderr()];
    this.status = this.#child.status.then((status) => {
      clearTimeout(this.#timer);
      this.#done = true;
      this.#wake?.();
      return status;
    });
  }

  kill(signal: Deno.Signal = "SIGKILL"): void {
    try {
      this.#child.kill(signal);
    } catch { /* already exited */ }
  }

  /** Waits for a stdout line matching `predicate`; throws on timeout or if the program ends first. */
  async waitForLine(predicate: (line: string) => boolean, ms = WAIT_MS): Promise<string> {
    const deadline = Date.now() + ms;
    for (;;) {
      const found = this.lines.find(predicate);
      if (found !== undefined) return found;
      const left = deadline - Date.now();
      if (this.#done || left <= 0) {
        throw new Error(
          `${this.cmd}: no matching line ${this.#done ? "before exit" : `within ${ms} ms`}\n` +
            `stdout:\n${this.lines.join("\n")}\nstderr:\n${this.stderr}`,
        );
      }
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
        timer = setTimeout(resolve, left);
      });
      clearTimeout(timer);
      this.#wake = undefined;
    }
  }

  /** Waits for the exit (bounded by the constructor's timeout) and for the output to be drained. */
  async finish(): Promise<Deno.CommandStatus> {
    const status = await this.status;
    await Promise.all(this.#pumps);
    return status;
  }

  async #pumpStdout(): Promise<void> {
    let partial = "";
    for await (const chunk of this.#child.stdout.pipeThrough(new TextDecoderStream())) {
      partial += chunk;
      const parts = partial.split("\n");
      partial = parts.pop()!;
      this.lines.push(...parts);
      this.#wake?.();
    }
    if (partial) this.lines.push(partial);
    this.#wake?.();
  }

  async #pumpStderr(): Promise<void> {
    for await (const chunk of this.#child.stderr.pipeThrough(new TextDecoderStream())) this.stderr += chunk;
  }
}

// ------------------------------------------------------------------------------------------------
// Spec statement tags: the same rule has different numbers in 3.1.1 and 5.0.
// ------------------------------------------------------------------------------------------------

/** Normative statement ids for a protocol level (3 = 3.1 and 4 = 3.1.1 share the 3.1.1 numbering). */
export function spec(level: 3 | 4 | 5) {
  const v5 = level === 5;
  return {
    minQos: v5 ? "[MQTT-3.8.4-8]" : "[MQTT-3.8.4-6]",
    sessionPresent: v5 ? "[MQTT-3.2.2-2] [MQTT-3.2.2-3]" : "[MQTT-3.2.2-1] [MQTT-3.2.2-2]",
    cleanDiscards: v5 ? "[MQTT-3.1.2-4]" : "[MQTT-3.1.2-6]",
    offlineQueue: v5 ? "[MQTT-3.1.2-23]" : "[MQTT-3.1.2-5]",
    retainReplace: "[MQTT-3.3.1-5]",
    retainOnSubscribe: v5 ? "[MQTT-3.3.1-9]" : "[MQTT-3.3.1-6] [MQTT-3.3.1-8]",
    retainDelete: v5 ? "[MQTT-3.3.1-6] [MQTT-3.3.1-7]" : "[MQTT-3.3.1-10] [MQTT-3.3.1-11]",
    retainLiveFlag: v5 ? "[MQTT-3.3.1-12]" : "[MQTT-3.3.1-9]",
    notRetained: v5 ? "[MQTT-3.3.1-8]" : "[MQTT-3.3.1-12]",
    takeover: v5 ? "[MQTT-3.1.4-3]" : "[MQTT-3.1.4-2]",
    willOnClose: "[MQTT-3.1.2-8]",
    willDiscarded: "[MQTT-3.1.2-10]",
    ordered: "[MQTT-4.6.0-6]",
    topicMatch: "[MQTT-3.3.2-3]",
    unsubscribe: "[MQTT-3.10.4-1]",
    subackOrder: "[MQTT-3.9.3-1]",
  };
}
