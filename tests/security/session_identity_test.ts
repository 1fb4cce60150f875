/**
 * Rule: a persistent session belongs to its identity. Another identity taking over the client id gets a
 * fresh session, never the previous owner's subscriptions or queued messages; whether it may kick the
 * connected owner is `mqtt.takeover = allow | same_user | deny` (default same_user); every takeover is
 * logged with both identities.
 */
import assert from "node:assert/strict";
import { scramCredentialLine } from "../../src/auth/mod.ts";
import { publishPacket, readPublish, subscribe, subscription, text } from "../helpers/clients.ts";
import { scramClient, scramLogin } from "./scram_client.ts";
import { assertNothingQueued, passwordFile, tempFiles, tryConnect, withSecureBroker } from "./support.ts";

const USERS = { alice: "a", bob: "b", feeder: "f" };

async function credentials() {
  return await tempFiles({ passwords: await passwordFile(USERS) });
}

const persistent = { sessionExpiryInterval: 3600 };

Deno.test("security: another user resuming a client id gets a fresh session, not the owner's subscriptions or queue", async () => {
  await using files = await credentials();
  await withSecureBroker(`auth.password_file = ${files.paths.passwords}`, async ({ port, events }) => {
    const alice = await tryConnect(port, {
      clientId: "device-7",
      username: "alice",
      password: "a",
      properties: persistent,
    });
    assert.deepEqual(await subscribe(alice.client, 5, [subscription("private/alice/#", 1)]), [1]);
    await alice.client.close();
    const { client: feeder } = await tryConnect(port, { username: "feeder", password: "f" });
    await feeder.sendPacket(publishPacket("private/alice/mail", "for alice only", 1, { packetId: 1 }), 5);
    assert.equal((await feeder.readPacket()).type, "puback");

    const bob = await tryConnect(port, {
      clientId: "device-7",
      username: "bob",
      password: "b",
      cleanStart: false,
      properties: persistent,
    });
    assert.equal(bob.connack.reasonCode, 0);
    assert.equal(bob.connack.sessionPresent, false, "bob was handed alice's session");
    await assertNothingQueued(bob.client, 5, "bob received alice's queued message");
    await feeder.sendPacket(publishPacket("private/alice/mail", "second", 0), 5);
    await assertNothingQueued(feeder, 5, "feeder");
    await assertNothingQueued(bob.client, 5, "bob inherited alice's subscription");
    const replaced = events("session.owner_changed");
    assert.equal(replaced.length, 1);
    assert.equal(replaced[0].previousUser, "alice");
    assert.equal(replaced[0].user, "bob");
    await Promise.all([bob.client.close(), feeder.close()]);
  });
});

Deno.test("security: takeover = same_user (default): another user cannot kick the connected owner; the owner can", async () => {
  await using files = await credentials();
  await withSecureBroker(`auth.password_file = ${files.paths.passwords}`, async ({ port, events }) => {
    const alice = await tryConnect(port, { clientId: "dev-1", username: "alice", password: "a" });
    assert.deepEqual(await subscribe(alice.client, 5, [subscription("t", 0)]), [0]);
    const bob5 = await tryConnect(port, { version: 5, clientId: "dev-1", username: "bob", password: "b" });
    assert.equal(bob5.connack.reasonCode, 0x87);
    const bob4 = await tryConnect(port, { version: 4, clientId: "dev-1", username: "bob", password: "b" });
    assert.equal(bob4.connack.reasonCode, 0x05);
    await Promise.all([bob5.client.close(), bob4.client.close()]);
    // alice is still connected and subscribed
    const { client: pub } = await tryConnect(port, { username: "feeder", password: "f" });
    await pub.sendPacket(publishPacket("t", "still here", 0), 5);
    assert.equal(text((await readPublish(alice.client)).payload), "still here");
    const refused = events("session.takeover_refused");
    assert.equal(refused.length, 2);
    assert.deepEqual([refused[0].previousUser, refused[0].user], ["alice", "bob"]);

    // the same user may take over (a device reconnecting before its old socket timed out)
    const again = await tryConnect(port, { clientId: "dev-1", username: "alice", password: "a" });
    assert.equal(again.connack.reasonCode, 0);
    const disconnect = await alice.client.readPacket();
    assert.ok(disconnect.type === "disconnect" && disconnect.reasonCode === 0x8e);
    const takeovers = events("session.takeover");
    assert.equal(takeovers.length, 1);
    assert.deepEqual([takeovers[0].previousUser, takeovers[0].user], ["alice", "alice"]);
    await Promise.all([alice.client.close(), again.client.close(), pub.close()]);
  });
});

Deno.test("security: takeover = allow lets another user kick the owner, into a fresh session", async () => {
  await using files = await credentials();
  const properties = `auth.password_file = ${files.paths.passwords}\nmqtt.takeover = allow`;
  await withSecureBroker(properties, async ({ port, events }) => {
    const alice = await tryConnect(port, {
      clientId: "dev-1",
      username: "alice",
      password: "a",
      properties: persistent,
    });
    assert.deepEqual(await subscribe(alice.client, 5, [subscription("t", 0)]), [0]);
    const bob = await tryConnect(port, {
      clientId: "dev-1",
      username: "bob",
      password: "b",
      cleanStart: false,
      properties: persistent,
    });
    assert.equal(bob.connack.reasonCode, 0);
    assert.equal(bob.connack.sessionPresent, false);
    assert.equal((await alice.client.readPacket()).type, "disconnect");
    const { client: pub } = await tryConnect(port, { username: "feeder", password: "f" });
    await pub.sendPacket(publishPacket("t", "x", 0), 5);
    await assertNothingQueued(pub, 5, "publisher");
    await assertNothingQueued(bob.client, 5, "bob inherited alice's subscription");
    const [takeover] = events("session.takeover");
    assert.deepEqual([takeover.previousUser, takeover.user], ["alice", "bob"]);
    await Promise.all([alice.client.close(), bob.client.close(), pub.close()]);
  });
});

Deno.test("security: takeover = deny refuses any second connection while the owner is connected", async () => {
  await using files = await credentials();
  const properties = `auth.password_file = ${files.paths.passwords}\nmqtt.takeover = deny`;
  await withSecureBroker(properties, async ({ port }) => {
    const alice = await tryConnect(port, { clientId: "dev-1", username: "alice", password: "a" });
    const again = await tryConnect(port, { clientId: "dev-1", username: "alice", password: "a" });
    assert.equal(again.connack.reasonCode, 0x87);
    await Promise.all([alice.client.close(), again.client.close()]);
  });
});

Deno.test("security: the owner of a persistent session survives a restart of the broker", async () => {
  await using files = await credentials();
  const dir = await Deno.makeTempDir({ prefix: "mqtt-security-store-" });
  const properties = [
    `auth.password_file = ${files.paths.passwords}`,
    "storage.type = embedded",
    `storage.dir = ${dir}`,
    "storage.durability = batch",
  ].join("\n");
  try {
    await withSecureBroker(properties, async ({ port }) => {
      const alice = await tryConnect(port, {
        clientId: "device-9",
        username: "alice",
        password: "a",
        properties: persistent,
      });
      assert.deepEqual(await subscribe(alice.client, 5, [subscription("private/alice/#", 1)]), [1]);
      await alice.client.close();
    });
    await withSecureBroker(properties, async ({ port }) => {
      const resume = { cleanStart: false, properties: persistent };
      const alice = await tryConnect(port, {
        clientId: "device-9",
        username: "alice",
        password: "a",
        ...resume,
      });
      assert.equal(alice.connack.sessionPresent, true, "alice lost her session in the restart");
      await alice.client.close();
      const bob = await tryConnect(port, { clientId: "device-9", username: "bob", password: "b", ...resume });
      assert.equal(bob.connack.sessionPresent, false, "after a restart bob was handed alice's session");
      await bob.client.close();
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("security: re-authentication (AUTH 0x19) cannot change the user a connection acts as", async () => {
  const lines = [await scramCredentialLine("dev", "dev-pw"), await scramCredentialLine("ops", "ops-pw")];
  await using files = await tempFiles({ scram: `${lines.join("\n")}\n` });
  await withSecureBroker(`auth.scram_file = ${files.paths.scram}`, async ({ port, events }) => {
    const { client, last } = await scramLogin(port, "dev", "dev-pw");
    assert.ok(last.type === "connack" && last.reasonCode === 0);
    // ops's password is right, but this connection is dev's: its ACL and session owner were fixed at CONNECT
    const scram = scramClient("ops", "ops-pw");
    const method = { authenticationMethod: "SCRAM-SHA-256" };
    await client.sendPacket({
      type: "auth",
      reasonCode: 0x19,
      properties: { ...method, authenticationData: scram.first },
    }, 5);
    const challenge = await client.readPacket();
    assert.equal(challenge.type, "auth");
    const serverFirst = new TextDecoder().decode(
      challenge.type === "auth" ? challenge.properties.authenticationData : undefined,
    );
    await client.sendPacket({
      type: "auth",
      reasonCode: 0x18,
      properties: { ...method, authenticationData: scram.final(serverFirst) },
    }, 5);
    const answer = await client.readPacket();
    assert.ok(answer.type === "disconnect" && answer.reasonCode === 0x87, JSON.stringify(answer));
    await client.expectClosed();
    assert.equal(events("client.reauthentication_failed").length, 1);
  });
});
