/**
 * Runs the broker as an operator does, as a child process (main.ts under `deno run`, or the compiled
 * binary), with a generated configuration on 127.0.0.1; shared by the ops tests.
 */
import assert from "node:assert/strict";
import { endJs, withTimeout } from "../interop/tools.ts";
import { connectUrl } from "../interop/tools.ts";

export const ROOT = decodeURIComponent(new URL("../../", import.meta.url).pathname);
export const MAIN = `${ROOT}main.ts`;

/** The --allow-... and --deny-... flags of the compile task in deno.json. */
export async function compilePermissionFlags(): Promise<string[]> {
  const config = JSON.parse(await Deno.readTextFile(`${ROOT}deno.json`));
  // The task checks for a denort runtime first, then runs `deno compile`: take the compile's flags.
  const task: string = (config.tasks.compile as string).split("&&").map((part) => part.trim())
    .find((part) => part.startsWith("deno compile ")) ?? "";
  assert.match(task, /^deno compile /, "deno.json has a compile task");
  const flags = task.split(/\s+/).filter((arg) => /^--(allow|deny)-/.test(arg) || arg === "-A");
  assert.ok(flags.length > 0, `no permission flags in: ${task}`);
  return flags;
}

/** A running broker process whose JSON log lines are collected. */
export class BrokerProcess {
  readonly lines: string[] = [];
  readonly status: Promise<Deno.CommandStatus>;
  stderr = "";
  readonly #child: Deno.ChildProcess;
  readonly #timer: ReturnType<typeof setTimeout>;
  readonly #pumps: Promise<void>[];
  #wake: (() => void) | undefined;
  #exited = false;

  /** `env`, when given, is the whole environment (as a service manager gives it), not an addition. */
  constructor(
    command: string,
    args: string[],
    cwd: string,
    timeoutMs = 30_000,
    env?: Record<string, string>,
  ) {
    this.#child = new Deno.Command(command, {
      args,
      cwd,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      ...(env ? { env, clearEnv: true } : {}),
    }).spawn();
    this.#timer = setTimeout(() => this.kill("SIGKILL"), timeoutMs);
    this.#pumps = [this.#pump(this.#child.stdout, (text) => this.lines.push(...text)), this.#pumpErr()];
    this.status = this.#child.status.then((status) => {
      clearTimeout(this.#timer);
      this.#exited = true;
      this.#wake?.();
      return status;
    });
  }

  get pid(): number {
    return this.#child.pid;
  }

  get exited(): boolean {
    return this.#exited;
  }

  kill(signal: Deno.Signal): void {
    try {
      this.#child.kill(signal);
    } catch { /* already exited */ }
  }

  /** The first log record with this event name; throws after `ms` or if the process exits first. */
  async event(name: string, ms = 15_000): Promise<Record<string, unknown>> {
    const deadline = Date.now() + ms;
    for (;;) {
      for (const line of this.lines) {
        if (!line.includes(`"event":"${name}"`)) continue;
        return JSON.parse(line);
      }
      const left = deadline - Date.now();
      if (this.#exited || left <= 0) {
        throw new Error(
          `no ${name} event (${this.#exited ? "exited" : "timeout"})\n${
            this.lines.join("\n")
          }\n${this.stderr}`,
        );
      }
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
        timer = setTimeout(resolve, Math.min(left, 100));
      });
      clearTimeout(timer);
    }
  }

  async finish(): Promise<Deno.CommandStatus> {
    const status = await this.status;
    await Promise.all(this.#pumps);
    return status;
  }

  async #pump(stream: ReadableStream<Uint8Array>, add: (lines: string[]) => void): Promise<void> {
    let partial = "";
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      partial += chunk;
      const parts = partial.split("\n");
      partial = parts.pop()!;
      add(parts);
      this.#wake?.();
    }
    if (partial) add([partial]);
  }

  async #pumpErr(): Promise<void> {
    for await (const chunk of this.#child.stderr.pipeThrough(new TextDecoderStream())) this.stderr += chunk;
  }
}

/** A configuration for a throwaway broker in `dir`. */
export function processConfig(dir: string): string {
  return [
    "listener.default.type = tcp",
    "listener.default.host = 127.0.0.1",
    "listener.default.port = 0",
    "storage.type = embedded",
    `storage.dir = ${dir}/data`,
    "http.enabled = true",
    "http.host = 127.0.0.1",
    "http.port = 0",
    "shutdown.drain_timeout_ms = 2000",
    "sys.interval_seconds = 0",
    "",
  ].join("\n");
}

/**
 * Starts `command args... -c <config>` in `dir`, runs MQTT traffic, /healthz and SIGTERM checks against it.
 * Shared with the release test, which runs the compiled binary the same way.
 */
export async function exerciseBroker(command: string, args: string[], dir: string): Promise<void> {
  const configPath = `${dir}/mqtt.properties`;
  await Deno.writeTextFile(configPath, processConfig(dir));
  const broker = new BrokerProcess(command, [...args, "-c", configPath], dir);
  const clients: Awaited<ReturnType<typeof connectUrl>>[] = [];
  try {
    const listener = await broker.event("listener.started");
    const http = await broker.event("http.started");
    await broker.event("broker.started");
    assert.equal(listener.host, "127.0.0.1");
    const port = listener.port as number;

    const sub = await connectUrl(`mqtt://127.0.0.1:${port}`, { clientId: "ops-sub", protocolVersion: 5 });
    clients.push(sub);
    const pub = await connectUrl(`mqtt://127.0.0.1:${port}`, { clientId: "ops-pub", protocolVersion: 4 });
    clients.push(pub);
    await sub.client.subscribeAsync("ops/#", { qos: 1 });
    await pub.client.publishAsync("ops/x", "hello from the child", { qos: 1 });
    const [message] = await sub.inbox.take(1);
    assert.equal(message.payload, "hello from the child");

    const health = await fetch(`http://127.0.0.1:${http.port}/healthz`);
    assert.deepEqual([health.status, await health.text()], [200, "ok\n"]);
    const ready = await fetch(`http://127.0.0.1:${http.port}/readyz`);
    assert.equal(ready.status, 200, await ready.text());
    const metrics = await (await fetch(`http://127.0.0.1:${http.port}/metrics`)).text();
    assert.match(metrics, /^mqtt_connections\{listener="default"\} 2$/m);

    // SIGTERM: the v5 client hears 0x8B Server shutting down, the process exits 0.
    const disconnect = new Promise<number | undefined>((resolve) =>
      sub.client.once("disconnect", (packet) => resolve(packet.reasonCode))
    );
    broker.kill("SIGTERM");
    assert.equal(await withTimeout(disconnect, 10_000, "DISCONNECT on SIGTERM"), 0x8b);
    const status = await withTimeout(broker.finish(), 15_000, "exit after SIGTERM");
    assert.equal(status.code, 0, `exit code after SIGTERM\n${broker.stderr}`);
    assert.ok(broker.lines.some((line) => line.includes('"event":"broker.stopped"')), "the drain completed");
  } finally {
    await endJs(...clients.map((c) => c.client));
    broker.kill("SIGKILL");
    await broker.finish();
  }
}

/** `check-config` on a bad file: non-zero exit and the file:line of the error. */
export async function checkConfigFails(command: string, args: string[], dir: string): Promise<void> {
  const bad = `${dir}/bad.properties`;
  await Deno.writeTextFile(bad, "# a comment\nlistener.default.port = 99999\n");
  const output = await new Deno.Command(command, {
    args: [...args, "check-config", "-c", bad],
    stdout: "piped",
    stderr: "piped",
    cwd: dir,
  }).output();
  assert.notEqual(output.code, 0);
  assert.match(
    new TextDecoder().decode(output.stderr),
    new RegExp(`${bad.replaceAll("/", "\\/")}:2: listener\\.default\\.port`),
  );
  const good = `${dir}/good.properties`;
  await Deno.writeTextFile(good, processConfig(dir));
  const ok = await new Deno.Command(command, {
    args: [...args, "check-config", "-c", good],
    stdout: "piped",
    stderr: "piped",
    cwd: dir,
  })
    .output();
  assert.equal(ok.code, 0, new TextDecoder().decode(ok.stderr));
}
