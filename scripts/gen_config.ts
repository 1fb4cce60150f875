/**
 * Writes conf/mqtt.properties from the config schema, or with `--check` exits 1 when the file
 * differs from what the schema generates (CI runs that). `--file <path>` targets another file.
 *
 *   deno run --allow-read --allow-write scripts/gen_config.ts [--check] [--file <path>]
 */
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { CONFIG_FILE_PATH, renderConfigFile } from "../src/config/mod.ts";

const USAGE = "usage: scripts/gen_config.ts [--check] [--file <path>]";

const encoder = new TextEncoder();

function report(stream: { writeSync(bytes: Uint8Array): number }, message: string): void {
  stream.writeSync(encoder.encode(message + "\n"));
}

async function readIfPresent(path: string): Promise<string | undefined> {
  try {
    return await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}

async function main(args: string[]): Promise<number> {
  let options: { check?: boolean; file?: string };
  try {
    options = parseArgs({
      args,
      options: { check: { type: "boolean" }, file: { type: "string" } },
    }).values;
  } catch (error) {
    report(Deno.stderr, `${error instanceof Error ? error.message : error}\n${USAGE}`);
    return 2;
  }
  const path = options.file ?? fileURLToPath(new URL(`../${CONFIG_FILE_PATH}`, import.meta.url));
  const generated = renderConfigFile();
  if (options.check) {
    if ((await readIfPresent(path)) === generated) return 0;
    report(
      Deno.stderr,
      `${path} is out of date with src/config/schema.ts; regenerate it with ` +
        "deno run --allow-read --allow-write scripts/gen_config.ts",
    );
    return 1;
  }
  await Deno.writeTextFile(path, generated);
  report(Deno.stdout, `wrote ${path}`);
  return 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
