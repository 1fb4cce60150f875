/**
 * Graceful stop as systemd's SIGTERM does it: /readyz answers 503 at once, a connected client's
 * unacknowledged QoS 1 delivery gets until shutdown.drain_timeout_ms to be acknowledged before the
 * DISCONNECT 0x8B; and in a real process each signal is logged once, saying what it does.
 */
import assert from "node:assert/strict";
import { startBroker } from "../../main.ts";
import { parseConfig } from "../../src/config/mod.ts";
import { createLogger } from "../../src/observe/mod.ts";
import { RawClient } from "../helpers/broker.ts";
import { connectJs, endJs } from "../interop/tools.ts";
import { MAIN, processConfig, ROOT } from "./support.ts";

Deno.test("drain: the stop waits for an unacknowledged QoS 1 delivery, /readyz is 503 meanwhile, then DISCONNECT 0x8B", async () => {
  const config = parseConfig(
    [
      "listener.a.host = 127.0.0.1",
      "listener.a.port = 0",
      "storage.type = memory",
      "http.enabled = true",
      "http.port = 0",
      "shutdown.drain_timeout_ms = 10000",
    ].join("\n"),
    "t",
  );
  const running = await startBroker(config, createLogger({ level: "error", write: () => {} }));
  const port = running.listeners[0].port;
  const raw = await RawClient.connect(port, 5);
  const publisher = await connectJs(port, { clientId: "drain-pub" });
  let stopped: Promise<void> | undefined;
  try {
    await raw.sendPacket({
      type: "connect",
      protocolName: "MQTT",
      protocolVersion: 5,
      clientId: "drain-sub",
      cleanStart: true,
      keepAlive: 60,
      properties: {},
    }, 5);
    assert.equal((await raw.readPacket()).type, "connack");
    await raw.sendPacket({
      type: "subscribe",
      packetId: 1,
      subscriptions: [{
        topicFilter: "d",
        qos: 1,
        noLocal: false,
        retainAsPublished: false,
        retainHandling: 0,
      }],
      properties: {},
    }, 5);
    assert.equal((await raw.readPacket()).type, "suback");
    await publisher.client.publishAsync("d", "last words", { qos: 1 });
    await endJs(publisher.client);
    const delivery = await raw.readPacket();
    assert.equal(delivery.type, "publish");
    stopped = running.stop();
    const ready = await fetch(`http://127.0.0.1:${running.http!.port}/readyz`);
    assert.equal(ready.status, 503, await ready.text());
    assert.ok(await raw.expectSilence(300), "no DISCONNECT while the delivery is unacknowledged");
    const packetId = delivery.type === "publish" ? delivery.packetId! : 0;
    await raw.sendPacket({ type: "puback", packetId, reasonCode: 0, properties: {} }, 5);
    const disconnect = await raw.readPacket();
    assert.deepEqual([disconnect.type, disconnect.type === "disconnect" && disconnect.reasonCode], [
      "disconnect",
      0x8b,
    ]);
    await stopped;
  } finally {
    await raw.close();
    await endJs(publisher.client);
    await (stopped ?? running.stop());
  }
});

Deno.test("signals: SIGHUP and SIGTERM are each logged once as signal.received with what they do", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mqtt-proxy-signals-" });
  try {
    await Deno.writeTextFile(`${dir}/mqtt.properties`, processConfig(dir));
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", `--config=${ROOT}deno.json`, MAIN, "-c", `${dir}/mqtt.properties`],
      stdout: "piped",
      stderr: "piped",
      stdin: "null",
    }).spawn();
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    const waitFor = async (needle: string) => {
      const deadline = Date.now() + 20_000;
      while (!text.includes(needle)) {
        if (Date.now() > deadline) throw new Error(`no ${needle} in:\n${text}`);
        const { value, done } = await reader.read();
        if (done) throw new Error(`exited before ${needle}:\n${text}`);
        text += value;
      }
    };
    await waitFor('"event":"broker.started"');
    child.kill("SIGHUP");
    await waitFor('"part":"authentication"');
    child.kill("SIGTERM");
    await waitFor('"event":"broker.stopped"');
    const status = await child.status;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += value;
    }
    await child.stderr.cancel();
    assert.equal(status.code, 0);
    const signals = text.split("\n").filter((line) => line.includes('"event":"signal.received"')).map(
      (line) => {
        const record = JSON.parse(line);
        return `${record.signal} ${record.action}`;
      },
    );
    assert.deepEqual(signals, ["SIGHUP reload", "SIGTERM stop"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
