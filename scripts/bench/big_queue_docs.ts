/**
 * The "Big queues" section of docs/benchmarks.md, between markers: written by `deno task bench --big-queue
 * --write-docs`, kept when the rest of the file is rewritten by the main benchmark.
 */
import type { Memory } from "./big_queue_broker.ts";

/** The marked sections: mqtt-proxy's run, and Mosquitto's under the same load. */
const SECTIONS = ["big-queue", "big-queue-mosquitto"] as const;
export type BigQueueSection = typeof SECTIONS[number];

const markers = (name: BigQueueSection) => [`<!-- bench:${name} -->`, `<!-- /bench:${name} -->`];

/** The marked sections of the file (each with a blank line before it), or "" when there are none. */
export async function keptBigQueueSection(path: URL): Promise<string> {
  let text = "";
  try {
    text = await Deno.readTextFile(path);
  } catch {
    return "";
  }
  let kept = "";
  for (const name of SECTIONS) {
    const [start, end] = markers(name);
    const from = text.indexOf(start);
    const to = text.indexOf(end);
    if (from >= 0 && to > from) kept += `\n${text.slice(from, to + end.length)}\n`;
  }
  return kept;
}

/** Replaces the marked section `name` with `markdown`, or appends it when the file has none. */
export async function writeBigQueueSection(
  path: URL,
  markdown: string,
  name: BigQueueSection,
): Promise<void> {
  const text = await Deno.readTextFile(path);
  const [start, end] = markers(name);
  const section = `${start}\n${markdown.trimEnd()}\n${end}`;
  const from = text.indexOf(start);
  const to = text.indexOf(end);
  const updated = from >= 0 && to > from
    ? text.slice(0, from) + section + text.slice(to + end.length)
    : `${text.trimEnd()}\n\n${section}\n`;
  await Deno.writeTextFile(path, updated);
}

/** What the report says about the run. */
export interface ReportOptions {
  sessions: number;
  perSession: number;
  payloadBytes: number;
  durability: string;
  settleMs: number;
}

export const mb = (bytes: number | undefined) => bytes === undefined ? "?" : `${Math.round(bytes / 1e6)} MB`;
export const count = (n: number) => n.toLocaleString("en-US");
export const rate = (n: number, elapsedMs: number) => `${count(Math.round(n / (elapsedMs / 1000)))}/s`;
export const ms = (elapsedMs: number) => `${Math.round(elapsedMs)} ms`;
export const seconds = (elapsedMs: number) => `${(elapsedMs / 1000).toFixed(1)} s`;

/** The flags that select the run's size: none for the full size, --quick for its own. */
function sizeFlags(options: ReportOptions): string {
  if (options.perSession === 10 && options.sessions === 100_000) return "";
  if (options.perSession === 10 && options.sessions === 10_000) return " --quick";
  return ` --sessions ${options.sessions} --per-session ${options.perSession}`;
}

/** The section: what was run, the results table, memory per phase. */
export function report(
  options: ReportOptions,
  facts: [string, string][],
  phases: Map<string, Memory>,
  failed: boolean,
) {
  const total = options.sessions * options.perSession;
  const gib = (total * options.payloadBytes / 2 ** 30).toFixed(2);
  return [
    "## Big queues",
    "",
    `Measured by \`deno task bench --big-queue${sizeFlags(options)}` +
    `${options.settleMs === 5000 ? "" : ` --settle ${options.settleMs / 1000}`}\` on ` +
    `${new Date().toISOString().slice(0, 10)}: ${count(options.sessions)} offline persistent sessions ` +
    "(MQTT 3.1.1, clean session 0, each subscribed at QoS 1 to its own topic, then disconnected), " +
    `${
      count(total)
    } queued QoS 1 messages of ${options.payloadBytes} B with distinct payloads (${gib} GiB), ` +
    `the embedded store with \`storage.durability = ${options.durability}\`, every other key at its default. ` +
    "The driver (scripts/bench/mqtt_wire.ts, in the benchmark's process) and the broker share 2 cores with " +
    "other work, nothing pinned: the figures are noisy. Target (issue 11): RSS under 300 MB while queued, " +
    "after a restart and while draining; restart to ready under 3 s." +
    (failed ? " **The run failed.**" : ""),
    "",
    ...tables(facts, phases),
    "",
    `Phases "at rest", "queued", "after …" and "drained" are ${options.settleMs / 1000} s of idle broker.`,
  ].join("\n");
}

/** The same tables for Mosquitto's run, to set beside mqtt-proxy's. */
export function mosquittoReport(
  facts: [string, string][],
  phases: Map<string, Memory>,
  failed: boolean,
): string {
  return [
    `### Mosquitto, same load (persistence true, autosave off: the queues live in RAM)${
      failed ? " — failed" : ""
    }`,
    "",
    ...tables(facts, phases),
  ].join("\n");
}

/** The results and the memory of each phase, as two Markdown tables. */
function tables(facts: [string, string][], phases: Map<string, Memory>): string[] {
  return [
    "| measured | figure |",
    "| --- | --- |",
    ...facts.map(([what, figure]) => `| ${what} | ${figure} |`),
    "",
    "| phase | peak RSS (VmRSS every 200 ms) | RSS at its end |",
    "| --- | --- | --- |",
    ...[...phases].map(([phase, memory]) => `| ${phase} | ${mb(memory.peakRss)} | ${mb(memory.lastRss)} |`),
  ];
}
