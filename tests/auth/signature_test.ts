import assert from "node:assert/strict";
import { AuthFileError, createAuthenticator, parseAccessKeysFile, signClientId } from "../../src/auth/mod.ts";
import { ReasonCode } from "../../src/codec/reason_codes.ts";
import { temporaryFiles } from "./fixtures.ts";
import { opensslHmacSha1Base64 } from "./openssl.ts";

const ACCESS_KEY = "LTAI5tAccessKey";
const SECRET_KEY = "xL9bYrZ6MqyzYkAwjwGqQE4NGa/Plt+=";
const CLIENT_ID = "GID_sensors@@@device-0042";

const keysFile = `# access keys\n${ACCESS_KEY} = ${SECRET_KEY}\nother=secret==\n`;

function credentials(username: string | undefined, password: string | undefined, clientId = CLIENT_ID) {
  const encoded = password === undefined ? undefined : new TextEncoder().encode(password);
  return { clientId, username, password: encoded, remoteAddress: "192.0.2.7" };
}

Deno.test("signClientId equals openssl's Base64(HMAC-SHA1(secret, clientId))", async () => {
  for (const [secret, clientId] of [[SECRET_KEY, CLIENT_ID], ["k", ""], ["sécret", "client-ü"]]) {
    assert.equal(signClientId(clientId, secret), await opensslHmacSha1Base64(secret, clientId));
  }
});

Deno.test("both username forms log in with a signature computed by openssl", async () => {
  await using files = await temporaryFiles({ keys: keysFile });
  const authenticator = await createAuthenticator({
    accessKeysFile: files.paths.keys,
    failureDelay: { baseMs: 0, maxMs: 0 },
    refusalFloorMs: 0,
  });
  const signature = await opensslHmacSha1Base64(SECRET_KEY, CLIENT_ID);
  assert.deepEqual(await authenticator.authenticate(credentials(ACCESS_KEY, signature)), {
    ok: true,
    username: ACCESS_KEY,
    method: "access_key",
  });
  assert.deepEqual(
    await authenticator.authenticate(credentials(`Signature|${ACCESS_KEY}|mqtt-cn-instance`, signature)),
    {
      ok: true,
      username: ACCESS_KEY,
      method: "access_key",
    },
  );
});

Deno.test("a wrong signature, another client's signature or a missing one is refused with 0x86", async () => {
  await using files = await temporaryFiles({ keys: keysFile });
  const authenticator = await createAuthenticator({
    accessKeysFile: files.paths.keys,
    failureDelay: { baseMs: 0, maxMs: 0 },
    refusalFloorMs: 0,
  });
  const othersSignature = await opensslHmacSha1Base64(SECRET_KEY, "another-client");
  const wrongKeySignature = await opensslHmacSha1Base64("not-the-secret", CLIENT_ID);
  for (
    const attempt of [
      credentials(ACCESS_KEY, othersSignature),
      credentials(`Signature|${ACCESS_KEY}|i`, wrongKeySignature),
      credentials(ACCESS_KEY, "short"),
      credentials(ACCESS_KEY, undefined),
      credentials("Signature|unknown-key|i", await opensslHmacSha1Base64(SECRET_KEY, CLIENT_ID)),
    ]
  ) {
    const result = await authenticator.authenticate(attempt);
    assert.equal(result.ok, false, attempt.username ?? "(anonymous)");
    assert.equal(!result.ok && result.reasonCode, ReasonCode.BadUserNameOrPassword);
    assert.ok(!result.ok && !result.reason.includes(SECRET_KEY));
  }
  assert.deepEqual(authenticator.stats(), { successes: 0, failures: 5 });
});

Deno.test("the key file splits at the first '=' and reports bad lines with file:line", () => {
  const keys = parseAccessKeysFile(keysFile, "keys");
  assert.deepEqual([...keys], [[ACCESS_KEY, SECRET_KEY], ["other", "secret=="]]);
  const cases: [string, RegExp][] = [
    ["a = b\nno separator\n", /^keys:2: expected accessKey = secretKey$/],
    [" = secret\n", /^keys:1: expected/],
    ["a|b = c\n", /^keys:1: access key must not contain '\|'$/],
    ["a = b\na = c\n", /^keys:2: access key "a" appears twice$/],
  ];
  for (const [text, message] of cases) {
    assert.throws(
      () => parseAccessKeysFile(text, "keys"),
      (error) => error instanceof AuthFileError && message.test(error.message),
    );
  }
});
