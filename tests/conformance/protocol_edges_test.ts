/**
 * Conformance: the protocol edges of issue 12, over real sockets. Each test failed on the broker before
 * the change it covers (docs/conformance.md, "Protocol edges", says how).
 */
import assert from "node:assert/strict";
import { hex, toHex, withBroker } from "../helpers/broker.ts";
import {
  connect,
  connectFrame,
  expectDisconnect,
  frame,
  publish,
  rawConnect,
  readConnack,
  readPublish,
  str,
  subscribeOk,
  text,
  will,
} from "./support.ts";

/** A CONNECT timeout far beyond every wait of the test harness (5 s): "closed at once" cannot mean "timed out". */
const NO_TIMEOUT = "mqtt.connect_timeout_ms = 600000";

Deno.test("v3.1.1 [MQTT-3.1.2-6] a CleanSession 1 session taken over by CleanSession 0: session present 0, nothing reused", async () => {
  await withBroker("", async ({ port }) => {
    const first = await rawConnect(port, connectFrame({ clientId: "tk", flags: 0x02 }));
    assert.equal(toHex(await first.readBytes(4)), "20 02 00 00");
    await subscribeOk(first, 4, [["tk/#", 1]]);
    const second = await rawConnect(port, connectFrame({ clientId: "tk", flags: 0x00 }));
    assert.equal(
      toHex(await second.readBytes(4)),
      "20 02 00 00",
      "the clean session ended with its connection",
    );
    assert.equal((await first.expectClosed()).length, 0, "the first connection is closed");
    const { client: pub } = await connect(port, "tk-pub", 4);
    await publish(pub, 4, "tk/x", "after", 1);
    assert.ok(await second.expectSilence(200), "the old subscription was not reused");
    await Promise.all([first.close(), second.close(), pub.close()]);
  });
});

Deno.test("v5 [MQTT-3.1.2-6] [MQTT-3.1.2-8] a Session Expiry 0 session taken over with Clean Start 0: session present 0, its will published", async () => {
  await withBroker("", async ({ port }) => {
    const { client: watcher } = await connect(port, "tk5-watch", 5);
    await subscribeOk(watcher, 5, [["gone/#", 0]]);
    const { client: first } = await connect(port, "tk5", 5, {
      will: will("gone/tk5", "bye", 0, false, { willDelayInterval: 60 }),
    });
    await subscribeOk(first, 5, [["tk5/#", 1]]);
    const second = await rawConnect(port, connectFrame({ version: 5, clientId: "tk5", flags: 0x00 }), 5);
    const connack = await readConnack(second);
    assert.deepEqual([connack.reasonCode, connack.sessionPresent], [0, false]);
    await expectDisconnect(first, 5, 0x8e);
    assert.equal(
      text((await readPublish(watcher)).payload),
      "bye",
      "the session ended, so the delayed will is due",
    );
    const { client: pub } = await connect(port, "tk5-pub", 5);
    await publish(pub, 5, "tk5/x", "after", 1);
    assert.ok(await second.expectSilence(200), "the old subscription was not reused");
    // A session that outlives its connection is still resumed on takeover.
    const { client: third } = await connect(port, "tk5", 5, { properties: { sessionExpiryInterval: 60 } });
    const { connack: fourth } = await connect(port, "tk5", 5, {
      cleanStart: false,
      properties: { sessionExpiryInterval: 60 },
    });
    assert.equal(fourth.sessionPresent, true);
    await Promise.all([watcher.close(), first.close(), second.close(), third.close(), pub.close()]);
  });
});

Deno.test("v5 [MQTT-3.3.4-6] a PUBLISH from a client with a Subscription Identifier: DISCONNECT 0x82, not delivered", async () => {
  await withBroker("", async ({ port }) => {
    const { client: sub } = await connect(port, "sid-sub", 5);
    await subscribeOk(sub, 5, [["sid/#", 1]]);
    const { client } = await connect(port, "sid", 5);
    await client.send(frame(0x32, [...str("sid/x"), 0, 1, 2, 0x0b, 7, 0x78])); // QoS 1, Subscription Identifier 7
    await expectDisconnect(client, 5, 0x82);
    assert.ok(await sub.expectSilence(200), "the message was not routed");
    await sub.close();
  });
});

Deno.test("v5 [MQTT-3.14.2-1] a DISCONNECT with a reason code DISCONNECT does not define: DISCONNECT 0x82, closed, will published", async () => {
  await withBroker("", async ({ port }) => {
    const { client: watcher } = await connect(port, "dc-watch", 5);
    await subscribeOk(watcher, 5, [["dc/#", 0]]);
    for (const code of [0x01, 0x05, 0x10, 0x18, 0x84, 0x91, 0xff]) {
      const { client } = await connect(port, "dc", 5, { will: will("dc/will", `w${code}`) });
      await client.send([0xe0, 1, code]);
      await expectDisconnect(client, 5, 0x82);
      assert.equal(text((await readPublish(watcher)).payload), `w${code}`, "not a normal disconnection");
      await client.close();
    }
    await watcher.close();
  });
});

Deno.test("[MQTT-4.8.0-1] [MQTT-4.13.1-1] PINGREQ, and a 3.1.1 DISCONNECT, with a non-zero Remaining Length are refused from the fixed header", async () => {
  await withBroker("", async ({ port }) => {
    // Only the fixed header is sent: the broker must not wait for a body.
    for (
      const [version, header] of [[5, "c0 01"], [4, "c0 01"], [5, "c0 7f"], [4, "e0 01"], [
        4,
        "e0 02",
      ]] as const
    ) {
      const { client } = await connect(port, "len", version);
      await client.send(hex(header));
      await expectDisconnect(client, version, 0x81).catch((error) => {
        throw new Error(`v${version} ${header}: ${error.message}`);
      });
      await client.close();
    }
  });
});

Deno.test("v3.1.1 [MQTT-4.7.3-1] [MQTT-4.8.0-1] SUBSCRIBE or UNSUBSCRIBE with a zero-length Topic Filter closes the connection; nothing of it applies", async () => {
  await withBroker("", async ({ port }) => {
    const subscribe = frame(0x82, [0, 1, ...str("ok/a"), 1, ...str(""), 0]);
    const unsubscribe = frame(0xa2, [0, 2, ...str("ok/b"), ...str("")]);
    for (const bytes of [subscribe, unsubscribe]) {
      const { client } = await connect(port, "empty-filter", 4, { cleanStart: false });
      if (bytes === unsubscribe) await subscribeOk(client, 4, [["ok/b", 1]]);
      await client.send(bytes);
      await expectDisconnect(client, 4, 0);
      await client.close();
    }
    const { client: resumed, connack } = await connect(port, "empty-filter", 4, { cleanStart: false });
    assert.equal(connack.sessionPresent, true);
    const { client: pub } = await connect(port, "empty-pub", 4);
    await publish(pub, 4, "ok/a", "a", 1);
    await publish(pub, 4, "ok/b", "b", 1);
    const got = await readPublish(resumed);
    assert.deepEqual(
      [got.topic, text(got.payload)],
      ["ok/b", "b"],
      "ok/a was not subscribed, ok/b not removed",
    );
    await Promise.all([resumed.close(), pub.close()]);
  });
});

Deno.test("v3.1.1 [MQTT-3.1.2-1] a wrong protocol name is closed at once, without CONNACK", async () => {
  await withBroker(NO_TIMEOUT, async ({ port }) => {
    for (
      const [name, level] of [["MQTX", 4], ["HTTP", 4], ["MQTT\u0000", 4], ["mqtt", 4], ["MQTX", 5]] as const
    ) {
      const client = await rawConnect(
        port,
        connectFrame({ clientId: "name", protocolName: name, version: level }),
      );
      assert.equal(toHex(await client.expectClosed()), "", `${JSON.stringify(name)} level ${level}`);
    }
  });
});

Deno.test("v3.1.1 [MQTT-3.1.2-2] an unsupported level under a known name: CONNACK 20 02 00 01 at once, then close", async () => {
  await withBroker(NO_TIMEOUT, async ({ port }) => {
    for (const [name, level] of [["MQTT", 3], ["MQTT", 6], ["MQIsdp", 4], ["MQIsdp", 5]] as const) {
      const bytes = connectFrame({ clientId: "lvl", protocolName: name, version: 4 });
      bytes[4 + name.length] = level; // the protocol level byte follows the name
      const client = await rawConnect(port, bytes);
      assert.equal(toHex(await client.expectClosed()), "20 02 00 01", `${name} level ${level}`);
    }
  });
});

/** 60 connections from 127.0.0.1 that each send something broken or refused and are closed for it. */
async function malformedBurst(port: number): Promise<void> {
  const attacks = [
    hex("00 00"),
    hex("c0 01"),
    connectFrame({ clientId: "x", protocolName: "MQTX" }),
    connectFrame({ clientId: "x", flags: 0x03 }),
    connectFrame({ clientId: "", flags: 0x00 }),
    connectFrame({ clientId: "u", flags: 0x82 }), // user name flag, no user name
  ];
  for (let round = 0; round < 10; round++) {
    for (const bytes of attacks) {
      const client = await rawConnect(port, bytes);
      await client.expectClosed();
      await client.close();
    }
  }
}

Deno.test("a well-formed CONNECT is answered at once after a burst of malformed packets from the same address (no credentials configured)", async () => {
  for (const [config, code] of [["", "00"], ["auth.allow_anonymous = false", "05"]]) {
    await withBroker(`${NO_TIMEOUT}\n${config}`, async ({ port }) => {
      await malformedBurst(port);
      for (let i = 0; i < 3; i++) {
        const client = await rawConnect(port, connectFrame({ clientId: `after-${i}` }));
        assert.equal(toHex(await client.readBytes(4)), `20 02 00 ${code}`, config);
        await client.close();
      }
    });
  }
});

const CONTROLS: Array<[string, number[]]> = [
  ["U+0001", [0x01]],
  ["U+0009", [0x09]],
  ["U+001F", [0x1f]],
  ["U+007F", [0x7f]],
  ["U+0080", [0xc2, 0x80]],
  ["U+009F", [0xc2, 0x9f]],
];

Deno.test("[MQTT-1.5.3] [MQTT-1.5.4] control characters in a client id, user name, will topic, topic name or filter are a Malformed Packet by default", async () => {
  await withBroker("", async ({ port }) => {
    for (const [what, bytes] of CONTROLS) {
      const spelled = [0x61, ...bytes, 0x62];
      for (const version of [4, 5] as const) {
        const connects = [
          connectFrame({ version, clientId: spelled }),
          connectFrame({ version, clientId: "ok", flags: 0x82, rest: [...str(spelled)] }),
          connectFrame({
            version,
            clientId: "ok",
            flags: 0x06,
            rest: [...(version === 5 ? [0] : []), ...str(spelled), 0, 0],
          }),
        ];
        for (const bytes of connects) {
          const client = await rawConnect(port, bytes, version);
          assert.equal(toHex(await client.expectClosed()), "", `${what} in CONNECT v${version}`);
        }
        const props = version === 5 ? [0] : [];
        const packets = [
          frame(0x30, [...str(spelled), ...props, 0x78]),
          frame(0x82, [0, 1, ...props, ...str(spelled), 0]),
          frame(0xa2, [0, 1, ...props, ...str(spelled)]),
        ];
        for (const packet of packets) {
          const { client } = await connect(port, "ctl", version);
          await client.send(packet);
          await expectDisconnect(client, version, 0x81).catch((error) => {
            throw new Error(`${what} in ${toHex(packet.subarray(0, 1))} v${version}: ${error.message}`);
          });
          await client.close();
        }
      }
    }
    // U+00A0 (C2 A0) follows the C1 range and is an ordinary character.
    const { client } = await connect(port, "a\u00a0b", 5);
    await subscribeOk(client, 5, [["a\u00a0b/#", 0]]);
    await client.close();
  });
});

Deno.test("[MQTT-1.5.4] mqtt.allow_control_characters = true accepts them everywhere", async () => {
  await withBroker("mqtt.allow_control_characters = true", async ({ port }) => {
    const name = "ctl\u0001\u007f\u0085";
    const { client } = await connect(port, name, 5);
    await subscribeOk(client, 5, [[`${name}/#`, 1]]);
    const { client: pub } = await connect(port, `${name}-pub`, 4);
    await publish(pub, 4, `${name}/x`, "ok", 1);
    assert.equal((await readPublish(client)).topic, `${name}/x`);
    await Promise.all([client.close(), pub.close()]);
  });
});

Deno.test("the default topic depth accepts what Mosquitto accepts: 201 levels (200 '/'), not 202", async () => {
  await withBroker("", async ({ port }) => {
    const deepest = Array.from({ length: 201 }, (_, i) => `${i}`).join("/");
    for (const version of [4, 5] as const) {
      const { client } = await connect(port, "deep", version);
      await subscribeOk(client, version, [[deepest, 1]]);
      const { client: pub } = await connect(port, "deep-pub", version);
      await publish(pub, version, deepest, "deep", 1);
      assert.equal(text((await readPublish(client)).payload), "deep");
      await pub.send(frame(0x30, [...str(`${deepest}/x`), ...(version === 5 ? [0] : []), 0x78]));
      await expectDisconnect(pub, version, 0x90);
      await Promise.all([client.close(), pub.close()]);
    }
  });
});
