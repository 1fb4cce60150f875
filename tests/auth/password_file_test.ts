import assert from "node:assert/strict";
import {
  addOrUpdateUser,
  AuthFileError,
  hashPassword,
  parsePasswordFile,
  removeUser,
  verifyPassword,
} from "../../src/auth/mod.ts";
import { opensslPbkdf2Sha512Base64 } from "./openssl.ts";

const FAST = 10; // iterations for tests that are not about the cost

Deno.test("a hashed password verifies and a different one does not", async () => {
  const encoded = await hashPassword("correct horse", FAST);
  const stored = parsePasswordFile(`alice:${encoded}\n`, "pw").get("alice")!;
  assert.equal(await verifyPassword("correct horse", stored), true);
  assert.equal(await verifyPassword("correct hors", stored), false);
  assert.equal(await verifyPassword(new TextEncoder().encode("correct horse"), stored), true);
});

Deno.test("hashes use the $7$ layout with a fresh salt each time", async () => {
  const [first, second] = [await hashPassword("same", FAST), await hashPassword("same", FAST)];
  assert.match(first, /^\$7\$10\$[A-Za-z0-9+/]{16}\$[A-Za-z0-9+/]{86}==$/);
  assert.notEqual(first, second);
});

Deno.test("a line in mosquitto_passwd's format, derived by openssl, verifies", async () => {
  const salt = new Uint8Array([0, 17, 34, 51, 68, 85, 102, 119, 136, 153, 170, 187]);
  const hash = await opensslPbkdf2Sha512Base64("s3cret", salt, 101);
  const line = `bob:$7$101$${btoa(String.fromCharCode(...salt))}$${hash}`;
  const stored = parsePasswordFile(line, "pw").get("bob")!;
  assert.equal(stored.iterations, 101);
  assert.equal(await verifyPassword("s3cret", stored), true);
  assert.equal(await verifyPassword("S3cret", stored), false);
});

Deno.test("parsing skips comments and blank lines and reports bad lines with file:line", async () => {
  const good = await hashPassword("x", FAST);
  assert.deepEqual([...parsePasswordFile(`# users\n\nalice:${good}\r\nbob:${good}\n`, "pw").keys()], [
    "alice",
    "bob",
  ]);
  const cases: [string, RegExp][] = [
    [`alice:${good}\nbroken line\n`, /^pw:2: expected username:hash$/],
    [`alice:$6$abc$def\n`, /^pw:1: unsupported hash scheme/],
    [`alice:$7$0$AAAA$AAAA\n`, /^pw:1: iteration count/],
    [`alice:$7$10$AAAA$AAAA\n`, /^pw:1: hash must decode to 64 bytes$/],
    [`alice:${good}\n# c\nalice:${good}\n`, /^pw:3: user "alice" appears twice$/],
  ];
  for (const [text, message] of cases) {
    assert.throws(
      () => parsePasswordFile(text, "pw"),
      (error) => error instanceof AuthFileError && message.test(error.message),
    );
  }
});

Deno.test("addOrUpdateUser replaces a user's line in place and keeps comments and other users", async () => {
  const original = await addOrUpdateUser("# managed by ops\n", "alice", "one", { iterations: FAST });
  const withBob = await addOrUpdateUser(original, "bob", "two", { iterations: FAST });
  const updated = await addOrUpdateUser(withBob, "alice", "three", { iterations: FAST });
  const lines = updated.trimEnd().split("\n");
  assert.equal(lines[0], "# managed by ops");
  assert.deepEqual(lines.slice(1).map((line) => line.split(":")[0]), ["alice", "bob"]);
  const table = parsePasswordFile(updated, "pw");
  assert.equal(await verifyPassword("three", table.get("alice")!), true);
  assert.equal(await verifyPassword("two", table.get("bob")!), true);
});

Deno.test("addOrUpdateUser refuses user names the file cannot hold and empty passwords", async () => {
  for (const username of ["", "a:b", "#admin", " padded", "two\nlines"]) {
    await assert.rejects(
      addOrUpdateUser("", username, "pw"),
      AuthFileError,
      `username ${JSON.stringify(username)}`,
    );
  }
  await assert.rejects(addOrUpdateUser("", "alice", ""), /password must not be empty/);
  await assert.rejects(addOrUpdateUser("garbage\n", "alice", "pw", { source: "f" }), /^AuthFileError: f:1:/);
});

Deno.test("removeUser drops only that user and refuses an unknown one", async () => {
  const text = await addOrUpdateUser(
    await addOrUpdateUser("", "alice", "a", { iterations: FAST }),
    "bob",
    "b",
    {
      iterations: FAST,
    },
  );
  const remaining = removeUser(text, "alice");
  assert.deepEqual([...parsePasswordFile(remaining, "pw").keys()], ["bob"]);
  assert.equal(removeUser(remaining, "bob"), "");
  assert.throws(() => removeUser(remaining, "carol", "pw"), /^AuthFileError: pw: user "carol" not found$/);
});
