/**
 * The broker as an operator runs it: `main.ts` in a child process with EXACTLY the permission flags of
 * deno.json's `compile` task (what the release binary gets), a generated configuration on 127.0.0.1 with
 * a tcp listener, the embedded store and the HTTP endpoint. Checks start-up, MQTT traffic, /healthz,
 * `check-config` errors with file:line, and that SIGTERM drains (v5 clients get DISCONNECT 0x8B) and exits 0.
 */
import assert from "node:assert/strict";
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

/** The `--v8-flags=` of a deno.json task's `deno run` or `deno compile` command. */
async function taskV8Flags(task: "start" | "compile"): Promise<string[]> {
  const config = JSON.parse(await Deno.readTextFile(`${ROOT}deno.json`));
  const command = (config.tasks[task] as string).split("&&").map((part) => part.trim())
    .find((part) => part.startsWith(task === "start" ? "deno run " : "deno compile ")) ?? "";
  return command.match(/--v8-flags=(\S+)/)?.[1].split(",") ?? [];
}

Deno.test("ops: the start and compile tasks give V8 the same flags: a young generation of 16 MB per heap, from the start", async () => {
  const flags = await taskV8Flags("start");
  assert.deepEqual(
    await taskV8Flags("compile"),
    flags,
    "a compiled binary runs with the flags it was built with",
  );
  // Two semi-spaces of 8 MB (V8's default is 16 MB each) in the broker's heap and the store worker's, at
  // that size from the start: grown there from 1 MB, a loaded durable broker's scavenges promoted about all
  // that had survived the one before, 1.1 MB each, and its old generation was collected 14 times in 5 s
  // instead of once (docs/operations.md).
  const young = new Deno.Command(Deno.execPath(), {
    args: [
      "eval",
      ...(flags.length ? [`--v8-flags=${flags.join(",")}`] : []),
      `import { getHeapSpaceStatistics } from "node:v8";
      const stats = () => getHeapSpaceStatistics().find((s) => s.space_name === "new_space");
      const newSpace = () => stats().space_size;
      const first = stats().space_used_size + stats().space_available_size;
      let most = 0, keep = [];
      for (let i = 0; i < 3e6; i++) {
        keep.push({ i, s: "x" + i });
        if (keep.length > 2e4) keep = [];
        if (i % 1e5 === 0) most = Math.max(most, newSpace());
      }
      console.log(first, most);`,
    ],
    stdout: "piped",
  }).outputSync();
  assert.ok(young.success);
  const [first, most] = new TextDecoder().decode(young.stdout).trim().split(" ").map(Number);
  // Two semi-spaces of 8 MB are 16 MB; V8 can hold a few pages more for a moment (17.25 MB was seen once, in
  // a loaded CI run). Without the flag it grows to 64 MB here, and semi-spaces of 16 MB would make 32 MB.
  assert.ok(
    most > 0 && most <= 20 << 20,
    `young generation grew to ${most} bytes with ${flags.join(",")}`,
  );
  // A semi-space's room at start (used and available): 8 MB less a few hundred bytes with the flags; without
  // --min-semi-space-size about 1 MB, grown as collections keep more.
  assert.ok(
    first >= 7.5 * (1 << 20),
    `a semi-space started with room for ${first} bytes with ${flags.join(",")}`,
  );
});
