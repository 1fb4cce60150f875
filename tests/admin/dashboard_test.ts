/**
 * The dashboard in a real browser: headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core
 * in dashboard_driver.ts) logs in with the API token, sees an MQTT client appear, kicks it (the client gets
 * DISCONNECT 0x98), watches the overview chart move as messages flow, and publishes from the page's
 * MQTT-over-WebSocket test client to a subscriber here; the cluster page says the broker is a single node.
 */
import assert from "node:assert/strict";
import { connectJs, endJs, LiveProcess, withTimeout } from "../interop/tools.ts";
import { TOKEN, withAdminBroker } from "./support.ts";

const CHROMIUM = "/usr/bin/chromium";
const here = (path: string) => decodeURIComponent(new URL(path, import.meta.url).pathname);

Deno.test("dashboard: log in, see a client, kick it, watch the chart move, publish from the test client", async () => {
  try {
    await Deno.stat(CHROMIUM);
  } catch {
    throw new Error(`MISSING TOOL chromium at ${CHROMIUM}: apt-get install -y chromium`);
  }
  const ws = "listener.web.type = ws\nlistener.web.host = 127.0.0.1\nlistener.web.port = 0";
  await withAdminBroker(ws, async ({ base, port, logs }) => {
    const watcher = await connectJs(port, { clientId: "dash-watcher" });
    let victim: Awaited<ReturnType<typeof connectJs>> | undefined;
    const driver = new LiveProcess(
      Deno.execPath(),
      [
        "run",
        "-A",
        `--config=${here("../../deno.json")}`,
        here("./dashboard_driver.ts"),
        "test",
        CHROMIUM,
        base,
        TOKEN,
      ],
      120_000,
    );
    try {
      await watcher.client.subscribeAsync("dash/#", { qos: 1 });
      await driver.waitForLine((line) => line.startsWith("overview "), 60_000);
      victim = await connectJs(port, { clientId: "dash-victim", protocolVersion: 5 });
      const kicked = new Promise<number | undefined>((resolve) =>
        victim!.client.once("disconnect", (packet) => resolve(packet.reasonCode))
      );
      for (let i = 0; i < 20; i++) await victim.client.publishAsync("load/x", `m${i}`, { qos: 1 });
      await driver.waitForLine((line) => line.startsWith("client-visible"), 30_000);
      assert.equal(await withTimeout(kicked, 30_000, "the kick"), 0x98, "Administrative action");
      await driver.waitForLine((line) => line.startsWith("chart-moved"), 30_000);
      const [fromPage] = await watcher.inbox.take(1, 30_000).catch((error) => {
        throw new Error(`${error.message}\ndriver:\n${driver.lines.join("\n")}\n${driver.stderr}`);
      });
      assert.deepEqual([fromPage.topic, fromPage.payload], ["dash/hello", "from the dashboard"]);
      const status = await driver.finish();
      assert.equal(status.code, 0, `${driver.lines.join("\n")}\n${driver.stderr}`);
      const steps = driver.lines.filter((line) => !line.startsWith("console ")).map((line) =>
        line.split(" ")[0]
      );
      assert.deepEqual(steps, [
        "logged-in",
        "overview",
        "client-visible",
        "kicked",
        "chart-moved",
        "test-client-received",
        "cluster-single",
      ]);
      const moved = driver.lines.find((line) => line.startsWith("chart-moved"))!;
      assert.ok(Number(/received=(\d+)/.exec(moved)?.[1]) >= 20, moved);
      const audit = logs.find((line) => line.event === "admin.audit" && line.target === "dash-victim");
      assert.equal(audit?.caller, "token");
    } finally {
      driver.kill("SIGKILL");
      await driver.finish();
      await endJs(watcher.client, victim?.client);
    }
  });
});
