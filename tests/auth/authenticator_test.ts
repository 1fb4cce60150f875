import assert from "node:assert/strict";
import {
  type AuthResult,
  createAuthenticator,
  type Credentials,
  hashPassword,
  LoginThrottle,
} from "../../src/auth/mod.ts";
import { FORGET_AFTER_MS } from "../../src/auth/login_throttle.ts";
import { ReasonCode } from "../../src/codec/reason_codes.ts";
import { temporaryFiles, VirtualClock } from "./fixtures.ts";

const NO_DELAY = { baseMs: 0, maxMs: 0 };
/** These tests count the failure delay alone; the constant-time floor on refusals is tested in tests/security. */
const NO_FLOOR = { refusalFloorMs: 0 };

function login(username?: string, password?: string, remoteAddress = "198.51.100.1"): Credentials {
  const encoded = password === undefined ? undefined : new TextEncoder().encode(password);
  return { clientId: "client-1", username, password: encoded, remoteAddress };
}

function refusal(result: AuthResult): number | undefined {
  return result.ok ? undefined : result.reasonCode;
}

async function passwordFile(users: Record<string, string>): Promise<string> {
  const lines = await Promise.all(
    Object.entries(users).map(async ([user, pw]) => `${user}:${await hashPassword(pw, 10)}`),
  );
  return lines.join("\n") + "\n";
}

Deno.test("without credential sources anyone may connect, and a claimed user name is not taken as identity", async () => {
  const authenticator = await createAuthenticator({});
  assert.deepEqual(await authenticator.authenticate(login()), { ok: true, method: "anonymous" });
  assert.deepEqual(await authenticator.authenticate(login("whoever", "anything")), {
    ok: true,
    method: "anonymous",
  });
});

Deno.test("a SCRAM file or certificate user names alone also refuse anonymous clients", async () => {
  await using files = await temporaryFiles({ scram: "" });
  for (const options of [{ scramFile: files.paths.scram }, { certificateUsernames: true }]) {
    const authenticator = await createAuthenticator({ ...options, failureDelay: NO_DELAY, ...NO_FLOOR });
    assert.equal(refusal(await authenticator.authenticate(login())), ReasonCode.NotAuthorized);
    assert.equal(
      refusal(await authenticator.authenticate(login("dev", "pw"))),
      ReasonCode.BadUserNameOrPassword,
      "a user name nothing can verify",
    );
  }
});

Deno.test("a verified certificate's CN is the user name; one without a usable CN is refused", async () => {
  const authenticator = await createAuthenticator({
    certificateUsernames: true,
    failureDelay: NO_DELAY,
    ...NO_FLOOR,
  });
  const withCertificate = (certificateCommonName: string) => ({
    ...login("admin", "x"),
    certificateCommonName,
  });
  assert.deepEqual(await authenticator.authenticate(withCertificate("device-1")), {
    ok: true,
    username: "device-1",
    method: "certificate",
  });
  for (const name of ["", " device", "dev\nice"]) {
    assert.equal(
      refusal(await authenticator.authenticate(withCertificate(name))),
      ReasonCode.BadUserNameOrPassword,
    );
  }
  assert.equal(authenticator.methodStats().certificate.failures, 3);
});

Deno.test("once a credential file is configured anonymous clients are refused with 0x87 unless allowed", async () => {
  await using files = await temporaryFiles({ passwords: await passwordFile({ alice: "pw" }) });
  const strict = await createAuthenticator({
    passwordFile: files.paths.passwords,
    failureDelay: NO_DELAY,
    ...NO_FLOOR,
  });
  const anonymous = await strict.authenticate(login());
  assert.equal(refusal(anonymous), ReasonCode.NotAuthorized);
  assert.match(!anonymous.ok ? anonymous.reason : "", /anonymous/);
  const lenient = await createAuthenticator({ passwordFile: files.paths.passwords, allowAnonymous: true });
  assert.deepEqual(await lenient.authenticate(login()), { ok: true, method: "anonymous" });
  assert.equal(refusal(await lenient.authenticate(login("mallory", "pw"))), ReasonCode.BadUserNameOrPassword);
});

Deno.test("anonymous access can be refused even without credential files", async () => {
  const authenticator = await createAuthenticator({
    allowAnonymous: false,
    failureDelay: NO_DELAY,
    ...NO_FLOOR,
  });
  assert.equal(refusal(await authenticator.authenticate(login())), ReasonCode.NotAuthorized);
  assert.equal(
    refusal(await authenticator.authenticate(login("bob", "x"))),
    ReasonCode.BadUserNameOrPassword,
  );
});

Deno.test("password-file users need their password; wrong, missing and unknown are 0x86 without the password in the reason", async () => {
  await using files = await temporaryFiles({ passwords: await passwordFile({ alice: "wonderland" }) });
  const authenticator = await createAuthenticator({
    passwordFile: files.paths.passwords,
    failureDelay: NO_DELAY,
    ...NO_FLOOR,
  });
  assert.deepEqual(await authenticator.authenticate(login("alice", "wonderland")), {
    ok: true,
    username: "alice",
    method: "password",
  });
  for (const attempt of [login("alice", "wonderlant"), login("alice"), login("bob", "wonderland")]) {
    const result = await authenticator.authenticate(attempt);
    assert.equal(refusal(result), ReasonCode.BadUserNameOrPassword, attempt.username ?? "(anonymous)");
    assert.ok(!result.ok && !result.reason.includes("wonderland"));
  }
  assert.deepEqual(authenticator.stats(), { successes: 1, failures: 3 });
});

Deno.test("each failure from an address doubles the wait before its next answer, up to the maximum", async () => {
  await using files = await temporaryFiles({ passwords: await passwordFile({ alice: "pw" }) });
  const clock = new VirtualClock();
  const authenticator = await createAuthenticator(
    { passwordFile: files.paths.passwords, failureDelay: { baseMs: 100, maxMs: 1_000 }, ...NO_FLOOR },
    clock,
  );
  const waits: number[] = [];
  for (let attempt = 0; attempt < 7; attempt++) {
    const startedAt = clock.time;
    const answer = authenticator.authenticate(login("alice", "guess"));
    await clock.runUntilIdle();
    assert.equal(refusal(await answer), ReasonCode.BadUserNameOrPassword);
    waits.push(clock.time - startedAt);
  }
  assert.deepEqual(waits, [0, 100, 200, 400, 800, 1_000, 1_000]);

  // another address is not slowed down
  const elsewhere = authenticator.authenticate(login("alice", "pw", "203.0.113.9"));
  await clock.runUntilIdle();
  assert.deepEqual(await elsewhere, { ok: true, username: "alice", method: "password" });

  // the right password still has to wait its turn, and takes back only one failure: an attacker with one
  // valid account cannot reset the count between guesses
  let startedAt = clock.time;
  const success = authenticator.authenticate(login("alice", "pw"));
  await clock.runUntilIdle();
  assert.deepEqual(await success, { ok: true, username: "alice", method: "password" });
  assert.equal(clock.time - startedAt, 1_000);
  startedAt = clock.time;
  const afterSuccess = authenticator.authenticate(login("alice", "nope"));
  await clock.runUntilIdle();
  await afterSuccess;
  assert.equal(clock.time - startedAt, 1_000);
});

Deno.test("an anonymous client let in neither waits behind its address's failures nor takes one back", async () => {
  await using files = await temporaryFiles({ passwords: await passwordFile({ alice: "pw" }) });
  const clock = new VirtualClock();
  const authenticator = await createAuthenticator(
    {
      passwordFile: files.paths.passwords,
      allowAnonymous: true,
      failureDelay: { baseMs: 100, maxMs: 10_000 },
      ...NO_FLOOR,
    },
    clock,
  );
  const timed = async (credentials: Credentials) => {
    const startedAt = clock.time;
    const answer = authenticator.authenticate(credentials);
    await clock.runUntilIdle();
    return { result: await answer, waited: clock.time - startedAt };
  };
  assert.equal((await timed(login("alice", "guess"))).waited, 0);
  assert.equal((await timed(login("alice", "guess"))).waited, 100);
  for (let i = 0; i < 3; i++) {
    assert.deepEqual(await timed(login()), { result: { ok: true, method: "anonymous" }, waited: 0 });
  }
  // Still two failures behind: the next guess waits as long as after the second one doubled the delay.
  assert.equal((await timed(login("alice", "guess"))).waited, 200);
  assert.equal(authenticator.methodStats().anonymous.successes, 3);
});

Deno.test("successes take failures back one at a time until the address is forgotten", () => {
  const clock = new VirtualClock();
  const throttle = new LoginThrottle({ baseMs: 100, maxMs: 1_000 }, clock);
  throttle.recordFailure("a");
  throttle.recordFailure("a");
  throttle.recordSuccess("a");
  assert.equal(throttle.size, 1);
  throttle.recordSuccess("a");
  assert.equal(throttle.size, 0);
});

Deno.test("concurrent attempts from one address are answered one delay apart", async () => {
  await using files = await temporaryFiles({ passwords: await passwordFile({ alice: "pw" }) });
  const clock = new VirtualClock();
  const authenticator = await createAuthenticator(
    { passwordFile: files.paths.passwords, failureDelay: { baseMs: 100, maxMs: 10_000 }, ...NO_FLOOR },
    clock,
  );
  await authenticator.authenticate(login("alice", "wrong"));
  const answeredAt: number[] = [];
  const attempts = [1, 2, 3].map(() =>
    Promise.resolve(authenticator.authenticate(login("alice", "wrong"))).then(() =>
      answeredAt.push(clock.time)
    )
  );
  // One turn at a time: each attempt's password check is real async work, and advancing the clock to the next
  // turn before it finished would answer it late.
  for (const attempt of attempts) {
    await clock.fireNext();
    await attempt;
  }
  assert.deepEqual(answeredAt, [100, 200, 300]);
});

Deno.test("the failure table forgets quiet addresses and stays within its capacity", async () => {
  const clock = new VirtualClock();
  const throttle = new LoginThrottle({ baseMs: 100, maxMs: 1_000 }, clock, 2);
  const waitFor = async (address: string) => {
    const startedAt = clock.time;
    const turn = throttle.waitTurn(address);
    await clock.runUntilIdle();
    await turn;
    return clock.time - startedAt;
  };
  throttle.recordFailure("a");
  throttle.recordFailure("b");
  throttle.recordFailure("c");
  assert.equal(throttle.size, 2);
  assert.equal(await waitFor("a"), 0); // evicted as the least recently active
  assert.equal(await waitFor("c"), 100);
  clock.time += FORGET_AFTER_MS + 1;
  assert.equal(await waitFor("b"), 0);
  assert.equal(throttle.size, 1);
});

Deno.test("reload picks up new users and keeps the old ones when a file turns invalid", async () => {
  await using files = await temporaryFiles({
    passwords: await passwordFile({ alice: "one" }),
    keys: "ak = sk\n",
  });
  const authenticator = await createAuthenticator({
    passwordFile: files.paths.passwords,
    accessKeysFile: files.paths.keys,
    failureDelay: NO_DELAY,
    ...NO_FLOOR,
  });
  await Deno.writeTextFile(files.paths.passwords, await passwordFile({ alice: "two", bob: "three" }));
  await authenticator.reload();
  assert.deepEqual(await authenticator.authenticate(login("bob", "three")), {
    ok: true,
    username: "bob",
    method: "password",
  });
  assert.equal(
    refusal(await authenticator.authenticate(login("alice", "one"))),
    ReasonCode.BadUserNameOrPassword,
  );

  await Deno.writeTextFile(files.paths.keys, "ak = sk\nbroken\n");
  await Deno.writeTextFile(files.paths.passwords, await passwordFile({ carol: "four" }));
  await assert.rejects(authenticator.reload(), new RegExp(`^AuthFileError: ${files.paths.keys}:2: `));
  assert.deepEqual(await authenticator.authenticate(login("bob", "three")), {
    ok: true,
    username: "bob",
    method: "password",
  });
  assert.equal(
    refusal(await authenticator.authenticate(login("carol", "four"))),
    ReasonCode.BadUserNameOrPassword,
  );

  await Deno.remove(files.paths.keys);
  await assert.rejects(authenticator.reload(), /cannot read/);
  assert.deepEqual(await authenticator.authenticate(login("alice", "two")), {
    ok: true,
    username: "alice",
    method: "password",
  });
});

Deno.test("createAuthenticator rejects an invalid file with file:line", async () => {
  await using files = await temporaryFiles({ passwords: "alice:$7$10$AAAA\n" });
  await assert.rejects(
    createAuthenticator({ passwordFile: files.paths.passwords }),
    new RegExp(`^AuthFileError: ${files.paths.passwords}:1: expected`),
  );
});
