/**
 * CI check of docs/conformance.md, the table of every MQTT 3.1.1 and 5.0 normative statement.
 *
 * Every row must have a well-formed statement id, spec (3.1.1 / 5.0 / both), side (server / client / both)
 * and status ("tested", "not applicable: <reason>" or "not applicable (<reason>)", "not implemented: <what>").
 * A server-side row (side server or both) needs either a test reference that holds, or a status other than
 * "tested" that gives its reason. A test reference is `path` :: `fragment`: the file must exist and contain
 * the fragment (a piece of the test name), or the statement id when no fragment is given. Stale references
 * are offenders on client rows too. The table must hold each spec's full list: 141 statements of 3.1.1 and
 * 251 of 5.0 (Appendix B of each), with no id twice.
 *
 * Run: deno run --allow-read scripts/ci_checks/conformance_table.ts [path/to/conformance.md]
 * Prints the counts, lists offenders, exits 1 when there is any.
 */

const ROOT = new URL("../../", import.meta.url);
const EXPECTED = { "3.1.1": 141, "5.0": 251 } as const;

type Spec = "3.1.1" | "5.0" | "both";
type Side = "server" | "client" | "both";
type Status = "tested" | "n/a" | "not implemented";

export interface Row {
  line: number;
  id: string;
  spec: Spec;
  side: Side;
  status: Status;
  refs: { path: string; fragment?: string }[];
}

export interface Result {
  rows: Row[];
  offenders: string[];
}

const ID = /^\[MQTT-\d+\.\d+\.\d+-\d+\]$/;

function unquote(cell: string): string {
  const trimmed = cell.trim();
  return trimmed.startsWith("`") && trimmed.endsWith("`") && trimmed.length >= 2
    ? trimmed.slice(1, -1)
    : trimmed;
}

function parseStatus(text: string): Status | string {
  const status = text.trim();
  if (/^tested\b/.test(status)) return "tested";
  const notApplicable = /^not applicable\s*(?::\s*(.*\S)|\((.*\S)\))/.exec(status);
  if (notApplicable) return "n/a";
  const notImplemented = /^not implemented:\s*(.*\S)/.exec(status);
  if (notImplemented) return "not implemented";
  return `status "${status}" is none of: tested, not applicable: <reason>, not implemented: <what>`;
}

function parseRefs(cell: string): { path: string; fragment?: string }[] | string {
  const text = cell.trim();
  if (text === "" || text === "—" || text === "-") return [];
  const refs: { path: string; fragment?: string }[] = [];
  for (const part of text.split(/<br>|;/).map((p) => p.trim()).filter((p) => p !== "")) {
    const [path, ...rest] = part.split("::");
    const fragment = rest.join("::");
    const cleanPath = unquote(path);
    if (!/^tests\/.+\.ts$/.test(cleanPath)) return `test reference "${part}" does not name a tests/*.ts file`;
    refs.push({ path: cleanPath, fragment: fragment.trim() === "" ? undefined : unquote(fragment) });
  }
  return refs;
}

/** Parses the statements table of `markdown` and checks every row. `readFile` returns undefined for a missing file. */
export function checkTable(markdown: string, readFile: (path: string) => string | undefined): Result {
  const offenders: string[] = [];
  const rows: Row[] = [];
  const lines = markdown.split("\n");
  const header = lines.findIndex((line) => /^\|\s*statement\s*\|\s*spec\s*\|/.test(line));
  if (header < 0) return { rows, offenders: ["no table whose header starts with | statement | spec |"] };
  const files = new Map<string, string | undefined>();
  const contents = (path: string) => {
    if (!files.has(path)) files.set(path, readFile(path));
    return files.get(path);
  };
  const seen = new Map<string, number>();
  for (let i = header + 2; i < lines.length && lines[i].startsWith("|"); i++) {
    const number = i + 1;
    const cells = lines[i].trim().replace(/^\|/, "").replace(/\|$/, "").split(" | ");
    if (cells.length !== 7) {
      offenders.push(`line ${number}: ${cells.length} columns, expected 7`);
      continue;
    }
    const [idCell, specCell, , sideCell, , testCell, statusCell] = cells;
    const id = unquote(idCell);
    const where = `line ${number} ${id}`;
    if (!ID.test(id)) offenders.push(`${where}: not a statement id`);
    const spec = specCell.trim();
    if (spec !== "3.1.1" && spec !== "5.0" && spec !== "both") {
      offenders.push(`${where}: spec "${spec}" is not 3.1.1, 5.0 or both`);
      continue;
    }
    const side = sideCell.trim();
    if (side !== "server" && side !== "client" && side !== "both") {
      offenders.push(`${where}: side "${side}" is not server, client or both`);
      continue;
    }
    const status = parseStatus(statusCell);
    if (status !== "tested" && status !== "n/a" && status !== "not implemented") {
      offenders.push(`${where}: ${status}`);
      continue;
    }
    const refs = parseRefs(testCell);
    if (typeof refs === "string") {
      offenders.push(`${where}: ${refs}`);
      continue;
    }
    for (const version of spec === "both" ? ["3.1.1", "5.0"] : [spec]) {
      const key = `${version} ${id}`;
      if (seen.has(key)) {
        offenders.push(`${where}: ${version} statement already listed on line ${seen.get(key)}`);
      }
      seen.set(key, number);
    }
    for (const ref of refs) {
      const text = contents(ref.path);
      if (text === undefined) offenders.push(`${where}: test file ${ref.path} does not exist`);
      else if (ref.fragment !== undefined && !text.includes(ref.fragment)) {
        offenders.push(`${where}: ${ref.path} has no test named with "${ref.fragment}"`);
      } else if (ref.fragment === undefined && !text.includes(id)) {
        offenders.push(`${where}: ${ref.path} does not mention ${id}`);
      }
    }
    if (status === "tested" && refs.length === 0) {
      offenders.push(`${where}: status "tested" without a test reference`);
    }
    rows.push({ line: number, id, spec, side, status, refs });
  }
  for (const [version, expected] of Object.entries(EXPECTED)) {
    const count = rows.filter((row) => row.spec === version || row.spec === "both").length;
    if (count !== expected) {
      offenders.push(`MQTT ${version}: ${count} statements in the table, the spec has ${expected}`);
    }
  }
  return { rows, offenders };
}

function readRepoFile(path: string): string | undefined {
  try {
    return Deno.readTextFileSync(new URL(path, ROOT));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound || error instanceof Deno.errors.IsADirectory) return undefined;
    throw error;
  }
}

function print(line: string): void {
  // deno-lint-ignore no-console
  console.log(line);
}

if (import.meta.main) {
  const tablePath = Deno.args[0] ?? "docs/conformance.md";
  const markdown = readRepoFile(tablePath);
  if (markdown === undefined) {
    print(`conformance table: ${tablePath} not found`);
    Deno.exit(1);
  }
  const { rows, offenders } = checkTable(markdown, readRepoFile);
  const count = (status: Status) => rows.filter((row) => row.status === status).length;
  const perSpec = (spec: Spec) => rows.filter((row) => row.spec === spec).length;
  print(
    `${rows.length} statements, ${count("tested")} tested, ${count("n/a")} n/a, ${
      count("not implemented")
    } not implemented` +
      ` (rows: 3.1.1 ${perSpec("3.1.1")}, 5.0 ${perSpec("5.0")}, both ${perSpec("both")})`,
  );
  if (offenders.length > 0) {
    print(`conformance table: ${offenders.length} offender(s) in ${tablePath}:`);
    for (const offender of offenders) print(`  ${offender}`);
    Deno.exit(1);
  }
}
