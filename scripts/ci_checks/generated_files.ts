/**
 * CI: the generated dashboard asset module and the OpenAPI document match their sources. Each generator
 * runs in a child process with the permissions it needs (bundling writes a temporary file).
 */
const ROOT = decodeURIComponent(new URL("../../", import.meta.url).pathname);
let failed = false;
for (
  const [script, flags] of [
    ["scripts/build_dashboard.ts", ["--allow-read", "--allow-write", "--allow-run", "--allow-env"]],
    ["scripts/gen_openapi.ts", ["--allow-read"]],
  ] as const
) {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", ...flags, `--config=${ROOT}deno.json`, `${ROOT}${script}`, "--check"],
    cwd: ROOT,
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  if (!output.success) failed = true;
}
Deno.exit(failed ? 1 : 0);
