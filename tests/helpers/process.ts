/** Runs the broker as a child process, the way an operator does, so tests can kill -9 and restart it. */

/** The permission flags of the `compile` task: the broker must work with exactly these. */
export async function compileFlags(): Promise<string[]> {
  const config = JSON.parse(await Deno.readTextFile(new URL("../../deno.json", import.meta.url)));
  // The compile task checks for a denort runtime first; the broker's flags are those of `deno compile`.
  const task: string =
    (config.tasks.compile as string).split("&&").find((part) => part.includes("deno compile")) ?? "";
  return task.split(/\s+/).filter((word) => word.startsWith("--allow-"));
}

/** A free loopback port (bound and released; the broker binds it next). */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

export interface BrokerProcess {
  child: Deno.ChildProcess;
  port: number;
  /** Everything the broker wrote to stdout and stderr so far. */
  output(): string;
  /** SIGKILL and wait: a crash, power-loss style. */
  kill9(): Promise<void>;
  /** SIGTERM and wait for the exit code. */
  terminate(): Promise<number>;
}

/**
 * Starts `main.ts -c <configPath>` and waits until its MQTT port accepts connections. `wrap` is a command
 * that runs the broker's command line given as its last arguments (e.g. `prlimit --nofile=256 --`).
 */
export async function startBrokerProcess(
  configPath: string,
  port: number,
  wrap: string[] = [],
): Promise<BrokerProcess> {
  const main = new URL("../../main.ts", import.meta.url).pathname;
  const command = [Deno.execPath(), "run", ...(await compileFlags()), main, "-c", configPath];
  const [program, ...args] = [...wrap, ...command];
  const child = new Deno.Command(program, {
    args,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  let text = "";
  const collect = async (stream: ReadableStream<Uint8Array>) => {
    const decoder = new TextDecoder();
    for await (const chunk of stream) text += decoder.decode(chunk, { stream: true });
  };
  const collected = Promise.all([collect(child.stdout), collect(child.stderr)]);
  const exited = child.status;
  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      conn.close();
      break;
    } catch {
      const status = await Promise.race([exited, new Promise<null>((r) => setTimeout(() => r(null), 50))]);
      if (status) {
        await collected;
        throw new Error(`broker exited with ${status.code} before listening:\n${text}`);
      }
      if (Date.now() > deadline) {
        child.kill("SIGKILL");
        await exited;
        throw new Error(`broker did not listen on ${port} within 20 s:\n${text}`);
      }
    }
  }
  return {
    child,
    port,
    output: () => text,
    async kill9() {
      child.kill("SIGKILL");
      await exited;
      await collected;
    },
    async terminate() {
      child.kill("SIGTERM");
      const status = await exited;
      await collected;
      return status.code;
    },
  };
}
