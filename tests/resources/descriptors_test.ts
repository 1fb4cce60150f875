/**
 * Running out of file descriptors (EMFILE) on any listener — TCP, TLS, WebSocket, the HTTP endpoint —
 * refuses new connections for as long as it lasts, is logged at most every 10 s per listener, and never
 * ends the process: once descriptors are free again, the connections that waited are served. The broker
 * runs as a child process under `prlimit --nofile`.
 */
import assert from "node:assert/strict";
import { encode } from "../../src/codec/mod.ts";
import { connect } from "../helpers/clients.ts";
import { freePort } from "../helpers/process.ts";
import { testCerts } from "../transport/support.ts";
import { type LimitedBroker, prlimitAvailable, startLimitedBroker } from "./support.ts";

/** Descriptors the broker may open: its own (runtime, listeners, log) and about 200 connections. */
const NOFILE = 256;
/** More connections than that, to be sure every further accept fails. */
const FILLERS = 400;

const UPGRADE = "GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n";

async function send(conn: Deno.Conn, text: string | Uint8Array): Promise<void> {
  const bytes = typeof text === "string" ? new TextEncoder().encode(text) : text;
  for (let offset = 0; offset < bytes.length;) offset += await conn.write(bytes.subarray(offset));
}

/** Reads until `text` has arrived (true), or the socket ends or `ms` pass (false). */
async function readUntil(conn: Deno.Conn, text: string, ms: number): Promise<boolean> {
  const buffer = new Uint8Array(4096);
  let seen = "";
  const deadline = Date.now() + ms;
  while (!seen.includes(text) && Date.now() < deadline) {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<null>((resolve) =>
      timer = setTimeout(() => resolve(null), deadline - Date.now())
    );
    const n = await Promise.race([conn.read(buffer).catch(() => null), timeout]);
    clearTimeout(timer);
    if (n === null) break;
    seen += new TextDecoder("latin1").decode(buffer.subarray(0, n));
  }
  return seen.includes(text);
}

/** Opens {@link FILLERS} connections into `fillers`, then waits (at most 5 s) for the broker to log EMFILE. */
async function exhaustDescriptors(broker: LimitedBroker, fillers: Deno.Conn[]): Promise<void> {
  for (let i = 0; i < FILLERS; i++) {
    fillers.push(await Deno.connect({ hostname: "127.0.0.1", port: broker.port }));
  }
  for (let i = 0; i < 100 && !broker.broker.output().includes("listener.accept_failed"); i++) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

Deno.test({
  name:
    "descriptors: at EMFILE every listener and the HTTP endpoint refuse and log, the broker lives, and serves again once descriptors are free" +
    (prlimitAvailable ? "" : " (ignored: prlimit is not installed)"),
  ignore: !prlimitAvailable,
  fn: async () => {
    const certs = await testCerts();
    const [tlsPort, wsPort, httpPort] = [freePort(), freePort(), freePort()];
    const broker = await startLimitedBroker([
      "mqtt.connect_timeout_ms = 60000",
      "listener.tls1.type = tls",
      "listener.tls1.host = 127.0.0.1",
      `listener.tls1.port = ${tlsPort}`,
      `listener.tls1.cert_file = ${certs.serverCert}`,
      `listener.tls1.key_file = ${certs.serverKey}`,
      "listener.ws1.type = ws",
      "listener.ws1.host = 127.0.0.1",
      `listener.ws1.port = ${wsPort}`,
      "http.enabled = true",
      "http.host = 127.0.0.1",
      `http.port = ${httpPort}`,
      "storage.type = memory",
    ], ["prlimit", `--nofile=${NOFILE}:${NOFILE}`, "--"]);
    const fillers: Deno.Conn[] = [];
    const waiting: Deno.Conn[] = [];
    try {
      await exhaustDescriptors(broker, fillers);
      assert.match(
        broker.broker.output(),
        /listener\.accept_failed/,
        "the broker never ran out of descriptors",
      );

      // Connections to every other listener while no descriptor is left: they wait in the accept queue.
      const ws = await Deno.connect({ hostname: "127.0.0.1", port: wsPort });
      await send(ws, UPGRADE);
      const http = await Deno.connect({ hostname: "127.0.0.1", port: httpPort });
      await send(http, "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
      const tls = await Deno.connect({ hostname: "127.0.0.1", port: tlsPort });
      waiting.push(ws, http, tls);
      const tlsHandshake = Deno.startTls(tls, { hostname: "127.0.0.1", caCerts: [certs.pem.ca] });
      tlsHandshake.catch(() => {});
      // Several accept retries at EMFILE on every listener (one each 100 ms).
      await new Promise((resolve) => setTimeout(resolve, 1500));
      assert.ok(await broker.alive(), `the broker died at EMFILE:\n${broker.broker.output().slice(-2000)}`);

      for (const conn of fillers) conn.close();
      fillers.length = 0;
      assert.ok(
        await readUntil(ws, "101 Switching Protocols", 5000),
        "the WebSocket upgrade waited and was served",
      );
      assert.ok(await readUntil(http, "mqtt_", 5000), "/metrics waited and was served");
      const secure = await tlsHandshake;
      waiting[2] = secure;
      await send(
        secure,
        encode({
          type: "connect",
          protocolName: "MQTT",
          protocolVersion: 4,
          cleanStart: true,
          keepAlive: 0,
          clientId: "tls-after",
          properties: {},
        }, 4),
      );
      assert.ok(
        await readUntil(secure, "\x20\x02\x00\x00", 5000),
        "the TLS client waited and got its CONNACK",
      );
      const { client } = await connect(broker.port, "tcp-after", 4);
      await client.close();
      assert.ok(await broker.alive());

      const lines = broker.broker.output().split("\n").filter((line) =>
        line.includes('"accept_failed"') || line.includes("accept_failed")
      );
      const perListener = new Map<string, number>();
      for (const line of lines) {
        const name = /"listener":"([^"]+)"/.exec(line)?.[1] ?? "http";
        perListener.set(name, (perListener.get(name) ?? 0) + 1);
      }
      for (const [name, count] of perListener) {
        assert.ok(
          count <= 2,
          `listener ${name} logged ${count} accept failures in a few seconds: not rate-limited`,
        );
      }
    } finally {
      for (const conn of [...fillers, ...waiting]) {
        try {
          conn.close();
        } catch { /* closed already */ }
      }
      await broker.stop();
    }
  },
});

/** CPU time (user and system) of a process so far, from /proc (read by a child: see support.ts). */
async function cpuSeconds(pid: number): Promise<number> {
  const { stdout } = await new Deno.Command("cat", { args: [`/proc/${pid}/stat`], stdout: "piped" }).output();
  const fields = new TextDecoder().decode(stdout).split(") ")[1].split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

Deno.test({
  name:
    "descriptors: at EMFILE an epoll listener refuses and logs at most every 10 s, the broker lives, and serves again" +
    (prlimitAvailable ? "" : " (ignored: prlimit is not installed)"),
  ignore: !prlimitAvailable,
  fn: async () => {
    const broker = await startLimitedBroker(
      ["mqtt.connect_timeout_ms = 60000", "listener.default.io = epoll", "storage.type = memory"],
      ["prlimit", `--nofile=${NOFILE}:${NOFILE}`, "--"],
    );
    const fillers: Deno.Conn[] = [];
    try {
      await exhaustDescriptors(broker, fillers);
      assert.match(broker.broker.output(), /listener\.accept_failed.*Too many open files \(os error 24\)/);
      // A client while no descriptor is left waits in the accept queue through several paused retries.
      const waiting = connect(broker.port, "epoll-waiting", 4);
      waiting.catch(() => {}); // awaited below, after the broker's CPU is checked
      const cpuBefore = await cpuSeconds(broker.broker.child.pid);
      await new Promise((resolve) => setTimeout(resolve, 1500));
      assert.ok(await broker.alive(), `the broker died at EMFILE:\n${broker.broker.output().slice(-2000)}`);
      // The listener stays readable while accepts fail: without its pause the loop would spin on a core.
      const cpu = await cpuSeconds(broker.broker.child.pid) - cpuBefore;
      assert.ok(
        cpu < 0.5,
        `the broker used ${cpu.toFixed(2)} s of CPU in 1.5 s of EMFILE: accepts retried in a spin`,
      );
      for (const conn of fillers) conn.close();
      fillers.length = 0;
      const { client, connack } = await waiting;
      assert.equal(connack.reasonCode, 0, "the client that waited was refused");
      await client.close();
      const { client: after, connack: afterConnack } = await connect(broker.port, "epoll-after", 5);
      assert.equal(afterConnack.reasonCode, 0);
      await after.close();
      assert.ok(await broker.alive());
      const failures = broker.broker.output().split("\n").filter((line) => line.includes("accept_failed"));
      assert.ok(
        failures.length <= 2,
        `${failures.length} accept failures logged in a few seconds: not rate-limited`,
      );
    } finally {
      for (const conn of fillers) conn.close();
      await broker.stop();
    }
  },
});
