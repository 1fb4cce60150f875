/**
 * Checks the layering that docs/architecture.md describes, from the import statements of every file in
 * src/ and of main.ts: imports point inward (codec/topic ← session ← broker ← cluster ← connection ←
 * main.ts), ports are the only way to storage and authentication, and only main.ts names concrete storage
 * adapters. Prints every violation as `file: imports target (rule)` and exits 1 if there is any.
 *
 * Run: deno run --allow-read scripts/check_imports.ts
 */
import { dirname, join, normalize, relative } from "node:path";

const ROOT = normalize(join(dirname(new URL(import.meta.url).pathname), ".."));

/** What each part of src/ may import besides itself. A part is a folder, or a port file. */
const ALLOWED: Record<string, string[]> = {
  "codec": [],
  "topic": ["codec"],
  "session": ["codec", "topic", "auth/port"],
  "broker": ["codec", "topic", "session", "storage/port", "storage/cluster_log"],
  "cluster": ["codec", "topic", "session", "broker", "storage/port", "storage/cluster_log"],
  "connection": [
    "codec",
    "session",
    "broker",
    "cluster",
    "auth/port",
    "observe",
    "storage/port",
    "transport",
  ],
  "transport": [],
  "auth": ["codec", "auth/port"],
  "auth/port": ["codec"],
  "config": [],
  "observe": [],
  // The operator's HTTP API and dashboard, and the command line: outer layers beside main.ts.
  "admin": [
    "codec",
    "topic",
    "session",
    "broker",
    "cluster",
    "connection",
    "observe",
    "config",
    "auth",
    "auth/port",
  ],
  "cli": ["codec", "config", "auth", "auth/port", "observe", "transport"],
  "storage/port": ["codec"],
  "storage/cluster_log": [],
  "storage/conformance": ["storage/port", "storage/cluster_log", "codec"],
  "storage/memory": ["storage/port", "storage/cluster_log", "codec"],
  "storage/embedded": ["storage/port", "codec"],
  "storage/rocketmq": ["storage/port", "storage/cluster_log", "codec"],
  // The folder's face re-exports the adapters for main.ts.
  "storage/mod": ["storage/port", "storage/cluster_log", "storage/memory", "storage/embedded"],
};

/** The part a file of src/ belongs to (see ALLOWED), or undefined outside src/. */
function partOf(file: string): string | undefined {
  const path = relative(join(ROOT, "src"), file);
  if (path.startsWith("..")) return undefined;
  const [top, second] = path.split("/");
  if (top === "storage") {
    if (second === "port.ts") return "storage/port";
    if (second === "cluster_log.ts") return "storage/cluster_log";
    if (second === "mod.ts") return "storage/mod";
    if (second.startsWith("conformance") || second.startsWith("cluster_log_conformance")) {
      return "storage/conformance";
    }
    return `storage/${second}`;
  }
  if (top === "auth" && second === "port.ts") return "auth/port";
  return top;
}

const CONCRETE_ADAPTERS = ["storage/memory", "storage/embedded", "storage/rocketmq", "storage/mod"];

async function* sourceFiles(dir: string): AsyncGenerator<string> {
  for await (const entry of Deno.readDir(dir)) {
    const path = join(dir, entry.name);
    if (entry.isDirectory) yield* sourceFiles(path);
    else if (entry.name.endsWith(".ts")) yield path;
  }
}

/** Relative import specifiers of a file (static imports and exports, and dynamic imports). */
function importsOf(text: string): string[] {
  const specifiers: string[] = [];
  const pattern = /(?:^|\n)\s*(?:import|export)\s[^;]*?from\s+"([^"]+)"|import\(\s*"([^"]+)"\s*\)/g;
  for (const match of text.matchAll(pattern)) {
    const specifier = match[1] ?? match[2];
    if (specifier.startsWith(".")) specifiers.push(specifier);
  }
  return specifiers;
}

const violations: string[] = [];
const files = [join(ROOT, "main.ts")];
for await (const file of sourceFiles(join(ROOT, "src"))) files.push(file);
for (const file of files) {
  const from = partOf(file);
  const text = await Deno.readTextFile(file);
  for (const specifier of importsOf(text)) {
    const target = normalize(join(dirname(file), specifier));
    const to = partOf(target);
    const where = `${relative(ROOT, file)}: imports ${relative(ROOT, target)}`;
    if (to === undefined) {
      if (from !== undefined) violations.push(`${where} (src/ never imports outside src/)`);
      continue;
    }
    if (from === undefined || from === to) continue; // main.ts is the composition root
    if (!(ALLOWED[from] ?? []).includes(to)) {
      const rule = CONCRETE_ADAPTERS.includes(to)
        ? "only main.ts names a concrete adapter"
        : `${from} may import ${ALLOWED[from]?.join(", ") || "nothing else"}`;
      violations.push(`${where} (${rule})`);
    }
  }
}

const text = new TextEncoder();
for (const line of violations) Deno.stderr.writeSync(text.encode(`${line}\n`));
Deno.stdout.writeSync(
  text.encode(`check_imports: ${files.length} files, ${violations.length} violation(s)\n`),
);
if (violations.length > 0) Deno.exit(1);
