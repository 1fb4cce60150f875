/**
 * Rule: no user enumeration. A refusal looks the same (reason code, reason string, timing within noise) for
 * an unknown user, a wrong password, an unknown access key and a wrong signature; the detail goes to the
 * log only. The same holds inside SCRAM: an unknown user's exchange cannot be told from a known one's.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { scramCredentialLine } from "../../src/auth/mod.ts";
import type { ConnackPacket, ProtocolVersion } from "../../src/codec/mod.ts";
import { scramLogin } from "./scram_client.ts";
import {
  type ConnectAttempt,
  passwordFile,
  signature,
  tempFiles,
  tryConnect,
  withSecureBroker,
} from "./support.ts";

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

/** The four ways to get credentials wrong, as CONNECTs with client id `clientId`. */
function wrongCredentials(clientId: string): Record<string, ConnectAttempt> {
  return {
    "unknown user": { clientId, username: "nobody", password: "whatever" },
    "wrong password": { clientId, username: "alice", password: "not-her-password" },
    "unknown access key": {
      clientId,
      username: "Signature|AK-NONE|inst",
      password: signature(clientId, "x"),
    },
    "wrong signature": {
      clientId,
      username: "Signature|AK1|inst",
      password: signature(clientId, "not-secret"),
    },
  };
}

Deno.test("security: unknown user, wrong password, unknown access key and wrong signature get the same CONNACK", async () => {
  await using files = await tempFiles({
    passwords: await passwordFile({ alice: "wonderland" }),
    keys: "AK1 = secret-1\n",
  });
  const properties = [
    `auth.password_file = ${files.paths.passwords}`,
    `auth.access_keys_file = ${files.paths.keys}`,
    "auth.failure_delay_ms = 0",
  ].join("\n");
  await withSecureBroker(properties, async ({ port, events }) => {
    for (const version of [5, 4] as ProtocolVersion[]) {
      const answers = new Map<string, ConnackPacket>();
      for (const [kind, attempt] of Object.entries(wrongCredentials(`dev-${version}`))) {
        const { client, connack } = await tryConnect(port, { ...attempt, version });
        await client.expectClosed();
        answers.set(kind, connack);
      }
      const [first, ...others] = [...answers.values()];
      for (const [kind, connack] of answers) {
        assert.deepEqual(
          connack,
          first,
          `v${version} ${kind} answered differently from ${[...answers.keys()][0]}`,
        );
      }
      assert.equal(first.reasonCode, version === 5 ? 0x86 : 0x04);
      assert.equal(others.length, 3);
    }
    // the reason is in the log (for the operator), never the password
    const refusals = events("client.refused").map((line) => String(line.reason));
    assert.ok(refusals.some((reason) => /unknown user/.test(reason)), refusals.join(" | "));
    assert.ok(refusals.some((reason) => /signature/.test(reason)), refusals.join(" | "));
    assert.ok(!refusals.some((reason) => reason.includes("not-her-password")));
  });
});

Deno.test("security: the four kinds of wrong credentials take the same time to be refused", async () => {
  // 20 000 iterations make a real password check ~25 ms: unmistakable if only some refusals pay it.
  await using files = await tempFiles({
    passwords: await passwordFile({ alice: "wonderland", bob: "builder" }, 20_000),
    keys: "AK1 = secret-1\n",
  });
  const properties = [
    `auth.password_file = ${files.paths.passwords}`,
    `auth.access_keys_file = ${files.paths.keys}`,
    "auth.failure_delay_ms = 0",
  ].join("\n");
  await withSecureBroker(properties, async ({ port }) => {
    // Each round times the four kinds back to back (in a rotating order) and keeps each one's difference from
    // the round's mean: the load of a shared machine drifts from round to round, and this cancels the drift
    // instead of widening the bound. Round 0 warms up.
    const deviations = new Map<string, number[]>();
    for (let round = 0; round < 12; round++) {
      const kinds = Object.entries(wrongCredentials(`timing-${round}`));
      const order = kinds.map((_, index) => kinds[(index + round) % kinds.length]);
      const elapsed = new Map<string, number>();
      for (const [kind, attempt] of order) {
        const started = performance.now();
        const { client } = await tryConnect(port, attempt);
        elapsed.set(kind, performance.now() - started);
        await client.close();
      }
      if (round === 0) continue;
      const mean = [...elapsed.values()].reduce((sum, value) => sum + value, 0) / elapsed.size;
      for (const [kind, value] of elapsed) {
        (deviations.get(kind) ?? deviations.set(kind, []).get(kind)!).push(value - mean);
      }
    }
    const medians = [...deviations].map(([kind, values]) => [kind, median(values)] as const);
    const spread = Math.max(...medians.map(([, m]) => m)) - Math.min(...medians.map(([, m]) => m));
    const report = medians.map(([kind, m]) => `${kind} ${m >= 0 ? "+" : ""}${m.toFixed(1)} ms`).join(", ");
    assert.ok(
      spread < 10,
      `refusal times differ by ${spread.toFixed(1)} ms (from each round's mean): ${report}`,
    );
  });
});

Deno.test("security: SCRAM refuses an unknown user exactly like a wrong password, with an unpredictable salt", async () => {
  await using files = await tempFiles({ scram: `${await scramCredentialLine("dev", "pa55")}\n` });
  const properties = `auth.scram_file = ${files.paths.scram}\nauth.failure_delay_ms = 0`;
  await withSecureBroker(properties, async ({ port }) => {
    const wrong = await scramLogin(port, "dev", "wrong");
    const unknown = await scramLogin(port, "ghost", "wrong");
    const unknownAgain = await scramLogin(port, "ghost", "other");
    await Promise.all([wrong.client.close(), unknown.client.close(), unknownAgain.client.close()]);
    assert.deepEqual(unknown.last, wrong.last, "unknown user and wrong password refused alike");
    assert.ok(wrong.last.type === "connack" && wrong.last.reasonCode >= 0x80);
    // An unknown user's salt is stable (a changing salt would give it away) and not computable by the
    // client: the old made-up salt, SHA-256("unknown:<user>"), told anyone that the user does not exist.
    assert.equal(unknown.serverFirst.s, unknownAgain.serverFirst.s);
    const guessable = createHash("sha256").update("unknown:ghost").digest().subarray(0, 16).toString(
      "base64",
    );
    assert.notEqual(unknown.serverFirst.s, guessable);
    assert.equal(unknown.serverFirst.i, wrong.serverFirst.i, "same iteration count as the real users");
  });
});
