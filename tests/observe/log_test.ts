import assert from "node:assert/strict";
import { createLogger, type LogLevel } from "../../src/observe/mod.ts";

const NOW = new Date("2026-01-02T03:04:05.678Z");

function capture(level: LogLevel) {
  const lines: string[] = [];
  const logger = createLogger({ level, write: (line) => lines.push(line), now: () => NOW });
  return { logger, lines, records: () => lines.map((line) => JSON.parse(line)) };
}

Deno.test("log: a line is one JSON object with ts, level, event, then the fields", () => {
  const { logger, lines } = capture("info");
  logger.info("listener.started", { listener: "default", port: 1883 });
  assert.deepEqual(lines, [
    '{"ts":"2026-01-02T03:04:05.678Z","level":"info","event":"listener.started","listener":"default","port":1883}',
  ]);
});

Deno.test("log: calls below the level write nothing and do not touch their fields", () => {
  const { logger, records } = capture("warn");
  let fieldReads = 0;
  const fields = {
    get costly() {
      fieldReads++;
      return 1;
    },
  };
  logger.debug("a", fields);
  logger.info("b", fields);
  logger.warn("c");
  logger.error("d");
  assert.deepEqual(records().map((record) => [record.level, record.event]), [["warn", "c"], ["error", "d"]]);
  assert.equal(fieldReads, 0);
});

Deno.test("log: the level can be changed at runtime", () => {
  const { logger, records } = capture("error");
  logger.info("hidden");
  logger.level = "debug";
  assert.equal(logger.level, "debug");
  logger.debug("shown");
  assert.deepEqual(records().map((record) => record.event), ["shown"]);
});

Deno.test("log: errors, byte arrays and bigints are made safe to print", () => {
  const { logger, records } = capture("debug");
  logger.error("client.failed", {
    error: new TypeError("bad packet"),
    payload: new Uint8Array(42),
    nested: { password: new TextEncoder().encode("secret") },
    offset: 12345678901234567890n,
  });
  const [record] = records();
  assert.deepEqual(record.error, { name: "TypeError", message: "bad packet" });
  assert.equal(record.payload, 42);
  assert.deepEqual(record.nested, { password: 6 });
  assert.equal(record.offset, "12345678901234567890");
});

Deno.test("log: a field cannot overwrite ts, level or event", () => {
  const { logger, records } = capture("info");
  logger.info("real.event", { event: "fake", level: "error", ts: "never", other: true });
  assert.deepEqual(records(), [{ ts: NOW.toISOString(), level: "info", event: "real.event", other: true }]);
});

Deno.test("log: child loggers merge their fields, call fields win, and share the level", () => {
  const { logger, records } = capture("info");
  const connection = logger.child({ clientId: "c1", listener: "default" });
  const session = connection.child({ listener: "ws" });
  session.info("session.resumed", { clientId: "c1-override", queued: 3 });
  connection.debug("ignored");
  session.level = "debug";
  assert.equal(logger.level, "debug");
  logger.debug("root.debug");
  assert.deepEqual(records(), [
    {
      ts: NOW.toISOString(),
      level: "info",
      event: "session.resumed",
      clientId: "c1-override",
      listener: "ws",
      queued: 3,
    },
    { ts: NOW.toISOString(), level: "debug", event: "root.debug" },
  ]);
});

Deno.test("log: unserialisable fields still produce a line naming the event", () => {
  const { logger, records } = capture("info");
  const circular: Record<string, unknown> = {};
  circular.self = circular;
  logger.warn("odd.fields", { circular });
  const [record] = records();
  assert.equal(record.event, "odd.fields");
  assert.equal(record.level, "warn");
  assert.match(record.log_error, /^fields not serialisable: /);
});

Deno.test("log: the default sink writes newline-terminated lines to stdout", async () => {
  const code = `
    import { createLogger } from ${JSON.stringify(new URL("../../src/observe/mod.ts", import.meta.url).href)};
    createLogger({ level: "info" }).info("hello", { n: 1 });
    createLogger({ level: "info" }).debug("quiet");
  `;
  const { stdout } = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--quiet", code],
    stdout: "piped",
    stderr: "null",
  }).output();
  const text = new TextDecoder().decode(stdout);
  assert.match(text, /^\{"ts":"[^"]+Z","level":"info","event":"hello","n":1\}\n$/);
});
