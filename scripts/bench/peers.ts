/**
 * The compiled peers of `deno task bench`: rumqttd (Rust, scripts/bench/rumqttd/, every crate pinned by its
 * Cargo.lock) and mochi-mqtt (Go, scripts/bench/mochi/, pinned by go.sum). Each is built once with its own
 * toolchain into a cache outside the repository, keyed by a hash of its sources, and reused from then on.
 * A missing toolchain is installed from Debian; a peer that cannot be built is reported with the reason,
 * never left out quietly. `--quick` builds nothing: it uses what is cached and says what is not.
 */
import { capture, note } from "./util.ts";

export type PeerName = "rumqttd" | "mochi";

export interface PeerBuild {
  name: PeerName;
  version: string;
  /** The executable, when built. */
  binary?: string;
  /** Why there is no binary. */
  notBuilt?: string;
}

const here = new URL(".", import.meta.url).pathname;

/** ~/.cache/mqtt-proxy/bench (or $XDG_CACHE_HOME/mqtt-proxy/bench): outside the repository. */
export function cacheDir(): string {
  const base = Deno.env.get("XDG_CACHE_HOME") ?? `${Deno.env.get("HOME") ?? "/tmp"}/.cache`;
  return `${base}/mqtt-proxy/bench`;
}

interface PeerSource {
  name: PeerName;
  version: string;
  /** Source folder inside scripts/bench/. */
  dir: string;
  /** Files whose content decides the cache key. */
  files: string[];
  executable: string;
  toolchain: { command: string; fallbacks: string[]; debianPackage: string };
  /** Builds into `outDir` (a fresh directory), given the toolchain command found. */
  build(tool: string, sourceDir: string, outDir: string, logPath: string): Promise<boolean>;
}

const SOURCES: PeerSource[] = [
  {
    name: "rumqttd",
    version: "0.20.0",
    dir: "rumqttd",
    files: ["Cargo.toml", "Cargo.lock", "src/main.rs"],
    executable: "rumqttd",
    toolchain: {
      command: "cargo",
      fallbacks: [`${Deno.env.get("HOME") ?? "/root"}/.cargo/bin/cargo`],
      debianPackage: "cargo",
    },
    async build(cargo, sourceDir, outDir, logPath) {
      // The target directory (~350 MB) is only needed while building; the cache keeps the binary.
      const target = `${outDir}/target`;
      const ok = await logged(logPath, cargo, [
        "build",
        "--release",
        "--locked",
        "--manifest-path",
        `${sourceDir}/Cargo.toml`,
        "--target-dir",
        target,
      ]);
      if (!ok) return false;
      await Deno.rename(`${target}/release/rumqttd-bench`, `${outDir}/rumqttd`);
      await Deno.remove(target, { recursive: true });
      return true;
    },
  },
  {
    name: "mochi",
    version: "2.7.9",
    dir: "mochi",
    files: ["main.go", "go.mod", "go.sum"],
    executable: "mochi",
    toolchain: {
      command: "go",
      fallbacks: ["/usr/local/go/bin/go", "/usr/lib/go/bin/go"],
      debianPackage: "golang-go",
    },
    build(go, sourceDir, outDir, logPath) {
      return logged(logPath, go, [
        "-C",
        sourceDir,
        "build",
        "-mod=readonly",
        "-trimpath",
        "-o",
        `${outDir}/mochi`,
        ".",
      ]);
    },
  },
];

export const PEER_NAMES: PeerName[] = SOURCES.map((s) => s.name);

async function logged(logPath: string, command: string, args: string[]): Promise<boolean> {
  await Deno.writeTextFile(logPath, `$ ${command} ${args.join(" ")}\n`, { append: true });
  try {
    const output = await new Deno.Command(command, { args, stdout: "piped", stderr: "piped", stdin: "null" })
      .output();
    await Deno.writeFile(logPath, output.stdout, { append: true });
    await Deno.writeFile(logPath, output.stderr, { append: true });
    return output.success;
  } catch (error) {
    await Deno.writeTextFile(logPath, `${error}\n`, { append: true });
    return false;
  }
}

async function sourceHash(source: PeerSource): Promise<string> {
  const parts: Uint8Array[] = [];
  for (const file of source.files) parts.push(await Deno.readFile(`${here}${source.dir}/${file}`));
  const all = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let offset = 0;
  for (const part of parts) {
    all.set(part, offset);
    offset += part.byteLength;
  }
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", all));
  return [...digest.slice(0, 6)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

/** The toolchain command, installing Debian's package when none is found; undefined when that fails. */
async function findToolchain(source: PeerSource): Promise<string | undefined> {
  const { command, fallbacks, debianPackage } = source.toolchain;
  const works = async (candidate: string) => (await capture(candidate, ["version"])).ok;
  for (const candidate of [command, ...fallbacks]) if (await works(candidate)) return candidate;
  note(`${command} not found: apt-get install -y ${debianPackage}`);
  const install = () => capture("apt-get", ["install", "-y", "--no-install-recommends", debianPackage]);
  if (!(await install()).ok) {
    await capture("apt-get", ["update"]);
    await install();
  }
  for (const candidate of [command, ...fallbacks]) if (await works(candidate)) return candidate;
  return undefined;
}

async function tailOf(path: string, lines = 12): Promise<string> {
  try {
    return (await Deno.readTextFile(path)).trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "(no build log)";
  }
}

/**
 * The peers ready to run: from the cache, or built now (unless `buildMissing` is false, as in --quick).
 * Builds take minutes (rumqttd about 5 on two cores), once per change of their sources.
 */
export async function preparePeers(names: PeerName[], buildMissing: boolean): Promise<PeerBuild[]> {
  const results: PeerBuild[] = [];
  for (const source of SOURCES.filter((s) => names.includes(s.name))) {
    const dir = `${cacheDir()}/${source.name}-${source.version}-${await sourceHash(source)}`;
    const binary = `${dir}/${source.executable}`;
    const result: PeerBuild = { name: source.name, version: source.version };
    results.push(result);
    if (await exists(binary)) {
      result.binary = binary;
      continue;
    }
    if (!buildMissing) {
      result.notBuilt = `not in the cache (${dir}); --quick does not build peers, a full run builds them`;
      continue;
    }
    const tool = await findToolchain(source);
    if (!tool) {
      result.notBuilt =
        `${source.toolchain.command} is missing and apt-get install ${source.toolchain.debianPackage} failed`;
      continue;
    }
    await Deno.mkdir(cacheDir(), { recursive: true });
    const building = `${dir}.building-${Deno.pid}`;
    await Deno.remove(building, { recursive: true }).catch(() => {});
    await Deno.mkdir(building, { recursive: true });
    const logPath = `${cacheDir()}/${source.name}-build.log`;
    await Deno.writeTextFile(logPath, "");
    note(`building ${source.name} ${source.version} with ${tool} (once; log ${logPath}) ...`);
    const started = Date.now();
    if (await source.build(tool, `${here}${source.dir}`, building, logPath)) {
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      await Deno.rename(building, dir);
      note(`built ${source.name} in ${((Date.now() - started) / 1000).toFixed(0)} s: ${binary}`);
      result.binary = binary;
    } else {
      await Deno.remove(building, { recursive: true }).catch(() => {});
      result.notBuilt = `the build failed; last lines of ${logPath}:\n${await tailOf(logPath)}`;
    }
  }
  return results;
}

/**
 * A shared library that sets TCP_NODELAY on every accepted socket (LD_PRELOAD): rumqttd 0.20 has no setting
 * for it and leaves Nagle on, which every other broker here turns off. Built with gcc next to the generator.
 */
export async function buildNoDelayShim(outDir: string): Promise<string> {
  const source = `${here}nodelay_preload.c`;
  const library = `${outDir}/nodelay_preload.so`;
  const result = await capture("gcc", [
    "-O2",
    "-Wall",
    "-Wextra",
    "-shared",
    "-fPIC",
    "-o",
    library,
    source,
    "-ldl",
  ]);
  if (!result.ok || result.text.trim()) throw new Error(`gcc failed to build ${source}:\n${result.text}`);
  return library;
}
