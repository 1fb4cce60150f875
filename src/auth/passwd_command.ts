/**
 * `mqtt-proxy passwd`: edits a password file the way `mosquitto_passwd` does.
 *
 * ```
 * mqtt-proxy passwd <file> <user>                 password from stdin when piped, else prompted twice
 * mqtt-proxy passwd -b <file> <user> <password>   batch mode: password on the command line
 * mqtt-proxy passwd -D <file> <user>              delete the user
 * ```
 *
 * A missing file is created with mode 0600; an existing file keeps its mode, owner and group (a service
 * reads it through its group: root:mqtt-proxy 0640 under systemd). The new text is written to a sibling
 * temporary file and renamed over the old one, so a crash never leaves half a file.
 */
import { AuthFileError, meaningfulLines } from "./auth_file.ts";
import { addOrUpdateUser, invalidUsernameReason, removeUser } from "./password_file.ts";
import { parseScramFile, scramCredentialLine } from "./scram.ts";

/** The file formats the command writes: `passwd` ($7$ PBKDF2 hashes) and `scram` (SCRAM-SHA-256 keys). */
export type CredentialFormat = "passwd" | "scram";

/** The usage text of `mqtt-proxy passwd` or `mqtt-proxy scram`. */
export function credentialUsage(format: CredentialFormat): string {
  return [
    `usage: mqtt-proxy ${format} <file> <user>                 (password from stdin or prompt)`,
    `       mqtt-proxy ${format} -b <file> <user> <password>   (batch mode)`,
    `       mqtt-proxy ${format} -D <file> <user>              (delete user)`,
    format === "passwd"
      ? "Writes username:$7$... lines (PBKDF2-SHA512, mosquitto_passwd 2 format) for auth.password_file or admin.password_file."
      : "Writes user:SCRAM-SHA-256$... lines (salted keys only, never the password) for auth.scram_file.",
  ].join("\n");
}

/** The user's line index in a SCRAM file, or -1. */
function scramLineOf(lines: string[], user: string): number {
  return lines.findIndex((line) => !line.trim().startsWith("#") && line.trim().startsWith(`${user}:`));
}

async function setScramUser(text: string, user: string, password: string, source: string): Promise<string> {
  const invalid = invalidUsernameReason(user);
  if (invalid) throw new AuthFileError(source, undefined, invalid);
  if (password === "") throw new AuthFileError(source, undefined, "password must not be empty");
  parseScramFile(text, source);
  const line = await scramCredentialLine(user, password);
  const lines = meaningfulLines(text).length === 0 && text.trim() === ""
    ? []
    : text.replace(/\n$/, "").split("\n");
  const index = scramLineOf(lines, user);
  if (index >= 0) lines[index] = line;
  else lines.push(line);
  return lines.join("\n") + "\n";
}

function removeScramUser(text: string, user: string, source: string): string {
  parseScramFile(text, source);
  const lines = text.replace(/\n$/, "").split("\n");
  const index = scramLineOf(lines, user);
  if (index < 0) throw new AuthFileError(source, undefined, `user "${user}" not found`);
  lines.splice(index, 1);
  return lines.length === 0 ? "" : lines.join("\n") + "\n";
}

const NEW_FILE_MODE = 0o600;

/** The terminal side of the command; tests substitute it. */
export interface PasswdIo {
  /** The new password: the first line of stdin when it is piped, else read twice without echo. */
  readPassword(): Promise<string>;
  /** Shows a line to the operator. */
  report(message: string): void;
}

type PasswdAction =
  | { kind: "set"; file: string; user: string; password?: string }
  | { kind: "delete"; file: string; user: string };

function parseArguments(args: string[]): PasswdAction | undefined {
  const [first, ...rest] = args;
  if (first === "-b" && rest.length === 3) {
    return { kind: "set", file: rest[0], user: rest[1], password: rest[2] };
  }
  if (first === "-D" && rest.length === 2) return { kind: "delete", file: rest[0], user: rest[1] };
  if (args.length === 2 && !first.startsWith("-")) return { kind: "set", file: args[0], user: args[1] };
  return undefined;
}

interface ExistingFile {
  text: string;
  mode: number;
  uid: number | null;
  gid: number | null;
}

async function readExisting(file: string): Promise<ExistingFile | undefined> {
  try {
    const [text, info] = await Promise.all([Deno.readTextFile(file), Deno.stat(file)]);
    return { text, mode: (info.mode ?? NEW_FILE_MODE) & 0o777, uid: info.uid, gid: info.gid };
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}

async function replaceFile(file: string, text: string, existing: ExistingFile | undefined): Promise<void> {
  const temporary = `${file}.${crypto.randomUUID()}.tmp`;
  const mode = existing?.mode ?? NEW_FILE_MODE;
  try {
    await Deno.writeTextFile(temporary, text, { createNew: true, mode });
    await Deno.chmod(temporary, mode); // the umask may have narrowed or widened the creation mode
    // The new file would belong to whoever runs the command (root): keep the old owner and group, or the
    // service that reads the file through its group cannot after the next reload. Refuse rather than
    // replace it with a file of other ownership when they cannot be kept.
    const created = await Deno.stat(temporary);
    if (existing && (existing.uid !== created.uid || existing.gid !== created.gid)) {
      await Deno.chown(temporary, existing.uid, existing.gid).catch((error) => {
        throw new Error(
          `cannot keep the owner ${existing.uid}:${existing.gid} of ${file} (${
            error instanceof Error ? error.message : error
          }); run as root or as the owner`,
        );
      });
    }
    await Deno.rename(temporary, file);
  } catch (error) {
    await Deno.remove(temporary).catch(() => {});
    throw error;
  }
}

/**
 * Runs `mqtt-proxy passwd` (or `mqtt-proxy scram` with `format` "scram") with the arguments after the
 * command. Returns the process exit code: 0 when the file was written, 1 with a message on `io.report`
 * otherwise.
 */
export async function runPasswdCommand(
  args: string[],
  io: PasswdIo = terminalIo,
  format: CredentialFormat = "passwd",
): Promise<number> {
  const action = parseArguments(args);
  if (!action) {
    io.report(credentialUsage(format));
    return 1;
  }
  try {
    const existing = await readExisting(action.file);
    if (action.kind === "delete") {
      if (!existing) throw new AuthFileError(action.file, undefined, "no such file");
      const text = format === "scram"
        ? removeScramUser(existing.text, action.user, action.file)
        : removeUser(existing.text, action.user, action.file);
      await replaceFile(action.file, text, existing);
      return 0;
    }
    const password = action.password ?? await io.readPassword();
    const text = format === "scram"
      ? await setScramUser(existing?.text ?? "", action.user, password, action.file)
      : await addOrUpdateUser(existing?.text ?? "", action.user, password, { source: action.file });
    await replaceFile(action.file, text, existing);
    return 0;
  } catch (error) {
    io.report(`mqtt-proxy ${format}: ${error instanceof Error ? error.message : String(error)}`);
    return 1;
  }
}

const encoder = new TextEncoder();

function writeToStderr(text: string): void {
  Deno.stderr.writeSync(encoder.encode(text));
}

async function readFirstLineOfStdin(): Promise<string> {
  const text = await new Response(Deno.stdin.readable).text();
  return text.split("\n")[0].replace(/\r$/, "");
}

const ENTER = new Set([0x0a, 0x0d]);
const CTRL_C = 0x03;
const CTRL_D = 0x04;
const BACKSPACE = new Set([0x08, 0x7f]);

/** Reads one line from the terminal in raw mode so that the password is not echoed. */
async function promptWithoutEcho(question: string): Promise<string> {
  writeToStderr(question);
  Deno.stdin.setRaw(true);
  const typed: number[] = [];
  try {
    const chunk = new Uint8Array(256);
    for (;;) {
      const count = await Deno.stdin.read(chunk);
      if (count === null) break;
      for (const byte of chunk.subarray(0, count)) {
        if (ENTER.has(byte) || byte === CTRL_D) return new TextDecoder().decode(new Uint8Array(typed));
        if (byte === CTRL_C) throw new Error("interrupted");
        if (BACKSPACE.has(byte)) {
          // drop a whole UTF-8 character: its continuation bytes are 10xxxxxx
          while (typed.length > 0 && (typed.pop()! & 0xc0) === 0x80);
        } else {
          typed.push(byte);
        }
      }
    }
    return new TextDecoder().decode(new Uint8Array(typed));
  } finally {
    Deno.stdin.setRaw(false);
    writeToStderr("\n");
  }
}

const terminalIo: PasswdIo = {
  async readPassword() {
    if (!Deno.stdin.isTerminal()) return await readFirstLineOfStdin();
    const password = await promptWithoutEcho("Password: ");
    if (password !== await promptWithoutEcho("Reenter password: ")) throw new Error("passwords do not match");
    return password;
  },
  report(message) {
    writeToStderr(message + "\n");
  },
};
