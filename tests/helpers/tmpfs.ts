/**
 * A small tmpfs in a private user and mount namespace (`unshare -Urm`): a really full disk for the tests,
 * without root and without touching the machine's mounts.
 */

/** Whether this machine lets an unprivileged process mount a tmpfs in its own user and mount namespace. */
function canMountPrivateTmpfs(): boolean {
  try {
    const probe = ["-Urm", "sh", "-c", "mount -t tmpfs -o size=1m tmpfs /mnt"];
    return new Deno.Command("unshare", { args: probe, stdout: "null", stderr: "null" }).outputSync().success;
  } catch {
    return false;
  }
}

export const tmpfsAvailable = canMountPrivateTmpfs();

/** What a test whose name says why it is ignored adds to it where no tmpfs can be mounted. */
export const tmpfsIgnoredNote = tmpfsAvailable
  ? ""
  : " (ignored: cannot mount a private tmpfs with unshare here)";

/**
 * The command line that runs `command` in a private mount namespace with a 4 MiB tmpfs mounted at `dir`
 * (the same path inside as outside).
 */
export function onTmpfs(dir: string, command: string[]): string[] {
  return [
    "unshare",
    "-Urm",
    "sh",
    "-c",
    'mount -t tmpfs -o size=4m tmpfs "$0" && exec "$@"',
    dir,
    ...command,
  ];
}

/** Runs a fixture script (`deno run -A`) on a 4 MiB tmpfs at `dir`; returns its stdout's JSON lines. */
export async function runFixtureOnTmpfs(dir: string, script: string, args: string[]): Promise<unknown[]> {
  const [program, ...rest] = onTmpfs(dir, [Deno.execPath(), "run", "-A", script, ...args]);
  const { stdout, stderr, success } = await new Deno.Command(program, { args: rest }).output();
  if (!success) throw new Error(new TextDecoder().decode(stderr));
  return new TextDecoder().decode(stdout).trim().split("\n").map((line) => JSON.parse(line));
}
