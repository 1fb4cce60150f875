import assert from "node:assert/strict";
import { createAuthorizer } from "../../src/auth/mod.ts";
import { temporaryFiles } from "./fixtures.ts";

Deno.test("without an ACL file every request gets the default policy", async () => {
  const open = await createAuthorizer({ defaultPolicy: "allow" });
  const closed = await createAuthorizer({ defaultPolicy: "deny" });
  const client = { clientId: "c" };
  assert.equal(open.canPublish(client, "a/b"), true);
  assert.equal(open.canSubscribe(client, "#"), true);
  assert.equal(closed.canPublish(client, "a/b"), false);
  assert.equal(closed.canSubscribe(client, "#"), false);
  await closed.reload(); // nothing to reread
  assert.equal(closed.canPublish(client, "a/b"), false);
});

Deno.test("decisions are the same for a reused identity object and for fresh ones", async () => {
  await using files = await temporaryFiles({
    acl: "user alice\nallow readwrite alice/#\ndeny publish alice/secret\n",
  });
  const authorizer = await createAuthorizer({ aclFile: files.paths.acl, defaultPolicy: "deny" });
  const alice = { clientId: "c1", username: "alice" };
  for (let round = 0; round < 3; round++) {
    for (const identity of [alice, { clientId: "c1", username: "alice" }]) {
      assert.equal(authorizer.canPublish(identity, "alice/notes"), true);
      assert.equal(authorizer.canPublish(identity, "alice/secret"), false);
      assert.equal(authorizer.canSubscribe(identity, "alice/#"), true);
      assert.equal(authorizer.canSubscribe(identity, "#"), false);
    }
  }
  assert.equal(authorizer.canPublish({ clientId: "c1", username: "bob" }, "alice/notes"), false);
  assert.equal(authorizer.canPublish({ clientId: "c1" }, "alice/notes"), false);
});

Deno.test("an identity object whose user name changes is judged by its new name", async () => {
  await using files = await temporaryFiles({ acl: "user alice\nallow publish alice/#\n" });
  const authorizer = await createAuthorizer({ aclFile: files.paths.acl, defaultPolicy: "deny" });
  const identity: { clientId: string; username?: string } = { clientId: "c1", username: "alice" };
  assert.equal(authorizer.canPublish(identity, "alice/x"), true);
  identity.username = "mallory";
  assert.equal(authorizer.canPublish(identity, "alice/x"), false);
});

Deno.test("many topics per client stay correct past the per-client decision cache", async () => {
  await using files = await temporaryFiles({ acl: "allow publish even/#\n" });
  const authorizer = await createAuthorizer({ aclFile: files.paths.acl, defaultPolicy: "deny" });
  const client = { clientId: "c" };
  for (let pass = 0; pass < 2; pass++) {
    for (let index = 0; index < 500; index++) {
      const topic = `${index % 2 === 0 ? "even" : "odd"}/${index}`;
      assert.equal(authorizer.canPublish(client, topic), index % 2 === 0, topic);
    }
  }
});

Deno.test("reload applies a new ACL at once and keeps the old one when the file is invalid", async () => {
  await using files = await temporaryFiles({ acl: "allow publish a/#\n" });
  const authorizer = await createAuthorizer({ aclFile: files.paths.acl, defaultPolicy: "deny" });
  const client = { clientId: "c" };
  assert.equal(authorizer.canPublish(client, "a/1"), true);
  assert.equal(authorizer.canPublish(client, "b/1"), false);

  await Deno.writeTextFile(files.paths.acl, "allow publish b/#\n");
  await authorizer.reload();
  assert.equal(authorizer.canPublish(client, "a/1"), false, "cached decision must not survive a reload");
  assert.equal(authorizer.canPublish(client, "b/1"), true);

  await Deno.writeTextFile(files.paths.acl, "allow publish c/#\nallow publish d/#/e\n");
  await assert.rejects(authorizer.reload(), new RegExp(`^AuthFileError: ${files.paths.acl}:2: '#'`));
  assert.equal(authorizer.canPublish(client, "b/1"), true);
  assert.equal(authorizer.canPublish(client, "c/1"), false);
});

Deno.test("createAuthorizer rejects a missing or invalid ACL file", async () => {
  await assert.rejects(
    createAuthorizer({ aclFile: "/nonexistent/acl", defaultPolicy: "deny" }),
    /^AuthFileError: \/nonexistent\/acl: cannot read/,
  );
  await using files = await temporaryFiles({ acl: "user\n" });
  await assert.rejects(createAuthorizer({ aclFile: files.paths.acl, defaultPolicy: "deny" }), /:1: expected/);
});
