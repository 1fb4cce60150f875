/**
 * Faults against the real RocketMQ of scripts/rocketmq.sh: the proxy JVM is killed (kill -9, by the pid
 * in the script's runtime dir) while appends stream, then `scripts/rocketmq.sh start` brings it back. The
 * log objects are not restarted. Takes about 30 s: the append timeout (8 s) until an append fails, the
 * proxy's start (5–10 s), the clients' reconnect.
 */
import { runClusterLogOutageConformance } from "../../../src/storage/cluster_log_conformance.ts";
import { requireRocketMq, rocketMqFactory, runtimeDir } from "./rocketmq_env.ts";

const script = new URL("../../../scripts/rocketmq.sh", import.meta.url).pathname;

/** The command line of `pid`, or "" when no such process runs (reading /proc needs --allow-all). */
async function commandLine(pid: number): Promise<string> {
  const { stdout } = await new Deno.Command("ps", { args: ["-o", "args=", "-p", String(pid)] }).output();
  return new TextDecoder().decode(stdout).trim();
}

async function killProxy(): Promise<void> {
  const pid = Number((await Deno.readTextFile(`${runtimeDir}/proxy.pid`)).trim());
  if (!(await commandLine(pid)).includes("org.apache.rocketmq.proxy.ProxyStartup")) {
    throw new Error(`pid ${pid} from ${runtimeDir}/proxy.pid is not the RocketMQ proxy`);
  }
  Deno.kill(pid, "SIGKILL");
  while (await commandLine(pid) !== "") await new Promise((resolve) => setTimeout(resolve, 50));
}

async function startRocketMq(): Promise<void> {
  const { code, stdout, stderr } = await new Deno.Command("bash", { args: [script, "start"] }).output();
  const output = new TextDecoder().decode(stdout) + new TextDecoder().decode(stderr);
  if (code !== 0 || !output.includes("endpoints=")) {
    throw new Error(`scripts/rocketmq.sh start failed:\n${output}`);
  }
}

requireRocketMq();
runClusterLogOutageConformance(
  "rocketmq, proxy killed",
  rocketMqFactory({ begin: killProxy, end: startRocketMq }),
);
