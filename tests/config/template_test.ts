import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { CONFIG_FILE_PATH, defaultConfig, parseConfig, renderConfigFile } from "../../src/config/mod.ts";

const ROOT = new URL("../../", import.meta.url);
const SCRIPT = fileURLToPath(new URL("scripts/gen_config.ts", ROOT));

async function runScript(...args: string[]): Promise<{ code: number; stderr: string }> {
  const { code, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--quiet", "--allow-read", "--allow-write", SCRIPT, ...args],
    stdout: "null",
    stderr: "piped",
  }).output();
  return { code, stderr: new TextDecoder().decode(stderr) };
}

Deno.test("template: the committed conf file is exactly what the schema generates", async () => {
  const committed = await Deno.readTextFile(new URL(CONFIG_FILE_PATH, ROOT));
  assert.equal(committed, renderConfigFile());
});

Deno.test("template: the generated file parses to the defaults", () => {
  assert.deepEqual(parseConfig(renderConfigFile(), CONFIG_FILE_PATH), defaultConfig());
});

Deno.test("template: only the default listener is set; every other key is a commented default", () => {
  const text = renderConfigFile();
  const assignments = text.split("\n").filter((line) => /^[a-z]/.test(line));
  assert.deepEqual(assignments, [
    "listener.default.type = tcp",
    "listener.default.host = 0.0.0.0",
    "listener.default.port = 1883",
  ]);
  assert.match(
    text,
    /^# Outbound QoS 1\/2 messages awaiting acknowledgement per client.*\n.*\n# Expected: an integer from 1 to 65535\. Default: 100\.\n# mqtt\.max_inflight = 100$/m,
  );
  assert.match(text, /^# auth\.password_file =$/m);
});

Deno.test("template: gen_config writes the file and --check accepts it, then flags it once stale", async () => {
  const dir = await Deno.makeTempDir();
  const file = `${dir}/mqtt.properties`;
  try {
    assert.equal((await runScript("--check", "--file", file)).code, 1, "a missing file is stale");
    assert.equal((await runScript("--file", file)).code, 0);
    assert.equal(await Deno.readTextFile(file), renderConfigFile());
    assert.equal((await runScript("--check", "--file", file)).code, 0);

    await Deno.writeTextFile(
      file,
      renderConfigFile().replace("# mqtt.max_inflight = 100", "# mqtt.max_inflight = 99"),
    );
    const stale = await runScript("--check", "--file", file);
    assert.equal(stale.code, 1);
    assert.match(stale.stderr, /mqtt\.properties is out of date with src\/config\/schema\.ts/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
