/**
 * Rule: any credential source (password file, access keys, SCRAM file, mTLS with use_cn_as_username) means
 * anonymous clients are refused unless auth.allow_anonymous = true; a user name is only ever taken from a
 * verified credential.
 */
import assert from "node:assert/strict";
import { scramCredentialLine } from "../../src/auth/mod.ts";
import { ReasonCode } from "../../src/codec/mod.ts";
import { subscribe, subscription } from "../helpers/clients.ts";
import { testCerts } from "../transport/support.ts";
import { expectConnack, passwordFile, tempFiles, tryConnect, withSecureBroker } from "./support.ts";

const V311_NOT_AUTHORIZED = 0x05;
const V311_BAD_CREDENTIALS = 0x04;

Deno.test("security: a SCRAM file alone refuses anonymous CONNECTs (v5 0x87, 3.1.1 0x05)", async () => {
  await using files = await tempFiles({ scram: `${await scramCredentialLine("dev", "pa55")}\n` });
  await withSecureBroker(`auth.scram_file = ${files.paths.scram}`, async ({ port }) => {
    await expectConnack(port, { version: 5 }, ReasonCode.NotAuthorized);
    await expectConnack(port, { version: 4 }, V311_NOT_AUTHORIZED);
  });
});

Deno.test("security: a user name without a verifiable credential is refused (v5 0x86, 3.1.1 0x04)", async () => {
  await using files = await tempFiles({ scram: `${await scramCredentialLine("dev", "pa55")}\n` });
  await withSecureBroker(`auth.scram_file = ${files.paths.scram}`, async ({ port }) => {
    // plain CONNECT naming a SCRAM user, with and without a password: nothing here can verify it
    await expectConnack(port, { version: 5, username: "dev" }, ReasonCode.BadUserNameOrPassword);
    await expectConnack(
      port,
      { version: 5, username: "dev", password: "pa55" },
      ReasonCode.BadUserNameOrPassword,
    );
    await expectConnack(port, { version: 4, username: "dev" }, V311_BAD_CREDENTIALS);
  });
});

Deno.test("security: mTLS with use_cn_as_username refuses anonymous clients on every listener", async () => {
  const certs = await testCerts();
  const properties = [
    "listener.plain.host = 127.0.0.1",
    "listener.plain.port = 0",
    "listener.secure.type = tls",
    "listener.secure.host = 127.0.0.1",
    "listener.secure.port = 0",
    `listener.secure.cert_file = ${certs.serverCert}`,
    `listener.secure.key_file = ${certs.serverKey}`,
    `listener.secure.ca_file = ${certs.caFile}`,
    "listener.secure.require_client_cert = true",
    "listener.secure.use_cn_as_username = true",
  ].join("\n");
  await withSecureBroker(properties, async ({ running }) => {
    const plain = running.listeners.find((listener) => listener.name === "plain")!.port;
    await expectConnack(plain, { version: 5 }, ReasonCode.NotAuthorized);
    await expectConnack(plain, { version: 4 }, V311_NOT_AUTHORIZED);
  });
});

Deno.test("security: auth.allow_anonymous = true admits anonymous clients, and a claimed user name stays unverified", async () => {
  await using files = await tempFiles({
    scram: `${await scramCredentialLine("dev", "pa55")}\n`,
    acl: "user dev\nallow readwrite dev/#\n",
  });
  const properties = [
    `auth.scram_file = ${files.paths.scram}`,
    "auth.allow_anonymous = true",
    `auth.acl_file = ${files.paths.acl}`,
    "auth.acl_default = deny",
  ].join("\n");
  await withSecureBroker(properties, async ({ port }) => {
    const { client, connack } = await tryConnect(port, { version: 5 });
    assert.equal(connack.reasonCode, 0);
    await client.close();
    // Anonymous access is allowed, but "dev" was not proven: the client is anonymous, not dev.
    const claimed = await tryConnect(port, { version: 5, username: "dev" });
    assert.equal(claimed.connack.reasonCode, 0);
    assert.deepEqual(await subscribe(claimed.client, 5, [subscription("dev/#", 0)]), [
      ReasonCode.NotAuthorized,
    ]);
    await claimed.client.close();
  });
});

Deno.test("security: on an open broker a user name in CONNECT does not select the ACL's user rules", async () => {
  await using files = await tempFiles({ acl: "user admin\nallow readwrite #\n" });
  await withSecureBroker(`auth.acl_file = ${files.paths.acl}\nauth.acl_default = deny`, async ({ port }) => {
    const { client, connack } = await tryConnect(port, {
      version: 4,
      username: "admin",
      password: "anything",
    });
    assert.equal(connack.reasonCode, 0);
    assert.deepEqual(await subscribe(client, 4, [subscription("secrets/#", 0)]), [0x80]);
    await client.close();
  });
});

Deno.test("security: a password file refuses anonymous and password-less CONNECTs; allow_anonymous lets anonymous in only", async () => {
  await using files = await tempFiles({ passwords: await passwordFile({ alice: "pw" }) });
  await withSecureBroker(`auth.password_file = ${files.paths.passwords}`, async ({ port }) => {
    await expectConnack(port, { version: 5 }, ReasonCode.NotAuthorized);
    await expectConnack(port, { version: 5, username: "alice" }, ReasonCode.BadUserNameOrPassword);
  });
  const lenient = `auth.password_file = ${files.paths.passwords}\nauth.allow_anonymous = true`;
  await withSecureBroker(lenient, async ({ port }) => {
    await expectConnack(port, { version: 5 }, 0);
    await expectConnack(port, { version: 5, username: "alice" }, ReasonCode.BadUserNameOrPassword);
  });
});
