/**
 * Starts and stops the three brokers the benchmark compares, each fresh for every run, pinned to core 0,
 * listening on 127.0.0.1 only, with its output kept in a log file for when it misbehaves.
 */
import { capture, note, sleep, stopChild, withTimeout } from "./util.ts";

export type BrokerName = "mqtt-proxy" | "mosquitto" | "aedes";
export const BROKER_NAMES: BrokerName[] = ["mqtt-proxy", "mosquitto", "aedes"];
export const REFERENCE_BROKER: BrokerName = "mosquitto";

/** The broker runs on this core, the generator on core 1. */
export const BROKER_CPU = "0";

const repoRoot = new URL("../../", import.meta.url).pathname;
const aedesServer = new URL("./aedes_server.ts", import.meta.url).pathname;

export interface RunningBroker {
  name: BrokerName;
  pid: number;
  port: number;
  logPath: string;
  /** The exit status once the process has ended on its own, else undefined. */
  exitStatus(): Deno.CommandStatus | undefined;
  stop(): Promise<void>;
}

export class BrokerStartError extends Error {}

export interface StartOptions {
  port: number;
  /** A fresh directory for this run: config, logs and the durable store go there. */
  runDir: string;
  /** Persist sessions and messages to disk (the durable case). */
  durable: boolean;
}

/** How each broker is launched for one run. */
async function commandFor(name: BrokerName, options: StartOptions): Promise<{ argv: string[]; cwd: string }> {
  const deno = Deno.execPath();
  if (name === "mqtt-proxy") {
    const storage = options.durable
      ? [`storage.type = embedded`, `storage.dir = ${options.runDir}/store`, `storage.durability = sync`]
      : [`storage.type = memory`];
    const lines = [
      "listener.default.host = 127.0.0.1",
      `listener.default.port = ${options.port}`,
      ...storage,
      "log.level = warn",
    ];
    const configPath = `${options.runDir}/mqtt-proxy.properties`;
    await Deno.writeTextFile(configPath, lines.join("\n") + "\n");
    if (options.durable) await Deno.mkdir(`${options.runDir}/store`, { recursive: true });
    const permissions = ["--allow-net", "--allow-read", "--allow-write", "--allow-env", "--allow-sys"];
    return { argv: [deno, "run", ...permissions, "main.ts", "-c", configPath], cwd: repoRoot };
  }
  if (name === "mosquitto") {
    const lines = [
      `listener ${options.port} 127.0.0.1`,
      "allow_anonymous true",
      // Every broker here sends with TCP_NODELAY (Deno sets it on its sockets, aedes_server.ts asks Node
      // for it); Nagle would otherwise hold back small PUBLISHes and skew the latency comparison.
      "set_tcp_nodelay true",
      "log_dest stderr",
      "log_type error",
      "log_type warning",
      "log_type notice",
    ];
    if (options.durable) {
      // Running as root, mosquitto drops to the mosquitto user, which must be able to write its store.
      const store = `${options.runDir}/mosquitto-store`;
      await Deno.mkdir(store);
      await chownToMosquitto(store);
      lines.push("persistence true", `persistence_location ${store}/`);
    }
    const configPath = `${options.runDir}/mosquitto.conf`;
    await Deno.writeTextFile(configPath, lines.join("\n") + "\n");
    return { argv: ["mosquitto", "-c", configPath], cwd: options.runDir };
  }
  // Aedes resolves its npm package outside the project's config and lock file: it is a benchmark
  // reference, not a dependency of mqtt-proxy.
  const permissions = ["--allow-net", "--allow-read", "--allow-env", "--allow-sys"];
  return {
    argv: [
      deno,
      "run",
      "--no-config",
      "--no-lock",
      ...permissions,
      aedesServer,
      "--port",
      String(options.port),
    ],
    cwd: options.runDir,
  };
}

async function chownToMosquitto(path: string): Promise<void> {
  const uid = Number((await capture("id", ["-u", "mosquitto"])).text.trim());
  const gid = Number((await capture("id", ["-g", "mosquitto"])).text.trim());
  if (Number.isInteger(uid) && Number.isInteger(gid)) await Deno.chown(path, uid, gid);
}

/** CONNECT then CONNACK (return code 0) on 127.0.0.1:port: the broker is up and speaks MQTT. */
async function mqttAnswers(port: number): Promise<boolean> {
  let conn: Deno.TcpConn | undefined;
  try {
    conn = await Deno.connect({ hostname: "127.0.0.1", port });
    const clientId = new TextEncoder().encode("bench-probe");
    const body = [0, 4, 77, 81, 84, 84, 4, 2, 0, 0, 0, clientId.length, ...clientId];
    await conn.write(new Uint8Array([0x10, body.length, ...body]));
    const reply = new Uint8Array(4);
    let got = 0;
    while (got < 4) {
      const n = await withTimeout(conn.read(reply.subarray(got)), 2000);
      if (!n) return false;
      got += n;
    }
    await conn.write(new Uint8Array([0xe0, 0]));
    return reply[0] === 0x20 && reply[3] === 0;
  } catch {
    return false;
  } finally {
    try {
      conn?.close();
    } catch {
      // already closed
    }
  }
}

async function tail(path: string, lines = 15): Promise<string> {
  try {
    return (await Deno.readTextFile(path)).trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}

/** Starts a broker and waits until it answers CONNECT; throws BrokerStartError with its log otherwise. */
export async function startBroker(name: BrokerName, options: StartOptions): Promise<RunningBroker> {
  const { argv, cwd } = await commandFor(name, options);
  const logPath = `${options.runDir}/${name}.log`;
  const log = await Deno.open(logPath, { write: true, create: true, truncate: true });
  const child = new Deno.Command("taskset", {
    args: ["-c", BROKER_CPU, ...argv],
    cwd,
    env: { NO_COLOR: "1" }, // plain text in the logs quoted by the report
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  // Both streams land in one log; the broker must never block on a full pipe.
  const writer = log.writable.getWriter();
  const drain = async (stream: ReadableStream<Uint8Array>) => {
    for await (const chunk of stream) await writer.write(chunk);
  };
  const logged = Promise.all([drain(child.stdout), drain(child.stderr)]).finally(() => writer.close());
  let status: Deno.CommandStatus | undefined;
  child.status.then((s) => (status = s));

  const broker: RunningBroker = {
    name,
    pid: child.pid,
    port: options.port,
    logPath,
    exitStatus: () => status,
    stop: async () => {
      await stopChild(child);
      await withTimeout(logged, 2000);
    },
  };
  // Deno may need to download npm packages on a first run, hence the generous deadline.
  const deadline = Date.now() + 90_000;
  while (Date.now() < deadline) {
    if (status) break;
    if (await mqttAnswers(options.port)) return broker;
    await sleep(100);
  }
  await broker.stop();
  const why = status ? `exited with code ${status.code}` : "did not answer CONNECT within 90 s";
  throw new BrokerStartError(`${name} ${why}; last log lines (${logPath}):\n${await tail(logPath)}`);
}

/** Installs Debian's mosquitto when it is missing; false when that fails. */
export async function ensureMosquitto(): Promise<boolean> {
  if ((await capture("mosquitto", ["-h"])).text.includes("mosquitto version")) return true;
  note("mosquitto is not installed: apt-get install -y mosquitto");
  const install = () => capture("apt-get", ["install", "-y", "--no-install-recommends", "mosquitto"]);
  if (!(await install()).ok) {
    await capture("apt-get", ["update"]);
    const second = await install();
    if (!second.ok) {
      note(second.text.slice(-2000));
      return false;
    }
  }
  return (await capture("mosquitto", ["-h"])).text.includes("mosquitto version");
}

/** Version strings for the report. */
export async function brokerVersions(): Promise<Record<BrokerName, string>> {
  const mosquitto = (await capture("mosquitto", ["-h"])).text.match(/mosquitto version (\S+)/)?.[1] ??
    "unknown";
  const aedesRun = await capture(Deno.execPath(), [
    "run",
    "--no-config",
    "--no-lock",
    "--allow-read",
    "--allow-env",
    "--allow-net",
    "--allow-sys",
    aedesServer,
    "--version",
  ]);
  const aedes = aedesRun.text.match(/AEDES_VERSION (\S+)/)?.[1] ?? "unknown";
  let proxy = "unknown";
  try {
    proxy = JSON.parse(await Deno.readTextFile(`${repoRoot}deno.json`)).version ?? "unknown";
  } catch {
    // keep "unknown"
  }
  return { "mqtt-proxy": proxy, mosquitto, aedes };
}
