/**
 * The "Big queues" section of docs/benchmarks.md, between markers: written by `deno task bench --big-queue
 * --write-docs`, kept when the rest of the file is rewritten by the main benchmark.
 */
const START = "<!-- bench:big-queue -->";
const END = "<!-- /bench:big-queue -->";

/** The marked section of the file (with a blank line before it), or "" when there is none. */
export async function keptBigQueueSection(path: URL): Promise<string> {
  let text = "";
  try {
    text = await Deno.readTextFile(path);
  } catch {
    return "";
  }
  const start = text.indexOf(START);
  const end = text.indexOf(END);
  return start >= 0 && end > start ? `\n${text.slice(start, end + END.length)}\n` : "";
}

/** Replaces the marked section with `markdown`, or appends it when the file has none. */
export async function writeBigQueueSection(path: URL, markdown: string): Promise<void> {
  const text = await Deno.readTextFile(path);
  const section = `${START}\n${markdown.trimEnd()}\n${END}`;
  const start = text.indexOf(START);
  const end = text.indexOf(END);
  const updated = start >= 0 && end > start
    ? text.slice(0, start) + section + text.slice(end + END.length)
    : `${text.trimEnd()}\n\n${section}\n`;
  await Deno.writeTextFile(path, updated);
}
