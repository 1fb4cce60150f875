/**
 * Cost of the ACL on the message path, with a 100-rule file: `deno bench -A tests/auth/authorizer_bench.ts`.
 */
import { ClientAcl, createAuthorizer, parseAclFile } from "../../src/auth/mod.ts";

function hundredRuleAcl(): string {
  const lines = [
    "pattern allow readwrite devices/%c/#",
    "pattern deny publish devices/%c/firmware",
    "allow read public/#",
  ];
  for (let index = 0; lines.length < 60; index++) lines.push(`allow publish site${index}/+/telemetry/#`);
  for (let index = 0; lines.length < 100; index++) {
    lines.push(`user user${index}`, `allow readwrite users/%u/#`, `deny publish users/%u/admin/#`);
  }
  return lines.join("\n");
}

const dir = await Deno.makeTempDir();
await Deno.writeTextFile(`${dir}/acl`, hundredRuleAcl());
const authorizer = await createAuthorizer({ aclFile: `${dir}/acl`, defaultPolicy: "deny" });
await Deno.remove(dir, { recursive: true });

const client = { clientId: "sensor-17", username: "user3" };
const acl = new ClientAcl(parseAclFile(hundredRuleAcl(), "acl"), client, false);
const topics = Array.from({ length: 1024 }, (_, index) => `site59/room${index}/telemetry/temperature`);
let sink = false;

Deno.bench("canPublish, cached decision (same identity object and topic)", () => {
  sink = authorizer.canPublish(client, "devices/sensor-17/temperature") !== sink;
});

Deno.bench("canPublish, fresh identity object per call", () => {
  sink =
    authorizer.canPublish({ clientId: "sensor-17", username: "user3" }, "devices/sensor-17/temperature") !==
      sink;
});

let next = 0;
Deno.bench("canPublish, uncached (rule scan, matching the last global rule)", () => {
  sink = acl.canPublish(topics[next++ & 1023]) !== sink;
});

Deno.bench("canPublish, uncached, no rule matches (full scan)", () => {
  sink = acl.canPublish("nowhere/at/all/x") !== sink;
});

Deno.bench("canSubscribe, cached decision", () => {
  sink = authorizer.canSubscribe(client, "public/+/news") !== sink;
});
