/**
 * Independent reference computations through the `openssl` binary, so that the tests do not check
 * the code against itself. A missing binary fails the calling test with a clear message.
 */

async function runOpenssl(args: string[], input: Uint8Array): Promise<Uint8Array> {
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command("openssl", { args, stdin: "piped", stdout: "piped", stderr: "piped" }).spawn();
  } catch (error) {
    throw new Error(`openssl is required by this test and could not be started: ${error}`);
  }
  const writer = child.stdin.getWriter();
  await writer.write(input);
  await writer.close();
  const { success, stdout, stderr } = await child.output();
  if (!success) throw new Error(`openssl ${args.join(" ")} failed: ${new TextDecoder().decode(stderr)}`);
  return stdout;
}

/** Base64(HMAC-SHA1(key = secret, data)), as `openssl dgst -sha1 -hmac <secret> -binary | base64`. */
export async function opensslHmacSha1Base64(secret: string, data: string): Promise<string> {
  const digest = await runOpenssl(
    ["dgst", "-sha1", "-hmac", secret, "-binary"],
    new TextEncoder().encode(data),
  );
  return btoa(String.fromCharCode(...digest));
}

/** PBKDF2-HMAC-SHA512 of `password`, as `openssl kdf ... PBKDF2`, in base64. */
export async function opensslPbkdf2Sha512Base64(
  password: string,
  salt: Uint8Array,
  iterations: number,
): Promise<string> {
  const hexSalt = Array.from(salt, (byte) => byte.toString(16).padStart(2, "0")).join("");
  const args = ["kdf", "-binary", "-keylen", "64", "-kdfopt", "digest:SHA512", "-kdfopt", `pass:${password}`];
  args.push("-kdfopt", `hexsalt:${hexSalt}`, "-kdfopt", `iter:${iterations}`, "PBKDF2");
  const key = await runOpenssl(args, new Uint8Array());
  return btoa(String.fromCharCode(...key));
}
