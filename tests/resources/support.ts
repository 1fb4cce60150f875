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
  /** Its anonymous memory now (the processes' own, no file cache), in bytes. */
  anon(): number;
  /** How often the cgroup hit its limit (v1 failcnt; v2 the `max` events). */
  limitHits(): number;
  remove(): Promise<void>;
}

/**
 * Runs a small command and returns its output, or undefined if it failed. The cgroup files are read and
 * written by child processes: Deno lets a process touch /proc and /sys only with --allow-all, and the test
 * task grants named permissions.
 */
function sh(script: string, ...args: string[]): string | undefined {
  try {
    const output = new Deno.Command("sh", { args: ["-c", script, "sh", ...args], stderr: "null" })
      .outputSync();
    return output.success ? new TextDecoder().decode(output.stdout) : undefined;
  } catch {
    return undefined;
  }
}

/** The directory of this process's memory cgroup (v1 memory controller or v2 unified), if there is one. */
function ownMemoryCgroup(): { dir: string; version: 1 | 2 } | undefined {
  // A child's /proc/self/cgroup is ours: children start in their parent's cgroup.
  const lines = sh("cat /proc/self/cgroup")?.trim().split("\n") ?? [];
  for (const line of lines) {
    const [, controllers, path] = line.split(":");
    if (controllers?.split(",").includes("memory")) {
      return { dir: join("/sys/fs/cgroup/memory", path), version: 1 };
    }
  }
  const unified = lines.find((line) => line.startsWith("0::"));
  if (!unified || !sh("grep -qw memory /sys/fs/cgroup/cgroup.controllers")) return undefined;
  return { dir: join("/sys/fs/cgroup", unified.slice(3)), version: 2 };
}

let sequence = 0;

/** Creates a memory cgroup limited to `limitBytes` under this process's own, or undefined if it cannot. */
export function createMemoryCgroup(limitBytes: number): MemoryCgroup | undefined {
  const own = ownMemoryCgroup();
  if (!own) return undefined;
  const dir = join(own.dir, `mqtt-proxy-test-${Deno.pid}-${++sequence}`);
  const file = (name: string) => join(dir, name);
  const limit = own.version === 1
    ? sh('mkdir "$1" && echo "$2" > "$1/memory.limit_in_bytes"', dir, String(limitBytes))
    : sh(
      'mkdir "$1" && echo "$2" > "$1/memory.max" && echo 0 > "$1/memory.swap.max"',
      dir,
      String(limitBytes),
    );
  if (limit === undefined) {
    sh('rmdir "$1"', dir);
    return undefined;
  }
  const read = (name: string) => Number(sh('cat "$1"', file(name))?.trim().split(/\s+/).at(-1) ?? NaN);
  return {
    wrap: ["sh", "-c", 'echo $$ > "$0" && exec "$@"', file("cgroup.procs")],
    peak: () => read(own.version === 1 ? "memory.max_usage_in_bytes" : "memory.peak"),
    usage: () => read(own.version === 1 ? "memory.usage_in_bytes" : "memory.current"),
    anon: () => {
      const key = own.version === 1 ? "total_rss" : "anon";
      return Number(
        new RegExp(`^${key} (\\d+)$`, "m").exec(sh('cat "$1"', file("memory.stat")) ?? "")?.[1] ?? NaN,
      );
    },
    limitHits: () => {
      if (own.version === 1) return read("memory.failcnt");
      return Number(/^max (\d+)$/m.exec(sh('cat "$1"', file("memory.events")) ?? "")?.[1] ?? 0);
    },
    async remove() {
      // The broker has exited; the kernel refuses to remove a cgroup with processes in it, so retry briefly.
      for (let attempt = 0; sh('rmdir "$1"', dir) === undefined; attempt++) {
        if (attempt >= 50) throw new Error(`cannot remove the test cgroup ${dir}`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    },
  };
}

/** Whether memory cgroups can be made here (probed once, at load). */
export const cgroupsAvailable = (() => {
  const probe = createMemoryCgroup(64 * MB);
  if (!probe) return false;
  sh('rmdir "$1"', probe.wrap[3].replace(/\/cgroup\.procs$/, ""));
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
