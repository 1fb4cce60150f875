/**
 * The broker under the big-queue benchmark: started from main.ts with the embedded store, restarted, and its
 * memory sampled from /proc/<pid>/status (VmRSS every 200 ms, VmHWM at the end of each phase), each sample
 * attributed to the phase the benchmark is in.
 */
import { connect } from "./mqtt_wire.ts";
import { capture, freePort, sleep, startTaskPermissions, startTaskV8Flags, stopChild } from "./util.ts";

const REPO = new URL("../../", import.meta.url).pathname;
const SAMPLE_MS = 200;
const START_DEADLINE_MS = 120_000;

export interface Memory {
  /** Highest VmRSS sampled in the phase. */
  peakRss: number;
  /** VmRSS at the phase's last sample. */
  lastRss: number;
}

export interface StartTimes {
  /** From spawning the process to /readyz answering 200. */
  readyMs: number;
  /** From spawning the process to a CONNACK (return code 0) for a new client. */
  connackMs: number;
}

async function status(pid: number): Promise<{ rss: number; hwm: number } | undefined> {
  const result = await capture("cat", [`/proc/${pid}/status`]);
  const rss = result.text.match(/^VmRSS:\s+(\d+)\s+kB/m);
  const hwm = result.text.match(/^VmHWM:\s+(\d+)\s+kB/m);
  if (!result.ok || !rss || !hwm) return undefined;
  return { rss: Number(rss[1]) * 1024, hwm: Number(hwm[1]) * 1024 };
}

export class BenchBroker {
  readonly port = freePort();
  readonly httpPort = freePort();
  readonly #dir: string;
  readonly #durability: string;
  readonly #v8Flags: string[];
  readonly #inspectPort: number | undefined;
  #child: Deno.ChildProcess | undefined;
  #phase = "start";
  readonly #phases = new Map<string, Memory>();
  #sampling: Promise<void> | undefined;
  #sample = true;

  readonly kind: "mqtt-proxy" | "mosquitto";

  constructor(
    dir: string,
    durability: "batch" | "sync",
    v8Flags: string[],
    inspectPort?: number,
    kind: "mqtt-proxy" | "mosquitto" = "mqtt-proxy",
  ) {
    this.kind = kind;
    this.#inspectPort = inspectPort;
    this.#dir = dir;
    this.#durability = durability;
    this.#v8Flags = v8Flags;
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  /** Memory per phase, in the order the phases ran. */
  get phases(): Map<string, Memory> {
    return this.#phases;
  }

  /** Later samples count for `name`. */
  phase(name: string): void {
    this.#phase = name;
  }

  async #writeConfig(): Promise<string> {
    const lines = [
      "listener.default.host = 127.0.0.1",
      `listener.default.port = ${this.port}`,
      "auth.allow_anonymous = true",
      "storage.type = embedded",
      `storage.dir = ${this.storeDir}`,
      `storage.durability = ${this.#durability}`,
      "http.enabled = true",
      "http.host = 127.0.0.1",
      `http.port = ${this.httpPort}`,
      "log.level = warn",
      "sys.interval_seconds = 0",
      // Every benchmark client comes from 127.0.0.1.
      "mqtt.max_persistent_sessions_per_address = 0",
      "mqtt.max_persistent_sessions_per_user = 0",
    ];
    const path = `${this.#dir}/mqtt-proxy.properties`;
    await Deno.writeTextFile(path, lines.join("\n") + "\n");
    return path;
  }

  /**
   * Mosquitto, for the comparison: it keeps queues in RAM and writes them to mosquitto.db when it
   * stops (autosave off: a kill -9 loses what changed since; here nothing changes between the two restarts).
   */
  async #writeMosquittoConfig(): Promise<string> {
    await Deno.mkdir(this.storeDir, { recursive: true });
    const lines = [
      `listener ${this.port} 127.0.0.1`,
      "allow_anonymous true",
      "persistence true",
      `persistence_location ${this.storeDir}/`,
      "autosave_interval 0",
      // The benchmark runs as root; mosquitto would otherwise drop to a user that cannot write the store.
      "user root",
      "log_dest stderr",
      "log_type error",
      "log_type warning",
    ];
    const path = `${this.#dir}/mosquitto.conf`;
    await Deno.writeTextFile(path, lines.join("\n") + "\n");
    return path;
  }

  /** Starts the broker and waits until it is ready and answers CONNECT (Mosquitto: ready = CONNACK). */
  async start(): Promise<StartTimes> {
    // The flags the broker ships with (deno task start), then the run's own.
    const flags = [...await startTaskV8Flags(REPO), ...this.#v8Flags];
    const v8 = flags.length ? [`--v8-flags=${flags.join(",")}`] : [];
    if (this.#inspectPort) v8.push(`--inspect=127.0.0.1:${this.#inspectPort}`);
    const [command, args] = this.kind === "mosquitto"
      ? ["mosquitto", ["-c", await this.#writeMosquittoConfig()]]
      : [Deno.execPath(), [
        "run",
        ...await startTaskPermissions(REPO),
        ...v8,
        "main.ts",
        "-c",
        await this.#writeConfig(),
      ]];
    const log = await Deno.open(`${this.#dir}/broker.log`, { write: true, create: true, append: true });
    const spawned = performance.now();
    this.#child = new Deno.Command(command, {
      args,
      cwd: REPO,
      stdin: "null",
      stdout: "piped",
      stderr: "inherit",
      env: { NO_COLOR: "1" },
    }).spawn();
    // The broker must never block on a full pipe: its output goes to the log file as it comes.
    this.#child.stdout.pipeTo(log.writable).catch(() => {});
    this.#startSampling(this.#child.pid);
    let readyMs: number | undefined, connackMs: number | undefined;
    const exited = this.#child.status.then(() => true);
    let ended = false;
    exited.then(() => (ended = true));
    while (performance.now() - spawned < START_DEADLINE_MS && !ended) {
      if (connackMs === undefined && await this.#answers()) connackMs = performance.now() - spawned;
      if (readyMs === undefined && this.kind === "mosquitto") readyMs = connackMs;
      if (readyMs === undefined && await this.#ready()) readyMs = performance.now() - spawned;
      if (readyMs !== undefined && connackMs !== undefined) return { readyMs, connackMs };
      await sleep(10);
    }
    throw new Error(`the broker ${ended ? "exited" : "was not ready"}; see ${this.#dir}/broker.log`);
  }

  async #ready(): Promise<boolean> {
    try {
      const response = await fetch(`http://127.0.0.1:${this.httpPort}/readyz`);
      await response.body?.cancel();
      return response.ok;
    } catch {
      return false;
    }
  }

  async #answers(): Promise<boolean> {
    try {
      const { client } = await connect(this.port, "bq-probe", true);
      client.close();
      return true;
    } catch {
      return false;
    }
  }

  #startSampling(pid: number): void {
    this.#sample = true;
    this.#sampling = (async () => {
      while (this.#sample) {
        const now = await status(pid);
        if (!now) break;
        const memory = this.#phases.get(this.#phase) ?? { peakRss: 0, lastRss: 0 };
        memory.peakRss = Math.max(memory.peakRss, now.rss);
        memory.lastRss = now.rss;
        this.#phases.set(this.#phase, memory);
        await sleep(SAMPLE_MS);
      }
    })();
  }

  /** VmHWM of the running process: its peak RSS since it started, including between samples. */
  async highWater(): Promise<number | undefined> {
    return this.#child ? (await status(this.#child.pid))?.hwm : undefined;
  }

  /** SIGTERM (graceful, the broker flushes and closes the store) or SIGKILL; resolves once it exited. */
  async stop(signal: "SIGTERM" | "SIGKILL"): Promise<number> {
    const child = this.#child;
    if (!child) return 0;
    const started = performance.now();
    if (signal === "SIGKILL") {
      try {
        child.kill("SIGKILL");
      } catch {
        // already exited
      }
      await child.status;
    } else {
      await stopChild(child, 60_000);
    }
    this.#sample = false;
    await this.#sampling;
    this.#child = undefined;
    return performance.now() - started;
  }

  /** Bytes the store's files take on disk. */
  /** The embedded store's directory (Mosquitto's persistence_location). */
  get storeDir(): string {
    return `${this.#dir}/store`;
  }

  async storeBytes(): Promise<number> {
    const result = await capture("du", ["-sb", this.storeDir]);
    return Number(result.text.split(/\s/)[0]) || 0;
  }
}
