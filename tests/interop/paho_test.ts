/**
 * Eclipse Paho for Python (Debian's python3-paho-mqtt, run by /usr/bin/python3) against the broker at
 * MQTT 3.1.1 and 5. Each scenario is tests/interop/paho/paho_client.py, which prints one JSON object.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { withBroker } from "../helpers/broker.ts";
import { PYTHON, requireTool, run, spec } from "./tools.ts";

const SCRIPT = fileURLToPath(new URL("./paho/paho_client.py", import.meta.url));

interface PahoMessage {
  topic: string;
  payload: string;
  qos: number;
  retain: boolean;
  user_properties?: [string, string][];
  content_type?: string;
}

interface PahoResult {
  paho: string;
  error?: string;
  granted?: number[][];
  received: PahoMessage[];
  live?: PahoMessage[];
}

async function paho(scenario: string, port: number, version: "v311" | "v5"): Promise<PahoResult> {
  await requireTool("paho");
  const result = await run(PYTHON, [SCRIPT, scenario, String(port), version]);
  assert.ok(
    !result.timedOut,
    `paho ${scenario} was killed after its timeout\n${result.stdout}\n${result.stderr}`,
  );
  assert.equal(result.code, 0, `paho ${scenario} exited ${result.code}\n${result.stdout}\n${result.stderr}`);
  const parsed = JSON.parse(result.stdout.trim().split("\n").at(-1)!) as PahoResult;
  assert.equal(parsed.error, undefined);
  assert.match(parsed.paho, /^\d+\.\d+/);
  return parsed;
}

for (const version of ["v311", "v5"] as const) {
  const v = version === "v5" ? "MQTT 5" : "MQTT 3.1.1";
  const tag = spec(version === "v5" ? 5 : 4);

  Deno.test(`Paho ${v}: ${tag.minQos} pub/sub at QoS 0/1/2 with downgrade, no loss, no duplicates`, async () => {
    await withBroker("", async ({ port }) => {
      const result = await paho("pubsub", port, version);
      assert.deepEqual(result.granted, [[1], [2]], `${tag.subackOrder} SUBACK grants the requested QoS`);
      const seen = (topic: string) =>
        result.received.filter((m) => m.topic === topic).map((m) => `${m.payload}@${m.qos}`);
      assert.deepEqual(seen("paho/s1"), ["q0@0", "q1@1", "q2@1"]);
      assert.deepEqual(seen("paho/s2"), ["q0@0", "q1@1", "q2@2"]);
      assert.equal(result.received.length, 6);
      assert.ok(result.received.every((m) => m.retain === false));
      if (version === "v5") {
        for (const m of result.received) {
          assert.deepEqual(
            m.user_properties,
            [["origin", "paho"], ["n", "1"]],
            "[MQTT-3.3.2-17] [MQTT-3.3.2-18]",
          );
          assert.equal(m.content_type, "text/plain", "[MQTT-3.3.2-20]");
        }
      }
    });
  });

  Deno.test(`Paho ${v}: retained replaced ${tag.retainReplace}, deleted by empty payload ${tag.retainDelete}, live forward RETAIN 0 ${tag.retainLiveFlag}`, async () => {
    await withBroker("", async ({ port }) => {
      const result = await paho("retained", port, version);
      assert.deepEqual(result.received, [{ topic: "pr/a", payload: "new", qos: 2, retain: true }]);
      assert.deepEqual(result.live, [{ topic: "pr/a", payload: "live", qos: 1, retain: false }]);
    });
  });

  Deno.test(`Paho ${v}: ${tag.willOnClose} will on a dropped socket; ${tag.willDiscarded} none after DISCONNECT`, async () => {
    await withBroker("", async ({ port }) => {
      const result = await paho("will", port, version);
      assert.deepEqual(result.received, [{ topic: "pw/doomed", payload: "gone", qos: 1, retain: false }]);
    });
  });
}
