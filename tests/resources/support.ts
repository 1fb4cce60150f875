/**
 * The resource tests run the broker as a child process inside the limits an operator would give it: a
 * memory cgroup the test creates and removes (the kernel kills the broker if it goes over), and a
 * descriptor limit (`prlimit --nofile`). Where this machine cannot make a cgroup (no root, no memory
 * controller), the memory tests are ignored and their name says why.
 */
import { join } from "node:path";
import { type BrokerProcess, freePort, startBrokerProcess } from "../helpers/process.ts";

export const MB = 1 << 20;

/** A memory cgroup of one test: the broker is started inside it; `remove` deletes it. */
export interface MemoryCgroup {
  /** Prefix for startBrokerProcess: joins the cgroup, then runs the broker. */
  wrap: string[];
  /** The highest memory use of the cgroup so far, in bytes. */
  peak(): number;
  /** Its memory use now, in bytes. */
  usage(): number;
  /** How often the cgroup hit its limit (v1 failcnt; v2 the `max` events). */
  limitHits(): number;
  remove(): Promise<void>;
}

/** The directory of this process's memory cgroup (v1 memory controller or v2 unified), if writable. */
function ownMemoryCgroup(): { dir: string; version: 1 | 2 } | undefined {
  let lines: string[];
  try {
    lines = Deno.readTextFileSync("/proc/self/cgroup").trim().split("\n");
  } catch {
    return undefined;
  }
  for (const line of lines) {
    const [, controllers, path] = line.split(":");
    if (controllers.split(",").includes("memory")) {
      return { dir: join("/sys/fs/cgroup/memory", path), version: 1 };
    }
  }
  const unified = lines.find((line) => line.startsWith("0::"));
  if (!unified) return undefined;
  try {
    if (!Deno.readTextFileSync("/sys/fs/cgroup/cgroup.controllers").split(/\s+/).includes("memory")) {
      return undefined;
    }
  } catch {
    return undefined;
  }
  return { dir: join("/sys/fs/cgroup", unified.slice(3)), version: 2 };
}

let sequence = 0;

/** Creates a memory cgroup limited to `limitBytes` under this process's own, or undefined if it cannot. */
export function createMemoryCgroup(limitBytes: number): MemoryCgroup | undefined {
  const own = ownMemoryCgroup();
  if (!own) return undefined;
  const dir = join(own.dir, `mqtt-proxy-test-${Deno.pid}-${++sequence}`);
  try {
    Deno.mkdirSync(dir);
  } catch {
    return undefined;
  }
  const file = (name: string) => join(dir, name);
  const read = (name: string) => Number(Deno.readTextFileSync(file(name)).trim().split(/\s+/).at(-1));
  try {
    if (own.version === 1) {
      Deno.writeTextFileSync(file("memory.limit_in_bytes"), String(limitBytes));
    } else {
      Deno.writeTextFileSync(file("memory.max"), String(limitBytes));
      Deno.writeTextFileSync(file("memory.swap.max"), "0");
    }
  } catch {
    Deno.removeSync(dir);
    return undefined;
  }
  return {
    wrap: ["sh", "-c", 'echo $$ > "$0" && exec "$@"', file("cgroup.procs")],
    peak: () => read(own.version === 1 ? "memory.max_usage_in_bytes" : "memory.peak"),
    usage: () => read(own.version === 1 ? "memory.usage_in_bytes" : "memory.current"),
    limitHits: () => {
      if (own.version === 1) return read("memory.failcnt");
      const events = Deno.readTextFileSync(file("memory.events"));
      return Number(/^max (\d+)$/m.exec(events)?.[1] ?? 0);
    },
    async remove() {
      // The broker has exited; the kernel refuses to remove a cgroup with processes in it, so retry briefly.
      for (let attempt = 0;; attempt++) {
        try {
          Deno.removeSync(dir);
          return;
        } catch (error) {
          if (attempt >= 50) throw error;
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      }
    },
  };
}

/** Whether memory cgroups can be made here (probed once, at load). */
export const cgroupsAvailable = (() => {
  const probe = createMemoryCgroup(64 * MB);
  if (!probe) return false;
  Deno.removeSync(probe.wrap[3].replace(/\/cgroup\.procs$/, ""));
  return true;
})();

/** Whether `prlimit` (util-linux) is on this machine. */
export const prlimitAvailable = (() => {
  try {
    return new Deno.Command("prlimit", { args: ["--version"], stdout: "null", stderr: "null" }).outputSync()
      .success;
  } catch {
    return false;
  }
})();

/** A broker child process with its config file in a temporary directory, and its port. */
export interface LimitedBroker {
  broker: BrokerProcess;
  port: number;
  dir: string;
  /** True while the process runs (false once the kernel or anything else ended it). */
  alive(): Promise<boolean>;
  stop(): Promise<void>;
}

/** Starts a broker process with `lines` of config (plus a loopback listener), wrapped by `wrap`. */
export async function startLimitedBroker(lines: string[], wrap: string[] = []): Promise<LimitedBroker> {
  const dir = await Deno.makeTempDir({ prefix: "mqtt-proxy-limits-" });
  const port = freePort();
  const configPath = join(dir, "mqtt.properties");
  await Deno.writeTextFile(
    configPath,
    [
      "listener.default.host = 127.0.0.1",
      `listener.default.port = ${port}`,
      "log.level = warn",
      "sys.interval_seconds = 0",
      ...lines,
    ].join("\n"),
  );
  const broker = await startBrokerProcess(configPath, port, wrap);
  let exited = false;
  broker.child.status.then(() => exited = true);
  return {
    broker,
    port,
    dir,
    async alive() {
      await new Promise((resolve) => setTimeout(resolve, 0));
      return !exited;
    },
    async stop() {
      if (!exited) await broker.kill9();
      else await broker.child.status;
      await Deno.remove(dir, { recursive: true });
    },
  };
}
