/**
 * The operations endpoint: /healthz, /readyz and /metrics, first through the handler with stub sources
 * (a broker that is not ready answers 503 with the reason), then served by a real broker on 127.0.0.1.
 */
import assert from "node:assert/strict";
import { healthHandler, type HealthSources, parseExposition } from "../../src/observe/mod.ts";
import { serveHttp } from "../../src/transport/mod.ts";
import { withBroker } from "../helpers/broker.ts";
import { endJs } from "../interop/tools.ts";
import { connectUrl } from "../interop/tools.ts";

function stub(ready: { ok: boolean; detail: string }, live = true): HealthSources {
  return { metrics: () => "# HELP x X.\n# TYPE x counter\nx 1\n", live: () => live, ready: () => ready };
}

async function get(handler: (request: Request) => Response, path: string, method = "GET") {
  const response = handler(new Request(`http://127.0.0.1${path}`, { method }));
  return { status: response.status, type: response.headers.get("content-type"), body: await response.text() };
}

Deno.test("http handler: /readyz is 503 with the detail until ready, then 200", async () => {
  const notReady = healthHandler(stub({ ok: false, detail: "storage: recovering" }));
  assert.deepEqual(await get(notReady, "/readyz"), {
    status: 503,
    type: "text/plain; charset=utf-8",
    body: "not ready: storage: recovering\n",
  });
  const ready = healthHandler(stub({ ok: true, detail: "1 listener(s) up" }));
  assert.equal((await get(ready, "/readyz")).status, 200);
});

Deno.test("http handler: /healthz, /metrics content type, 404 and 405", async () => {
  const handler = healthHandler(stub({ ok: true, detail: "" }));
  assert.deepEqual(await get(handler, "/healthz"), {
    status: 200,
    type: "text/plain; charset=utf-8",
    body: "ok\n",
  });
  const metrics = await get(handler, "/metrics");
  assert.equal(metrics.status, 200);
  assert.equal(metrics.type, "text/plain; version=0.0.4; charset=utf-8");
  assert.equal((await get(handler, "/nope")).status, 404);
  assert.equal((await get(handler, "/metrics", "POST")).status, 405);
  assert.equal((await get(healthHandler(stub({ ok: true, detail: "" }, false)), "/healthz")).status, 503);
  const failing = healthHandler({
    ...stub({ ok: true, detail: "" }),
    metrics: () => {
      throw new Error("boom");
    },
  });
  assert.deepEqual((await get(failing, "/metrics")).status, 500);
});

Deno.test("http server: serves the handler on 127.0.0.1 port 0 and closes", async () => {
  const server = serveHttp(
    { hostname: "127.0.0.1", port: 0 },
    healthHandler(stub({ ok: false, detail: "starting" })),
  );
  try {
    assert.equal(server.hostname, "127.0.0.1");
    assert.ok(server.port > 0);
    const response = await fetch(`http://127.0.0.1:${server.port}/readyz`);
    assert.equal(response.status, 503);
    assert.equal(await response.text(), "not ready: starting\n");
  } finally {
    await server.close();
  }
  await assert.rejects(fetch(`http://127.0.0.1:${server.port}/healthz`));
});

Deno.test("http server of a real broker: /healthz ok, /readyz 200 after start, /metrics counts the test's traffic", async () => {
  const N = 4;
  const M = 5;
  await withBroker("http.enabled = true\nhttp.port = 0", async ({ port, running }) => {
    assert.ok(running.http, "http.enabled starts the endpoint");
    assert.equal(running.http.hostname, "127.0.0.1", "loopback by default");
    const base = `http://127.0.0.1:${running.http.port}`;
    const health = await fetch(`${base}/healthz`);
    assert.deepEqual([health.status, await health.text()], [200, "ok\n"]);
    const ready = await fetch(`${base}/readyz`);
    assert.equal(ready.status, 200);
    assert.match(await ready.text(), /^ready: 1 listener\(s\) up/);

    const scrape = async () => parseExposition(await (await fetch(`${base}/metrics`)).text());
    const before = await scrape();
    const published = (samples: ReturnType<typeof parseExposition>) =>
      samples.find((s) => s.name === "mqtt_packets_received_total" && s.labels.type === "publish")?.value ??
        0;
    const clients = [];
    try {
      for (let i = 0; i < N; i++) {
        clients.push(await connectUrl(`mqtt://127.0.0.1:${port}`, { clientId: `http-${i}` }));
      }
      await clients[0].client.subscribeAsync("h/#", { qos: 1 });
      for (let j = 0; j < M; j++) {
        await clients[1 + (j % (N - 1))].client.publishAsync(`h/${j}`, `m${j}`, { qos: 1 });
      }
      await clients[0].inbox.take(M);
      const after = await scrape();
      const gauge = after.find((s) => s.name === "mqtt_connections" && s.labels.listener === "default");
      assert.equal(gauge?.value, N);
      assert.equal(published(after) - published(before), M);
      const total = after.find((s) => s.name === "mqtt_connections_total" && s.labels.listener === "default");
      assert.equal(total?.value, N);
    } finally {
      await endJs(...clients.map((c) => c.client));
    }
  });
});
