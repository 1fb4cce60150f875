/**
 * Runs before `deno compile` (deno task compile): makes sure a denort runtime is at hand, and says in one
 * line what to do when it is not. `deno compile` needs denort, Deno's runtime-only binary, of exactly the
 * running version: from $DENORT_BIN, from Deno's download cache, or downloaded. A DENORT_BIN that is not
 * a denort (for instance the deno CLI itself, which would build a binary that runs as deno) is refused.
 */
const VERSION = Deno.version.deno;
const TARGET = "x86_64-unknown-linux-gnu";

function fail(message: string): never {
  // deno-lint-ignore no-console
  console.error(`deno task compile: ${message}`);
  Deno.exit(1);
}

const denort = Deno.env.get("DENORT_BIN");
if (denort) {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(denort);
  } catch {
    fail(`DENORT_BIN=${denort} does not exist; point it at the unzipped denort ${VERSION} for ${TARGET}`);
  }
  if (!info.isFile || ((info.mode ?? 0) & 0o111) === 0) {
    fail(`DENORT_BIN=${denort} is not an executable file`);
  }
  const head = new Uint8Array(4);
  const file = await Deno.open(denort);
  await file.read(head);
  file.close();
  if (head[0] !== 0x7f || head[1] !== 0x45 || head[2] !== 0x4c || head[3] !== 0x46) {
    fail(`DENORT_BIN=${denort} is not a Linux executable (ELF), so not a denort runtime`);
  }
  const probe = await new Deno.Command(denort, {
    args: ["--version"],
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
  })
    .output().catch(() => undefined);
  const said = probe ? new TextDecoder().decode(probe.stdout) : "";
  if (/^deno \d/.test(said)) {
    fail(
      `DENORT_BIN=${denort} is the deno CLI, not denort (the runtime-only binary from denort-${TARGET}.zip)`,
    );
  }
  Deno.exit(0);
}

const denoDir = Deno.env.get("DENO_DIR") ?? `${Deno.env.get("HOME")}/.cache/deno`;
const cached = `${denoDir}/dl/release/v${VERSION}/denort-${TARGET}.zip`;
try {
  await Deno.stat(cached);
  Deno.exit(0);
} catch { /* not cached: can it be downloaded? */ }
try {
  const response = await fetch(`https://dl.deno.land/release/v${VERSION}/denort-${TARGET}.zip`, {
    method: "HEAD",
    signal: AbortSignal.timeout(5000),
  });
  if (response.ok) Deno.exit(0);
} catch { /* unreachable */ }
fail(
  `no denort ${VERSION} runtime here and none can be downloaded: set DENORT_BIN=/path/to/denort (unzipped from denort-${TARGET}.zip of Deno ${VERSION}) or put that zip at ${cached}`,
);
