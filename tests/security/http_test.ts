/**
 * Rule: /readyz and /healthz reveal no file system paths; /metrics and the health endpoints can require a
 * bearer token (`http.auth_token_file`) and stay on loopback by default.
 */
import assert from "node:assert/strict";
import { defaultConfig } from "../../src/config/mod.ts";
import { tempFiles, withSecureBroker } from "./support.ts";

async function get(port: number, path: string, headers: HeadersInit = {}) {
  const response = await fetch(`http://127.0.0.1:${port}${path}`, { headers });
  return { status: response.status, body: await response.text(), headers: response.headers };
}

Deno.test("security: /readyz and /healthz do not reveal the store's directory or any other path", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mqtt-security-secret-path-" });
  try {
    const properties = `storage.type = embedded\nstorage.dir = ${dir}\nhttp.enabled = true\nhttp.port = 0`;
    await withSecureBroker(properties, async ({ running }) => {
      for (const path of ["/readyz", "/healthz"]) {
        const { status, body } = await get(running.http!.port, path);
        assert.equal(status, 200);
        assert.ok(!body.includes(dir) && !body.includes("/tmp"), `${path} says: ${body}`);
      }
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("security: with http.auth_token_file every endpoint needs the bearer token", async () => {
  await using files = await tempFiles({ token: "s3cr3t-token-0123456789\n" });
  const properties = `http.enabled = true\nhttp.port = 0\nhttp.auth_token_file = ${files.paths.token}`;
  await withSecureBroker(properties, async ({ running }) => {
    const port = running.http!.port;
    for (const path of ["/metrics", "/healthz", "/readyz"]) {
      const none = await get(port, path);
      assert.equal(none.status, 401, `${path} without a token`);
      assert.equal(none.headers.get("www-authenticate"), 'Bearer realm="mqtt-proxy"');
      assert.equal((await get(port, path, { authorization: "Bearer wrong" })).status, 401);
      assert.equal((await get(port, path, { authorization: "Basic czNjcjN0LXRva2Vu" })).status, 401);
      const ok = await get(port, path, { authorization: "Bearer s3cr3t-token-0123456789" });
      assert.equal(ok.status, 200, `${path} with the token`);
    }
    // SIGHUP rereads the token file: a rotated token replaces the old one
    await Deno.writeTextFile(files.paths.token, "rotated-token-abcdefghij\n");
    await running.reload();
    assert.equal(
      (await get(port, "/metrics", { authorization: "Bearer s3cr3t-token-0123456789" })).status,
      401,
    );
    assert.equal(
      (await get(port, "/metrics", { authorization: "Bearer rotated-token-abcdefghij" })).status,
      200,
    );
  });
});

Deno.test("security: the HTTP endpoint binds loopback by default and warns when exposed without a token", async () => {
  // This default held before this change too; the test keeps it from regressing.
  assert.equal(defaultConfig().http.host, "127.0.0.1");
  await withSecureBroker("http.enabled = true\nhttp.port = 0\nhttp.host = 0.0.0.0", ({ events }) => {
    assert.equal(events("http.unauthenticated").length, 1);
    return Promise.resolve();
  });
  await using files = await tempFiles({ token: "another-token-0123456789\n" });
  const withToken =
    `http.enabled = true\nhttp.port = 0\nhttp.host = 0.0.0.0\nhttp.auth_token_file = ${files.paths.token}`;
  await withSecureBroker(withToken, ({ events }) => {
    assert.equal(events("http.unauthenticated").length, 0);
    return Promise.resolve();
  });
});
