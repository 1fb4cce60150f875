/**
 * A real browser as the client: headless Chromium (Debian's `chromium`, driven by playwright-core in
 * browser_driver.ts) loads a page that takes MQTT.js's browser bundle (mqtt/dist/mqtt.min.js from the npm
 * package) from a tiny HTTP server on 127.0.0.1, connects over ws:// to the broker, publishes, and
 * receives a message that a Deno-side MQTT.js client sends it.
 */
import assert from "node:assert/strict";
import { withBroker } from "../helpers/broker.ts";
import { endJs, LiveProcess } from "../interop/tools.ts";
import { connectUrl } from "../interop/tools.ts";

const CHROMIUM = "/usr/bin/chromium";
const here = (path: string) => decodeURIComponent(new URL(path, import.meta.url).pathname);
const BUNDLE = here("../../node_modules/mqtt/dist/mqtt.min.js");
const DRIVER = here("./browser_driver.ts");

const PAGE = (brokerUrl: string) =>
  `<!doctype html>
<html><head><meta charset="utf-8"><script src="/mqtt.min.js"></script></head>
<body><script>
  window.events = [];
  const client = mqtt.connect(${JSON.stringify(brokerUrl)}, { clientId: "browser-1", reconnectPeriod: 0 });
  client.on("error", (error) => window.events.push("error: " + error.message));
  client.on("connect", () => {
    window.events.push("connected");
    client.subscribe("to-browser", { qos: 1 }, (error) => {
      if (error) return window.events.push("suback error: " + error.message);
      window.events.push("subscribed");
      client.publish("from-browser", "hello from chromium", { qos: 1 });
    });
  });
  client.on("message", (topic, payload) => window.events.push("message " + topic + "=" + payload.toString()));
</script></body></html>`;

Deno.test("browser: headless Chromium with MQTT.js's bundle publishes and receives over ws://", async () => {
  try {
    await Deno.stat(CHROMIUM);
  } catch {
    throw new Error(`MISSING TOOL chromium at ${CHROMIUM}: apt-get install -y chromium`);
  }
  const bundle = await Deno.readFile(BUNDLE);
  await withBroker("listener.default.type = ws", async ({ port }) => {
    const brokerUrl = `ws://127.0.0.1:${port}/mqtt`;
    const pages = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (request) => {
      const path = new URL(request.url).pathname;
      if (path === "/mqtt.min.js") {
        return new Response(bundle, { headers: { "content-type": "text/javascript" } });
      }
      if (path === "/") return new Response(PAGE(brokerUrl), { headers: { "content-type": "text/html" } });
      return new Response("not found", { status: 404 });
    });
    const listener = await connectUrl(brokerUrl, { clientId: "deno-side" });
    let driver: LiveProcess | undefined;
    try {
      await listener.client.subscribeAsync("from-browser", { qos: 1 });
      driver = new LiveProcess(
        Deno.execPath(),
        [
          "run",
          "-A",
          `--config=${here("../../deno.json")}`,
          DRIVER,
          CHROMIUM,
          `http://127.0.0.1:${pages.addr.port}/`,
        ],
        45_000,
      );
      await driver.waitForLine((line) => line === "subscribed", 30_000);
      const [fromBrowser] = await listener.inbox.take(1);
      assert.equal(fromBrowser.payload, "hello from chromium");
      await listener.client.publishAsync("to-browser", "hello from deno", { qos: 1 });
      await driver.waitForLine((line) => line.startsWith("message "), 10_000);
      const status = await driver.finish();
      assert.equal(status.code, 0, driver.stderr);
      assert.deepEqual(
        driver.lines.filter((line) => !line.startsWith("console ")),
        ["connected", "subscribed", "message to-browser=hello from deno"],
      );
    } finally {
      driver?.kill("SIGKILL");
      await driver?.finish();
      await endJs(listener.client);
      await pages.shutdown();
    }
  });
});
