/**
 * The command line: which command to run and with what, or a clear error. Nothing unknown starts a
 * broker: an unknown command or option, or an option without its value, is an error (exit code 2), and
 * every command answers --help.
 */

import { credentialUsage } from "../auth/mod.ts";

export const DEFAULT_CONFIG = "conf/mqtt.properties";

/** What the command line asks for. */
export type Invocation =
  | { command: "run" | "check-config"; configPath: string }
  | { command: "passwd" | "scram"; args: string[] }
  | { command: "help"; text: string }
  | { command: "version" }
  | { command: "error"; message: string };

const COMMANDS = ["check-config", "passwd", "scram"] as const;

/** Usage of the whole program and of each command. */
export function usage(version: string): Record<"main" | "check-config", string> {
  return {
    main: `mqtt-proxy ${version} — an MQTT 3.1/3.1.1/5.0 broker

Usage:
  mqtt-proxy [-c <file>]             run the broker (default config: ${DEFAULT_CONFIG})
  mqtt-proxy check-config [-c <file>]
                                     check a configuration as the broker would at start, and exit
  mqtt-proxy passwd [-b|-D] <file> <user> [password]
                                     add, update (-b: password on the command line) or delete (-D) a user
                                     of a password file (auth.password_file, admin.password_file)
  mqtt-proxy scram [-b|-D] <file> <user> [password]
                                     the same for a SCRAM-SHA-256 file (auth.scram_file)
  mqtt-proxy --version | --help      (every command also takes --help)

Options:
  -c, --config <file>                the configuration file
`,
    "check-config": `Usage: mqtt-proxy check-config [-c <file>]

Checks ${DEFAULT_CONFIG} (or <file>) the way the broker does at start: every key and value, that the
password, access-key, SCRAM, ACL, token, certificate and key files exist and are readable, that each
certificate loads with its key, and that no two listeners (or a listener and http.port) share a port.
Prints "<file>: OK" and exits 0, or the problems and exits 2.
`,
  };
}

/** The edit distance of two short words, for "did you mean". */
function distance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(
        previous[j] + 1,
        current[j - 1] + 1,
        previous[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    }
    previous = current;
  }
  return previous[b.length];
}

function unknownCommand(word: string): string {
  const near = COMMANDS.find((command) => distance(word, command) <= 3);
  const hint = word === "help" ? "mqtt-proxy --help" : near ? `mqtt-proxy ${near}` : "mqtt-proxy --help";
  return `unknown command "${word}" (did you mean ${hint}?)`;
}

/** Reads the command line. `version` goes into the help text. */
export function parseCommandLine(args: string[], version: string): Invocation {
  const help = usage(version);
  const [first] = args;
  if (first === "passwd" || first === "scram") {
    const rest = args.slice(1);
    if (rest.includes("--help") || rest.includes("-h")) {
      return { command: "help", text: credentialUsage(first) + "\n" };
    }
    return { command: first, args: rest };
  }
  let command: "run" | "check-config" = "run";
  let configPath: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "-h" || arg === "--help") {
      return { command: "help", text: command === "check-config" ? help["check-config"] : help.main };
    }
    if (arg === "-v" || arg === "--version") return { command: "version" };
    if (arg === "-c" || arg === "--config") {
      const value = args[++i];
      if (value === undefined || value === "") {
        return { command: "error", message: `${arg} needs a file name` };
      }
      if (configPath !== undefined) return { command: "error", message: `${arg} given twice` };
      configPath = value;
      continue;
    }
    const inline = /^--config=(.*)$/.exec(arg);
    if (inline) {
      if (inline[1] === "") return { command: "error", message: "--config= needs a file name" };
      configPath = inline[1];
      continue;
    }
    if (arg.startsWith("-")) {
      return { command: "error", message: `unknown option ${arg} (see mqtt-proxy --help)` };
    }
    if (i === 0 && arg === "check-config") {
      command = "check-config";
      continue;
    }
    return { command: "error", message: i === 0 ? unknownCommand(arg) : `unexpected argument "${arg}"` };
  }
  return { command, configPath: configPath ?? DEFAULT_CONFIG };
}
