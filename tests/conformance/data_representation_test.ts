/**
 * Conformance: data representation, fixed header flags and packet identifiers (MQTT 3.1.1 §1.5, §2;
 * MQTT 5.0 §1.5, §2). Real broker, real sockets, exact bytes. Test names carry the statement ids.
 */
import assert from "node:assert/strict";
import type { ProtocolVersion, PublishPacket } from "../../src/codec/mod.ts";
import { hex, toHex, withBroker } from "../helpers/broker.ts";
import { connect, expectDisconnect, frame, publish, readPublish, str, subscribeOk } from "./support.ts";

const VERSIONS: ProtocolVersion[] = [4, 5];

/** A PUBLISH QoS 0 frame whose topic bytes are given raw. */
function publishRawTopic(topic: number[], version: ProtocolVersion): Uint8Array {
  return frame(0x30, [...str(topic), ...(version === 5 ? [0] : []), 0x78]);
}

Deno.test("v3.1.1 [MQTT-1.5.3-1] ill-formed UTF-8 (bad sequence, encoded surrogate) in a topic closes the connection", async () => {
  await withBroker("", async ({ port }) => {
    for (const topic of [[0x61, 0xc3, 0x28], [0x61, 0xed, 0xa0, 0x80], [0xff]]) {
      const { client } = await connect(port, "u8", 4);
      await client.send(publishRawTopic(topic, 4));
      await expectDisconnect(client, 4, 0);
    }
  });
});

Deno.test("v5 [MQTT-1.5.4-1] ill-formed UTF-8 (bad sequence, encoded surrogate) in a topic: DISCONNECT 0x81", async () => {
  await withBroker("", async ({ port }) => {
    for (const topic of [[0x61, 0xc3, 0x28], [0x61, 0xed, 0xa0, 0x80], [0xff]]) {
      const { client } = await connect(port, "u8", 5);
      await client.send(publishRawTopic(topic, 5));
      await expectDisconnect(client, 5, 0x81);
    }
  });
});

Deno.test("v3.1.1 [MQTT-1.5.3-2] U+0000 in a topic filter closes the connection", async () => {
  await withBroker("", async ({ port }) => {
    const { client } = await connect(port, "nul", 4);
    await client.send(frame(0x82, [0, 1, ...str([0x61, 0x00, 0x62]), 0]));
    await expectDisconnect(client, 4, 0);
  });
});

Deno.test("v5 [MQTT-1.5.4-2] U+0000 in a topic name: DISCONNECT 0x81", async () => {
  await withBroker("", async ({ port }) => {
    const { client } = await connect(port, "nul", 5);
    await client.send(publishRawTopic([0x61, 0x00, 0x62], 5));
    await expectDisconnect(client, 5, 0x81);
  });
});

Deno.test("[MQTT-1.5.3-3] [MQTT-1.5.4-3] a leading EF BB BF (U+FEFF) is not stripped from topics", async () => {
  await withBroker("", async ({ port }) => {
    for (const version of VERSIONS) {
      const { client: sub } = await connect(port, "bom-sub", version);
      await subscribeOk(sub, version, [["\uFEFFbom", 0]]);
      const { client: pub } = await connect(port, "bom-pub", version);
      await publish(pub, version, "bom", "plain", 0); // must not match the filter with the BOM
      await publish(pub, version, "\uFEFFbom", "with-bom", 0);
      const got = await readPublish(sub);
      assert.equal(got.topic, "\uFEFFbom");
      assert.equal(new TextDecoder().decode(got.payload), "with-bom");
      assert.ok(await sub.expectSilence(100));
      await sub.close();
      await pub.close();
    }
  });
});

Deno.test("v5 [MQTT-1.5.5-1] a non-minimal Variable Byte Integer is malformed (0x81); the server encodes 128 as 80 01", async () => {
  await withBroker("", async ({ port }) => {
    const { client } = await connect(port, "vbi", 5);
    await client.send(hex("c0 80 00")); // PINGREQ, remaining length 0 written in two bytes
    await expectDisconnect(client, 5, 0x81);

    const { client: sub } = await connect(port, "vbi-sub", 5);
    await subscribeOk(sub, 5, [["t", 0]]);
    const { client: pub } = await connect(port, "vbi-pub", 5);
    // remaining length of the forwarded PUBLISH: 2 + 1 (topic) + 1 (property length) + 124 = 128
    await publish(pub, 5, "t", "x".repeat(124), 0);
    assert.equal(toHex(await sub.readBytes(3)), "30 80 01");
    await sub.close();
    await pub.close();
  });
});

Deno.test("v5 [MQTT-1.5.7-1] a User Property with ill-formed UTF-8 is malformed: DISCONNECT 0x81", async () => {
  await withBroker("", async ({ port }) => {
    const { client } = await connect(port, "pair", 5);
    const property = [0x26, ...str("k"), ...str([0xc3, 0x28])];
    await client.send(frame(0x30, [...str("t"), property.length, ...property, 0x78]));
    await expectDisconnect(client, 5, 0x81);
  });
});

/** Packets whose fixed-header flags are reserved, each with a wrong value. */
const BAD_FLAGS: Array<[string, Uint8Array]> = [
  ["SUBSCRIBE flags 0000", frame(0x80, [0, 1, ...str("a"), 0])],
  ["UNSUBSCRIBE flags 0000", frame(0xa0, [0, 1, ...str("a")])],
  ["PUBREL flags 0000", hex("60 02 00 01")],
  ["PUBACK flags 0001", hex("41 02 00 01")],
  ["PINGREQ flags 0001", hex("c1 00")],
  ["DISCONNECT flags 0100", hex("e4 00")],
];

Deno.test("v5 [MQTT-2.1.3-1] reserved fixed-header flags set wrong: DISCONNECT 0x81", async () => {
  await withBroker("", async ({ port }) => {
    for (const [what, bytes] of BAD_FLAGS) {
      const { client } = await connect(port, "flags", 5);
      await client.send(bytes);
      await expectDisconnect(client, 5, 0x81).catch((error) => {
        throw new Error(`${what}: ${error.message}`);
      });
    }
  });
});

Deno.test("v3.1.1 [MQTT-2.2.2-1] [MQTT-2.2.2-2] reserved fixed-header flags set wrong close the connection", async () => {
  await withBroker("", async ({ port }) => {
    for (const [what, bytes] of BAD_FLAGS) {
      const { client } = await connect(port, "flags", 4);
      await client.send(bytes);
      await expectDisconnect(client, 4, 0).catch((error) => {
        throw new Error(`${what}: ${error.message}`);
      });
    }
  });
});

Deno.test("[MQTT-2.2.1-2] [MQTT-2.3.1-5] [MQTT-4.3.1-1] a QoS 0 PUBLISH from the server has no packet identifier and DUP 0", async () => {
  await withBroker("", async ({ port }) => {
    for (const version of VERSIONS) {
      const { client: sub } = await connect(port, "q0-sub", version);
      await subscribeOk(sub, version, [["a/b", 0]]);
      const { client: pub } = await connect(port, "q0-pub", version);
      await publish(pub, version, "a/b", "hi", 1, { dup: true, packetId: 7 });
      const expected = version === 5 ? "30 08 00 03 61 2f 62 00 68 69" : "30 07 00 03 61 2f 62 68 69";
      assert.equal(toHex(await sub.readBytes(version === 5 ? 10 : 9)), expected);
      await sub.close();
      await pub.close();
    }
  });
});

Deno.test("v3.1.1 [MQTT-2.3.1-1] packet identifier 0 on SUBSCRIBE, UNSUBSCRIBE or PUBLISH QoS 1 closes the connection", async () => {
  await withBroker("", async ({ port }) => {
    const frames = [
      frame(0x82, [0, 0, ...str("a"), 0]),
      frame(0xa2, [0, 0, ...str("a")]),
      frame(0x32, [...str("a"), 0, 0, 0x78]),
    ];
    for (const bytes of frames) {
      const { client } = await connect(port, "pid0", 4);
      await client.send(bytes);
      await expectDisconnect(client, 4, 0);
    }
  });
});

Deno.test("[MQTT-2.2.1-4] [MQTT-2.3.1-4] [MQTT-4.3.2-1] server packet ids are non-zero, unused while in flight, and kept on re-send", async () => {
  await withBroker("", async ({ port }) => {
    for (const version of VERSIONS) {
      const options = version === 5
        ? { cleanStart: true, properties: { sessionExpiryInterval: 60 } }
        : { cleanStart: false };
      const { client: sub } = await connect(port, "ids-sub", version, options);
      await subscribeOk(sub, version, [["ids", 1]]);
      const { client: pub } = await connect(port, "ids-pub", version);
      for (let i = 0; i < 5; i++) await publish(pub, version, "ids", `m${i}`, 1);
      const first: PublishPacket[] = [];
      for (let i = 0; i < 5; i++) first.push(await readPublish(sub));
      const ids = first.map((p) => p.packetId!);
      assert.ok(ids.every((id) => id > 0 && id <= 65535), `ids ${ids}`);
      assert.equal(new Set(ids).size, 5, `ids must be distinct while unacknowledged: ${ids}`);
      await sub.close();
      const { client: again } = await connect(port, "ids-sub", version, { ...options, cleanStart: false });
      for (let i = 0; i < 5; i++) {
        const resent = await readPublish(again);
        assert.equal(resent.packetId, ids[i]);
        assert.equal(resent.dup, true);
        assert.equal(new TextDecoder().decode(resent.payload), `m${i}`);
      }
      await again.close();
      await pub.close();
      // end the persistent session
      const { client: clean } = await connect(port, "ids-sub", version, { cleanStart: true });
      await clean.close();
    }
  });
});

Deno.test("[MQTT-2.2.1-5] [MQTT-2.3.1-6] PUBACK, PUBREC and PUBCOMP from the server carry the packet identifier they answer", async () => {
  await withBroker("", async ({ port }) => {
    for (const version of VERSIONS) {
      const { client: sub } = await connect(port, "pid-sub", version);
      await subscribeOk(sub, version, [["pid", 0]]);
      const { client } = await connect(port, "pid", version);
      await client.send(frame(0x32, [...str("pid"), 0x12, 0x34, ...(version === 5 ? [0] : []), 0x78]));
      assert.equal(toHex(await client.readBytes(4)), "40 02 12 34");
      await client.send(frame(0x34, [...str("pid"), 0xab, 0xcd, ...(version === 5 ? [0] : []), 0x78]));
      assert.equal(toHex(await client.readBytes(4)), "50 02 ab cd");
      await client.send(hex("62 02 ab cd"));
      assert.equal(toHex(await client.readBytes(4)), "70 02 ab cd");
      await client.close();
      await sub.close();
    }
  });
});

Deno.test("[MQTT-2.2.1-6] [MQTT-2.3.1-7] SUBACK and UNSUBACK carry the packet identifier of their request", async () => {
  await withBroker("", async ({ port }) => {
    for (const version of VERSIONS) {
      const { client } = await connect(port, "suback-id", version);
      const props = version === 5 ? [0] : [];
      await client.send(frame(0x82, [0xbe, 0xef, ...props, ...str("a/b"), 1]));
      assert.equal(
        toHex(await client.readBytes(version === 5 ? 6 : 5)),
        version === 5 ? "90 04 be ef 00 01" : "90 03 be ef 01",
      );
      await client.send(frame(0xa2, [0x01, 0x02, ...props, ...str("a/b")]));
      assert.equal(
        toHex(await client.readBytes(version === 5 ? 6 : 4)),
        version === 5 ? "b0 04 01 02 00 00" : "b0 02 01 02",
      );
      await client.close();
    }
  });
});

Deno.test("v5 [MQTT-2.2.2-1] packets without properties carry a Property Length of 0 (CONNACK refusal aside)", async () => {
  await withBroker("", async ({ port }) => {
    const { client: sub } = await connect(port, "plen-sub", 5);
    await sub.send(frame(0x82, [0, 9, 0, ...str("p"), 0]));
    assert.equal(toHex(await sub.readBytes(6)), "90 04 00 09 00 00"); // SUBACK: property length 00
    const { client: pub } = await connect(port, "plen-pub", 5);
    await publish(pub, 5, "p", "z", 0);
    assert.equal(toHex(await sub.readBytes(7)), "30 05 00 01 70 00 7a"); // PUBLISH: property length 00
    await sub.close();
    await pub.close();
  });
});
