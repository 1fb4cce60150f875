/**
 * `deno task screenshots`: starts a broker with the dashboard on 127.0.0.1, fills it with demo clients,
 * sessions, subscriptions and retained messages, keeps a little traffic flowing, and has headless Chromium
 * (tests/admin/dashboard_driver.ts) photograph every page into docs/images/*.png for the README.
 */
import mqtt from "mqtt";
import { startBroker } from "../main.ts";
import { parseConfig } from "../src/config/mod.ts";
import { createLogger } from "../src/observe/mod.ts";

const ROOT = decodeURIComponent(new URL("../", import.meta.url).pathname);
const OUT = `${ROOT}docs/images`;
const CHROMIUM = Deno.env.get("CHROMIUM") ?? "/usr/bin/chromium";
const TOKEN = crypto.randomUUID();

const dir = await Deno.makeTempDir({ prefix: "mqtt-proxy-screenshots-" });
await Deno.writeTextFile(`${dir}/token`, `${TOKEN}\n`);
await Deno.mkdir(OUT, { recursive: true });
const config = parseConfig(
  [
    "listener.mqtt.host = 127.0.0.1",
    "listener.mqtt.port = 0",
    "listener.web.type = ws",
    "listener.web.host = 127.0.0.1",
    "listener.web.port = 0",
    "storage.type = memory",
    "http.enabled = true",
    "http.host = 127.0.0.1",
    "http.port = 0",
    `http.auth_token_file = ${dir}/token`,
    "admin.enabled = true",
  ].join("\n"),
  "screenshots.properties",
);
const running = await startBroker(config, createLogger({ level: "warn" }));
const url = `mqtt://127.0.0.1:${running.listeners[0].port}`;
const connect = (clientId: string, options: mqtt.IClientOptions = {}) =>
  mqtt.connectAsync(url, { clientId, reconnectPeriod: 0, ...options });
const clients: mqtt.MqttClient[] = [];
try {
  for (
    const [id, version] of [["sensor-kitchen", 5], ["sensor-garage", 4], ["gateway-01", 5], [
      "dashboard-tv",
      4,
    ]] as const
  ) {
    const client = await connect(id, { protocolVersion: version });
    await client.subscribeAsync(`home/${id}/cmd`, { qos: 1 });
    clients.push(client);
  }
  await clients[3].subscribeAsync("home/#", { qos: 0 });
  const archive = await connect("archiver", {
    protocolVersion: 5,
    clean: false,
    properties: { sessionExpiryInterval: 86400 },
  });
  await archive.subscribeAsync(["home/#", "$share/workers/jobs/#"], { qos: 1 });
  await archive.endAsync();
  for (
    const [topic, payload] of [["home/kitchen/temperature", "21.5"], ["home/garage/door", "closed"], [
      "home/status",
      '{"online":true}',
    ]]
  ) await clients[0].publishAsync(topic, payload, { qos: 1, retain: true });
  // Bounded demo traffic while the overview fills its charts: at most 2,000 messages.
  let sent = 0;
  const traffic = setInterval(() => {
    for (let i = 0; i < 20 && sent < 2000; i++, sent++) {
      clients[1].publish("home/garage/power", String(400 + (sent % 50)));
    }
  }, 200);
  const driver = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      `--config=${ROOT}deno.json`,
      `${ROOT}tests/admin/dashboard_driver.ts`,
      "screenshots",
      CHROMIUM,
      `http://127.0.0.1:${running.http!.port}`,
      TOKEN,
      OUT,
    ],
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  clearInterval(traffic);
  if (!driver.success) throw new Error("the browser driver failed");
} finally {
  await Promise.all(clients.map((client) => client.endAsync(true)));
  await running.stop();
  await Deno.remove(dir, { recursive: true });
}
