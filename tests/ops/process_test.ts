/**
 * The broker as an operator runs it: `main.ts` in a child process with EXACTLY the permission flags of
 * deno.json's `compile` task (what the release binary gets), a generated configuration on 127.0.0.1 with
 * a tcp listener, the embedded store and the HTTP endpoint. Checks start-up, MQTT traffic, /healthz,
 * `check-config` errors with file:line, and that SIGTERM drains (v5 clients get DISCONNECT 0x8B) and exits 0.
 */
import { checkConfigFails, compilePermissionFlags, exerciseBroker, MAIN, ROOT } from "./support.ts";

Deno.test("ops: main.ts with the compile task's permissions starts, serves MQTT and /healthz, drains on SIGTERM and exits 0", async () => {
  const flags = await compilePermissionFlags();
  const dir = await Deno.makeTempDir({ prefix: "mqtt-proxy-ops-" });
  try {
    await exerciseBroker(
      Deno.execPath(),
      ["run", "--no-prompt", `--config=${ROOT}deno.json`, ...flags, MAIN],
      dir,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ops: check-config with the compile task's permissions exits non-zero with file:line on a bad file, 0 on a good one", async () => {
  const flags = await compilePermissionFlags();
  const dir = await Deno.makeTempDir({ prefix: "mqtt-proxy-ops-" });
  try {
    await checkConfigFails(Deno.execPath(), [
      "run",
      "--no-prompt",
      `--config=${ROOT}deno.json`,
      ...flags,
      MAIN,
    ], dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
