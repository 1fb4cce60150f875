/** Reading and line-splitting of the credential and ACL files, and the error that points into them. */

/**
 * A credential or ACL file that cannot be read or parsed. The message starts with `path:line:` (or
 * `path:` when the whole file is at fault) so that an operator can jump to the offending line.
 */
export class AuthFileError extends Error {
  override readonly name = "AuthFileError";
  constructor(
    readonly path: string,
    readonly line: number | undefined,
    readonly detail: string,
  ) {
    super(line === undefined ? `${path}: ${detail}` : `${path}:${line}: ${detail}`);
  }
}

/** Reads a configured file, turning I/O failures into an {@link AuthFileError} that names the file. */
export async function readAuthFile(path: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch (error) {
    throw new AuthFileError(
      path,
      undefined,
      `cannot read: ${error instanceof Error ? error.message : error}`,
    );
  }
}

/**
 * Splits file text into lines worth parsing, numbered from 1, without comments (`#` first) and
 * blank lines; tolerates CRLF files written on Windows.
 */
export function meaningfulLines(text: string): { lineNumber: number; content: string }[] {
  const lines: { lineNumber: number; content: string }[] = [];
  text.split("\n").forEach((raw, index) => {
    const content = raw.trim();
    if (content !== "" && !content.startsWith("#")) lines.push({ lineNumber: index + 1, content });
  });
  return lines;
}
