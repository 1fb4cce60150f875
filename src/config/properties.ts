import { ConfigError } from "./errors.ts";

/** One `key = value` pair of a `.properties` file, with the line its logical line starts on. */
export interface PropertyEntry {
  readonly key: string;
  readonly value: string;
  readonly line: number;
}

const ESCAPES: Record<string, string> = { t: "\t", n: "\n", r: "\r", f: "\f" };

/**
 * Parses Java `.properties` text: `key = value`, `key=value`, `key: value` or `key value`;
 * `#` and `!` comment lines; a trailing odd backslash continues the line (the next line's leading
 * whitespace is dropped); `\t \n \r \f \uXXXX` escapes, and a backslash before any other character
 * keeps that character literally. Surrounding whitespace of the value is trimmed.
 * Entries come back in file order, duplicates included: rejecting them is the caller's policy.
 */
export function parseProperties(text: string, fileName: string): PropertyEntry[] {
  const lines = text.replace(/^\uFEFF/, "").split(/\r\n|\r|\n/);
  const entries: PropertyEntry[] = [];
  for (let index = 0; index < lines.length; index++) {
    const line = index + 1;
    let logical = lines[index].trimStart();
    if (logical === "" || logical[0] === "#" || logical[0] === "!") continue;
    while (endsWithContinuation(logical)) {
      logical = logical.slice(0, -1);
      if (++index >= lines.length) break;
      logical += lines[index].trimStart();
    }
    entries.push(splitEntry(logical, line, fileName));
  }
  return entries;
}

function endsWithContinuation(text: string): boolean {
  let backslashes = 0;
  for (let i = text.length - 1; i >= 0 && text[i] === "\\"; i--) backslashes++;
  return backslashes % 2 === 1;
}

function isBlank(char: string): boolean {
  return char === " " || char === "\t" || char === "\f";
}

function splitEntry(logical: string, line: number, fileName: string): PropertyEntry {
  let keyEnd = 0;
  while (keyEnd < logical.length) {
    const char = logical[keyEnd];
    if (char === "\\") keyEnd += 2;
    else if (char === "=" || char === ":" || isBlank(char)) break;
    else keyEnd++;
  }
  keyEnd = Math.min(keyEnd, logical.length);
  let valueStart = keyEnd;
  while (valueStart < logical.length && isBlank(logical[valueStart])) valueStart++;
  if (logical[valueStart] === "=" || logical[valueStart] === ":") valueStart++;
  while (valueStart < logical.length && isBlank(logical[valueStart])) valueStart++;

  const key = unescape(logical.slice(0, keyEnd), line, fileName);
  if (key === "") throw new ConfigError(`${fileName}:${line}: missing key before "${logical[keyEnd]}"`);
  return { key, value: unescape(logical.slice(valueStart), line, fileName), line };
}

/** Resolves escapes and drops trailing whitespace, except whitespace that was escaped on purpose. */
function unescape(raw: string, line: number, fileName: string): string {
  let out = "";
  let keptLength = 0;
  for (let i = 0; i < raw.length; i++) {
    const char = raw[i];
    if (char !== "\\") {
      out += char;
      if (!isBlank(char)) keptLength = out.length;
      continue;
    }
    const escaped = raw[++i];
    if (escaped === undefined) break;
    if (escaped === "u") {
      const hex = raw.slice(i + 1, i + 5);
      if (!/^[0-9a-fA-F]{4}$/.test(hex)) {
        throw new ConfigError(`${fileName}:${line}: malformed \\u escape "\\u${hex}": expected 4 hex digits`);
      }
      out += String.fromCharCode(parseInt(hex, 16));
      i += 4;
    } else {
      out += ESCAPES[escaped] ?? escaped;
    }
    keptLength = out.length;
  }
  return out.slice(0, keptLength);
}
