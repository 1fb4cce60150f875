/**
 * Rule: the login slowdown is per client address (IP, not IP and port; IPv6 by /64), applies to every
 * method (password, access key, SCRAM, certificate, anonymous), is counted in /metrics per method, and
 * survives reconnect storms.
 */
import assert from "node:assert/strict";
import { createAuthenticator, type Credentials } from "../../src/auth/mod.ts";
import { VirtualClock } from "../auth/fixtures.ts";
import { connectUrl, endJs } from "../interop/tools.ts";
import { testCerts } from "../transport/support.ts";
import { scramCredentialLine } from "../../src/auth/mod.ts";
import { scramLogin } from "./scram_client.ts";
import {
  expectConnack,
  passwordFile,
  sample,
  scrape,
  signature,
  tempFiles,
  tryConnect,
  withSecureBroker,
} from "./support.ts";

async function timed<T>(work: () => Promise<T>): Promise<number> {
  const started = performance.now();
  await work();
  return performance.now() - started;
}

Deno.test("security: failures from one IP slow its next logins, whatever the source port", async () => {
  await using files = await tempFiles({ passwords: await passwordFile({ alice: "right" }) });
  const properties = `auth.password_file = ${files.paths.passwords}\nhttp.enabled = true\nhttp.port = 0`;
  await withSecureBroker(properties, async ({ port, running }) => {
    const wrong = { version: 5 as const, username: "alice", password: "guess" };
    await expectConnack(port, wrong, 0x86);
    await expectConnack(port, wrong, 0x86);
    // third attempt from 127.0.0.1 (a new source port every time): waits out the doubled delay (500 ms)
    const third = await timed(() => expectConnack(port, wrong, 0x86));
    assert.ok(third >= 400, `third failed login from the same IP answered after ${third.toFixed(0)} ms`);
    const samples = await scrape(running.http!.port);
    assert.equal(sample(samples, "mqtt_auth_failures_total", { method: "password" }), 3);
    assert.ok(sample(samples, "mqtt_auth_delayed_total", { method: "password" }) >= 2);
  });
});

Deno.test("security: a reconnect storm from one IP cannot try passwords in parallel past the slowdown", async () => {
  await using files = await tempFiles({ passwords: await passwordFile({ alice: "right" }) });
  const properties = [
    `auth.password_file = ${files.paths.passwords}`,
    "auth.failure_delay_ms = 100",
    "auth.failure_delay_max_ms = 200",
    "http.enabled = true",
    "http.port = 0",
  ].join("\n");
  await withSecureBroker(properties, async ({ port, running }) => {
    const started = performance.now();
    const answeredAfter = await Promise.all(
      Array.from({ length: 10 }, async () => {
        await expectConnack(port, { username: "alice", password: "guess" }, 0x86);
        return performance.now() - started;
      }),
    );
    const last = Math.max(...answeredAfter);
    assert.ok(last >= 1000, `10 parallel guesses all answered within ${last.toFixed(0)} ms`);
    const samples = await scrape(running.http!.port);
    assert.equal(sample(samples, "mqtt_auth_failures_total", { method: "password" }), 10);
  });
});

Deno.test("security: a valid login in between does not wipe an address's failures", async () => {
  await using files = await tempFiles({ passwords: await passwordFile({ alice: "right" }) });
  const properties = `auth.password_file = ${files.paths.passwords}\nauth.failure_delay_ms = 300`;
  await withSecureBroker(properties, async ({ port }) => {
    await expectConnack(port, { username: "alice", password: "guess-1" }, 0x86);
    await expectConnack(port, { username: "alice", password: "guess-2" }, 0x86);
    await expectConnack(port, { username: "alice", password: "right" }, 0);
    const next = await timed(() => expectConnack(port, { username: "alice", password: "guess-3" }, 0x86));
    assert.ok(next >= 250, `a guess right after a valid login was answered after ${next.toFixed(0)} ms`);
  });
});

/** A certificate signed by the test CA whose subject has no Common Name. */
async function certificateWithoutCommonName(dir: string): Promise<{ cert: string; key: string }> {
  const run = async (args: string[]) => {
    const output = await new Deno.Command("openssl", { args, cwd: dir, stdout: "piped", stderr: "piped" })
      .output();
    if (!output.success) throw new Error(new TextDecoder().decode(output.stderr));
  };
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  await run(["req", ...ec, "-keyout", "nocn.key", "-out", "nocn.csr", "-subj", "/O=no common name"]);
  await Deno.writeTextFile(`${dir}/nocn.ext`, "extendedKeyUsage=clientAuth\n");
  await run([
    ...["x509", "-req", "-in", "nocn.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial"],
    ...["-out", "nocn.crt", "-days", "2", "-extfile", "nocn.ext"],
  ]);
  return {
    cert: await Deno.readTextFile(`${dir}/nocn.crt`),
    key: await Deno.readTextFile(`${dir}/nocn.key`),
  };
}

Deno.test("security: every method's failures count per method and slow the address for every method", async () => {
  const certs = await testCerts();
  const noCommonName = await certificateWithoutCommonName(certs.dir);
  await using files = await tempFiles({
    passwords: await passwordFile({ alice: "right" }),
    keys: "AK1 = secret-1\n",
    scram: `${await scramCredentialLine("dev", "pa55")}\n`,
  });
  const properties = [
    "listener.default.host = 127.0.0.1",
    "listener.default.port = 0",
    "listener.mtls.type = tls",
    "listener.mtls.host = 127.0.0.1",
    "listener.mtls.port = 0",
    `listener.mtls.cert_file = ${certs.serverCert}`,
    `listener.mtls.key_file = ${certs.serverKey}`,
    `listener.mtls.ca_file = ${certs.caFile}`,
    "listener.mtls.require_client_cert = true",
    "listener.mtls.use_cn_as_username = true",
    `auth.password_file = ${files.paths.passwords}`,
    `auth.access_keys_file = ${files.paths.keys}`,
    `auth.scram_file = ${files.paths.scram}`,
    // above the 100 ms refusal floor, so that the attempt after a refusal still has to wait
    "auth.failure_delay_ms = 250",
    "auth.failure_delay_max_ms = 250",
    "http.enabled = true",
    "http.port = 0",
  ].join("\n");
  await withSecureBroker(properties, async ({ port, running }) => {
    const mtls = `mqtts://127.0.0.1:${running.listeners.find((l) => l.name === "mtls")!.port}`;
    await expectConnack(port, { username: "alice", password: "guess" }, 0x86);
    await expectConnack(port, { clientId: "d1", username: "AK1", password: signature("d1", "wrong") }, 0x86);
    const scram = await scramLogin(port, "dev", "wrong");
    assert.ok(scram.last.type === "connack" && scram.last.reasonCode >= 0x80);
    await scram.client.close();
    await expectConnack(port, {}, 0x87);
    await assert.rejects(
      connectUrl(mtls, {
        clientId: "rogue",
        ca: certs.pem.ca,
        cert: certs.pem.rogueCert,
        key: certs.pem.rogueKey,
      }),
    );
    await assert.rejects(
      connectUrl(mtls, { clientId: "nocn", ca: certs.pem.ca, ...noCommonName, protocolVersion: 5 }),
      /Bad User Name or Password/,
    );
    const good = await connectUrl(mtls, {
      clientId: "dev-cert",
      ca: certs.pem.ca,
      cert: certs.pem.clientCert,
      key: certs.pem.clientKey,
    });
    await endJs(good.client);
    const { client } = await tryConnect(port, { username: "alice", password: "right" });
    await client.close();

    const samples = await scrape(running.http!.port);
    for (const method of ["password", "access_key", "scram", "anonymous"]) {
      assert.equal(sample(samples, "mqtt_auth_failures_total", { method }), 1, `failures of ${method}`);
    }
    assert.equal(
      sample(samples, "mqtt_auth_failures_total", { method: "certificate" }),
      2,
      "rogue CA and no CN",
    );
    // every attempt after the first failure waited its turn, whichever method it used
    for (const method of ["password", "access_key", "scram", "anonymous", "certificate"]) {
      assert.ok(sample(samples, "mqtt_auth_delayed_total", { method }) >= 1, `delayed ${method} attempts`);
    }
    assert.equal(sample(samples, "mqtt_auth_successes_total", { method: "certificate" }), 1);
    assert.equal(sample(samples, "mqtt_auth_successes_total", { method: "password" }), 1);
  });
});

Deno.test("security: the slowdown keys IPv4 by address and IPv6 by /64, never by port", async () => {
  await using files = await tempFiles({ passwords: await passwordFile({ alice: "right" }) });
  const clock = new VirtualClock();
  const authenticator = await createAuthenticator(
    // no refusal floor: it would sleep on the virtual clock after the real-time hash check
    { passwordFile: files.paths.passwords, failureDelay: { baseMs: 1000, maxMs: 1000 }, refusalFloorMs: 0 },
    clock,
  );
  const attempt = (remoteAddress: string): Credentials => ({
    clientId: "c",
    username: "alice",
    password: new TextEncoder().encode("guess"),
    remoteAddress,
  });
  const waited = async (remoteAddress: string) => {
    const startedAt = clock.time;
    const answer = authenticator.authenticate(attempt(remoteAddress));
    await clock.runUntilIdle();
    await answer;
    return clock.time - startedAt >= 1000;
  };
  await waited("2001:db8:0:0:1::1:40000");
  assert.equal(await waited("2001:db8::9:40001"), true, "same /64, another host and port");
  assert.equal(await waited("[2001:db8::abcd]:5"), true, "same /64, bracketed form");
  assert.equal(await waited("2001:db8:0:1::1:40000"), false, "another /64");
  await waited("198.51.100.7:1000");
  assert.equal(await waited("198.51.100.7:1001"), true, "same IPv4 address, another port");
  assert.equal(await waited("::ffff:198.51.100.7:1002"), true, "the same address, IPv4-mapped");
  assert.equal(await waited("198.51.100.8:1000"), false, "another IPv4 address");
});
