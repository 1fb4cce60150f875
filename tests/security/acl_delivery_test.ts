/**
 * Rules: the ACL is enforced where a message is delivered, not only where it is subscribed (SIGHUP reload,
 * resumed persistent sessions, retained messages on SUBSCRIBE); a deny rule withholds only its own topics.
 */
import assert from "node:assert/strict";
import { publishPacket, readPublish, subscribe, subscription, text } from "../helpers/clients.ts";
import { connectJs, endJs } from "../interop/tools.ts";
import { assertNothingQueued, passwordFile, tempFiles, tryConnect, withSecureBroker } from "./support.ts";

Deno.test("security: after an ACL reload, a subscription the new rules forbid stops receiving", async () => {
  await using files = await tempFiles({ acl: "allow readwrite data/#\n" });
  await withSecureBroker(
    `auth.acl_file = ${files.paths.acl}\nauth.acl_default = deny`,
    async ({ port, running }) => {
      const { client: sub } = await tryConnect(port, { version: 5, clientId: "watcher" });
      assert.deepEqual(await subscribe(sub, 5, [subscription("data/#", 1)]), [1]);
      const { client: pub } = await tryConnect(port, { version: 5, clientId: "source" });
      await pub.sendPacket(publishPacket("data/a", "before", 0), 5);
      assert.equal(text((await readPublish(sub)).payload), "before");

      await Deno.writeTextFile(files.paths.acl, "allow publish data/#\nallow subscribe data/public/#\n");
      await running.reload();
      await pub.sendPacket(publishPacket("data/a", "after", 0), 5);
      await pub.sendPacket(publishPacket("data/a", "after-q1", 1, { packetId: 7 }), 5);
      await pub.sendPacket(publishPacket("data/public/x", "still allowed", 0), 5);
      const next = await readPublish(sub);
      assert.equal(
        next.topic,
        "data/public/x",
        `received ${next.topic}=${text(next.payload)} after the reload`,
      );
      await assertNothingQueued(sub, 5, "after the reload");
      await Promise.all([sub.close(), pub.close()]);
    },
  );
});

Deno.test("security: a resumed persistent session is re-checked: queued messages the ACL now forbids are not sent", async () => {
  await using files = await tempFiles({
    acl: "user alice\nallow readwrite alice/#\nallow readwrite shared/#\n",
    passwords: await passwordFile({ alice: "a", feeder: "f" }),
  });
  const properties = [
    `auth.password_file = ${files.paths.passwords}`,
    `auth.acl_file = ${files.paths.acl}`,
    "auth.acl_default = deny",
  ].join("\n");
  await withSecureBroker(properties, async ({ port, running }) => {
    const persistent = { version: 5 as const, clientId: "alice-1", username: "alice", password: "a" };
    const first = await tryConnect(port, { ...persistent, properties: { sessionExpiryInterval: 600 } });
    assert.deepEqual(await subscribe(first.client, 5, [subscription("shared/#", 1)]), [1]);
    await first.client.close();
    await Deno.writeTextFile(
      files.paths.acl,
      "user alice\nallow readwrite alice/#\nuser feeder\nallow publish shared/#\n",
    );
    await running.reload();
    const { client: feeder } = await tryConnect(port, { version: 5, username: "feeder", password: "f" });
    await feeder.sendPacket(publishPacket("shared/news", "queued while away", 1, { packetId: 1 }), 5);
    assert.equal((await feeder.readPacket()).type, "puback");
    const resumed = await tryConnect(port, {
      ...persistent,
      cleanStart: false,
      properties: { sessionExpiryInterval: 600 },
    });
    assert.equal(resumed.connack.sessionPresent, true);
    await assertNothingQueued(resumed.client, 5, "a queued message the ACL no longer allows was sent");
    await Promise.all([resumed.client.close(), feeder.close()]);
  });
});

Deno.test("security: retained messages sent on SUBSCRIBE are checked one by one", async () => {
  await using files = await tempFiles({ acl: "allow readwrite r/#\ndeny subscribe r/secret\n" });
  await withSecureBroker(`auth.acl_file = ${files.paths.acl}\nauth.acl_default = deny`, async ({ port }) => {
    const { client: pub } = await tryConnect(port, { version: 5 });
    for (const topic of ["r/public", "r/secret", "r/other"]) {
      await pub.sendPacket(publishPacket(topic, `retained ${topic}`, 1, { retain: true, packetId: 1 }), 5);
      assert.equal((await pub.readPacket()).type, "puback");
    }
    const { client: sub } = await tryConnect(port, { version: 5 });
    assert.deepEqual(await subscribe(sub, 5, [subscription("r/#", 1)]), [1]);
    const received = [(await readPublish(sub)).topic, (await readPublish(sub)).topic].sort();
    assert.deepEqual(received, ["r/other", "r/public"]);
    await assertNothingQueued(sub, 5, "the denied retained message was sent");
    await Promise.all([pub.close(), sub.close()]);
  });
});

Deno.test("security: a deny rule withholds only its own topics; # and +/+ subscriptions are granted and filtered", async () => {
  await using files = await tempFiles({ acl: "deny subscribe a/b\n" });
  await withSecureBroker(`auth.acl_file = ${files.paths.acl}\nauth.acl_default = allow`, async ({ port }) => {
    // a monitoring client with MQTT.js, as in the field
    const monitor = await connectJs(port, { clientId: "monitor", protocolVersion: 5 });
    try {
      const granted = await monitor.client.subscribeAsync(["#", "+/+"], { qos: 0 });
      assert.deepEqual(granted.map((grant) => grant.qos), [0, 0]);
      const { client: direct } = await tryConnect(port, { version: 5 });
      assert.deepEqual(
        await subscribe(direct, 5, [subscription("a/b", 0)]),
        [0x87],
        "the denied topic itself",
      );
      const { client: pub } = await tryConnect(port, { version: 4 });
      for (const topic of ["a/b", "a/c", "x/y"]) await pub.sendPacket(publishPacket(topic, topic, 0), 4);
      const messages = await monitor.inbox.take(2);
      assert.deepEqual(messages.map((m) => m.topic).sort(), ["a/c", "x/y"]);
      await monitor.inbox.expectCount(2, 150);
      await Promise.all([direct.close(), pub.close()]);
    } finally {
      await endJs(monitor.client);
    }
  });
});

Deno.test("security: a $share group skips a member the ACL withholds a topic from; the message goes to another member", async () => {
  await using files = await tempFiles({
    acl: "user alice\nallow readwrite jobs/#\nuser bob\nallow readwrite jobs/#\ndeny subscribe jobs/secret\n",
    passwords: await passwordFile({ alice: "a", bob: "b" }),
  });
  const properties = [
    `auth.password_file = ${files.paths.passwords}`,
    `auth.acl_file = ${files.paths.acl}`,
    "auth.acl_default = deny",
  ].join("\n");
  await withSecureBroker(properties, async ({ port }) => {
    const workers = [];
    for (const [username, password] of [["alice", "a"], ["bob", "b"]]) {
      const { client } = await tryConnect(port, { version: 5, clientId: username, username, password });
      assert.deepEqual(await subscribe(client, 5, [subscription("$share/g/jobs/#", 0)]), [0]);
      workers.push(client);
    }
    const [alice, bob] = workers;
    const { client: pub } = await tryConnect(port, { version: 5, username: "alice", password: "a" });
    for (let i = 0; i < 4; i++) await pub.sendPacket(publishPacket("jobs/secret", `secret ${i}`, 0), 5);
    for (let i = 0; i < 4; i++) {
      assert.equal(text((await readPublish(alice)).payload), `secret ${i}`, "every secret job reaches alice");
    }
    await assertNothingQueued(bob, 5, "bob never gets a secret job");
    await Promise.all([alice.close(), bob.close(), pub.close()]);
  });
});
