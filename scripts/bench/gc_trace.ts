/**
 * Reads V8's `--trace-gc` lines from a broker's log: one pause per collection, with the time it started
 * (ms since the isolate started) and its kind. The report shows their distribution next to the latency.
 */

export type GcKind = "scavenge" | "mark-compact";

export interface GcPause {
  /** ms since the isolate started. */
  at: number;
  kind: GcKind;
  /** The main thread's pause, ms. */
  ms: number;
}

// [123:0x55c4…]      4616 ms: Scavenge 28.8 (42.8) -> 18.5 (44.3) MB, pooled: 0.0 MB, 4.45 / 0.00 ms (…
// [123:0x55c4…]      7096 ms: Incremental Mark-Compact 36.1 (85.0) -> 11.9 (70.8) MB, pooled: 14.2 MB, 9.53 / …
const LINE =
  /\s(\d+(?:\.\d+)?) ms: (Scavenge|Minor Mark-Sweep|(?:Incremental )?Mark-(?:Compact|Sweep)(?: \(reduce\))?)\b.*?MB, (?:pooled: [\d.]+ MB, )?([\d.]+) \/ [\d.]+ ms/;

export function parseGcTrace(log: string): GcPause[] {
  const pauses: GcPause[] = [];
  for (const line of log.split("\n")) {
    const match = LINE.exec(line);
    if (!match) continue;
    const young = match[2] === "Scavenge" || match[2] === "Minor Mark-Sweep";
    pauses.push({ at: Number(match[1]), kind: young ? "scavenge" : "mark-compact", ms: Number(match[3]) });
  }
  return pauses;
}

/** The pauses of a broker's log between `fromMs` and `toMs` after its isolate started. */
export async function gcPausesIn(logPath: string, fromMs: number, toMs: number): Promise<GcPause[]> {
  let log = "";
  try {
    log = await Deno.readTextFile(logPath);
  } catch {
    return [];
  }
  return parseGcTrace(log).filter((pause) => pause.at >= fromMs && pause.at <= toMs);
}
