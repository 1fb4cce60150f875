/**
 * Starts and stops the brokers the benchmark compares, each fresh for every run, listening on 127.0.0.1 only,
 * pinned to core 0 (the "pinned" layout) or free to use every core ("unpinned"), with its output kept in a
 * log file for when it misbehaves. Also the idle floor: a bare Deno server holding sockets the way
 * mqtt-proxy does, and mqtt-proxy as it was before this round's changes (the baseline).
 */
import { SUBSCRIBER_INFLIGHT } from "./cases.ts";
import type { PeerBuild } from "./peers.ts";
import {
  capture,
  note,
  sleep,
  startTaskPermissions,
  startTaskV8Flags,
  stopChild,
  withTimeout,
} from "./util.ts";

export type BrokerName =
  | "mqtt-proxy"
  | "rumqttd"
  | "mochi"
  | "mosquitto"
  | "aedes"
  | "mqtt-proxy-before"
  | "mqtt-proxy-epoll"
  | "deno-floor"
  | "deno-floor-512"
  | "deno-syscall-floor"
  | "deno-relay";
/** The brokers compared in every case, in report order. */
export const BROKER_NAMES: BrokerName[] = ["mqtt-proxy", "rumqttd", "mochi", "mosquitto", "aedes"];
/** Not brokers: the idle case's floors (bare Deno servers), reported next to mqtt-proxy. */
export const IDLE_FLOOR_NAMES: BrokerName[] = ["deno-floor", "deno-floor-512", "deno-syscall-floor"];
/** Not a broker: the latency cases' floor (a bare Deno relay), reported next to mqtt-proxy. */
export const LATENCY_FLOOR: BrokerName = "deno-relay";
export const FLOOR_NAMES: BrokerName[] = [...IDLE_FLOOR_NAMES, LATENCY_FLOOR];
export const BASELINE: BrokerName = "mqtt-proxy-before";
/** mqtt-proxy with `listener.default.io = epoll`, run next to it in the pinned layout (Linux x86-64). */
export const EPOLL_VARIANT: BrokerName = "mqtt-proxy-epoll";
/** mqtt-proxy under another name: reported next to it, never counted as a peer. */
export const OWN_VARIANTS: BrokerName[] = ["mqtt-proxy", BASELINE, EPOLL_VARIANT];
export const REFERENCE_BROKER: BrokerName = "mosquitto";

export type Layout = "pinned" | "unpinned";
/** In the pinned layout the broker runs on this core, the generator on core 1. */
export const BROKER_CPU = "0";

const repoRoot = new URL("../../", import.meta.url).pathname;
const aedesServer = new URL("./aedes_server.ts", import.meta.url).pathname;
const idleFloor = new URL("./idle_floor.ts", import.meta.url).pathname;
const relayFloor = new URL("./relay_floor.ts", import.meta.url).pathname;
const syscallFloor = new URL("./syscall_floor.ts", import.meta.url).pathname;

/** What a run needs besides the broker's name: built peers, the shim, the baseline's sources. */
export interface BrokerEnvironment {
  peers: Map<BrokerName, PeerBuild>;
  /** LD_PRELOAD library setting TCP_NODELAY on accepted sockets (rumqttd). */
  noDelayShim: string;
  /** A copy of the repository at the baseline commit, when the run compares with one. */
  baselineDir?: string;
}

export interface RunningBroker {
  name: BrokerName;
  pid: number;
  port: number;
  logPath: string;
  /** Date.now() when the process was spawned (the zero of V8's --trace-gc timestamps, within ~50 ms). */
  spawnedAt: number;
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
  layout: Layout;
}

interface Launch {
  argv: string[];
  cwd: string;
  env?: Record<string, string>;
}

/** mqtt-proxy from `root` (this tree, or the baseline's copy), with --trace-gc for the GC pause report. */
async function mqttProxy(root: string, options: StartOptions, io = "runtime"): Promise<Launch> {
  const storage = options.durable
    ? [`storage.type = embedded`, `storage.dir = ${options.runDir}/store`, `storage.durability = sync`]
    : [`storage.type = memory`];
  const lines = [
    "listener.default.host = 127.0.0.1",
    `listener.default.port = ${options.port}`,
    ...(io === "runtime" ? [] : [`listener.default.io = ${io}`]),
    `mqtt.max_inflight = ${SUBSCRIBER_INFLIGHT}`,
    ...storage,
    "log.level = warn",
  ];
  const configPath = `${options.runDir}/mqtt-proxy.properties`;
  await Deno.writeTextFile(configPath, lines.join("\n") + "\n");
  if (options.durable) await Deno.mkdir(`${options.runDir}/store`, { recursive: true });
  // The start task's flags (deno.json) plus --trace-gc, one line per collection on stdout (the log).
  const v8Flags = v8FlagsArgument([...await startTaskV8Flags(root), "--trace-gc"]);
  return {
    argv: [
      Deno.execPath(),
      "run",
      ...v8Flags,
      ...await startTaskPermissions(root),
      "main.ts",
      "-c",
      configPath,
    ],
    cwd: root,
  };
}

function v8FlagsArgument(flags: string[]): string[] {
  return flags.length ? [`--v8-flags=${flags.join(",")}`] : [];
}

function rumqttdConfig(port: number): string {
  // The crate's sample config (rumqttd.toml) on one loopback listener, without the console, metrics and
  // websocket listeners; no delay between accepts (the sample's 1 ms caps connects at 1,000/s), room for the
  // idle case's connections. rumqttd keeps no disk store: its durable case is in memory.
  return `id = 0

[router]
id = 0
max_connections = 20100
max_outgoing_packet_count = 200
max_segment_size = 104857600
max_segment_count = 10

[v4.1]
name = "v4-1"
listen = "127.0.0.1:${port}"
next_connection_delay_ms = 0
    [v4.1.connections]
    connection_timeout_ms = 60000
    max_payload_size = 20480
    max_inflight_count = ${SUBSCRIBER_INFLIGHT}
    dynamic_filters = true
`;
}

/** How each broker is launched for one run. */
async function commandFor(name: BrokerName, options: StartOptions, env: BrokerEnvironment): Promise<Launch> {
  switch (name) {
    case "mqtt-proxy":
      return mqttProxy(repoRoot, options);
    case "mqtt-proxy-epoll":
      return mqttProxy(repoRoot, options, "epoll");
    case "mqtt-proxy-before":
      if (!env.baselineDir) throw new BrokerStartError("no baseline copy to run");
      return mqttProxy(env.baselineDir, options);
    case "rumqttd": {
      const configPath = `${options.runDir}/rumqttd.toml`;
      await Deno.writeTextFile(configPath, rumqttdConfig(options.port));
      return {
        argv: [peerBinary(env, name), configPath],
        cwd: options.runDir,
        env: { LD_PRELOAD: env.noDelayShim },
      };
    }
    case "mochi": {
      const store = options.durable ? ["-store", `${options.runDir}/mochi.bolt`] : [];
      return {
        argv: [peerBinary(env, name), "-addr", `127.0.0.1:${options.port}`, ...store],
        cwd: options.runDir,
      };
    }
    case "mosquitto":
      return mosquitto(options);
    case "aedes":
      // Aedes resolves its npm package outside the project's config and lock file: it is a benchmark
      // reference, not a dependency of mqtt-proxy.
      return {
        argv: [
          Deno.execPath(),
          "run",
          "--no-config",
          "--no-lock",
          "--allow-net",
          "--allow-read",
          "--allow-env",
          "--allow-sys",
          aedesServer,
          "--port",
          String(options.port),
        ],
        cwd: options.runDir,
      };
    case "deno-floor":
    case "deno-floor-512":
      return await floorLaunch(
        idleFloor,
        options.port,
        ["--allow-ffi"],
        ["--read", name === "deno-floor" ? "broker" : "own-512"],
      );
    case "deno-syscall-floor":
      return await floorLaunch(syscallFloor, options.port, ["--allow-ffi"], []);
    case "deno-relay":
      return await floorLaunch(relayFloor, options.port, [], []);
  }
}

/** A floor (a bare Deno server of scripts/bench) with the broker's V8 flags, on loopback only. */
async function floorLaunch(
  script: string,
  port: number,
  permissions: string[],
  args: string[],
): Promise<Launch> {
  return {
    argv: [
      Deno.execPath(),
      "run",
      ...v8FlagsArgument(await startTaskV8Flags(repoRoot)),
      "--allow-net=127.0.0.1",
      ...permissions,
      script,
      "--port",
      String(port),
      ...args,
    ],
    cwd: repoRoot,
  };
}

function peerBinary(env: BrokerEnvironment, name: BrokerName): string {
  const binary = env.peers.get(name)?.binary;
  if (!binary) {
    throw new BrokerStartError(`${name} is not built: ${env.peers.get(name)?.notBuilt ?? "unknown"}`);
  }
  return binary;
}

async function mosquitto(options: StartOptions): Promise<Launch> {
  const lines = [
    `listener ${options.port} 127.0.0.1`,
    "allow_anonymous true",
    // Every broker here sends with TCP_NODELAY (Deno and Go set it on their sockets, aedes_server.ts asks
    // Node for it, rumqttd gets it from nodelay_preload.c); Nagle would hold back small PUBLISHes.
    "set_tcp_nodelay true",
    `max_inflight_messages ${SUBSCRIBER_INFLIGHT}`,
    "log_dest stderr",
    "log_type error",
    "log_type warning",
    "log_type notice",
    // By default three notice lines per client (its connection, its client id, its disconnect); the other
    // brokers here log warnings only. Until 2026-12-06 Mosquitto wrote them, into a pipe the benchmark
    // drains, for each of the idle case's 19,000 connects, and its connect rate was measured with that work.
    "connection_messages false",
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
    // Keep alive 60 s: rumqttd refuses 0 (ZeroKeepAlive).
    const body = [0, 4, 77, 81, 84, 84, 4, 2, 0, 60, 0, clientId.length, ...clientId];
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
export async function startBroker(
  name: BrokerName,
  options: StartOptions,
  env: BrokerEnvironment,
): Promise<RunningBroker> {
  const { argv, cwd, env: extraEnv } = await commandFor(name, options, env);
  const logPath = `${options.runDir}/${name}.log`;
  const log = await Deno.open(logPath, { write: true, create: true, truncate: true });
  const pinning = options.layout === "pinned" ? ["taskset", "-c", BROKER_CPU] : [];
  const [command, ...args] = [...pinning, ...argv];
  const spawnedAt = Date.now();
  const child = new Deno.Command(command, {
    args,
    cwd,
    env: { NO_COLOR: "1", ...extraEnv }, // plain text in the logs quoted by the report
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
    spawnedAt,
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
export async function brokerVersions(env: BrokerEnvironment): Promise<Record<string, string>> {
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
  const peer = (name: BrokerName) => {
    const build = env.peers.get(name);
    return build?.binary ? build.version : `${build?.version ?? "?"} (not built)`;
  };
  return { "mqtt-proxy": proxy, mosquitto, aedes, rumqttd: peer("rumqttd"), mochi: peer("mochi") };
}

/** CPU seconds (user + system, all threads) a process has used so far; undefined once it is gone. */
export async function cpuSeconds(pid: number): Promise<number | undefined> {
  // /proc is read through `cat`: Deno wants --allow-all to read another process's entries.
  const stat = await capture("cat", [`/proc/${pid}/stat`]);
  if (!stat.ok) return undefined;
  // Fields after the command name (which may hold spaces) start at the state, field 3; utime/stime are 14/15.
  const fields = stat.text.slice(stat.text.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

/** sysconf(_SC_CLK_TCK): 100 on every Linux of this kind. */
const CLOCK_TICKS = 100;
