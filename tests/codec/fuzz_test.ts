/**
 * Fuzzing the decoder with random and mutated byte streams (truncations, bit flips, inserted and
 * deleted bytes, huge lengths, valid prefixes followed by garbage) fed in random chunk sizes. The decoder
 * must only ever throw MqttError, must finish in a bounded number of calls, must never hold more than
 * maxPacketSize bytes, and every packet it accepts must survive an encode/decode round trip.
 * Replay a failure with SEED=<seed> deno test -A tests/codec/fuzz_test.ts
 */
import assert from "node:assert/strict";
import { Decoder, encode, MqttError, type Packet, type ProtocolVersion } from "../../src/codec/mod.ts";
import { canonical } from "./support/canonical.ts";
import { decodeOne } from "./support/decode_all.ts";
import { Random, testSeed } from "./support/random.ts";
import { randomPacket } from "./support/random_packets.ts";

const CASES_PER_RUN = 12_000;
const EXPECTED_REASON_CODES = new Set([0x81, 0x82, 0x84, 0x90, 0x94, 0x95]);

function validStream(random: Random, version: ProtocolVersion): Uint8Array {
  const parts: number[] = [];
  const count = random.int(1, 4);
  for (let i = 0; i < count; i++) {
    parts.push(...encode(randomPacket(random, version, { mqttPacketCompatible: false }), version));
  }
  return new Uint8Array(parts);
}

type Mutation = (random: Random, bytes: Uint8Array) => Uint8Array;

const MUTATIONS: Record<string, Mutation> = {
  none: (_random, bytes) => bytes,
  truncate: (random, bytes) => bytes.subarray(0, random.int(0, bytes.length)),
  flipBits: (random, bytes) => {
    const copy = bytes.slice();
    for (let flips = random.int(1, 4); flips > 0 && copy.length > 0; flips--) {
      copy[random.int(0, copy.length - 1)] ^= 1 << random.int(0, 7);
    }
    return copy;
  },
  setByte: (random, bytes) => {
    const copy = bytes.slice();
    if (copy.length > 0) {
      copy[random.int(0, copy.length - 1)] = random.pick([0x00, 0x7f, 0x80, 0xff, random.int(0, 255)]);
    }
    return copy;
  },
  insertBytes: (random, bytes) => {
    const at = random.int(0, bytes.length);
    return new Uint8Array([
      ...bytes.subarray(0, at),
      ...random.bytes(random.int(1, 4)),
      ...bytes.subarray(at),
    ]);
  },
  deleteBytes: (random, bytes) => {
    const at = random.int(0, bytes.length);
    return new Uint8Array([...bytes.subarray(0, at), ...bytes.subarray(at + random.int(1, 4))]);
  },
  hugeLength: (random, bytes) => {
    const length = random.pick([
      [0xff, 0xff, 0xff, 0x7f],
      [0xff, 0xff, 0xff, 0xff, 0x7f],
      [0x80, 0x80, 0x80, 0x80, 0x01],
      [0xff, 0x7f],
      [0x80, 0x00],
    ]);
    return new Uint8Array([bytes[0] ?? 0x30, ...length, ...bytes.subarray(2)]);
  },
  garbageAfterValidPrefix: (random, bytes) => new Uint8Array([...bytes, ...random.bytes(random.int(1, 40))]),
  randomBytes: (random) => random.bytes(random.int(0, 200)),
};
const MUTATION_NAMES = Object.keys(MUTATIONS);

interface Outcome {
  packets: number;
  error?: MqttError;
}

/** Feeds `bytes` in random chunks; checks the invariants after every call. */
function feed(random: Random, bytes: Uint8Array, decoder: Decoder, context: string): Outcome {
  const maxCalls = bytes.length + 10;
  let calls = 0;
  let packets = 0;
  for (let offset = 0; offset < bytes.length;) {
    const end = Math.min(bytes.length, offset + random.pick([1, 2, 3, random.int(1, 64), bytes.length]));
    decoder.push(bytes.subarray(offset, end));
    offset = end;
    for (;;) {
      assert.ok(++calls <= maxCalls, `next() called more than ${maxCalls} times: ${context}`);
      const version = decoder.protocolVersion;
      let packet: Packet | undefined;
      try {
        packet = decoder.next();
      } catch (error) {
        assert.ok(error instanceof MqttError, `threw ${error}: ${context}`);
        assert.ok(
          EXPECTED_REASON_CODES.has(error.reasonCode),
          `reason 0x${error.reasonCode.toString(16)}: ${context}`,
        );
        return { packets, error };
      }
      assert.ok(decoder.buffered <= decoder.maxPacketSize, `buffered ${decoder.buffered}: ${context}`);
      assert.ok(decoder.needed >= 1, context);
      if (packet === undefined) break;
      packets++;
      checkRoundTrip(packet, packet.type === "connect" ? packet.protocolVersion : version, context);
    }
  }
  return { packets };
}

function checkRoundTrip(packet: Packet, version: ProtocolVersion, context: string): void {
  const again = decodeOne(encode(packet, version), version);
  assert.deepStrictEqual(
    canonical(again, { groupUserProperties: false }),
    canonical(packet, { groupUserProperties: false }),
    `accepted ${packet.type} does not round-trip: ${context}`,
  );
}

Deno.test("fuzz: mutated streams only ever raise MqttError, terminate, and stay within maxPacketSize", () => {
  const seed = testSeed();
  const random = new Random(seed);
  const tally = { accepted: 0, rejected: 0, incomplete: 0 };
  const reasons = new Map<number, number>();
  for (let i = 0; i < CASES_PER_RUN; i++) {
    const version = random.pick<ProtocolVersion>([3, 4, 5]);
    const mutation = random.pick(MUTATION_NAMES);
    const bytes = MUTATIONS[mutation](random, validStream(random, version));
    const maxPacketSize = random.bool(0.7) ? 1 << 16 : random.pick([2, 16, 64, 256]);
    const decoder = new Decoder({ maxPacketSize, protocolVersion: version });
    const outcome = feed(random, bytes, decoder, `SEED=${seed} case #${i} (${mutation}, level ${version})`);
    if (outcome.error !== undefined) {
      tally.rejected++;
      reasons.set(outcome.error.reasonCode, (reasons.get(outcome.error.reasonCode) ?? 0) + 1);
    } else if (decoder.buffered > 0) {
      tally.incomplete++;
    } else {
      tally.accepted++;
    }
  }
  const byReason = [...reasons].map(([code, count]) => `0x${code.toString(16)}×${count}`).join(" ");
  // deno-lint-ignore no-console
  console.log(
    `fuzz SEED=${seed}: ${CASES_PER_RUN} cases, ${tally.accepted} fully accepted, ${tally.incomplete} waiting ` +
      `for more bytes, ${tally.rejected} rejected (${byReason})`,
  );
  assert.ok(tally.rejected > 0 && tally.accepted > 0);
});
