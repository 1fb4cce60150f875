/**
 * Rule: a will message is authorized like a PUBLISH of the client that set it, at CONNECT (v5 CONNACK 0x87,
 * 3.1.1 0x05) and again when it is published (the rules may have been reloaded in between).
 */
import assert from "node:assert/strict";
import type { Will } from "../../src/codec/mod.ts";
import { readPublish, subscribe, subscription } from "../helpers/clients.ts";
import {
  assertNothingQueued,
  expectConnack,
  tempFiles,
  tryConnect,
  waitFor,
  withSecureBroker,
} from "./support.ts";

function will(topic: string, retain = false): Will {
  return { topic, payload: new TextEncoder().encode("gone"), qos: 1, retain, properties: {} };
}

Deno.test("security: a will on a $SYS topic is refused at CONNECT, with or without an ACL", async () => {
  await withSecureBroker("", async ({ port, running }) => {
    await expectConnack(port, { version: 5, will: will("$SYS/broker/version", true) }, 0x87);
    await expectConnack(port, { version: 4, will: will("$SYS/broker/version", true) }, 0x05);
    await expectConnack(port, { version: 5, will: will("$anything/else") }, 0x87);
    assert.equal(running.broker.retained.size, 0);
  });
});

Deno.test("security: a will the ACL would not let the client publish is refused at CONNECT", async () => {
  await using files = await tempFiles({ acl: "allow readwrite #\ndeny publish alarms/#\n" });
  await withSecureBroker(`auth.acl_file = ${files.paths.acl}`, async ({ port }) => {
    await expectConnack(port, { version: 5, will: will("alarms/fire") }, 0x87);
    await expectConnack(port, { version: 4, will: will("alarms/fire") }, 0x05);
    await expectConnack(port, { version: 5, will: will("status/dev-1") }, 0);
  });
});

Deno.test("security: a will is checked again when it is published: rules reloaded since CONNECT hold it back", async () => {
  await using files = await tempFiles({ acl: "allow readwrite status/#\n" });
  await withSecureBroker(
    `auth.acl_file = ${files.paths.acl}\nauth.acl_default = deny`,
    async ({ port, running, events }) => {
      const { client: watcher } = await tryConnect(port, { version: 5, clientId: "watcher" });
      assert.deepEqual(await subscribe(watcher, 5, [subscription("status/#", 1)]), [1]);
      const first = await tryConnect(port, { version: 5, clientId: "dev-1", will: will("status/dev-1") });
      assert.equal(first.connack.reasonCode, 0);
      await first.client.close(); // no DISCONNECT: the will goes out
      assert.equal((await readPublish(watcher)).topic, "status/dev-1");

      const second = await tryConnect(port, { version: 5, clientId: "dev-2", will: will("status/dev-2") });
      assert.equal(second.connack.reasonCode, 0);
      await Deno.writeTextFile(files.paths.acl, "allow subscribe status/#\n");
      await running.reload();
      await second.client.close();
      await waitFor(() => running.broker.stats.connectedClients === 1, "the broker to see dev-2 gone");
      await assertNothingQueued(watcher, 5, "a will published after its permission was revoked");
      assert.equal(events("will.denied").length, 1);
      await watcher.close();
    },
  );
});
