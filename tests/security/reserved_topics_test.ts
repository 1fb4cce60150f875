/**
 * Rule: clients may not publish to `$SYS/...` or any other `$` topic (no feature defines one a client may
 * publish to), with or without an ACL: v5 PUBACK/PUBREC 0x87, 3.1.1 dropped and logged.
 */
import assert from "node:assert/strict";
import { publishPacket, subscribe, subscription } from "../helpers/clients.ts";
import { assertNothingQueued, tempFiles, tryConnect, withSecureBroker } from "./support.ts";

Deno.test("security: a client PUBLISH to $SYS is refused (v5 0x87) and never reaches a $SYS subscriber", async () => {
  await withSecureBroker("", async ({ port, running, events }) => {
    const { client: watcher } = await tryConnect(port, { version: 5 });
    assert.deepEqual(await subscribe(watcher, 5, [subscription("$SYS/#", 1), subscription("$x/#", 1)]), [
      1,
      1,
    ]);
    const { client: v5 } = await tryConnect(port, { version: 5, clientId: "forger-5" });
    await v5.sendPacket(publishPacket("$SYS/broker/uptime", "forged", 1, { packetId: 1, retain: true }), 5);
    const puback = await v5.readPacket();
    assert.ok(puback.type === "puback" && puback.reasonCode === 0x87, JSON.stringify(puback));
    await v5.sendPacket(publishPacket("$SYS/broker/clients", "forged", 2, { packetId: 2 }), 5);
    const pubrec = await v5.readPacket();
    assert.ok(pubrec.type === "pubrec" && pubrec.reasonCode === 0x87, JSON.stringify(pubrec));
    await v5.sendPacket(publishPacket("$x/y", "forged", 0), 5);
    await assertNothingQueued(v5, 5, "the forger"); // its QoS 0 PUBLISH has been handled
    await assertNothingQueued(watcher, 5, "a client-forged $ message was delivered");
    assert.equal(running.broker.retained.size, 0, "a client-forged $SYS message was retained");
    assert.ok(events("publish.denied").length >= 1);
    await Promise.all([watcher.close(), v5.close()]);
  });
});

Deno.test("security: a 3.1.1 PUBLISH to $SYS is acknowledged as 3.1.1 requires, dropped and logged", async () => {
  await using files = await tempFiles({ acl: "allow readwrite #\nallow readwrite $SYS/#\n" });
  await withSecureBroker(`auth.acl_file = ${files.paths.acl}`, async ({ port, events }) => {
    const { client: watcher } = await tryConnect(port, { version: 4 });
    assert.deepEqual(await subscribe(watcher, 4, [subscription("$SYS/#", 1)]), [1]);
    const { client: v4 } = await tryConnect(port, { version: 4, clientId: "forger-4" });
    await v4.sendPacket(publishPacket("$SYS/broker/load", "forged", 1, { packetId: 3 }), 4);
    const puback = await v4.readPacket();
    assert.ok(puback.type === "puback" && puback.reasonCode === 0); // [MQTT-3.3.5-2]
    await v4.sendPacket(publishPacket("$SYS/broker/load", "forged", 0), 4);
    await assertNothingQueued(v4, 4, "the forger");
    await assertNothingQueued(watcher, 4, "a client-forged $SYS message was delivered");
    const denied = events("publish.denied");
    assert.ok(denied.length >= 1, "the dropped PUBLISH was not logged");
    assert.equal(denied[0].clientId, "forger-4");
    assert.equal(denied[0].topic, "$SYS/broker/load");
    await Promise.all([watcher.close(), v4.close()]);
  });
});
