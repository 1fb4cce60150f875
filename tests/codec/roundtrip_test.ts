/**
 * Our encoder and decoder against each other on random valid packets (including what mqtt-packet cannot
 * express: a password without user name at v5, empty client ids, empty user property values): decoding
 * restores the packet exactly (user property order included), re-encoding reproduces the bytes, and
 * `encodedLength` is the encoded size.
 * Replay a failure with SEED=<seed> deno test -A tests/codec/roundtrip_test.ts
 */
import assert from "node:assert/strict";
import { encode, encodedLength, type ProtocolVersion } from "../../src/codec/mod.ts";
import { canonical } from "./support/canonical.ts";
import { decodeOne } from "./support/decode_all.ts";
import { Random, testSeed } from "./support/random.ts";
import { randomPacket } from "./support/random_packets.ts";

const PACKETS_PER_RUN = 5_000;

Deno.test("round trip: decode(encode(p)) equals p and re-encodes to the same bytes", () => {
  const seed = testSeed();
  const random = new Random(seed);
  for (let i = 0; i < PACKETS_PER_RUN; i++) {
    const version = random.pick<ProtocolVersion>([3, 4, 5]);
    const packet = randomPacket(random, version, { mqttPacketCompatible: false });
    const context = `SEED=${seed} packet #${i}: ${packet.type} at level ${version}`;
    const bytes = encode(packet, version);
    assert.equal(encodedLength(packet, version), bytes.length, context);
    const decoded = decodeOne(bytes, version);
    assert.deepStrictEqual(
      canonical(decoded, { groupUserProperties: false }),
      canonical(packet, { groupUserProperties: false }),
      context,
    );
    assert.deepStrictEqual(encode(decoded, version), bytes, context);
    if (decoded.type === "publish") assert.deepStrictEqual(decoded.frame, bytes, context);
  }
  // deno-lint-ignore no-console
  console.log(`round trip SEED=${seed}: ${PACKETS_PER_RUN} packets`);
});
