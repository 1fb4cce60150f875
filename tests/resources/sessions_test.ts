/**
 * Sessions are bounded: mqtt.max_sessions in all, and per user name and per IP address for persistent
 * sessions, so one client cannot fill the broker with sessions that outlive it. A 3.1.1 persistent
 * session expires after mqtt.max_session_expiry, which is finite by default.
 */
import assert from "node:assert/strict";
import type { ConnackPacket, ProtocolVersion } from "../../src/codec/mod.ts";
import { RawClient, withBroker } from "../helpers/broker.ts";
import { connect } from "../helpers/clients.ts";
import { passwordFile } from "../security/support.ts";

interface Attempt {
  clientId: string;
  version?: ProtocolVersion;
  cleanStart?: boolean;
  username?: string;
  password?: string;
  /** v5 Session Expiry Interval asked for (3.1.1: persistent when cleanStart is false). */
  expiry?: number;
}

/** Sends a CONNECT and returns the CONNACK with the client (closed by the server when refused). */
async function attempt(
  port: number,
  options: Attempt,
): Promise<{ client: RawClient; connack: ConnackPacket }> {
  const version = options.version ?? 5;
  const client = await RawClient.connect(port, version);
  await client.sendPacket({
    type: "connect",
    protocolName: "MQTT",
    protocolVersion: version,
    cleanStart: options.cleanStart ?? true,
    keepAlive: 60,
    clientId: options.clientId,
    username: options.username,
    password: options.password === undefined ? undefined : new TextEncoder().encode(options.password),
    properties: version === 5 && options.expiry !== undefined
      ? { sessionExpiryInterval: options.expiry }
      : {},
  }, version);
  const connack = await client.readPacket();
  assert.equal(connack.type, "connack");
  return { client, connack: connack as ConnackPacket };
}

async function disconnect(client: RawClient, version: ProtocolVersion = 5): Promise<void> {
  await client.sendPacket({ type: "disconnect", reasonCode: 0, properties: {} }, version);
  await client.expectClosed();
  await client.close();
}

Deno.test("sessions: past mqtt.max_sessions a new client id is refused (v5 0x97, 3.1.1 0x03); known ids still connect", async () => {
  await withBroker("mqtt.max_sessions = 3", async ({ port, running }) => {
    const first = await attempt(port, { clientId: "s1", cleanStart: false, expiry: 3600 });
    await disconnect(first.client); // offline, still a session
    const second = await attempt(port, { clientId: "s2" });
    const third = await attempt(port, { clientId: "s3", version: 4, cleanStart: false });
    assert.equal(running.broker.sessionCount, 3);

    const v5 = await attempt(port, { clientId: "s4" });
    assert.equal(v5.connack.reasonCode, 0x97);
    await v5.client.expectClosed();
    const v4 = await attempt(port, { clientId: "s5", version: 4 });
    assert.equal(v4.connack.reasonCode, 0x03);
    await v4.client.expectClosed();
    assert.equal(running.broker.sessionCount, 3);

    // Taking a session over, or resuming one, adds none.
    const resumed = await attempt(port, { clientId: "s1", cleanStart: false, expiry: 3600 });
    assert.equal(resumed.connack.reasonCode, 0);
    assert.equal(resumed.connack.sessionPresent, true);
    const replaced = await attempt(port, { clientId: "s2" });
    assert.equal(replaced.connack.reasonCode, 0);

    // A clean session that ends makes room.
    await disconnect(replaced.client);
    const fourth = await attempt(port, { clientId: "s4" });
    assert.equal(fourth.connack.reasonCode, 0);
    await Promise.all([resumed.client, second.client, third.client, fourth.client].map((c) => c.close()));
  });
});

Deno.test("sessions: one IP address owns at most max_persistent_sessions_per_address persistent sessions; clean ones are not counted", async () => {
  const config = "mqtt.max_persistent_sessions_per_address = 2\nmqtt.max_persistent_sessions_per_user = 0";
  await withBroker(config, async ({ port, running }) => {
    for (const clientId of ["p1", "p2"]) {
      const { client, connack } = await attempt(port, { clientId, cleanStart: false, expiry: 3600 });
      assert.equal(connack.reasonCode, 0);
      await disconnect(client);
    }
    const v5 = await attempt(port, { clientId: "p3", cleanStart: false, expiry: 3600 });
    assert.equal(v5.connack.reasonCode, 0x97, "a third persistent session from 127.0.0.1");
    await v5.client.expectClosed();
    const v4 = await attempt(port, { clientId: "p3", version: 4, cleanStart: false });
    assert.equal(v4.connack.reasonCode, 0x03);
    await v4.client.expectClosed();
    assert.equal(running.broker.session("p3"), undefined);

    const clean = await attempt(port, { clientId: "c1" });
    assert.equal(clean.connack.reasonCode, 0, "clean sessions are not capped per address");
    const again = await attempt(port, { clientId: "p1", cleanStart: false, expiry: 3600 });
    assert.equal(again.connack.reasonCode, 0, "an owned session is resumed");
    assert.equal(again.connack.sessionPresent, true);

    // Ending one (expiry 0 on DISCONNECT) frees its place.
    await again.client.sendPacket({
      type: "disconnect",
      reasonCode: 0,
      properties: { sessionExpiryInterval: 0 },
    }, 5);
    await again.client.expectClosed();
    const fresh = await attempt(port, { clientId: "p3", cleanStart: false, expiry: 3600 });
    assert.equal(fresh.connack.reasonCode, 0);
    await Promise.all([clean.client.close(), again.client.close(), fresh.client.close()]);
  });
});

Deno.test("sessions: one user name owns at most max_persistent_sessions_per_user persistent sessions", async () => {
  const passwords = await Deno.makeTempFile({ prefix: "mqtt-proxy-passwords-" });
  await Deno.writeTextFile(passwords, await passwordFile({ alice: "alice-secret", bob: "bob-secret" }));
  const config = `mqtt.max_persistent_sessions_per_user = 2
mqtt.max_persistent_sessions_per_address = 0
auth.password_file = ${passwords}`;
  await withBroker(config, async ({ port }) => {
    const alice = { username: "alice", password: "alice-secret", cleanStart: false };
    for (const clientId of ["u1", "u2"]) {
      const { client, connack } = await attempt(port, { clientId, ...alice, expiry: 3600 });
      assert.equal(connack.reasonCode, 0);
      await disconnect(client);
    }
    const refused = await attempt(port, { clientId: "u3", ...alice, expiry: 60 });
    assert.equal(refused.connack.reasonCode, 0x97);
    await refused.client.expectClosed();
    const bob = { username: "bob", password: "bob-secret", cleanStart: false };
    const other = await attempt(port, { clientId: "u3", ...bob, expiry: 60 });
    assert.equal(other.connack.reasonCode, 0, "another user has his own quota");
    await other.client.close();
  }).finally(() => Deno.remove(passwords));
});

Deno.test("sessions: anonymous clients are bounded per address, not pooled as one user", async () => {
  const config = "mqtt.max_persistent_sessions_per_user = 1\nmqtt.max_persistent_sessions_per_address = 2";
  await withBroker(config, async ({ port }) => {
    for (const clientId of ["a1", "a2"]) {
      const { client, connack } = await attempt(port, { clientId, cleanStart: false, expiry: 3600 });
      assert.equal(connack.reasonCode, 0, "the user cap does not count anonymous clients");
      await disconnect(client);
    }
    const third = await attempt(port, { clientId: "a3", cleanStart: false, expiry: 3600 });
    assert.equal(third.connack.reasonCode, 0x97, "the address cap does");
    await third.client.expectClosed();
  });
});

Deno.test("sessions: a 3.1.1 persistent session expires after mqtt.max_session_expiry, 7 days by default", async () => {
  await withBroker("", async ({ port, running }) => {
    const { client } = await connect(port, "old-default", 4, { cleanStart: false });
    assert.equal(running.broker.session("old-default")?.expiryInterval, 7 * 24 * 3600);
    await client.close();
  });
  await withBroker("mqtt.max_session_expiry = 1", async ({ port, running }) => {
    const { client } = await connect(port, "old", 4, { cleanStart: false });
    await disconnect(client, 4);
    assert.ok(running.broker.session("old"), "kept after the disconnect");
    const deadline = Date.now() + 5000;
    while (running.broker.session("old") && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert.equal(running.broker.session("old"), undefined, "gone once its expiry passed");
    const { client: back, connack } = await connect(port, "old", 4, { cleanStart: false });
    assert.equal(connack.sessionPresent, false);
    await back.close();
  });
});
