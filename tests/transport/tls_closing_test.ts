/**
 * Closing after a reason code over TLS (`Deno.listenTls`, whose connections can half-close): the client,
 * still writing, reads the CONNACK or DISCONNECT and then the end of the stream, as over TCP
 * (tests/conformance/closing_test.ts).
 */
import assert from "node:assert/strict";
import { Decoder, type Packet } from "../../src/codec/mod.ts";
import { withBroker } from "../helpers/broker.ts";
import { connectFrame, frame, str } from "../conformance/support.ts";
import { testCerts } from "./support.ts";

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < bytes.length) offset += await conn.write(bytes.subarray(offset));
}

/** Writes each of `packets` (then `junk` a few more times), then reads until the stream ends. */
async function exchange(
  port: number,
  ca: string,
  version: 4 | 5,
  packets: Uint8Array[],
  junk: Uint8Array,
): Promise<string[]> {
  const conn = await Deno.connectTls({ hostname: "127.0.0.1", port, caCerts: [ca] });
  const seen: string[] = [];
  try {
    for (const bytes of packets) await writeAll(conn, bytes);
    for (let round = 0; round < 5; round++) await writeAll(conn, junk);
  } catch (error) {
    seen.push(`write failed: ${error}`);
  }
  const decoder = new Decoder({ maxPacketSize: 1 << 20, protocolVersion: version });
  const buffer = new Uint8Array(16384);
  try {
    for (;;) {
      const n = await conn.read(buffer);
      if (n === null) break;
      decoder.push(buffer.subarray(0, n));
      for (let packet = decoder.next(); packet; packet = decoder.next()) seen.push(describe(packet));
    }
    seen.push("end");
  } catch (error) {
    seen.push(`read failed: ${error}`);
  } finally {
    conn.close();
  }
  return seen;
}

function describe(packet: Packet): string {
  if (packet.type === "connack" || packet.type === "disconnect") {
    return `${packet.type} 0x${packet.reasonCode.toString(16)}`;
  }
  return packet.type;
}

Deno.test("tls listener (Deno.listenTls): a refusal and a protocol error reach a client still writing, then the stream ends", async () => {
  const certs = await testCerts();
  const ca = await Deno.readTextFile(certs.caFile);
  const config = [
    "listener.default.type = tls",
    `listener.default.cert_file = ${certs.serverCert}`,
    `listener.default.key_file = ${certs.serverKey}`,
  ].join("\n");
  await withBroker(config, async ({ port }) => {
    const junk = frame(0x30, [...str("junk"), ...new Uint8Array(4000)]);
    const badLevel = connectFrame({ clientId: "tls-level" });
    badLevel[8] = 6; // protocol level after 00 04 "MQTT"
    assert.deepEqual(await exchange(port, ca, 4, [badLevel], junk), ["connack 0x1", "end"]);
    const connect = connectFrame({ version: 5, clientId: "tls-sid" });
    const withSubscriptionId = frame(0x30, [...str("t"), 2, 0x0b, 1, 0x78]);
    assert.deepEqual(await exchange(port, ca, 5, [connect, withSubscriptionId], junk), [
      "connack 0x0",
      "disconnect 0x82",
      "end",
    ]);
  });
});
