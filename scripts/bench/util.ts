/** Small process and I/O helpers shared by the benchmark modules. */

const encoder = new TextEncoder();

/** Progress and diagnostics go to stderr, so stdout carries only the result table. */
export function note(line: string): void {
  Deno.stderr.writeSync(encoder.encode(line + "\n"));
}

/** The result table and the final verdict. */
export function print(text: string): void {
  Deno.stdout.writeSync(encoder.encode(text + "\n"));
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Resolves to `undefined` when `promise` takes longer than `ms`; the timer never outlives the race. */
export async function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expiry = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), ms);
  });
  try {
    return await Promise.race([promise, expiry]);
  } finally {
    clearTimeout(timer);
  }
}

/** A port that was free a moment ago on 127.0.0.1 (the kernel picks it; a race is possible but harmless). */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** Runs a command to completion and returns its stdout (empty when it cannot be run). */
export async function capture(command: string, args: string[]): Promise<{ ok: boolean; text: string }> {
  try {
    const output = await new Deno.Command(command, { args, stdout: "piped", stderr: "piped" }).output();
    const text = new TextDecoder().decode(output.stdout) + new TextDecoder().decode(output.stderr);
    return { ok: output.success, text };
  } catch {
    return { ok: false, text: "" };
  }
}

/** Splits a byte stream into lines, calling `onLine` for each. Resolves when the stream ends. */
export async function forEachLine(
  stream: ReadableStream<Uint8Array>,
  onLine: (line: string) => void,
): Promise<void> {
  const decoder = new TextDecoder();
  let pending = "";
  for await (const chunk of stream) {
    pending += decoder.decode(chunk, { stream: true });
    let newline = pending.indexOf("\n");
    while (newline >= 0) {
      onLine(pending.slice(0, newline));
      pending = pending.slice(newline + 1);
      newline = pending.indexOf("\n");
    }
  }
  if (pending) onLine(pending);
}

/** VmRSS of a process in bytes, or undefined when it is gone. Read through `cat` because Deno only lets a
 * script read another process's /proc entries with --allow-all, which `deno task bench` does not grant. */
export async function residentBytes(pid: number): Promise<number | undefined> {
  const status = await capture("cat", [`/proc/${pid}/status`]);
  const match = status.ok ? status.text.match(/^VmRSS:\s+(\d+)\s+kB/m) : null;
  return match ? Number(match[1]) * 1024 : undefined;
}

/** Sends SIGTERM, then SIGKILL if the process has not exited within `graceMs`. */
export async function stopChild(child: Deno.ChildProcess, graceMs = 5000): Promise<void> {
  try {
    child.kill("SIGTERM");
  } catch {
    // already exited
  }
  const exited = await withTimeout(child.status, graceMs);
  if (exited) return;
  try {
    child.kill("SIGKILL");
  } catch {
    // exited between the two signals
  }
  await withTimeout(child.status, graceMs);
}

export function median(values: number[]): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

/** The V8 flags `deno task start` runs the broker with: every benchmark measures the broker as it ships. */
/** The permissions `deno task start` grants the broker (deno.json): the benchmarks run it as operators do. */
export async function startTaskPermissions(root: string): Promise<string[]> {
  const start: string = JSON.parse(await Deno.readTextFile(`${root}/deno.json`)).tasks?.start ?? "";
  const permissions = start.match(/--allow-[a-z-]+(=\S+)?/g) ?? [];
  if (permissions.length === 0) throw new Error(`no --allow-* flags in the start task of ${root}/deno.json`);
  return permissions;
}

export async function startTaskV8Flags(root: string): Promise<string[]> {
  try {
    const start: string = JSON.parse(await Deno.readTextFile(`${root}/deno.json`)).tasks?.start ?? "";
    return start.match(/--v8-flags=(\S+)/)?.[1].split(",") ?? [];
  } catch {
    return [];
  }
}
