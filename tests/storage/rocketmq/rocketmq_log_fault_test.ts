/**
 * Faults against the real RocketMQ of scripts/rocketmq.sh: the proxy JVM, then the broker JVM, is killed
 * (kill -9, by the pid in the script's runtime dir) while appends stream, then `scripts/rocketmq.sh start`
 * brings it back. The log objects are not restarted. Takes about 15–30 s each: the append timeout (8 s)
 * until an append fails, the JVM's start (5–10 s), the clients' reconnect. Then: what is in the log is read
 * while the proxy is down.
 */
import assert from "node:assert/strict";
import type { LogEntry } from "../../../src/storage/cluster_log.ts";
import { runClusterLogOutageConformance } from "../../../src/storage/cluster_log_conformance.ts";
import { RocketMqLog } from "../../../src/storage/rocketmq/mod.ts";
import { requireRocketMq, rocketMqFactory, runtimeDir, testOptions } from "./rocketmq_env.ts";

const script = new URL("../../../scripts/rocketmq.sh", import.meta.url).pathname;

/** The command line of `pid`, or "" when no such process runs (reading /proc needs --allow-all). */
async function commandLine(pid: number): Promise<string> {
  const { stdout } = await new Deno.Command("ps", { args: ["-o", "args=", "-p", String(pid)] }).output();
  return new TextDecoder().decode(stdout).trim();
}

/** kill -9 of one of the script's JVMs, by its pid file; waits until it is gone. */
async function kill(server: "proxy" | "broker"): Promise<void> {
  const pid = Number((await Deno.readTextFile(`${runtimeDir}/${server}.pid`)).trim());
  const mainClass = server === "proxy" ? "ProxyStartup" : "BrokerStartup";
  if (!(await commandLine(pid)).includes(`org.apache.rocketmq.${server}.${mainClass}`)) {
    throw new Error(`pid ${pid} from ${runtimeDir}/${server}.pid is not the RocketMQ ${server}`);
  }
  Deno.kill(pid, "SIGKILL");
  while (await commandLine(pid) !== "") await new Promise((resolve) => setTimeout(resolve, 50));
}
const killProxy = () => kill("proxy");

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
// The log is read from the broker over a connection of its own, which must find the broker again.
runClusterLogOutageConformance(
  "rocketmq, broker killed",
  rocketMqFactory({ begin: () => kill("broker"), end: startRocketMq }),
);

Deno.test("rocketmq log: a reader applies what the log holds while the proxy is down (it reads from the broker)", async () => {
  const id = `r${crypto.randomUUID().slice(0, 8)}`;
  const writer = new RocketMqLog(testOptions(`${id}-writer`));
  const reader = new RocketMqLog(testOptions(`${id}-reader`));
  let proxyDown = false;
  try {
    await writer.start();
    await reader.start();
    const applied: string[] = [];
    let release: (() => void) | undefined;
    const held = new Promise<void>((resolve) => release = resolve);
    reader.consume(async (entries: LogEntry[]) => {
      if (applied.length === 0) await held; // the first batch waits until the proxy is gone
      applied.push(...entries.map((entry) => new TextDecoder().decode(entry.body)));
    });
    const entries = Array.from({ length: 50 }, (_, i) => `d${i}`);
    await writer.append(new TextEncoder().encode(entries[0]));
    await Promise.all(entries.slice(1).map((entry) => writer.append(new TextEncoder().encode(entry))));
    await killProxy();
    proxyDown = true;
    release!();
    // Bounded only so that the test ends: a reader that needs the proxy gets nothing until it is back.
    for (let turn = 0; turn < 600 && applied.length < entries.length; turn++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert.deepEqual(applied, entries, "every appended entry applied, in order, with the proxy down");
  } finally {
    if (proxyDown) await startRocketMq();
    await Promise.all([writer.stop(), reader.stop()]);
  }
});
