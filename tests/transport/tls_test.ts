/**
 * TLS and mutual TLS listeners, end to end: certificates made by `openssl` at test time, MQTT.js over
 * mqtts:// and Debian's mosquitto_pub with --cafile (and --cert/--key). Both TLS engines are covered:
 * server-authenticated TLS and mutual TLS (client certificates requested and verified), both on our own
 * accept loop with node:tls.
 */
import assert from "node:assert/strict";
import { type Accepted, listenTls } from "../../src/transport/mod.ts";
import { withBroker } from "../helpers/broker.ts";
import { endJs, requireTool, runOk, sleep, withTimeout } from "../interop/tools.ts";
import { connectUrl } from "../interop/tools.ts";
import { roundTrip, testCerts } from "./support.ts";

async function tlsListener(extra = ""): Promise<string> {
  const certs = await testCerts();
  return [
    "listener.default.type = tls",
    `listener.default.cert_file = ${certs.serverCert}`,
    `listener.default.key_file = ${certs.serverKey}`,
    extra,
  ].join("\n");
}

async function mtlsListener(extra = ""): Promise<string> {
  const certs = await testCerts();
  return await tlsListener(
    `listener.default.ca_file = ${certs.caFile}\nlistener.default.require_client_cert = true\n${extra}`,
  );
}

Deno.test("tls: MQTT.js over mqtts:// verifies the server certificate and publishes/receives", async () => {
  const certs = await testCerts();
  await withBroker(await tlsListener(), async ({ port }) => {
    const url = `mqtts://127.0.0.1:${port}`;
    const sub = await connectUrl(url, { clientId: "tls-sub", ca: certs.pem.ca, rejectUnauthorized: true });
    const pub = await connectUrl(url, {
      clientId: "tls-pub",
      ca: certs.pem.ca,
      rejectUnauthorized: true,
      protocolVersion: 5,
    });
    try {
      const message = await roundTrip(sub, pub, "tls/t", "over tls");
      assert.equal(message.payload, "over tls");
      assert.equal(message.qos, 1);
    } finally {
      await endJs(sub.client, pub.client);
    }
  });
});

Deno.test("tls: a client that does not trust the server's CA fails the handshake", async () => {
  const certs = await testCerts();
  await withBroker(await tlsListener(), async ({ port }) => {
    await assert.rejects(
      connectUrl(`mqtts://127.0.0.1:${port}`, {
        clientId: "distrust",
        ca: certs.pem.rogueCert,
        rejectUnauthorized: true,
      }),
    );
  });
});

Deno.test("tls: mosquitto_pub --cafile publishes to an MQTT.js subscriber", async () => {
  await requireTool("mosquitto_pub");
  const certs = await testCerts();
  await withBroker(await tlsListener(), async ({ port }) => {
    const sub = await connectUrl(`mqtts://127.0.0.1:${port}`, { clientId: "mosq-sub", ca: certs.pem.ca });
    try {
      await sub.client.subscribeAsync("mosq/tls", { qos: 1 });
      await runOk("mosquitto_pub", [
        ...["-h", "127.0.0.1", "-p", String(port), "--cafile", certs.caFile],
        ...["-t", "mosq/tls", "-m", "from mosquitto", "-q", "1", "-i", "mosq-pub"],
      ]);
      const [message] = await sub.inbox.take(1);
      assert.equal(message.payload, "from mosquitto");
    } finally {
      await endJs(sub.client);
    }
  });
});

Deno.test("mtls: a client certificate from the trusted CA connects; none, or a foreign CA's, is refused", async () => {
  const certs = await testCerts();
  await withBroker(await mtlsListener(), async ({ port, running }) => {
    const url = `mqtts://127.0.0.1:${port}`;
    const base = { ca: certs.pem.ca, rejectUnauthorized: true };
    const device = await connectUrl(url, {
      ...base,
      clientId: "dev-1",
      cert: certs.pem.clientCert,
      key: certs.pem.clientKey,
    });
    try {
      await assert.rejects(
        connectUrl(url, { ...base, clientId: "no-cert" }),
        "a client without a certificate",
      );
      await assert.rejects(
        connectUrl(url, { ...base, clientId: "rogue", cert: certs.pem.rogueCert, key: certs.pem.rogueKey }),
        "a certificate from an untrusted CA",
      );
      const echo = await roundTrip(device, device, "mtls/echo", "verified");
      assert.equal(echo.payload, "verified");
      // 500 KB each way: the node:tls stream's writes must wait for "drain" and lose nothing.
      const big = "y".repeat(500_000);
      await device.client.publishAsync("mtls/echo", big, { qos: 1 });
      const [, second] = await device.inbox.take(2);
      assert.equal(second.payload, big);
      assert.equal(running.connections.connectionCount, 1, "only the verified client got a connection");
    } finally {
      await endJs(device.client);
    }
  });
});

Deno.test("mtls: mosquitto_pub with --cert/--key is accepted, without them refused", async () => {
  await requireTool("mosquitto_pub");
  const certs = await testCerts();
  await withBroker(await mtlsListener(), async ({ port }) => {
    const sub = await connectUrl(`mqtts://127.0.0.1:${port}`, {
      clientId: "mosq-msub",
      ca: certs.pem.ca,
      cert: certs.pem.clientCert,
      key: certs.pem.clientKey,
    });
    try {
      await sub.client.subscribeAsync("mosq/mtls", { qos: 1 });
      const common = [
        "-h",
        "127.0.0.1",
        "-p",
        String(port),
        "--cafile",
        certs.caFile,
        "-t",
        "mosq/mtls",
        "-q",
        "1",
      ];
      await runOk("mosquitto_pub", [
        ...common,
        "-m",
        "with cert",
        "--cert",
        certs.clientCert,
        "--key",
        certs.clientKey,
      ]);
      const refused = await new Deno.Command("mosquitto_pub", {
        args: [...common, "-m", "no cert"],
        stdout: "piped",
        stderr: "piped",
      })
        .output();
      assert.notEqual(refused.code, 0, "mosquitto_pub without a client certificate must fail");
      await sub.inbox.expectCount(1, 200);
      assert.equal(sub.inbox.messages[0].payload, "with cert");
    } finally {
      await endJs(sub.client);
    }
  });
});

Deno.test("mtls: use_cn_as_username makes CN=device-1 the user name (password file and ACL see it)", async () => {
  const certs = await testCerts();
  const acl = await Deno.makeTempFile();
  const passwords = await Deno.makeTempFile();
  await Deno.writeTextFile(acl, "user device-1\nallow readwrite devices/%u/#\n");
  try {
    const extra = [
      "listener.default.use_cn_as_username = true",
      `auth.password_file = ${passwords}`,
      "auth.allow_anonymous = false",
      `auth.acl_file = ${acl}`,
      "auth.acl_default = deny",
    ].join("\n");
    await withBroker(await mtlsListener(extra), async ({ port }) => {
      // no user name or password in CONNECT: the certificate is the credential
      const device = await connectUrl(`mqtts://127.0.0.1:${port}`, {
        clientId: "cn-client",
        protocolVersion: 5,
        ca: certs.pem.ca,
        cert: certs.pem.clientCert,
        key: certs.pem.clientKey,
      });
      try {
        await assert.rejects(
          device.client.subscribeAsync("devices/other/#", { qos: 1 }),
          /Not authorized/,
          "the ACL's %u is the certificate's CN, so another device's topics are refused",
        );
        const echo = await roundTrip(device, device, "devices/device-1/state", "on");
        assert.equal(echo.payload, "on");
      } finally {
        await endJs(device.client);
      }
    });
  } finally {
    await Deno.remove(acl);
    await Deno.remove(passwords);
  }
});

Deno.test("mtls: without use_cn_as_username the certificate does not replace password authentication", async () => {
  const certs = await testCerts();
  const passwords = await Deno.makeTempFile();
  try {
    await withBroker(
      await mtlsListener(`auth.password_file = ${passwords}\nauth.allow_anonymous = false`),
      async ({ port }) => {
        await assert.rejects(
          connectUrl(`mqtts://127.0.0.1:${port}`, {
            clientId: "cn-ignored",
            ca: certs.pem.ca,
            cert: certs.pem.clientCert,
            key: certs.pem.clientKey,
          }),
          /Not authorized|Bad user|refused/i,
        );
      },
    );
  } finally {
    await Deno.remove(passwords);
  }
});

for (const engine of ["tls", "mtls"] as const) {
  Deno.test(`tls listener (${engine}): a client stalled in its handshake delays no other, is handed on at accept, and closing it frees its socket at once`, async () => {
    const certs = await testCerts();
    const accepted: Accepted[] = [];
    const listener = await listenTls(
      {
        name: "t",
        hostname: "127.0.0.1",
        port: 0,
        certFile: certs.serverCert,
        keyFile: certs.serverKey,
        caFile: engine === "tls" ? undefined : certs.caFile,
        requireClientCert: engine === "mtls",
        useCommonName: true,
      },
      (conn) => accepted.push(conn),
      (error) => {
        throw error;
      },
    );
    const stalled: Deno.TcpConn[] = [];
    try {
      // Five clients open TCP and never send a ClientHello.
      for (let i = 0; i < 5; i++) {
        stalled.push(await Deno.connect({ hostname: "127.0.0.1", port: listener.port }));
      }
      const started = performance.now();
      const good = await Deno.connectTls({
        hostname: "127.0.0.1",
        port: listener.port,
        caCerts: [certs.pem.ca],
        ...(engine === "tls" ? {} : { cert: certs.pem.clientCert, key: certs.pem.clientKey }),
      });
      await withTimeout(good.handshake(), 3000, "handshake behind stalled clients");
      const elapsed = performance.now() - started;
      assert.ok(elapsed < 1000, `handshake took ${elapsed.toFixed(0)} ms behind stalled clients`);
      // Every socket is handed on when accepted, in its handshake or not: the connection limits count it.
      for (let i = 0; i < 50 && accepted.length < 6; i++) await sleep(20);
      assert.equal(accepted.length, 6);
      await good.write(new TextEncoder().encode("hello"));
      const buffer = new Uint8Array(16);
      const n = await withTimeout(accepted[5].stream.read(buffer), 3000, "read after the handshake");
      assert.equal(new TextDecoder().decode(buffer.subarray(0, n ?? 0)), "hello");
      assert.equal(accepted[5].certificateCommonName, engine === "tls" ? undefined : "device-1");
      good.close();
      accepted[5].stream.close();
      // Closing a stream still in its handshake (as the CONNECT deadline does) closes its socket at once.
      for (const conn of accepted.slice(0, 5)) conn.stream.close();
      const ends = await Promise.all(
        stalled.map((conn) =>
          withTimeout(conn.read(buffer).catch(() => null), 2000, "stalled client dropped")
        ),
      );
      assert.deepEqual(ends, stalled.map(() => null));
    } finally {
      for (const conn of stalled) {
        try {
          conn.close();
        } catch { /* closed by the server */ }
      }
      listener.close();
      await listener.done;
    }
  });
}

Deno.test("tls listener: require_client_cert without ca_file is refused at start", async () => {
  const certs = await testCerts();
  await assert.rejects(
    listenTls(
      {
        name: "bad",
        hostname: "127.0.0.1",
        port: 0,
        certFile: certs.serverCert,
        keyFile: certs.serverKey,
        requireClientCert: true,
      },
      () => {},
      () => {},
    ),
    /ca_file/,
  );
});
