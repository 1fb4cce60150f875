import assert from "node:assert/strict";
import { parsePasswordFile, type PasswdIo, runPasswdCommand, verifyPassword } from "../../src/auth/mod.ts";

function scriptedIo(password = "typed"): PasswdIo & { messages: string[] } {
  const messages: string[] = [];
  return {
    messages,
    readPassword: () => Promise.resolve(password),
    report: (message) => messages.push(message),
  };
}

async function passwordMatches(file: string, user: string, password: string): Promise<boolean> {
  const stored = parsePasswordFile(await Deno.readTextFile(file), file).get(user);
  return stored !== undefined && await verifyPassword(password, stored);
}

Deno.test("passwd -b creates a missing file with mode 0600 and sets the password", async () => {
  const dir = await Deno.makeTempDir();
  const file = `${dir}/passwords`;
  try {
    assert.equal(await runPasswdCommand(["-b", file, "alice", "s3cret"], scriptedIo()), 0);
    assert.equal((await Deno.stat(file)).mode! & 0o777, 0o600);
    assert.equal(await passwordMatches(file, "alice", "s3cret"), true);
    assert.deepEqual([...Deno.readDirSync(dir)].map((entry) => entry.name), ["passwords"]); // no temp file left
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("passwd without -b takes the password from the io, and keeps an existing file's mode", async () => {
  const dir = await Deno.makeTempDir();
  const file = `${dir}/passwords`;
  try {
    await runPasswdCommand(["-b", file, "alice", "first"], scriptedIo());
    await runPasswdCommand(["-b", file, "bob", "bobs"], scriptedIo());
    await Deno.chmod(file, 0o640);
    assert.equal(await runPasswdCommand([file, "alice"], scriptedIo("second")), 0);
    assert.equal(await passwordMatches(file, "alice", "second"), true);
    assert.equal(await passwordMatches(file, "alice", "first"), false);
    assert.equal(await passwordMatches(file, "bob", "bobs"), true);
    assert.equal((await Deno.stat(file)).mode! & 0o777, 0o640);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("passwd -D deletes a user and fails clearly for an unknown user or file", async () => {
  const dir = await Deno.makeTempDir();
  const file = `${dir}/passwords`;
  try {
    await runPasswdCommand(["-b", file, "alice", "a"], scriptedIo());
    await runPasswdCommand(["-b", file, "bob", "b"], scriptedIo());
    assert.equal(await runPasswdCommand(["-D", file, "alice"], scriptedIo()), 0);
    assert.deepEqual([...parsePasswordFile(await Deno.readTextFile(file), file).keys()], ["bob"]);
    const io = scriptedIo();
    assert.equal(await runPasswdCommand(["-D", file, "alice"], io), 1);
    assert.deepEqual(io.messages, [`mqtt-proxy passwd: ${file}: user "alice" not found`]);
    assert.equal(await runPasswdCommand(["-D", `${dir}/missing`, "bob"], io), 1);
    assert.match(io.messages[1], /missing: no such file$/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("passwd rejects bad arguments with the usage, and bad input without touching the file", async () => {
  const dir = await Deno.makeTempDir();
  const file = `${dir}/passwords`;
  try {
    for (const args of [[], [file], ["-b", file, "alice"], ["-x", file, "alice"], ["-D", file]]) {
      const io = scriptedIo();
      assert.equal(await runPasswdCommand(args, io), 1, JSON.stringify(args));
      assert.match(io.messages[0], /^usage: mqtt-proxy passwd/);
    }
    await Deno.writeTextFile(file, "not a password line\n");
    const io = scriptedIo();
    assert.equal(await runPasswdCommand(["-b", file, "alice", "pw"], io), 1);
    assert.deepEqual(io.messages, [`mqtt-proxy passwd: ${file}:1: expected username:hash`]);
    assert.equal(await Deno.readTextFile(file), "not a password line\n");
    assert.equal(await runPasswdCommand(["-b", file, "a:b", "pw"], io), 1);
    assert.match(io.messages[1], /must not contain ':'/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("passwd reads the password from piped stdin in a real process (echo pw | mqtt-proxy passwd f u)", async () => {
  const dir = await Deno.makeTempDir();
  const file = `${dir}/passwords`;
  const script = `${dir}/passwd.ts`;
  try {
    const module = new URL("../../src/auth/mod.ts", import.meta.url).href;
    await Deno.writeTextFile(
      script,
      `import { runPasswdCommand } from "${module}";\nDeno.exit(await runPasswdCommand(Deno.args));\n`,
    );
    const run = async (args: string[], stdin: string) => {
      const child = new Deno.Command(Deno.execPath(), {
        args: ["run", "--quiet", "--no-lock", "--allow-read", "--allow-write", script, ...args],
        stdin: "piped",
        stdout: "null",
        stderr: "piped",
      }).spawn();
      const writer = child.stdin.getWriter();
      await writer.write(new TextEncoder().encode(stdin));
      await writer.close();
      const { code, stderr } = await child.output();
      return { code, stderr: new TextDecoder().decode(stderr) };
    };
    assert.deepEqual(await run([file, "alice"], "from stdin\r\nignored\n"), { code: 0, stderr: "" });
    assert.equal(await passwordMatches(file, "alice", "from stdin"), true);
    const refused = await run([file, "bob"], "\n");
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /password must not be empty/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
