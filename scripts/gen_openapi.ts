/**
 * Writes the admin API's OpenAPI 3.1 document, generated from the route table and zod schemas, to
 * docs/admin-api.openapi.json; `--check` exits 1 when that file is stale (CI).
 *
 *   deno run --allow-read --allow-write scripts/gen_openapi.ts [--check]
 */
import { buildOpenApi } from "../src/admin/mod.ts";

const FILE = decodeURIComponent(new URL("../docs/admin-api.openapi.json", import.meta.url).pathname);
const text = JSON.stringify(buildOpenApi(), null, 2) + "\n";
if (Deno.args.includes("--check")) {
  const current = await Deno.readTextFile(FILE).catch(() => "");
  if (current !== text) {
    // deno-lint-ignore no-console
    console.error(`${FILE} is stale: run deno run -A scripts/gen_openapi.ts and commit the result`);
    Deno.exit(1);
  }
} else {
  await Deno.writeTextFile(FILE, text);
  // deno-lint-ignore no-console
  console.log(`wrote ${FILE}`);
}
