/**
 * Conformance: a client that is still writing when the broker ends its connection with a reason code
 * reads that reason code and then the end of the stream, not a reset ([MQTT-4.13.1-1], [MQTT-4.13.2-1];
 * the broker half-closes and drains its input, see src/connection/closing.ts). Plain Deno sockets: the
 * client writes everything before it reads anything, as a simple blocking client does.
 */
import assert from "node:assert/strict";
import { Decoder, encode, type Packet } from "../../src/codec/mod.ts";
import { withBroker } from "../helpers/broker.ts";
import { connectFrame, frame, str } from "./support.ts";

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < bytes.length) offset += await conn.write(bytes.subarray(offset));
}

interface Outcome {
  /** Packets read once the client stopped writing, by type ("disconnect 0x93" for a DISCONNECT). */
  read: string[];
  /** How the stream ended: "end" (FIN after everything) or the read error (a reset). */
  ending: string;
  writeError?: string;
}

/** Writes `before`, keeps writing `still` (bounded rounds), then reads everything until the stream ends. */
async function writeThenRead(
  port: number,
  before: Uint8Array[],
  still: Uint8Array,
  version: 4 | 5,
): Promise<Outcome> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const outcome: Outcome = { read: [], ending: "" };
  try {
    for (const bytes of before) await writeAll(conn, bytes);
    for (let round = 0; round < 10; round++) {
      await writeAll(conn, still);
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
  } catch (error) {
    outcome.writeError = String(error);
  }
  const decoder = new Decoder({ maxPacketSize: 1 << 20, protocolVersion: version });
  const buffer = new Uint8Array(65536);
  try {
    for (;;) {
      const n = await conn.read(buffer);
      if (n === null) {
        outcome.ending = "end";
        break;
      }
      decoder.push(buffer.subarray(0, n));
      for (let packet = decoder.next(); packet; packet = decoder.next()) outcome.read.push(describe(packet));
    }
  } catch (error) {
    outcome.ending = String(error);
  } finally {
    conn.close();
  }
  return outcome;
}

/** Runs of equal entries counted: ["a", "a", "b"] → ["a ×2", "b"], to keep failure messages short. */
function summary(read: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < read.length;) {
    let j = i;
    while (j < read.length && read[j] === read[i]) j++;
    out.push(j - i > 1 ? `${read[i]} ×${j - i}` : read[i]);
    i = j;
  }
  return out;
}

function describe(packet: Packet): string {
  if (packet.type === "disconnect" || packet.type === "connack") {
    return `${packet.type} 0x${packet.reasonCode.toString(16)}`;
  }
  return packet.type;
}

Deno.test("v5 [MQTT-3.3.4-9] [MQTT-4.13.2-1] a client still writing PUBRELs after a QoS 2 burst past Receive Maximum reads DISCONNECT 0x93, then the end of the stream", async () => {
  await withBroker("mqtt.receive_maximum = 100", async ({ port }) => {
    const failures: string[] = [];
    for (const size of [1024, 4096, 10_240, 30_720]) {
      const connect = encode({
        type: "connect",
        protocolName: "MQTT",
        protocolVersion: 5,
        cleanStart: true,
        keepAlive: 60,
        clientId: `burst-${size}`,
        properties: {},
      }, 5);
      const burst = [connect];
      for (let id = 1; id <= 101; id++) {
        burst.push(encode({
          type: "publish",
          topic: "burst",
          payload: new Uint8Array(size),
          qos: 2,
          retain: false,
          dup: false,
          packetId: id,
          properties: {},
        }, 5));
      }
      const pubrels = new Uint8Array(100 * 4);
      for (let id = 1; id <= 100; id++) pubrels.set([0x62, 0x02, 0, id], (id - 1) * 4);
      const outcome = await writeThenRead(port, burst, pubrels, 5);
      // The 100 accepted PUBLISHes are acknowledged before the DISCONNECT, nothing follows it, the client's
      // writes all succeed, and the stream ends with FIN.
      const expected = ["connack 0x0", ...Array(100).fill("pubrec"), "disconnect 0x93"];
      const ok = outcome.read.join() === expected.join() && outcome.ending === "end" && !outcome.writeError;
      if (!ok) {
        failures.push(`payload ${size}: ${JSON.stringify({ ...outcome, read: summary(outcome.read) })}`);
      }
    }
    assert.deepEqual(failures, []);
  });
});

Deno.test("v3.1.1 [MQTT-3.1.2-2] a client still writing after a CONNECT with an unsupported level reads CONNACK 0x01, then the end of the stream", async () => {
  await withBroker("", async ({ port }) => {
    const connect = connectFrame({ clientId: "level-6" });
    connect[8] = 6; // protocol level after 00 04 "MQTT"
    const junk = frame(0x30, [...str("junk"), ...new Uint8Array(8000)]);
    const outcome = await writeThenRead(port, [connect, junk], junk, 4);
    assert.deepEqual(outcome, { read: ["connack 0x1"], ending: "end" });
  });
});
