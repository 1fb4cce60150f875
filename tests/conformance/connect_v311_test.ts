/** Conformance: MQTT 3.1.1 CONNECT / CONNACK (§3.1, §3.2) and sessions (§4.1), real sockets, exact bytes. */
import assert from "node:assert/strict";
import type { ConnectPacket } from "../../src/codec/mod.ts";
import { hex, RawClient, toHex, withBroker } from "../helpers/broker.ts";
import {
  connect,
  connectFrame,
  disconnect,
  expectDisconnect,
  frame,
  passwordFile,
  publish,
  rawConnect,
  readPublish,
  sleep,
  str,
  subscribeOk,
  text,
  will,
} from "./support.ts";

const V = 4;

function persistent(clientId: string): Uint8Array {
  return connectFrame({ clientId, flags: 0x00 });
}

Deno.test("v3.1.1 [MQTT-3.1.0-1] a first packet other than CONNECT closes the connection, nothing sent", async () => {
  await withBroker("", async ({ port }) => {
    for (
      const first of [hex("c0 00"), frame(0x30, [...str("t"), 0x78]), frame(0x82, [0, 1, ...str("t"), 0])]
    ) {
      const client = await rawConnect(port, first);
      assert.equal((await client.expectClosed()).length, 0, toHex(first));
    }
  });
});

Deno.test("v3.1.1 [MQTT-3.1.2-2] an unsupported protocol level: CONNACK 20 02 00 01, then close", async () => {
  await withBroker("", async ({ port }) => {
    for (const level of [2, 6, 0xff]) {
      const bytes = connectFrame({ clientId: "lvl" });
      bytes[8] = level;
      const client = await rawConnect(port, bytes);
      assert.equal(toHex(await client.expectClosed()), "20 02 00 01", `level ${level}`);
    }
  });
});

Deno.test("v3.1.1 [MQTT-3.1.3-8] a zero-byte client id with CleanSession 0: CONNACK 20 02 00 02, then close", async () => {
  await withBroker("", async ({ port }) => {
    const client = await rawConnect(port, connectFrame({ clientId: "", flags: 0x00 }));
    assert.equal(toHex(await client.expectClosed()), "20 02 00 02");
  });
});

Deno.test("v3.1.1 [MQTT-3.1.0-2] a second CONNECT closes the connection", async () => {
  await withBroker("", async ({ port }) => {
    const { client } = await connect(port, "twice", V);
    await client.send(connectFrame({ clientId: "twice" }));
    await expectDisconnect(client, V, 0);
  });
});

Deno.test("v3.1.1 [MQTT-3.1.2-1] a wrong protocol name is not accepted as MQTT 3.1.1: closed, no CONNACK 0", async () => {
  await withBroker("", async ({ port }) => {
    const client = await rawConnect(port, connectFrame({ clientId: "name", protocolName: "MQTX" }));
    const rest = await client.expectClosed();
    assert.ok(rest.length === 0 || (rest[0] === 0x20 && rest[3] !== 0), `got ${toHex(rest)}`);
  });
});

Deno.test("v3.1.1 [MQTT-3.1.2-3] [MQTT-3.1.4-1] [MQTT-3.2.2-6] a set reserved CONNECT flag: closed without CONNACK", async () => {
  await withBroker("", async ({ port }) => {
    const client = await rawConnect(port, connectFrame({ clientId: "rsv", flags: 0x03 }));
    assert.equal((await client.expectClosed()).length, 0);
  });
});

Deno.test("v3.1.1 [MQTT-3.1.4-1] a CONNECT shorter than its fields (truncated client id) is closed without CONNACK", async () => {
  await withBroker("", async ({ port }) => {
    const client = await rawConnect(port, hex("10 0d 00 04 4d 51 54 54 04 02 00 3c 00 05 61")); // id says 5 bytes, 1 follows
    assert.equal((await client.expectClosed()).length, 0);
  });
});

Deno.test("v3.1.1 [MQTT-3.1.2-4] [MQTT-3.1.2-5] [MQTT-4.5.0-1] CleanSession 0: new session created, then resumed with the QoS 1/2 messages stored while away", async () => {
  await withBroker("", async ({ port }) => {
    const first = await rawConnect(port, persistent("cs0"));
    assert.equal(toHex(await first.readBytes(4)), "20 02 00 00"); // no session yet: created, present 0
    await subscribeOk(first, V, [["cs/#", 2]]);
    await disconnect(first, V);
    const { client: pub } = await connect(port, "cs-pub", V);
    await publish(pub, V, "cs/1", "one", 1);
    await publish(pub, V, "cs/2", "two", 2);
    const again = await rawConnect(port, persistent("cs0"));
    assert.equal(toHex(await again.readBytes(4)), "20 02 01 00");
    const m1 = await readPublish(again);
    const m2 = await readPublish(again);
    assert.deepEqual([m1.topic, text(m1.payload), m1.qos], ["cs/1", "one", 1]);
    assert.deepEqual([m2.topic, text(m2.payload), m2.qos], ["cs/2", "two", 2]);
    await again.close();
    await pub.close();
  });
});

Deno.test("v3.1.1 [MQTT-3.1.2-6] [MQTT-3.1.4-3] CleanSession 1 discards the previous session; its state is not reused", async () => {
  await withBroker("", async ({ port }) => {
    const first = await rawConnect(port, persistent("cs1"));
    await first.readBytes(4);
    await subscribeOk(first, V, [["gone", 1]]);
    await disconnect(first, V);
    const { client: pub } = await connect(port, "cs1-pub", V);
    await publish(pub, V, "gone", "queued", 1);
    const clean = await rawConnect(port, connectFrame({ clientId: "cs1", flags: 0x02 }));
    assert.equal(toHex(await clean.readBytes(4)), "20 02 00 00");
    await publish(pub, V, "gone", "live", 1);
    assert.ok(await clean.expectSilence(200), "neither the queued message nor the old subscription survive");
    await disconnect(clean, V);
    const later = await rawConnect(port, persistent("cs1"));
    assert.equal(toHex(await later.readBytes(4)), "20 02 00 00", "the clean session was not kept");
    await later.close();
    await pub.close();
  });
});

Deno.test("v3.1.1 [MQTT-3.1.2-7] retained messages are not deleted when the publisher's session ends", async () => {
  await withBroker("", async ({ port }) => {
    const { client: pub } = await connect(port, "ret-pub", V);
    await publish(pub, V, "keep/me", "kept", 1, { retain: true });
    await disconnect(pub, V);
    const { client: sub } = await connect(port, "ret-sub", V);
    await subscribeOk(sub, V, [["keep/me", 1]]);
    const got = await readPublish(sub);
    assert.deepEqual([got.topic, text(got.payload), got.retain], ["keep/me", "kept", true]);
    await sub.close();
  });
});

Deno.test("v3.1.1 [MQTT-3.1.2-8] [MQTT-3.1.2-16] the will is published, not retained, when the connection ends without DISCONNECT", async () => {
  await withBroker("", async ({ port }) => {
    const { client: sub } = await connect(port, "w-sub", V);
    await subscribeOk(sub, V, [["will/#", 1]]);
    const { client } = await connect(port, "w", V, { will: will("will/w", "gone", 1, false) });
    await client.close();
    const got = await readPublish(sub);
    assert.deepEqual([got.topic, text(got.payload), got.qos, got.retain], ["will/w", "gone", 1, false]);
    const { client: late } = await connect(port, "w-late", V);
    await subscribeOk(late, V, [["will/#", 1]]);
    assert.ok(await late.expectSilence(150), "a non-retained will is not stored");
    await late.close();
    await sub.close();
  });
});

Deno.test("v3.1.1 [MQTT-3.1.2-17] a will with Will Retain 1 is published as a retained message", async () => {
  await withBroker("", async ({ port }) => {
    const { client } = await connect(port, "wr", V, { will: will("will/r", "bye", 0, true) });
    await client.close();
    await sleep(100);
    const { client: late } = await connect(port, "wr-late", V);
    await subscribeOk(late, V, [["will/r", 0]]);
    const got = await readPublish(late);
    assert.deepEqual([got.topic, text(got.payload), got.retain], ["will/r", "bye", true]);
    await late.close();
  });
});

Deno.test("v3.1.1 [MQTT-3.1.2-10] [MQTT-3.14.4-3] after DISCONNECT the will is discarded, never published", async () => {
  await withBroker("", async ({ port }) => {
    const { client: sub } = await connect(port, "wd-sub", V);
    await subscribeOk(sub, V, [["will/#", 0]]);
    const { client } = await connect(port, "wd", V, { will: will("will/d", "no", 0) });
    await disconnect(client, V);
    assert.ok(await sub.expectSilence(200));
    await sub.close();
  });
});

Deno.test("v3.1.1 [MQTT-3.1.2-12] without the Will Flag nothing is published when the connection drops", async () => {
  await withBroker("", async ({ port }) => {
    const { client: sub } = await connect(port, "nw-sub", V);
    await subscribeOk(sub, V, [["#", 0]]);
    const { client } = await connect(port, "nw", V);
    await client.close();
    assert.ok(await sub.expectSilence(200));
    await sub.close();
  });
});

Deno.test("v3.1.1 [MQTT-3.1.2-9] Will Flag set without will topic and message: closed without CONNACK", async () => {
  await withBroker("", async ({ port }) => {
    const client = await rawConnect(port, connectFrame({ clientId: "w9", flags: 0x06 }));
    assert.equal((await client.expectClosed()).length, 0);
  });
});

Deno.test("v3.1.1 [MQTT-3.1.2-11] [MQTT-3.1.2-13] [MQTT-3.1.2-15] without the Will Flag, Will QoS, Will Retain and will fields must be absent: closed", async () => {
  await withBroker("", async ({ port }) => {
    const cases = [
      connectFrame({ clientId: "w", flags: 0x0a }), // Will QoS 1
      connectFrame({ clientId: "w", flags: 0x12 }), // Will QoS 2
      connectFrame({ clientId: "w", flags: 0x22 }), // Will Retain
      connectFrame({ clientId: "w", flags: 0x02, rest: [...str("t"), ...str("m")] }), // will fields present
    ];
    for (const bytes of cases) {
      const client = await rawConnect(port, bytes);
      assert.equal((await client.expectClosed()).length, 0, toHex(bytes));
    }
  });
});

Deno.test("v3.1.1 [MQTT-3.1.2-14] Will QoS 3: closed", async () => {
  await withBroker("", async ({ port }) => {
    const client = await rawConnect(
      port,
      connectFrame({ clientId: "w", flags: 0x1e, rest: [...str("t"), ...str("m")] }),
    );
    assert.equal((await client.expectClosed()).length, 0);
  });
});

Deno.test("v3.1.1 [MQTT-3.1.2-18] [MQTT-3.1.2-19] [MQTT-3.1.2-20] [MQTT-3.1.2-21] user name and password are present exactly when flagged", async () => {
  await withBroker("", async ({ port }) => {
    const broken = [
      connectFrame({ clientId: "u", flags: 0x82 }), // user name flag, no user name
      connectFrame({ clientId: "u", flags: 0x02, rest: str("user") }), // user name without its flag
      connectFrame({ clientId: "u", flags: 0xc2, rest: str("user") }), // password flag, no password
      connectFrame({ clientId: "u", flags: 0x82, rest: [...str("user"), ...str("pw")] }), // password without its flag
    ];
    for (const bytes of broken) {
      const client = await rawConnect(port, bytes);
      assert.equal((await client.expectClosed()).length, 0, toHex(bytes));
    }
    const ok = await rawConnect(
      port,
      connectFrame({ clientId: "u", flags: 0xc2, rest: [...str("user"), ...str("pw")] }),
    );
    assert.equal(toHex(await ok.readBytes(4)), "20 02 00 00");
    await ok.close();
  });
});

Deno.test("v3.1.1 [MQTT-3.1.2-22] Password Flag without User Name Flag: closed", async () => {
  await withBroker("", async ({ port }) => {
    const client = await rawConnect(port, connectFrame({ clientId: "p", flags: 0x42, rest: str("pw") }));
    assert.equal((await client.expectClosed()).length, 0);
  });
});

Deno.test("v3.1.1 [MQTT-3.1.2-24] keep alive 1 s: closed after 1.5 s of silence, kept open by PINGREQ", async () => {
  await withBroker("", async ({ port }) => {
    const alive = await rawConnect(port, connectFrame({ clientId: "ka-ping", keepAlive: 1 }));
    await alive.readBytes(4);
    const idle = await rawConnect(port, connectFrame({ clientId: "ka-idle", keepAlive: 1 }));
    const started = Date.now();
    await idle.readBytes(4);
    for (let i = 0; i < 4; i++) {
      await sleep(500);
      await alive.send(hex("c0 00"));
      assert.equal(toHex(await alive.readBytes(2)), "d0 00");
    }
    assert.equal((await idle.expectClosed()).length, 0);
    const elapsed = Date.now() - started;
    assert.ok(elapsed >= 1400 && elapsed < 3000, `closed after ${elapsed} ms`);
    assert.equal(alive.closedByServer, false);
    await alive.close();
  });
});

Deno.test("v3.1.1 [MQTT-3.1.3-1] [MQTT-3.1.3-3] a CONNECT with client id, will topic, will message, user name, password in order is read field by field", async () => {
  await withBroker("", async ({ port }) => {
    const { client: sub } = await connect(port, "order-sub", V);
    await subscribeOk(sub, V, [["w/order", 0]]);
    const client = await rawConnect(
      port,
      connectFrame({
        clientId: "order",
        flags: 0xc6,
        rest: [...str("w/order"), ...str("last"), ...str("user"), ...str("pw")],
      }),
    );
    assert.equal(toHex(await client.readBytes(4)), "20 02 00 00");
    await client.close();
    const got = await readPublish(sub);
    assert.deepEqual([got.topic, text(got.payload)], ["w/order", "last"]);
    await sub.close();
  });
});

Deno.test("v3.1.1 [MQTT-3.1.3-3] a CONNECT without the client id field: closed without CONNACK", async () => {
  await withBroker("", async ({ port }) => {
    const client = await rawConnect(port, connectFrame({ clientId: undefined }));
    assert.equal((await client.expectClosed()).length, 0);
  });
});

Deno.test("v3.1.1 [MQTT-3.1.3-2] the client id identifies the session state", async () => {
  await withBroker("", async ({ port }) => {
    const a = await rawConnect(port, persistent("id-a"));
    await a.readBytes(4);
    await disconnect(a, V);
    const b = await rawConnect(port, persistent("id-b"));
    assert.equal(toHex(await b.readBytes(4)), "20 02 00 00", "another id has no session");
    await disconnect(b, V);
    const a2 = await rawConnect(port, persistent("id-a"));
    assert.equal(toHex(await a2.readBytes(4)), "20 02 01 00");
    await a2.close();
  });
});

Deno.test("v3.1.1 [MQTT-3.1.3-4] [MQTT-3.1.3-10] [MQTT-3.1.3-11] ill-formed UTF-8 in client id, will topic or user name: closed without CONNACK", async () => {
  await withBroker("", async ({ port }) => {
    const bad = [0x61, 0xc3, 0x28];
    const cases = [
      connectFrame({ clientId: bad }),
      connectFrame({ clientId: "w", flags: 0x06, rest: [...str(bad), ...str("m")] }),
      connectFrame({ clientId: "u", flags: 0x82, rest: str(bad) }),
      connectFrame({ clientId: [0x61, 0x00, 0x62] }),
    ];
    for (const bytes of cases) {
      const client = await rawConnect(port, bytes);
      assert.equal((await client.expectClosed()).length, 0, toHex(bytes));
    }
  });
});

Deno.test("v3.1.1 [MQTT-3.1.3-5] client ids of 1 to 23 characters from 0-9 a-z A-Z are accepted", async () => {
  await withBroker("mqtt.max_client_id_length = 23", async ({ port }) => {
    for (const id of ["a", "Z9", "0123456789abcdefghijklm", "nopqrstuvwxyzABCDEFGHIJ", "KLMNOPQRSTUVWXYZ"]) {
      const client = await rawConnect(port, connectFrame({ clientId: id }));
      assert.equal(toHex(await client.readBytes(4)), "20 02 00 00", id);
      await client.close();
    }
  });
});

Deno.test("v3.1.1 [MQTT-3.1.3-6] zero-byte client ids are each assigned a unique id", async () => {
  await withBroker("", async ({ port }) => {
    const clients: RawClient[] = [];
    for (let i = 0; i < 3; i++) {
      const client = await rawConnect(port, connectFrame({ clientId: "" }));
      assert.equal(toHex(await client.readBytes(4)), "20 02 00 00");
      await subscribeOk(client, V, [["anon", 0]]);
      clients.push(client);
    }
    const { client: pub } = await connect(port, "anon-pub", V);
    await publish(pub, V, "anon", "all", 0);
    for (const client of clients) {
      assert.equal(text((await readPublish(client)).payload), "all", "no anonymous client took over another");
      await client.close();
    }
    await pub.close();
  });
});

Deno.test("v3.1.1 [MQTT-3.1.3-9] [MQTT-3.2.2-5] a rejected client id: CONNACK 0x02, then close", async () => {
  await withBroker("mqtt.max_client_id_length = 23", async ({ port }) => {
    const client = await rawConnect(port, connectFrame({ clientId: "x".repeat(24) }));
    assert.equal(toHex(await client.expectClosed()), "20 02 00 02");
  });
});

Deno.test("v3.1.1 [MQTT-3.1.4-2] a new connection with the same client id closes the existing one", async () => {
  await withBroker("", async ({ port }) => {
    const { client: first } = await connect(port, "dup", V);
    const { client: second } = await connect(port, "dup", V);
    assert.equal((await first.expectClosed()).length, 0);
    await second.send(hex("c0 00"));
    assert.equal(toHex(await second.readBytes(2)), "d0 00");
    await second.close();
  });
});

Deno.test("v3.1.1 [MQTT-3.1.4-4] [MQTT-3.2.0-1] the CONNACK (20 02 01 00) comes first, before queued messages", async () => {
  await withBroker("", async ({ port }) => {
    const first = await rawConnect(port, persistent("first"));
    await first.readBytes(4);
    await subscribeOk(first, V, [["q", 1]]);
    await disconnect(first, V);
    const { client: pub } = await connect(port, "first-pub", V);
    await publish(pub, V, "q", "waiting", 1);
    const again = await rawConnect(port, persistent("first"));
    assert.equal(toHex(await again.readBytes(4)), "20 02 01 00");
    assert.equal(text((await readPublish(again)).payload), "waiting");
    await again.close();
    await pub.close();
  });
});

Deno.test("v3.1.1 [MQTT-3.1.4-5] after a refused CONNECT nothing the client sent is processed", async () => {
  await withBroker("mqtt.max_client_id_length = 23", async ({ port }) => {
    const { client: sub } = await connect(port, "refused-sub", V);
    await subscribeOk(sub, V, [["refused", 0]]);
    const client = await RawClient.connect(port);
    const connectBytes = connectFrame({ clientId: "y".repeat(30) });
    const publishBytes = frame(0x30, [...str("refused"), 0x21]);
    await client.send(new Uint8Array([...connectBytes, ...publishBytes, 0xc0, 0x00]));
    assert.equal(toHex(await client.expectClosed()), "20 02 00 02", "only the CONNACK, no PINGRESP");
    assert.ok(await sub.expectSilence(150), "the PUBLISH after the refused CONNECT was not routed");
    await sub.close();
  });
});

Deno.test("v3.1.1 [MQTT-3.2.2-1] [MQTT-3.2.2-2] [MQTT-3.2.2-3] Session Present: 0 for a clean session, 0 for a new one, 1 for a stored one", async () => {
  await withBroker("", async ({ port }) => {
    const clean = await rawConnect(port, connectFrame({ clientId: "sp" }));
    assert.equal(toHex(await clean.readBytes(4)), "20 02 00 00");
    await disconnect(clean, V);
    const fresh = await rawConnect(port, persistent("sp"));
    assert.equal(toHex(await fresh.readBytes(4)), "20 02 00 00");
    await disconnect(fresh, V);
    const stored = await rawConnect(port, persistent("sp"));
    assert.equal(toHex(await stored.readBytes(4)), "20 02 01 00");
    await stored.close();
  });
});

Deno.test("v3.1.1 [MQTT-3.2.2-4] [MQTT-3.2.2-5] a refusing CONNACK has Session Present 0 even with a stored session, then the connection closes", async () => {
  const passwords = await passwordFile({ alice: "secret" });
  await withBroker(`auth.password_file = ${passwords}`, async ({ port }) => {
    const login = (password: string): ConnectPacket => ({
      type: "connect",
      protocolName: "MQTT",
      protocolVersion: 4,
      cleanStart: false,
      keepAlive: 60,
      clientId: "refuse-sp",
      username: "alice",
      password: new TextEncoder().encode(password),
      properties: {},
    });
    const first = await RawClient.connect(port);
    await first.sendPacket(login("secret"), V);
    assert.equal(toHex(await first.readBytes(4)), "20 02 00 00");
    await disconnect(first, V);
    const wrong = await RawClient.connect(port);
    await wrong.sendPacket(login("wrong"), V);
    assert.equal(toHex(await wrong.expectClosed()), "20 02 00 04");
  });
  await Deno.remove(passwords);
});
