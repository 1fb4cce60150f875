/**
 * The admin API over real HTTP against a real broker with real MQTT clients (MQTT.js and raw sockets):
 * authentication and roles, every route, RFC 9457 problems naming the field, and the audit log.
 */
import assert from "node:assert/strict";
import { encode } from "../../src/codec/mod.ts";
import { RawClient } from "../helpers/broker.ts";
import { connectJs, endJs, withTimeout } from "../interop/tools.ts";
import { body, TOKEN, USERS, withAdminBroker } from "./support.ts";

Deno.test("admin api: no token or a wrong one is 401 with WWW-Authenticate; the OpenAPI document is public", async () => {
  await withAdminBroker("", async ({ api }) => {
    for (const token of [null, "wrong-token-0123456789"]) {
      const response = await api("/api/v1/clients", { token });
      assert.equal(response.status, 401);
      assert.equal(response.headers.get("www-authenticate"), "Bearer");
      assert.equal(response.headers.get("content-type"), "application/problem+json");
      assert.equal((await response.json()).status, 401);
    }
    const doc = await body(await api("/api/v1/openapi.json", { token: null }));
    assert.equal(doc.status, 200);
    assert.equal(doc.json.openapi, "3.1.0");
    assert.ok(doc.json.paths["/api/v1/clients/{clientId}/kick"].post);
    assert.ok(doc.json.components.schemas.Client.properties.inflight);
  });
});

Deno.test("admin api: clients are listed in id order with filters and cursor pagination", async () => {
  await withAdminBroker("", async ({ api, port }) => {
    const clients = [];
    try {
      for (const id of ["dev-3", "dev-1", "other", "dev-2", "dev-4"]) {
        clients.push(await connectJs(port, { clientId: id, protocolVersion: id === "dev-2" ? 5 : 4 }));
      }
      const first = await body(await api("/api/v1/clients?clientId=dev-&limit=3"));
      assert.equal(first.status, 200);
      assert.deepEqual(first.json.data.map((c: { clientId: string }) => c.clientId), [
        "dev-1",
        "dev-2",
        "dev-3",
      ]);
      assert.ok(first.json.nextCursor);
      const second = await body(
        await api(`/api/v1/clients?clientId=dev-&limit=3&cursor=${first.json.nextCursor}`),
      );
      assert.deepEqual(second.json.data.map((c: { clientId: string }) => c.clientId), ["dev-4"]);
      assert.equal(second.json.nextCursor, null);
      const v5 = await body(await api("/api/v1/clients?protocol=5.0"));
      assert.deepEqual(v5.json.data.map((c: { clientId: string }) => c.clientId), ["dev-2"]);
      const one = v5.json.data[0];
      assert.equal(one.listener, "default");
      assert.match(one.remoteAddress, /^127\.0\.0\.1:\d+$/);
      assert.equal(one.username, null);
    } finally {
      await endJs(...clients.map((c) => c.client));
    }
  });
});

Deno.test("admin api: one client shows its session, subscriptions, in-flight and queued messages", async () => {
  await withAdminBroker("mqtt.max_inflight = 1", async ({ api, port }) => {
    const raw = await RawClient.connect(port, 4);
    const publisher = await connectJs(port, { clientId: "pub" });
    try {
      await raw.sendPacket({
        type: "connect",
        protocolName: "MQTT",
        protocolVersion: 4,
        clientId: "slow",
        cleanStart: true,
        keepAlive: 60,
        properties: {},
      }, 4);
      assert.equal((await raw.readPacket()).type, "connack");
      await raw.send(encode({
        type: "subscribe",
        packetId: 1,
        subscriptions: [{
          topicFilter: "work/#",
          qos: 1,
          noLocal: false,
          retainAsPublished: false,
          retainHandling: 0,
        }],
        properties: {},
      }, 4));
      assert.equal((await raw.readPacket()).type, "suback");
      for (let i = 0; i < 3; i++) await publisher.client.publishAsync("work/item", `job ${i}`, { qos: 1 });
      // The slow client never acknowledges: one message in flight (max_inflight = 1), two queued.
      assert.equal((await raw.readPacket()).type, "publish");
      const detail = await body(await api("/api/v1/clients/slow"));
      assert.equal(detail.status, 200, JSON.stringify(detail.json));
      assert.equal(detail.json.client.protocol, "3.1.1");
      assert.deepEqual(
        [detail.json.session.inflight, detail.json.session.queued, detail.json.client.inflight],
        [1, 2, 1],
      );
      assert.deepEqual(
        detail.json.subscriptions.map((s: { topicFilter: string; qos: number }) => [s.topicFilter, s.qos]),
        [
          ["work/#", 1],
        ],
      );
      const missing = await body(await api("/api/v1/clients/nobody"));
      assert.equal(missing.status, 404);
    } finally {
      await raw.close();
      await endJs(publisher.client);
    }
  });
});

Deno.test("admin api: kick sends an MQTT 5 client the reason code, and is audit-logged with the caller", async () => {
  await withAdminBroker("", async ({ api, port, logs }) => {
    const target = await connectJs(port, { clientId: "kick-me/1", protocolVersion: 5 });
    try {
      const disconnect = new Promise<number | undefined>((resolve) =>
        target.client.once("disconnect", (packet) => resolve(packet.reasonCode))
      );
      const response = await api(`/api/v1/clients/${encodeURIComponent("kick-me/1")}/kick`, {
        method: "POST",
        body: JSON.stringify({ reasonCode: 0x89, reason: "maintenance" }),
      });
      assert.equal(response.status, 204);
      assert.equal(await withTimeout(disconnect, 5000, "DISCONNECT"), 0x89);
      const audit = logs.find((line) =>
        line.event === "admin.audit" && line.route === "/api/v1/clients/{clientId}/kick"
      );
      assert.ok(audit, "an audit line");
      assert.equal(audit.caller, "token");
      assert.equal(audit.target, "kick-me/1");
      assert.equal(audit.status, 204);
      const again = await api(`/api/v1/clients/${encodeURIComponent("kick-me/1")}/kick`, {
        method: "POST",
        body: "{}",
      });
      assert.equal(again.status, 404);
      await again.body?.cancel();
    } finally {
      await endJs(target.client);
    }
  });
});

Deno.test("admin api: bad input is a 400 problem naming each field", async () => {
  await withAdminBroker("", async ({ api }) => {
    const kick = await body(
      await api("/api/v1/clients/x/kick", {
        method: "POST",
        body: JSON.stringify({ reasonCode: 0, extra: 1 }),
      }),
    );
    assert.equal(kick.status, 400);
    assert.equal(kick.type, "application/problem+json");
    const fields = kick.json.errors.map((error: { field: string }) => error.field).sort();
    assert.deepEqual(fields, ["body.extra", "body.reasonCode"]);
    const page = await body(await api("/api/v1/clients?limit=100000"));
    assert.deepEqual([page.status, page.json.errors[0].field], [400, "query.limit"]);
    const publish = await body(
      await api("/api/v1/publish", { method: "POST", body: JSON.stringify({ topic: "a", qos: 3 }) }),
    );
    assert.deepEqual([publish.status, publish.json.errors[0].field], [400, "body.qos"]);
    const wildcard = await body(
      await api("/api/v1/publish", { method: "POST", body: JSON.stringify({ topic: "a/+" }) }),
    );
    assert.deepEqual([wildcard.status, wildcard.json.errors[0].field], [422, "body.topic"]);
    const sys = await body(
      await api("/api/v1/publish", { method: "POST", body: JSON.stringify({ topic: "$SYS/x" }) }),
    );
    assert.deepEqual([sys.status, sys.json.errors[0].field], [422, "body.topic"]);
    const notJson = await body(await api("/api/v1/publish", { method: "POST", body: "{oops" }));
    assert.deepEqual([notJson.status, notJson.json.errors[0].field], [400, "body"]);
    const cursor = await body(await api("/api/v1/sessions?cursor=%FF%FE"));
    assert.ok(cursor.status >= 400 && cursor.status < 500, `cursor status ${cursor.status}`);
    const method = await api("/api/v1/stats", { method: "DELETE" });
    assert.deepEqual([method.status, method.headers.get("allow")], [405, "GET"]);
    await method.body?.cancel();
  });
});

Deno.test("admin api: publish as the broker reaches subscribers; retained messages are listed and deleted", async () => {
  await withAdminBroker("", async ({ api, port }) => {
    const sub = await connectJs(port, { clientId: "listener-1", protocolVersion: 5 });
    try {
      await sub.client.subscribeAsync("news/#", { qos: 1 });
      const published = await body(
        await api("/api/v1/publish", {
          method: "POST",
          body: JSON.stringify({ topic: "news/today", payload: "hello", qos: 1, retain: true }),
        }),
      );
      assert.deepEqual(published.json, { topic: "news/today", reached: 1 });
      const [message] = await sub.inbox.take(1);
      assert.deepEqual([message.topic, message.payload, message.qos], ["news/today", "hello", 1]);
      const binary = await api("/api/v1/publish", {
        method: "POST",
        body: JSON.stringify({
          topic: "news/raw",
          payload: btoa("\u0000\u00ff"),
          encoding: "base64",
          retain: true,
        }),
      });
      assert.equal(binary.status, 200);
      await binary.body?.cancel();
      const retained = await body(await api("/api/v1/retained?filter=news/%23"));
      assert.deepEqual(
        retained.json.data.map((m: { topic: string; payloadText: string | null; payloadBytes: number }) => [
          m.topic,
          m.payloadText,
          m.payloadBytes,
        ]),
        [["news/raw", null, 2], ["news/today", "hello", 5]],
      );
      const deleted = await api("/api/v1/retained?topic=news/today", { method: "DELETE" });
      assert.equal(deleted.status, 204);
      const after = await body(await api("/api/v1/retained"));
      assert.deepEqual(after.json.data.map((m: { topic: string }) => m.topic), ["news/raw"]);
      const gone = await api("/api/v1/retained?topic=news/today", { method: "DELETE" });
      assert.equal(gone.status, 404);
      await gone.body?.cancel();
      await sub.inbox.expectCount(2, 200); // the delete notified nobody
    } finally {
      await endJs(sub.client);
    }
  });
});

Deno.test("admin api: sessions are listed; an offline one is deleted, a connected one is 409", async () => {
  await withAdminBroker("", async ({ api, port }) => {
    const keeper = await connectJs(port, { clientId: "keeper", clean: false });
    const online = await connectJs(port, { clientId: "online" });
    try {
      await keeper.client.subscribeAsync("kept/#", { qos: 1 });
      await endJs(keeper.client);
      const deadline = Date.now() + 5000;
      let offline;
      do {
        offline = await body(await api("/api/v1/sessions?connected=false"));
      } while (offline.json.data.length === 0 && Date.now() < deadline);
      assert.deepEqual(offline.json.data.map((s: { clientId: string }) => s.clientId), ["keeper"]);
      const subs = await body(await api("/api/v1/subscriptions?topic=kept/a/b"));
      assert.deepEqual(
        subs.json.data.map((s: { clientId: string; topicFilter: string }) => [s.clientId, s.topicFilter]),
        [
          ["keeper", "kept/#"],
        ],
      );
      const byFilter = await body(await api("/api/v1/subscriptions?filter=kept/%23&clientId=keeper"));
      assert.equal(byFilter.json.data.length, 1);
      const conflict = await body(await api("/api/v1/sessions/online", { method: "DELETE" }));
      assert.equal(conflict.status, 409);
      const deleted = await api("/api/v1/sessions/keeper", { method: "DELETE" });
      assert.equal(deleted.status, 204);
      const all = await body(await api("/api/v1/sessions"));
      assert.deepEqual(
        all.json.data.map((s: { clientId: string; connected: boolean }) => [s.clientId, s.connected]),
        [
          ["online", true],
        ],
      );
      assert.equal((await body(await api("/api/v1/subscriptions?clientId=keeper"))).json.data.length, 0);
    } finally {
      await endJs(keeper.client, online.client);
    }
  });
});

Deno.test("admin api: listeners, limits, cluster (a single node), stats and reload", async () => {
  const fleet = ["listener.fleet.host = 127.0.0.1", "listener.fleet.port = 0", "listener.fleet.io = epoll"];
  await withAdminBroker(["mqtt.max_inflight = 7", ...fleet].join("\n"), async ({ api, port }) => {
    const listeners = await body(await api("/api/v1/listeners"));
    assert.deepEqual(
      listeners.json.map((
        l: { name: string; port: number; type: string; io: string },
      ) => [l.name, l.type, l.io, l.name === "default" ? l.port === port : l.port > 0]),
      [
        ["default", "tcp", "runtime", true],
        ["fleet", "tcp", "epoll", true],
      ],
    );
    const limits = await body(await api("/api/v1/limits"));
    assert.equal(limits.json["mqtt.max_inflight"], 7);
    const cluster = await body(await api("/api/v1/cluster"));
    assert.deepEqual(cluster.json, {
      enabled: false,
      nodeId: null,
      up: true,
      detail: "single node",
      nodes: [],
      log: null,
    });
    assert.equal(limits.json["shutdown.drain_timeout_ms"], 5000);
    const client = await connectJs(port, { clientId: "counted" });
    try {
      await client.client.publishAsync("x", "y", { qos: 1 });
      const stats = await body(await api("/api/v1/stats"));
      assert.equal(stats.json.clientsConnected, 1);
      assert.equal(stats.json.messagesReceived, 1);
    } finally {
      await endJs(client.client);
    }
    const reload = await body(await api("/api/v1/reload", { method: "POST" }));
    assert.equal(reload.status, 200);
    assert.deepEqual(reload.json.reloaded, ["authentication", "admin", "http_token"]);
  });
});

Deno.test("admin api: users log in with the password file; a viewer may read but every write is 403", async () => {
  await withAdminBroker("", async ({ api, logs }) => {
    const wrong = await body(
      await api("/api/v1/login", {
        token: null,
        method: "POST",
        body: JSON.stringify({ username: "alice", password: "nope" }),
      }),
    );
    assert.equal(wrong.status, 401);
    const login = async (username: string, password: string) =>
      (await body(
        await api("/api/v1/login", {
          token: null,
          method: "POST",
          body: JSON.stringify({ username, password }),
        }),
      ))
        .json;
    const alice = await login("alice", USERS.alice);
    assert.equal(alice.role, "admin");
    const victor = await login("victor", USERS.victor);
    assert.equal(victor.role, "viewer");
    const who = await body(await api("/api/v1/whoami", { token: victor.token }));
    assert.deepEqual(who.json, { caller: "user:victor", role: "viewer" });
    assert.equal((await body(await api("/api/v1/stats", { token: victor.token }))).status, 200);
    const denied = await body(
      await api("/api/v1/publish", {
        token: victor.token,
        method: "POST",
        body: JSON.stringify({ topic: "a" }),
      }),
    );
    assert.equal(denied.status, 403);
    const audit = logs.find((line) =>
      line.event === "admin.audit" && line.caller === "user:victor" && line.route === "/api/v1/publish"
    );
    assert.equal(audit?.status, 403);
    const allowed = await api("/api/v1/publish", {
      token: alice.token,
      method: "POST",
      body: JSON.stringify({ topic: "a" }),
    });
    assert.equal(allowed.status, 200);
    await allowed.body?.cancel();
    assert.ok(
      logs.some((line) =>
        line.event === "admin.audit" && line.caller === "user:alice" && line.status === 200
      ),
    );
    await api("/api/v1/logout", { token: alice.token, method: "POST" }).then((r) => r.body?.cancel());
    assert.equal((await body(await api("/api/v1/stats", { token: alice.token }))).status, 401);
    assert.equal(TOKEN.length >= 16, true);
  });
});

Deno.test("admin api: random and hostile requests never take the broker down", async () => {
  await withAdminBroker("", async ({ api, port }) => {
    const paths = [
      "/api/v1/clients",
      "/api/v1/clients/%",
      "/api/v1/clients/a/kick",
      "/api/v1/sessions/x",
      "/api/v1/retained",
      "/api/v1/publish",
      "/api/v1/subscriptions",
      "/api/v1/reload",
      "/api/v1/login",
      "/api/v1/nope",
      "/api/v2/x",
    ];
    const bodies = [
      "",
      "{",
      "null",
      "[]",
      '{"topic":""}',
      '{"topic":"a","payload":"%%%","encoding":"base64"}',
      '{"reasonCode":"x"}',
      '{"username":"a","password":"b","x":1}',
      '{"topic":"a/b","qos":2,"retain":true}',
      '{"topic":"' + "a/".repeat(200) + '"}',
    ];
    let seed = 7;
    const next = (n: number) => (seed = (seed * 1103515245 + 12345) % 2147483648) % n;
    for (let i = 0; i < 150; i++) {
      const method = ["GET", "POST", "DELETE", "PUT"][next(4)];
      const query = [
        "",
        "?limit=0",
        "?limit=abc",
        "?cursor=%%",
        "?filter=%23",
        "?topic=a%2F%2B",
        "?connected=maybe",
      ][next(7)];
      const response = await api(paths[next(paths.length)] + query, {
        method,
        body: method === "GET" ? undefined : bodies[next(bodies.length)],
      });
      assert.ok(response.status < 500, `${method} → ${response.status}: ${await response.clone().text()}`);
      const type = response.headers.get("content-type");
      if (response.status >= 400) assert.equal(type, "application/problem+json");
      await response.body?.cancel();
    }
    const client = await connectJs(port, { clientId: "still-up" });
    await endJs(client.client);
  });
});
