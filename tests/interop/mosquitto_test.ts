/**
 * Eclipse Mosquitto's command-line clients (Debian's mosquitto-clients) against the broker, at MQTT
 * 3.1, 3.1.1 and 5. mosquitto_sub runs with -d so the test can see its SUBACK before publishing, and
 * with -F %j so each received message is one JSON line.
 */
import assert from "node:assert/strict";
import { withBroker } from "../helpers/broker.ts";
import { LiveProcess, requireTool, runOk, spec } from "./tools.ts";

type MosquittoVersion = "mqttv31" | "mqttv311" | "mqttv5";

interface MosquittoMessage {
  topic: string;
  qos: number;
  retain: number;
  payload: string;
  properties?: Record<string, unknown>;
}

async function requireMosquitto(): Promise<void> {
  await requireTool("mosquitto_pub");
  await requireTool("mosquitto_sub");
}

/**
 * mosquitto_sub under coreutils' stdbuf: its stdout is a pipe here, which stdio would buffer until
 * exit; line buffering lets the test see "received SUBACK" while the client runs. stdbuf execs the
 * client, so the handle's pid is mosquitto_sub's own and signals reach it directly.
 */
function mosquittoSub(args: string[]): LiveProcess {
  return new LiveProcess("stdbuf", ["-oL", "mosquitto_sub", ...args]);
}

/** Starts a bounded mosquitto_sub (exits after `count` messages or 8 s) and waits for its SUBACK. */
async function startSub(
  port: number,
  version: MosquittoVersion,
  topics: string[],
  qos: number,
  count: number,
  extra: string[] = [],
): Promise<LiveProcess> {
  const args = ["-h", "127.0.0.1", "-p", String(port), "-V", version, "-q", String(qos)];
  for (const topic of topics) args.push("-t", topic);
  args.push("-C", String(count), "-W", "8", "-d", "-F", "%j", ...extra);
  const sub = mosquittoSub(args);
  await sub.waitForLine((line) => line.includes("received SUBACK"));
  return sub;
}

/** Waits for mosquitto_sub to exit 0 after its -C count and returns the messages it printed. */
async function messagesOf(sub: LiveProcess): Promise<MosquittoMessage[]> {
  const status = await sub.finish();
  assert.equal(status.code, 0, `mosquitto_sub exited ${status.code}\n${sub.lines.join("\n")}\n${sub.stderr}`);
  return sub.lines.filter((line) => line.startsWith("{")).map((line) => JSON.parse(line) as MosquittoMessage);
}

function pub(port: number, version: MosquittoVersion, topic: string, qos: number, ...extra: string[]) {
  return runOk("mosquitto_pub", [
    "-h",
    "127.0.0.1",
    "-p",
    String(port),
    "-V",
    version,
    "-t",
    topic,
    "-q",
    String(qos),
    ...extra,
  ]);
}

for (const version of ["mqttv31", "mqttv311", "mqttv5"] as const) {
  const tag = spec(version === "mqttv5" ? 5 : version === "mqttv311" ? 4 : 3);
  Deno.test(`mosquitto ${version}: ${tag.minQos} pub/sub at QoS 0/1/2, delivered at min(publish, subscription)`, async () => {
    await requireMosquitto();
    await withBroker("", async ({ port }) => {
      const sub2 = await startSub(port, version, ["mq/a"], 2, 3);
      const sub1 = await startSub(port, version, ["mq/a"], 1, 3);
      for (const qos of [0, 1, 2]) await pub(port, version, "mq/a", qos, "-m", `qos${qos}`);
      const at2 = await messagesOf(sub2);
      const at1 = await messagesOf(sub1);
      assert.deepEqual(at2.map((m) => [m.topic, m.payload, m.qos, m.retain]), [
        ["mq/a", "qos0", 0, 0],
        ["mq/a", "qos1", 1, 0],
        ["mq/a", "qos2", 2, 0],
      ]);
      assert.deepEqual(at1.map((m) => [m.payload, m.qos]), [["qos0", 0], ["qos1", 1], ["qos2", 1]]);
    });
  });

  Deno.test(`mosquitto ${version}: retained replaced ${tag.retainReplace}, sent with RETAIN ${tag.retainOnSubscribe}, deleted by -n ${tag.retainDelete}`, async () => {
    await requireMosquitto();
    await withBroker("", async ({ port }) => {
      await pub(port, version, "ret/a", 1, "-r", "-m", "old");
      await pub(port, version, "ret/a", 2, "-r", "-m", "new");
      const first = await messagesOf(await startSub(port, version, ["ret/#"], 2, 1));
      assert.deepEqual(first.map((m) => [m.topic, m.payload, m.retain, m.qos]), [["ret/a", "new", 1, 2]]);

      await pub(port, version, "ret/a", 1, "-r", "-n"); // zero-length retained: deletes
      await pub(port, version, "ret/z", 0, "-r", "-m", "only this");
      const after = await messagesOf(await startSub(port, version, ["ret/#"], 1, 1));
      assert.deepEqual(after.map((m) => [m.topic, m.payload, m.retain]), [["ret/z", "only this", 1]]);
    });
  });

  Deno.test(`mosquitto ${version}: ${tag.willOnClose} the will of a SIGKILLed client is published; ${tag.willDiscarded} not after DISCONNECT`, async () => {
    await requireMosquitto();
    await withBroker("", async ({ port }) => {
      const watcher = await startSub(port, version, ["will/#"], 1, 1);
      const base = ["-h", "127.0.0.1", "-p", String(port), "-V", version, "-d"];

      // A normal exit: -C 1 makes mosquitto_sub send DISCONNECT (reason 0) after one message, so its
      // will must be discarded. (SIGTERM is not used: mosquitto_sub's handler may hang, and at v5 it
      // sends reason 0x04, which asks for the will.)
      const polite = mosquittoSub([...base, "-t", "idle/polite", "-C", "1", "--will-topic", "will/polite"]);
      await polite.waitForLine((line) => line.includes("received SUBACK"));
      await pub(port, version, "idle/polite", 1, "-m", "bye");
      assert.equal((await polite.finish()).code, 0);

      const doomed = mosquittoSub([
        ...base,
        ...["-t", "idle/doomed", "--will-topic", "will/doomed", "--will-payload", "gone", "--will-qos", "1"],
      ]);
      await doomed.waitForLine((line) => line.includes("received SUBACK"));
      doomed.kill("SIGKILL");
      await doomed.finish();

      // The watcher takes one message: had the polite will been sent, it would be that one.
      const got = await messagesOf(watcher);
      assert.deepEqual(got.map((m) => [m.topic, m.payload, m.qos]), [["will/doomed", "gone", 1]]);
    });
  });
}

Deno.test("mosquitto mqttv5: user properties, content type and message expiry travel from mosquitto_pub to mosquitto_sub", async () => {
  await requireMosquitto();
  await withBroker("", async ({ port }) => {
    const sub = await startSub(port, "mqttv5", ["v5/props"], 1, 1);
    await pub(
      port,
      "mqttv5",
      "v5/props",
      1,
      "-m",
      "with props",
      "-D",
      "publish",
      "user-property",
      "origin",
      "mosquitto",
      "-D",
      "publish",
      "content-type",
      "text/plain",
      "-D",
      "publish",
      "message-expiry-interval",
      "120",
    );
    const [message] = await messagesOf(sub);
    assert.equal(message.payload, "with props");
    const props = message.properties ?? {};
    assert.deepEqual(props["user-properties"], { origin: "mosquitto" });
    assert.equal(props["content-type"], "text/plain");
    const expiry = props["message-expiry-interval"];
    assert.ok(typeof expiry === "number" && expiry > 115 && expiry <= 120, `expiry left ${expiry}`);
  });
});

Deno.test("mosquitto mqttv311: [MQTT-3.1.2-5] a persistent mosquitto_sub (-c) gets QoS 1 messages queued while it was away", async () => {
  await requireMosquitto();
  await withBroker("", async ({ port }) => {
    const durable = ["-i", "mosq-durable", "-c"];
    const first = await startSub(port, "mqttv311", ["queue/#"], 1, 1, durable);
    await pub(port, "mqttv311", "queue/x", 1, "-m", "live");
    assert.deepEqual((await messagesOf(first)).map((m) => m.payload), ["live"]);
    for (let i = 0; i < 3; i++) await pub(port, "mqttv311", "queue/x", 1, "-m", `offline${i}`);
    const again = mosquittoSub([
      ...["-h", "127.0.0.1", "-p", String(port), "-V", "mqttv311", "-q", "1", "-t", "queue/#"],
      ...["-C", "3", "-W", "8", "-F", "%j", ...durable],
    ]);
    const got = await messagesOf(again);
    assert.deepEqual(got.map((m) => [m.payload, m.qos]), [["offline0", 1], ["offline1", 1], ["offline2", 1]]);
  });
});
