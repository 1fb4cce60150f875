/**
 * The first ten minutes of a new user, each as a test: the command line refuses what it does not know,
 * check-config finds what start would trip on, the broker is loopback-only without credentials, says
 * which socket is taken, logs clients at info, and two brokers cannot share a data directory.
 */
import assert from "node:assert/strict";
import { startBroker } from "../../main.ts";
import { hashPassword, parseScramFile } from "../../src/auth/mod.ts";
import { parseConfig } from "../../src/config/mod.ts";
import { createLogger } from "../../src/observe/mod.ts";
import { RawClient } from "../helpers/broker.ts";
import { testCerts } from "../transport/support.ts";
import { MAIN, ROOT } from "./support.ts";

async function cli(args: string[], cwd?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `--config=${ROOT}deno.json`, MAIN, ...args],
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
    cwd,
  }).output();
  const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  return { code: output.code, stdout: text(output.stdout), stderr: text(output.stderr) };
}

Deno.test("cli: unknown commands and options, and -c without a value, are errors that start nothing", async () => {
  for (
    const [args, message] of [
      [["help"], /unknown command "help" \(did you mean mqtt-proxy --help\?\)/],
      [["check-conifg"], /unknown command "check-conifg" \(did you mean mqtt-proxy check-config\?\)/],
      [["--bogus"], /unknown option --bogus/],
      [["-c"], /-c needs a file name/],
      [["check-config", "-c"], /-c needs a file name/],
    ] as const
  ) {
    const result = await cli([...args]);
    assert.equal(result.code, 2, `${args.join(" ")}: ${result.stdout}${result.stderr}`);
    assert.match(result.stderr, message);
    assert.equal(result.stdout, "", "no broker log");
  }
});

Deno.test("cli: every command answers --help with its usage and exit 0", async () => {
  for (
    const [args, expected] of [
      [["--help"], /Usage:\n {2}mqtt-proxy \[-c <file>\]/],
      [["check-config", "--help"], /Usage: mqtt-proxy check-config/],
      [["passwd", "--help"], /usage: mqtt-proxy passwd <file> <user>/],
      [["scram", "--help"], /usage: mqtt-proxy scram <file> <user>/],
    ] as const
  ) {
    const result = await cli([...args]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, expected);
  }
});

Deno.test("cli: mqtt-proxy scram writes a SCRAM-SHA-256 line the broker loads, and -D removes it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mqtt-proxy-scram-" });
  try {
    const file = `${dir}/scram`;
    assert.equal((await cli(["scram", "-b", file, "alice", "secret"])).code, 0);
    assert.equal((await cli(["scram", "-b", file, "bob", "other"])).code, 0);
    const text = await Deno.readTextFile(file);
    assert.match(text, /^alice:SCRAM-SHA-256\$4096:[^:]+:\S+\nbob:SCRAM-SHA-256/);
    assert.ok(!text.includes("secret"));
    assert.deepEqual([...parseScramFile(text, file).keys()], ["alice", "bob"]);
    assert.equal((await cli(["scram", "-D", file, "alice"])).code, 0);
    assert.deepEqual([...parseScramFile(await Deno.readTextFile(file), file).keys()], ["bob"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("check-config: unreadable files, a key that is not the certificate's, and port collisions are found", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mqtt-proxy-check-" });
  const certs = await testCerts();
  try {
    const config = `${dir}/bad.properties`;
    await Deno.writeTextFile(
      config,
      [
        `auth.password_file = ${dir}/missing-passwd`,
        "listener.a.port = 1883",
        "listener.s.type = tls",
        "listener.s.port = 8883",
        `listener.s.cert_file = ${certs.serverCert}`,
        `listener.s.key_file = ${certs.clientKey}`,
        "listener.w.type = ws",
        "listener.w.port = 8080",
        "http.enabled = true",
        "",
      ].join("\n"),
    );
    const result = await cli(["check-config", "-c", config]);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /auth\.password_file = .*missing-passwd: cannot read/);
    assert.match(result.stderr, /listener\.s: .* is not the key of the certificate/);
    assert.match(result.stderr, /listener w and the HTTP endpoint \(http\.port\) both use port 8080/);
    // start refuses the same configuration with the same words, before binding anything.
    const start = await cli(["-c", config]);
    assert.equal(start.code, 2);
    assert.match(start.stderr, /both use port 8080/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("start: a taken port is named with its listener; without credentials the broker binds loopback only", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mqtt-proxy-port-" });
  const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const port = (taken.addr as Deno.NetAddr).port;
    const config = `${dir}/taken.properties`;
    await Deno.writeTextFile(
      config,
      `listener.main.host = 127.0.0.1\nlistener.main.port = ${port}\nstorage.type = memory\n`,
    );
    const result = await cli(["-c", config]);
    assert.equal(result.code, 1);
    assert.match(
      result.stderr,
      new RegExp(`listener main \\(tcp\\) cannot listen on 127\\.0\\.0\\.1:${port}: address already in use`),
    );
  } finally {
    taken.close();
    await Deno.remove(dir, { recursive: true });
  }
  const lines: string[] = [];
  const logger = createLogger({ level: "info", write: (line) => lines.push(line) });
  for (const [extra, host] of [["", "127.0.0.1"], ["auth.allow_anonymous = true", "0.0.0.0"]]) {
    lines.length = 0;
    const running = await startBroker(
      parseConfig(
        `listener.open.host = 0.0.0.0\nlistener.open.port = 0\nstorage.type = memory\n${extra}`,
        "t",
      ),
      logger,
    );
    await running.stop();
    assert.equal(running.listeners[0].hostname, host, extra);
    const warned = lines.some((line) => line.includes('"event":"listener.loopback_only"'));
    assert.equal(warned, host === "127.0.0.1", "the loopback-only start is said");
  }
});

Deno.test("logs: client.connected/disconnected at info with id, user, address, protocol, listener; client.refused with the code sent", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mqtt-proxy-logs-" });
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger({ level: "info", write: (line) => lines.push(JSON.parse(line)) });
  try {
    await Deno.writeTextFile(`${dir}/passwd`, `alice:${await hashPassword("pw", 10)}\n`);
    const running = await startBroker(
      parseConfig(
        `listener.edge.host = 127.0.0.1\nlistener.edge.port = 0\nstorage.type = memory\nauth.password_file = ${dir}/passwd`,
        "t",
      ),
      logger,
    );
    try {
      const port = running.listeners[0].port;
      const connect = (clientId: string, password: string) => ({
        type: "connect" as const,
        protocolName: "MQTT",
        protocolVersion: 4 as const,
        clientId,
        cleanStart: true,
        keepAlive: 30,
        username: "alice",
        password: new TextEncoder().encode(password),
        properties: {},
      });
      const good = await RawClient.connect(port, 4);
      await good.sendPacket(connect("logged-1", "pw"), 4);
      assert.equal((await good.readPacket()).type, "connack");
      await good.sendPacket({ type: "disconnect", reasonCode: 0, properties: {} }, 4);
      await good.expectClosed();
      await good.close();
      const bad = await RawClient.connect(port, 4);
      await bad.sendPacket(connect("refused-1", "wrong"), 4);
      const connack = await bad.readPacket();
      assert.equal(connack.type === "connack" && connack.reasonCode, 4);
      await bad.close();
      const deadline = Date.now() + 5000;
      while (!lines.some((l) => l.event === "client.disconnected") && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    } finally {
      await running.stop();
    }
    const one = (event: string) => lines.find((line) => line.event === event)!;
    assert.deepEqual(
      [one("client.connected").level, one("client.connected").clientId, one("client.connected").user],
      ["info", "logged-1", "alice"],
    );
    assert.equal(one("client.connected").protocol, "3.1.1");
    assert.equal(one("client.connected").listener, "edge");
    assert.match(String(one("client.connected").remote), /^127\.0\.0\.1:\d+$/);
    assert.deepEqual([one("client.disconnected").level, one("client.disconnected").reason], [
      "info",
      "client disconnected",
    ]);
    assert.deepEqual(
      [one("client.refused").clientId, one("client.refused").reasonCode, one("client.refused").protocol],
      ["refused-1", 4, "3.1.1"],
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("storage: a second broker on the same data directory is refused with the owner's pid", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mqtt-proxy-lock-" });
  const config = parseConfig(
    `listener.a.host = 127.0.0.1\nlistener.a.port = 0\nstorage.dir = ${dir}/data`,
    "t",
  );
  const quiet = createLogger({ level: "error", write: () => {} });
  try {
    const first = await startBroker(config, quiet);
    try {
      await assert.rejects(
        startBroker(config, quiet),
        new RegExp(`data directory ${dir}/data is in use by pid ${Deno.pid}`),
      );
    } finally {
      await first.stop();
    }
    const again = await startBroker(config, quiet); // released at stop
    await again.stop();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("log format: text lines for people, JSON lines otherwise", () => {
  const lines: string[] = [];
  const now = () => new Date("2024-05-01T10:00:00.000Z");
  createLogger({ level: "info", format: "text", write: (line) => lines.push(line), now }).info(
    "client.connected",
    {
      clientId: "dev-1",
      user: "alice smith",
      skipped: undefined,
    },
  );
  createLogger({ level: "info", write: (line) => lines.push(line), now }).info("x", { a: 1 });
  assert.deepEqual(lines, [
    '2024-05-01 10:00:00.000 INFO  client.connected clientId=dev-1 user="alice smith"',
    '{"ts":"2024-05-01T10:00:00.000Z","level":"info","event":"x","a":1}',
  ]);
});
