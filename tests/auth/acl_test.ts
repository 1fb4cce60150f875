import assert from "node:assert/strict";
import { AuthFileError, ClientAcl, parseAclFile } from "../../src/auth/mod.ts";

const ACL = `
# applies to everyone
pattern allow read sensors/#
allow publish public/#
deny subscribe public/private/#

user alice
allow readwrite alice/#
deny  publish alice/secret

clientid dev-*
allow write telemetry/%c/#

user *
allow readwrite users/%u/#
pattern deny publish users/%u/locked

clientid ops-console
allow both #
`;

const policy = parseAclFile(ACL, "acl");
const forClient = (clientId: string, username?: string, defaultAllow = false) =>
  new ClientAcl(policy, { clientId, username }, defaultAllow);

Deno.test("rules before any section and 'pattern' rules apply to everyone, anonymous included", () => {
  const anonymous = forClient("c1");
  assert.equal(anonymous.canSubscribe("sensors/+/temp"), true);
  assert.equal(anonymous.canPublish("sensors/kitchen"), false);
  assert.equal(anonymous.canPublish("public/news"), true);
  assert.equal(anonymous.canPublish("alice/x"), false);
});

Deno.test("user sections grant their rules, and deny wins over allow", () => {
  const alice = forClient("c1", "alice");
  assert.equal(alice.canPublish("alice/notes"), true);
  assert.equal(alice.canPublish("alice/secret"), false);
  assert.equal(alice.canSubscribe("alice/secret"), true); // denied for publish only
  assert.equal(forClient("c1", "bob").canPublish("alice/notes"), false);
});

Deno.test("clientid prefix sections and %c substitution", () => {
  const device = forClient("dev-42");
  assert.equal(device.canPublish("telemetry/dev-42/power"), true);
  assert.equal(device.canPublish("telemetry/dev-43/power"), false);
  assert.equal(forClient("other-42").canPublish("telemetry/other-42/power"), false);
  assert.equal(forClient("ops-console").canPublish("anything/at/all"), true);
});

Deno.test("%u substitution for every user, with a pattern deny", () => {
  const bob = forClient("c1", "bob");
  assert.equal(bob.canPublish("users/bob/inbox"), true);
  assert.equal(bob.canPublish("users/carol/inbox"), false);
  assert.equal(bob.canPublish("users/bob/locked"), false);
  assert.equal(bob.canSubscribe("users/bob/#"), true);
});

Deno.test("a subscription needs an allow rule covering the whole filter; a deny refuses only what it covers", () => {
  const anonymous = forClient("c1");
  assert.equal(anonymous.canSubscribe("sensors/#"), true);
  assert.equal(anonymous.canSubscribe("sensors/+/temp"), true);
  assert.equal(anonymous.canSubscribe("+/kitchen"), false); // also reaches beyond sensors/
  const narrow = new ClientAcl(parseAclFile("allow read sensors/+/temp", "acl"), { clientId: "c" }, false);
  assert.equal(narrow.canSubscribe("sensors/hall/temp"), true);
  assert.equal(narrow.canSubscribe("sensors/#"), false);
  const reader = new ClientAcl(
    parseAclFile("allow read #\ndeny read alice/secret", "acl"),
    { clientId: "c" },
    false,
  );
  assert.equal(reader.canSubscribe("bob/#"), true);
  // a deny withholds its own topics, at delivery; filters that merely overlap it are granted (as Mosquitto)
  assert.equal(reader.canSubscribe("alice/#"), true);
  assert.equal(reader.canSubscribe("+/secret"), true);
  assert.equal(reader.canSubscribe("#"), true);
  assert.equal(reader.canSubscribe("alice/secret"), false);
  assert.equal(reader.canSubscribe("$share/g/alice/secret"), false);
  assert.equal(reader.canSubscribe("$share/g/bob/#"), true);
  assert.equal(reader.canReceive("alice/secret"), false);
  assert.equal(reader.canReceive("alice/public"), true);
  assert.equal(reader.canReceive("bob/secret"), true);
  assert.equal(reader.receivesEverything, false);
});

Deno.test("canReceive follows the read rules and the default; receivesEverything only without read denies", () => {
  const narrow = new ClientAcl(parseAclFile("allow read sensors/+/temp", "acl"), { clientId: "c" }, false);
  assert.equal(narrow.canReceive("sensors/hall/temp"), true);
  assert.equal(narrow.canReceive("sensors/hall/humidity"), false);
  assert.equal(narrow.receivesEverything, false);
  const open = new ClientAcl(parseAclFile("deny publish x/#", "acl"), { clientId: "c" }, true);
  assert.equal(open.receivesEverything, true);
  assert.equal(open.canReceive("x/y"), true);
  // a wildcard-first pattern never reaches a $ topic, for reading as for subscribing
  const everything = new ClientAcl(parseAclFile("allow read #", "acl"), { clientId: "c" }, false);
  assert.equal(everything.canReceive("$SYS/broker/uptime"), false);
});

Deno.test("the default policy decides when no rule matches, in both directions", () => {
  assert.equal(forClient("c1", undefined, true).canPublish("unlisted/topic"), true);
  assert.equal(forClient("c1", undefined, false).canPublish("unlisted/topic"), false);
  assert.equal(forClient("c1", undefined, true).canSubscribe("unlisted/#"), true);
  // deny public/private/# only overlaps public/#: granted, and public/private/... withheld at delivery
  assert.equal(forClient("c1", undefined, true).canSubscribe("public/#"), true);
  assert.equal(forClient("c1", undefined, true).canReceive("public/private/x"), false);
  assert.equal(forClient("c1", undefined, true).canSubscribe("public/private/+"), false);
  assert.equal(forClient("c1", undefined, true).canSubscribe("public/news"), true);
});

Deno.test("names with wildcards, '/' or a leading '$' never gain access through %u/%c", () => {
  const rules = parseAclFile(
    "allow readwrite users/%u/#\nallow readwrite %c/#\ndeny publish private/%u/x",
    "acl",
  );
  for (const username of ["+", "#", "a/b", "", "$SYS"]) {
    const name = JSON.stringify(username);
    const strict = new ClientAcl(rules, { clientId: "ok", username }, false);
    assert.equal(strict.canPublish("users/alice/inbox"), false, `username ${name} must not reach others`);
    assert.equal(strict.canSubscribe("users/#"), false, `username ${name} must not widen a filter`);
    const lenient = new ClientAcl(rules, { clientId: "ok", username }, true);
    assert.equal(
      lenient.canPublish("private/alice/x"),
      false,
      `an unusable deny denies the branch for ${name}`,
    );
    assert.equal(lenient.canPublish("elsewhere"), true);
  }
  const strict = (clientId: string) => new ClientAcl(rules, { clientId }, false);
  assert.equal(strict("+").canPublish("anything/x"), false);
  assert.equal(strict("$SYS").canPublish("$SYS/broker/x"), false);
  assert.equal(strict("dev").canPublish("dev/x"), true);
  assert.equal(new ClientAcl(rules, { clientId: "c" }, true).canPublish("private/anyone/x"), false);
});

Deno.test("a user name containing %c is not substituted a second time", () => {
  const rules = parseAclFile("allow publish users/%u/in", "acl");
  const acl = new ClientAcl(rules, { clientId: "victim", username: "%c" }, false);
  assert.equal(acl.canPublish("users/victim/in"), false);
  assert.equal(acl.canPublish("users/%c/in"), true);
});

Deno.test("topic patterns may contain spaces; order of lines does not matter", () => {
  const acl = new ClientAcl(
    parseAclFile("deny publish a/b c\nallow publish a/#", "acl"),
    { clientId: "c" },
    false,
  );
  assert.equal(acl.canPublish("a/b c"), false);
  assert.equal(acl.canPublish("a/b"), true);
});

Deno.test("parse errors carry file:line", () => {
  const cases: [string, RegExp][] = [
    ["allow read a\nallow fly a\n", /^acl:2: unknown action "fly"/],
    ["\n\ntopic read a\n", /^acl:3: expected 'user <name>'/],
    ["allow read a/#/b\n", /^acl:1: '#' must be a whole level/],
    ["user bob\ndeny write\n", /^acl:2: expected/],
  ];
  for (const [text, message] of cases) {
    assert.throws(
      () => parseAclFile(text, "acl"),
      (error) => error instanceof AuthFileError && message.test(error.message),
    );
  }
});
