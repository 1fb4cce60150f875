/**
 * Every connection that has not completed CONNECT — a silent TCP socket, a TLS socket in (or after) its
 * handshake, a WebSocket before or after its upgrade, a half-sent HTTP request — is counted against its
 * listener's max_connections and mqtt.max_connections, and closed at mqtt.connect_timeout_ms.
 */
import assert from "node:assert/strict";
import { encode } from "../../src/codec/mod.ts";
import { withBroker } from "../helpers/broker.ts";
import { testCerts } from "../transport/support.ts";

const UPGRADE = "GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n";

async function listenersConfig(extra: string[] = []): Promise<string> {
  const certs = await testCerts();
  const tlsFiles = (name: string) => [
    `listener.${name}.cert_file = ${certs.serverCert}`,
    `listener.${name}.key_file = ${certs.serverKey}`,
  ];
  return [
    "listener.tls1.type = tls",
    "listener.tls1.host = 127.0.0.1",
    "listener.tls1.port = 0",
    ...tlsFiles("tls1"),
    "listener.ws1.type = ws",
    "listener.ws1.host = 127.0.0.1",
    "listener.ws1.port = 0",
    "listener.wss1.type = wss",
    "listener.wss1.host = 127.0.0.1",
    "listener.wss1.port = 0",
    ...tlsFiles("wss1"),
    "sys.interval_seconds = 0",
    ...extra,
  ].join("\n");
}

/** A socket that stops short of CONNECT; `ended` resolves with the ms it stayed open once the server closes it. */
interface Silent {
  what: string;
  ended: Promise<number>;
  close(): void;
}

async function openSilent(
  what: string,
  port: number,
  setup: (conn: Deno.Conn) => Promise<void>,
): Promise<Silent> {
  const started = Date.now();
  let conn: Deno.Conn = await Deno.connect({ hostname: "127.0.0.1", port });
  if (what.startsWith("tls") || what.startsWith("wss")) {
    if (what.includes("before handshake")) { /* send nothing at all */ }
    else {
      const certs = await testCerts();
      conn = await Deno.startTls(conn as Deno.TcpConn, { hostname: "127.0.0.1", caCerts: [certs.pem.ca] });
      await (conn as Deno.TlsConn).handshake();
    }
  }
  await setup(conn);
  const ended = (async () => {
    const buffer = new Uint8Array(4096);
    try {
      while ((await conn.read(buffer)) !== null) { /* a 101 or a refusal: keep reading until the close */ }
    } catch { /* a reset is a close too */ }
    return Date.now() - started;
  })();
  return {
    what,
    ended,
    close() {
      try {
        conn.close();
      } catch { /* closed by the server */ }
    },
  };
}

/** How long the socket stayed open, or -1 when the server had not closed it within `ms`. */
function endedWithin(socket: Silent, ms: number): Promise<number> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<number>((resolve) => timer = setTimeout(() => resolve(-1), ms));
  return Promise.race([socket.ended, deadline]).finally(() => clearTimeout(timer));
}

const write = (text: string | Uint8Array) => async (conn: Deno.Conn) => {
  const bytes = typeof text === "string" ? new TextEncoder().encode(text) : text;
  for (let offset = 0; offset < bytes.length;) offset += await conn.write(bytes.subarray(offset));
};
const nothing = () => Promise.resolve();

function portOf(
  running: Awaited<Parameters<Parameters<typeof withBroker>[1]>[0]>["running"],
  name: string,
): number {
  return running.listeners.find((listener) => listener.name === name)!.port;
}

Deno.test("pre-CONNECT: every socket short of CONNECT is closed at mqtt.connect_timeout_ms, on every listener", async () => {
  const config = await listenersConfig(["mqtt.connect_timeout_ms = 700"]);
  await withBroker(config, async ({ port, running }) => {
    const [tls, ws, wss] = ["tls1", "ws1", "wss1"].map((name) => portOf(running, name));
    const partialConnect = encode({
      type: "connect",
      protocolName: "MQTT",
      protocolVersion: 4,
      cleanStart: true,
      keepAlive: 0,
      clientId: "slow",
      properties: {},
    }, 4).subarray(0, 6);
    const sockets = await Promise.all([
      openSilent("tcp, silent", port, nothing),
      openSilent("tcp, half a CONNECT", port, write(partialConnect)),
      openSilent("tls before handshake", tls, nothing),
      openSilent("tls after handshake, no CONNECT", tls, nothing),
      openSilent("ws, silent", ws, nothing),
      openSilent("ws, half an HTTP request", ws, write("GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1\r\n")),
      openSilent("ws, upgraded, no CONNECT", ws, write(UPGRADE)),
      openSilent("wss before handshake", wss, nothing),
      openSilent("wss, half an HTTP request", wss, write("GET /mqtt HTTP/1.1\r\n")),
    ]);
    assert.equal(running.connections.connectionCount, sockets.length, "each counts as a connection");
    const after = await Promise.all(sockets.map((socket) => endedWithin(socket, 6000)));
    for (let i = 0; i < sockets.length; i++) {
      assert.ok(after[i] >= 650, `${sockets[i].what}: closed after ${after[i]} ms (-1: not within 6 s)`);
    }
    for (const socket of sockets) socket.close();
    // A closing socket still holds its descriptor for a moment (close handshake, TLS close_notify).
    for (let i = 0; i < 100 && running.connections.connectionCount > 0; i++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert.equal(running.connections.connectionCount, 0);
  });
});

Deno.test("pre-CONNECT: sockets short of CONNECT count against listener max_connections and mqtt.max_connections", async () => {
  const config = await listenersConfig([
    "mqtt.connect_timeout_ms = 60000",
    "mqtt.max_connections = 5",
    "listener.ws1.max_connections = 2",
    "listener.tls1.max_connections = 2",
  ]);
  await withBroker(config, async ({ port, running }) => {
    const [tls, ws, wss] = ["tls1", "ws1", "wss1"].map((name) => portOf(running, name));
    const held = [
      await openSilent("ws, silent", ws, nothing),
      await openSilent("ws, half an HTTP request", ws, write("GET /mqtt HTTP/1.1\r\n")),
      await openSilent("tls before handshake", tls, nothing),
      await openSilent("tls before handshake", tls, nothing),
    ];
    for (let i = 0; i < 50 && running.connections.connectionCount < 4; i++) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.equal(running.connections.connectionCount, 4);
    // Over the listener's limit: closed at once, before any answer.
    for (const [what, listenerPort] of [["ws", ws], ["tls", tls]] as const) {
      const refused = await openSilent(
        `${what} over its listener's limit, before handshake`,
        listenerPort,
        nothing,
      );
      assert.ok(await endedWithin(refused, 3000) >= 0, `a third ${what} socket was not refused`);
      refused.close();
    }
    // One more anywhere reaches mqtt.max_connections; the next is refused.
    held.push(await openSilent("wss before handshake", wss, nothing));
    const refused = await openSilent("tcp over mqtt.max_connections", port, nothing);
    assert.ok(await endedWithin(refused, 3000) >= 0, "a sixth socket was not refused");
    refused.close();
    for (const socket of held) socket.close();
    await Promise.all(held.map((socket) => endedWithin(socket, 3000)));
  });
});

Deno.test("pre-CONNECT: the HTTP endpoint closes a half-sent request at mqtt.connect_timeout_ms and caps its connections", async () => {
  const config = [
    "http.enabled = true",
    "http.host = 127.0.0.1",
    "http.port = 0",
    "http.max_connections = 2",
    "mqtt.connect_timeout_ms = 700",
  ].join("\n");
  await withBroker(config, async ({ running }) => {
    const port = running.http!.port;
    const slow = [
      await openSilent("http, half a request", port, write("GET /metrics HTTP/1.1\r\n")),
      await openSilent("http, silent", port, nothing),
    ];
    const third = await openSilent(
      "http over http.max_connections",
      port,
      write("GET /healthz HTTP/1.1\r\n\r\n"),
    );
    const refusedAfter = await endedWithin(third, 6000);
    assert.ok(
      refusedAfter >= 0 && refusedAfter < 650,
      `the third connection was served or kept (${refusedAfter} ms)`,
    );
    const after = await Promise.all(slow.map((socket) => endedWithin(socket, 6000)));
    for (const ms of after) assert.ok(ms >= 650, `closed after ${ms} ms (-1: not closed)`);
    const response = await fetch(`http://127.0.0.1:${port}/healthz`);
    assert.equal(response.status, 200);
    await response.body?.cancel();
    for (const socket of [...slow, third]) socket.close();
  });
});
