/**
 * A simulated systemd install for tests/ops/systemd_test.ts. PID 1 is not systemd where these tests run
 * (no `systemd-run`, no container runtime), so the test does by hand what the install and systemd would
 * do, inside a temporary root directory: it stages the release archive as scripts/release.sh lays it out,
 * runs the install commands of docs/operations.md with every absolute path moved under that root, and
 * starts the broker as conf/mqtt-proxy.service says: as its User/Group (a real system user created for the
 * test), from WorkingDirectory, with its UMask, NoNewPrivileges, StateDirectory and a clean
 * environment. The sandbox (ProtectSystem, PrivateTmp, capabilities) and LimitNOFILE are not simulated.
 */
import assert from "node:assert/strict";
import { BrokerProcess, compilePermissionFlags, ROOT } from "./support.ts";

/** The user and group the unit names; the test creates one of its own and uses it wherever this appears. */
export const UNIT_USER = "mqtt-proxy";
const DOC_LINK = /^file:\/\//;

/** [Section] -> key -> values in file order (systemd allows repeated keys). */
export type Unit = Map<string, Map<string, string[]>>;

export function parseUnit(text: string): Unit {
  const unit: Unit = new Map();
  let current: Map<string, string[]> | undefined;
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#") || line.startsWith(";")) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header) {
      current = new Map();
      unit.set(header[1], current);
      continue;
    }
    const at = line.indexOf("=");
    assert.ok(current && at > 0, `unit line outside a section or without '=': ${line}`);
    const key = line.slice(0, at).trim();
    current.set(key, [...(current.get(key) ?? []), line.slice(at + 1).trim()]);
  }
  return unit;
}

/** The last value of `[section] key`, or undefined. */
export function unitValue(unit: Unit, section: string, key: string): string | undefined {
  return unit.get(section)?.get(key)?.at(-1);
}

/** The shell lines of the first ```sh block under `heading` in a Markdown text. */
export function shellBlockUnder(markdown: string, heading: string): string[] {
  const start = markdown.indexOf(`\n${heading}\n`);
  assert.ok(start >= 0, `no "${heading}" heading`);
  const block = /```sh\n([\s\S]*?)```/.exec(markdown.slice(start));
  assert.ok(block, `no sh block under "${heading}"`);
  return block[1].split("\n").map((line) => line.trim()).filter((line) => line !== "");
}

/** A directory that plays `/`: the host's /etc, /usr/local and /var/lib are never touched. */
export class FakeRoot {
  constructor(readonly dir: string) {}

  /** Moves every absolute /etc, /usr/local and /var/lib path in a command or unit value under the root. */
  map(text: string): string {
    return text.replace(/(^|[\s=:'"])(\/(?:etc|usr\/local|var\/lib)(?:\/|\b))/g, `$1${this.dir}$2`);
  }

  /** The path of a file:// Documentation= link inside the root. */
  documentationPath(url: string): string {
    assert.match(url, DOC_LINK, `Documentation=${url} is not a file:// link`);
    return this.map(url.replace(DOC_LINK, ""));
  }
}

/** A system user and group named like the unit's, created for the test and deleted after it. */
export class ServiceUser {
  private constructor(readonly name: string, readonly uid: number, readonly gid: number) {}

  /** Needs root, as installing the service does; fails (never skips) without it. */
  static async create(fakeRoot: FakeRoot, useraddLine: string): Promise<ServiceUser> {
    assert.equal(
      Deno.uid(),
      0,
      "the systemd simulation creates a system user and runs the broker as it: run this test as root " +
        "(CI's .ci/run does; it runs apt-get without sudo)",
    );
    for (const tool of ["useradd", "userdel", "setpriv"]) {
      const found = await new Deno.Command("sh", { args: ["-c", `command -v ${tool}`], stdout: "null" })
        .output();
      assert.ok(found.success, `${tool} is missing: apt-get install -y passwd util-linux`);
    }
    // The documented useradd line, with the test's own name (a real mqtt-proxy user is never touched).
    const name = `mqp-sd-${crypto.randomUUID().slice(0, 8)}`;
    assert.match(useraddLine, /^useradd .* mqtt-proxy$/, "the install steps create the user with useradd");
    const line = fakeRoot.map(useraddLine).replace(/ mqtt-proxy$/, ` ${name}`);
    const created = await shell(line, "/");
    assert.equal(created.code, 0, `${line}\n${created.stderr}`);
    const id = (flag: string) => shell(`id ${flag} ${name}`, "/").then((r) => Number(r.stdout.trim()));
    return new ServiceUser(name, await id("-u"), await id("-g"));
  }

  /** Replaces the unit's user and group name in an install command with this user's. */
  rename(command: string): string {
    return command
      .replace(/(-[og] |--(?:owner|group)[ =]|-u |:)mqtt-proxy\b/g, `$1${this.name}`);
  }

  async remove(): Promise<void> {
    // --user-group made a group of the same name; userdel removes it with the user.
    await shell(`userdel ${this.name}`, "/");
  }
}

export interface ShellResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command line with bash (as the operator's root shell would), feeding `stdin`. */
export async function shell(
  line: string,
  cwd: string,
  stdin = "",
  env: Record<string, string> = {},
): Promise<ShellResult> {
  const child = new Deno.Command("bash", {
    args: ["-c", line],
    cwd,
    env,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(stdin));
  await writer.close();
  const output = await child.output();
  const decoder = new TextDecoder();
  return { code: output.code, stdout: decoder.decode(output.stdout), stderr: decoder.decode(output.stderr) };
}

/**
 * Lays out the release archive's directory as scripts/release.sh does (its `install ... "$STAGE/$NAME/..."`
 * lines, read from the script), with a stand-in for the binary: `deno compile` needs a denort runtime
 * that is not available here, so `mqtt-proxy` is a shell script that runs main.ts bundled into one file
 * (`deno bundle`) with a copy of deno and the compile task's permission flags. Like the real binary, it
 * needs nothing from the source tree or from root's home (where npx keeps deno in CI).
 */
export async function stageRelease(work: string): Promise<string> {
  const standIn = `${work}/standin`;
  const release = `${work}/release`;
  await Deno.mkdir(`${standIn}/deno-dir`, { recursive: true });
  await Deno.chmod(`${standIn}/deno-dir`, 0o1777); // the stand-in's cache, for whichever user runs it
  await Deno.copyFile(Deno.execPath(), `${standIn}/deno`);
  await Deno.chmod(`${standIn}/deno`, 0o755);
  // The RocketMQ client is loaded only with cluster.enabled (a dynamic import): kept out of the bundle.
  const bundled = await new Deno.Command(Deno.execPath(), {
    args: [
      "bundle",
      "--quiet",
      "--platform=deno",
      "--code-splitting",
      "--external=rocketmq-client-nodejs",
      "--external=rocketmq-client-nodejs/*",
      `--outdir=${standIn}/app`,
      `${ROOT}main.ts`,
    ],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.ok(bundled.success, `deno bundle main.ts failed:\n${new TextDecoder().decode(bundled.stderr)}`);
  // What the compile task `--include`s besides the config: worker modules (a bundler does not follow a
  // Worker's URL), each bundled on its own beside main.js, where the code that starts it looks for it.
  for (const module of await compileIncludedModules()) {
    const name = module.split("/").at(-1)!.replace(/\.ts$/, ".js");
    const worker = await new Deno.Command(Deno.execPath(), {
      args: ["bundle", "--quiet", "--platform=deno", `--output=${standIn}/app/${name}`, `${ROOT}${module}`],
      cwd: ROOT,
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.ok(worker.success, `deno bundle ${module} failed:\n${new TextDecoder().decode(worker.stderr)}`);
  }
  const flags = await compilePermissionFlags();
  const binary = `${work}/mqtt-proxy.bin`;
  await Deno.writeTextFile(
    binary,
    `#!/bin/sh\n# stand-in for the compiled release binary (see tests/ops/systemd_support.ts)\n` +
      `DENO_DIR=${standIn}/deno-dir exec ${standIn}/deno run --quiet --no-config ${flags.join(" ")} ` +
      `${standIn}/app/main.js "$@"\n`,
  );

  const script = await Deno.readTextFile(`${ROOT}scripts/release.sh`);
  const installs = [...script.matchAll(/^install -m (\d+) (.+) "\$STAGE\/\$NAME\/?([^"]*)"$/gm)];
  assert.ok(installs.length > 0, "no install lines in scripts/release.sh");
  for (const [, mode, sources, target] of installs) {
    const files = sources.split(/\s+/);
    const toDirectory = target === "" || target.endsWith("/") || files.length > 1;
    const destination = `${release}/${target}`;
    await Deno.mkdir(toDirectory ? destination : destination.replace(/\/[^/]*$/, ""), { recursive: true });
    for (const file of files) {
      const source = file === "dist/mqtt-proxy" ? binary : `${ROOT}${file}`;
      const path = toDirectory ? `${destination.replace(/\/$/, "")}/${file.split("/").at(-1)}` : destination;
      await Deno.copyFile(source, path);
      await Deno.chmod(path, parseInt(mode, 8));
    }
  }
  return release;
}

/** The modules (.ts) the compile task of deno.json puts into the binary with `--include`. */
async function compileIncludedModules(): Promise<string[]> {
  const config = JSON.parse(await Deno.readTextFile(`${ROOT}deno.json`));
  const args = (config.tasks.compile as string).split(/\s+/);
  return args.flatMap((arg, i) => arg === "--include" && args[i + 1].endsWith(".ts") ? [args[i + 1]] : []);
}

/** Replaces `key = ...` in a properties text, or appends it: what an operator's edit does. */
export function setProperty(text: string, key: string, value: string): string {
  const pattern = new RegExp(`^${key.replaceAll(".", "\\.")}\\s*=.*$`, "m");
  const line = `${key} = ${value}`;
  return pattern.test(text) ? text.replace(pattern, line) : `${text.replace(/\n?$/, "\n")}${line}\n`;
}

/** Owner, group and permission bits of a path, as `ls -l` would show them to the operator. */
export async function ownership(path: string): Promise<{ uid: number; gid: number; mode: number }> {
  const info = await Deno.stat(path);
  return { uid: info.uid!, gid: info.gid!, mode: info.mode! & 0o7777 };
}

/** Every path under `dir` owned by `uid`. */
export async function ownedBy(dir: string, uid: number): Promise<string[]> {
  const found: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    const path = `${dir}/${entry.name}`;
    const info = await Deno.lstat(path);
    if (info.uid === uid) found.push(path);
    if (entry.isDirectory) found.push(...await ownedBy(path, uid));
  }
  return found;
}

/** The service as systemd would run it from the installed unit. */
export class Service {
  constructor(readonly unit: Unit, readonly root: FakeRoot, readonly user: ServiceUser) {}

  value(key: string): string {
    const value = unitValue(this.unit, "Service", key);
    assert.ok(value !== undefined, `[Service] ${key} is missing`);
    return value;
  }

  /** A command line of the unit, as argv with paths under the root and $MAINPID filled in. */
  argv(key: string, mainPid = 0): string[] {
    const line = this.value(key);
    assert.ok(!/^[-+!@:]/.test(line), `${key} prefixes are not simulated: ${line}`);
    return this.root.map(line).replaceAll("$MAINPID", String(mainPid)).split(/\s+/);
  }

  /** What systemd does before ExecStartPre: the StateDirectory, owned by the service user. */
  async prepare(): Promise<string> {
    const state = `${this.root.dir}/var/lib/${this.value("StateDirectory")}`;
    await Deno.mkdir(state, { recursive: true });
    await Deno.chown(state, this.user.uid, this.user.gid);
    await Deno.chmod(state, parseInt(this.value("StateDirectoryMode"), 8));
    return state;
  }

  /**
   * `setpriv ... sh -c 'umask ...'` around an argv: the credentials of the unit. LimitNOFILE is not applied:
   * raising the hard limit needs CAP_SYS_RESOURCE, which root in a container (here) may not have.
   */
  #asService(argv: string[]): string[] {
    return [
      `--reuid=${this.user.uid}`,
      `--regid=${this.user.gid}`,
      "--init-groups",
      ...(this.value("NoNewPrivileges") === "true" ? ["--no-new-privs"] : []),
      "--",
      "sh",
      "-c",
      `umask ${this.value("UMask")} && exec "$@"`,
      "sh",
      ...argv,
    ];
  }

  /** systemd's environment for a User= service, plus Environment=. */
  async environment(): Promise<Record<string, string>> {
    const passwd = (await shell(`getent passwd ${this.user.name}`, "/")).stdout.trim().split(":");
    const env: Record<string, string> = {
      PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
      HOME: passwd[5],
      USER: this.user.name,
      LOGNAME: this.user.name,
      SHELL: passwd[6],
      LANG: "C.UTF-8",
    };
    for (const assignment of this.unit.get("Service")?.get("Environment") ?? []) {
      for (const [, key, value] of assignment.matchAll(/"?([A-Za-z_][A-Za-z0-9_]*)=([^"\s]*)"?/g)) {
        env[key] = value;
      }
    }
    return env;
  }

  async execStartPre(): Promise<{ code: number; stderr: string }> {
    const output = await new Deno.Command("setpriv", {
      args: this.#asService(this.argv("ExecStartPre")),
      cwd: this.root.map(this.value("WorkingDirectory")),
      env: await this.environment(),
      clearEnv: true,
      stdout: "piped",
      stderr: "piped",
    }).output();
    return { code: output.code, stderr: new TextDecoder().decode(output.stderr) };
  }

  async execStart(): Promise<BrokerProcess> {
    const cwd = this.root.map(this.value("WorkingDirectory"));
    return new BrokerProcess(
      "setpriv",
      this.#asService(this.argv("ExecStart")),
      cwd,
      60_000,
      await this.environment(),
    );
  }

  /** ExecReload, run by systemd (root) with $MAINPID. */
  async reload(mainPid: number): Promise<void> {
    const [command, ...args] = this.argv("ExecReload", mainPid);
    const output = await new Deno.Command(command, { args, stdout: "null", stderr: "piped" }).output();
    assert.ok(output.success, `ExecReload failed: ${new TextDecoder().decode(output.stderr)}`);
  }

  /** `systemctl start`: StateDirectory, ExecStartPre, ExecStart up to broker.started. */
  async start(): Promise<{ broker: BrokerProcess; port: number; httpPort: number; state: string }> {
    const state = await this.prepare();
    const pre = await this.execStartPre();
    assert.equal(pre.code, 0, `ExecStartPre (check-config as ${this.user.name}) failed:\n${pre.stderr}`);
    const broker = await this.execStart();
    const listener = await broker.event("listener.started");
    const http = await broker.event("http.started");
    await broker.event("broker.started");
    assert.equal(listener.host, "127.0.0.1");
    return { broker, port: listener.port as number, httpPort: http.port as number, state };
  }
}
