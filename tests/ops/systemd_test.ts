/**
 * The documented systemd install produces a service that starts, reloads and stops as the unit says.
 *
 * SIMULATED: PID 1 is not systemd where this runs (no systemd-run, no container runtime), so
 * tests/ops/systemd_support.ts plays systemd's part inside a temporary root: the install commands of
 * docs/operations.md run with their paths moved under it, and the broker runs as conf/mqtt-proxy.service
 * says (User/Group as a real system user made for the test, WorkingDirectory, StateDirectory, UMask,
 * NoNewPrivileges, a clean environment, ExecStartPre/ExecStart/ExecReload/KillSignal). The
 * binary is a stand-in (main.ts bundled and run by deno with the compile task's flags), because
 * `deno compile` needs a denort runtime that is not available here. Not covered: the unit's sandbox
 * (ProtectSystem, PrivateTmp, capabilities), Restart=, and systemd's own parsing (release_test.ts runs
 * `systemd-analyze verify`). Needs root (to create the user); fails, never skips, without it.
 */
import assert from "node:assert/strict";
import type { Packet } from "../../src/codec/mod.ts";
import { RawClient } from "../helpers/broker.ts";
import { connectJs, endJs, requireTool, run, withTimeout } from "../interop/tools.ts";
import { scramLogin } from "../security/scram_client.ts";
import { type BrokerProcess, ROOT } from "./support.ts";
import {
  FakeRoot,
  ownedBy,
  ownership,
  parseUnit,
  Service,
  ServiceUser,
  setProperty,
  shell,
  shellBlockUnder,
  stageRelease,
} from "./systemd_support.ts";

const DRAIN_MS = 3000;
const PASSWORDS: Record<string, string> = {
  alice: "alice-secret-1",
  bob: "bob-secret-2",
  carol: "carol-secret-3",
};
/** The test's edits of the installed configuration: loopback on free ports, /readyz, SCRAM, a short drain. */
const TEST_EDITS: Record<string, string> = {
  "listener.default.host": "127.0.0.1",
  "listener.default.port": "0",
  "http.enabled": "true",
  "http.host": "127.0.0.1",
  "http.port": "0",
  "auth.scram_file": "/etc/mqtt-proxy/scram",
  "shutdown.drain_timeout_ms": String(DRAIN_MS),
  "sys.interval_seconds": "0",
};

/** mosquitto_pub as an operator would test a login: exit 0 when accepted. */
function mosquittoPub(port: number, user: string, password: string) {
  return run("mosquitto_pub", [
    "-h",
    "127.0.0.1",
    "-p",
    `${port}`,
    "-u",
    user,
    "-P",
    password,
    "-t",
    "sd/x",
    "-m",
    "hi",
    "-q",
    "1",
  ]);
}

async function readyStatus(httpPort: number): Promise<number> {
  const response = await fetch(`http://127.0.0.1:${httpPort}/readyz`);
  await response.body?.cancel();
  return response.status;
}

/** A raw MQTT 5 subscriber (alice) to `topic` at `qos` that acknowledges nothing unless told. */
async function silentSubscriber(port: number, topic: string, qos: 1 | 2): Promise<RawClient> {
  const raw = await RawClient.connect(port, 5);
  await raw.sendPacket({
    type: "connect",
    protocolName: "MQTT",
    protocolVersion: 5,
    clientId: `sd-silent-${crypto.randomUUID().slice(0, 6)}`,
    cleanStart: true,
    keepAlive: 60,
    username: "alice",
    password: new TextEncoder().encode(PASSWORDS.alice),
    properties: {},
  }, 5);
  const connack = await raw.readPacket();
  assert.deepEqual([connack.type, connack.type === "connack" && connack.reasonCode], ["connack", 0]);
  await raw.sendPacket({
    type: "subscribe",
    packetId: 1,
    subscriptions: [{
      topicFilter: topic,
      qos,
      noLocal: false,
      retainAsPublished: false,
      retainHandling: 0,
    }],
    properties: {},
  }, 5);
  assert.equal((await raw.readPacket()).type, "suback");
  return raw;
}

/** Publishes one message at `qos` as alice and returns the PUBLISH the silent subscriber received. */
async function deliverUnacknowledged(
  port: number,
  raw: RawClient,
  topic: string,
  qos: 1 | 2,
): Promise<Packet> {
  const publisher = await connectJs(port, {
    clientId: "sd-pub",
    username: "alice",
    password: PASSWORDS.alice,
  });
  await publisher.client.publishAsync(topic, "in flight at stop", { qos });
  await endJs(publisher.client);
  const delivery = await raw.readPacket();
  assert.deepEqual([delivery.type, delivery.type === "publish" && delivery.qos], ["publish", qos]);
  return delivery;
}

Deno.test("systemd (simulated, no systemd here): the documented install starts, reloads and drains as the unit says", async (t) => {
  await requireTool("mosquitto_pub");
  const work = await Deno.makeTempDir({ prefix: "mqtt-proxy-systemd-" });
  await Deno.chmod(work, 0o755);
  const root = new FakeRoot(`${work}/root`);
  for (const dir of ["etc/systemd/system", "usr/local/bin", "usr/local/share", "var/lib"]) {
    await Deno.mkdir(`${root.dir}/${dir}`, { recursive: true });
  }
  const steps = shellBlockUnder(
    await Deno.readTextFile(`${ROOT}docs/operations.md`),
    "## Install as a systemd service",
  );
  let user: ServiceUser | undefined;
  const running: BrokerProcess[] = [];
  try {
    user = await ServiceUser.create(root, steps[0]); // first: without root the test fails here, saying why
    const release = await stageRelease(work);
    const service = user;
    const etc = `${root.dir}/etc/mqtt-proxy`;
    const path = `${root.dir}/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`;
    /** Runs an operator's command as root: paths under the fake root, the unit's user name replaced. */
    const operator = async (line: string, stdin = "") => {
      const result = await shell(service.rename(root.map(line)), release, stdin, { PATH: path });
      assert.equal(result.code, 0, `${line}\n${result.stdout}${result.stderr}`);
    };

    await t.step(
      "the install steps of docs/operations.md run, and leave the secrets root:mqtt-proxy 0640",
      async () => {
        const edits = { ...TEST_EDITS };
        for (const step of steps.slice(1)) {
          const [command, edit] = step.split(/\s+#\s*then:\s*/);
          const parts = command.split("&&").map((part) => part.trim()).filter((part) =>
            !part.startsWith("systemctl ")
          );
          if (command.includes("check-config")) {
            // the operator's edits before checking: the docs' own ("then: key = value") and the test's
            const config = `${etc}/mqtt.properties`;
            let text = await Deno.readTextFile(config);
            for (const [key, value] of Object.entries(edits)) text = setProperty(text, key, root.map(value));
            await Deno.writeTextFile(config, text);
          }
          const passwd = /mqtt-proxy passwd \S+ (\w+)/.exec(command);
          for (const part of parts) await operator(part, passwd ? `${PASSWORDS[passwd[1]]}\n` : "");
          if (edit) {
            const [key, value] = edit.split(/\s*=\s*/);
            edits[key] = value;
          }
          if (passwd) {
            // SCRAM (the cookbook's command) under the same rule as every secret: root:mqtt-proxy 0640
            await operator("mqtt-proxy scram /etc/mqtt-proxy/scram alice", `${PASSWORDS.alice}\n`);
            await operator("chown root:mqtt-proxy /etc/mqtt-proxy/scram && chmod 0640 /etc/mqtt-proxy/scram");
          }
        }
        assert.deepEqual(await ownership(etc), { uid: 0, gid: service.gid, mode: 0o750 });
        for (const file of ["mqtt.properties", "passwd", "scram"]) {
          assert.deepEqual(
            await ownership(`${etc}/${file}`),
            { uid: 0, gid: service.gid, mode: 0o640 },
            file,
          );
        }
      },
    );

    const unitPath = `${root.dir}/etc/systemd/system/mqtt-proxy.service`;
    const unit = parseUnit(await Deno.readTextFile(unitPath));
    const systemd = new Service(unit, root, service);

    await t.step(
      "Documentation= names files the release installed, and User/Group are the documented user",
      async () => {
        const links = unit.get("Unit")?.get("Documentation")?.flatMap((value) => value.split(/\s+/)) ?? [];
        assert.ok(links.length > 0, "the unit has Documentation=");
        for (const link of links) {
          const installed = await Deno.readTextFile(root.documentationPath(link));
          assert.equal(installed, await Deno.readTextFile(`${ROOT}docs/${link.split("/").at(-1)}`), link);
        }
        assert.deepEqual([systemd.value("User"), systemd.value("Group")], ["mqtt-proxy", "mqtt-proxy"]);
        assert.equal(systemd.value("WorkingDirectory"), `/var/lib/${systemd.value("StateDirectory")}`);
        assert.equal(systemd.value("ReadWritePaths"), systemd.value("WorkingDirectory"));
      },
    );

    const started = await systemd.start();
    running.push(started.broker);
    const { broker, port, httpPort, state } = started;

    await t.step(
      "it runs as the service user and reads its 0640 secrets: right passwords in, wrong ones out",
      async () => {
        // through cat: Deno asks for --allow-all to read /proc itself
        const status = (await run("cat", [`/proc/${broker.pid}/status`])).stdout;
        assert.match(status, new RegExp(`^Uid:\\s+${service.uid}\\s+${service.uid}\\s`, "m"));
        assert.match(status, new RegExp(`^Gid:\\s+${service.gid}\\s+${service.gid}\\s`, "m"));
        assert.match(status, new RegExp(`^Groups:\\s+${service.gid}\\s*$`, "m"), "no supplementary groups");
        assert.match(status, /^NoNewPrivs:\s+1$/m);
        const accepted = await mosquittoPub(port, "alice", PASSWORDS.alice);
        assert.equal(accepted.code, 0, accepted.stderr);
        const refused = await mosquittoPub(port, "alice", "wrong");
        assert.notEqual(refused.code, 0);
        assert.match(refused.stderr, /bad user name or password/); // CONNACK 4
        const scram = await scramLogin(port, "alice", PASSWORDS.alice);
        await scram.client.close();
        assert.deepEqual([scram.last.type, scram.last.type === "connack" && scram.last.reasonCode], [
          "connack",
          0,
        ]);
        // relative storage.dir resolves against WorkingDirectory; UMask keeps the store from other users
        const store = await ownedBy(state, service.uid);
        assert.ok(store.some((file) => file === `${state}/data/store.db`), store.join("\n"));
        for (const file of store) {
          assert.equal((await ownership(file)).mode & 0o007, 0, `${file} is world-accessible`);
        }
      },
    );

    await t.step(
      "ExecReload (SIGHUP) rereads the password and SCRAM files edited with the documented commands",
      async () => {
        const connected = await connectJs(port, {
          clientId: "sd-stays",
          username: "alice",
          password: PASSWORDS.alice,
        });
        try {
          await operator("mqtt-proxy passwd /etc/mqtt-proxy/passwd bob", `${PASSWORDS.bob}\n`);
          await operator("mqtt-proxy scram /etc/mqtt-proxy/scram carol", `${PASSWORDS.carol}\n`);
          for (const file of ["passwd", "scram"]) {
            assert.deepEqual(
              await ownership(`${etc}/${file}`),
              { uid: 0, gid: service.gid, mode: 0o640 },
              file,
            );
          }
          assert.notEqual((await mosquittoPub(port, "bob", PASSWORDS.bob)).code, 0, "bob before the reload");
          await systemd.reload(broker.pid);
          await broker.event("config.reloaded");
          assert.ok(
            broker.lines.some((line) => /"event":"config\.reloaded".*"part":"authentication"/.test(line)),
            broker.lines.join("\n"),
          );
          assert.ok(
            !broker.lines.some((line) => line.includes('"event":"config.reload_failed"')),
            broker.lines.join("\n"),
          );
          const bob = await mosquittoPub(port, "bob", PASSWORDS.bob);
          assert.equal(bob.code, 0, bob.stderr);
          const carol = await scramLogin(port, "carol", PASSWORDS.carol);
          await carol.client.close();
          assert.deepEqual([carol.last.type, carol.last.type === "connack" && carol.last.reasonCode], [
            "connack",
            0,
          ]);
          assert.ok(connected.client.connected, "a connection stays up across the reload");

          // a file the service cannot read keeps the previous rules
          await Deno.chmod(`${etc}/passwd`, 0o600);
          await systemd.reload(broker.pid);
          const failed = await broker.event("config.reload_failed");
          assert.match(String(JSON.stringify(failed)), /Permission denied|EACCES/i);
          assert.equal(
            (await mosquittoPub(port, "bob", PASSWORDS.bob)).code,
            0,
            "bob still in after a failed reload",
          );
          await Deno.chmod(`${etc}/passwd`, 0o640);
        } finally {
          await endJs(connected.client);
        }
      },
    );

    await t.step(
      "KillSignal drains: /readyz 503, the stop waits for the unacknowledged QoS 1 delivery",
      async () => {
        const raw = await silentSubscriber(port, "sd/drain", 1);
        try {
          const delivery = await deliverUnacknowledged(port, raw, "sd/drain", 1);
          assert.equal(await readyStatus(httpPort), 200);
          broker.kill(systemd.value("KillSignal") as Deno.Signal);
          await broker.event("broker.stopping");
          assert.equal(await readyStatus(httpPort), 503, "/readyz while draining");
          assert.ok(await raw.expectSilence(500), "no DISCONNECT while the delivery is unacknowledged");
          assert.ok(!broker.exited, "the broker waits for the acknowledgement");
          const packetId = delivery.type === "publish" ? delivery.packetId! : 0;
          await raw.sendPacket({ type: "puback", packetId, reasonCode: 0, properties: {} }, 5);
          const disconnect = await raw.readPacket();
          assert.deepEqual([disconnect.type, disconnect.type === "disconnect" && disconnect.reasonCode], [
            "disconnect",
            0x8b,
          ]);
          const status = await withTimeout(broker.finish(), 15_000, "exit after the drain");
          assert.equal(status.code, 0, broker.stderr);
          await broker.event("broker.stopped");
        } finally {
          await raw.close();
        }
        // the service wrote only where the unit lets it (ReadWritePaths / StateDirectory)
        const written = await ownedBy(root.dir, service.uid);
        const writable = root.map(systemd.value("ReadWritePaths"));
        assert.deepEqual(written.filter((file) => !file.startsWith(writable)), []);
      },
    );

    await t.step(
      "a QoS 2 delivery never acknowledged (no PUBREC) holds the stop for shutdown.drain_timeout_ms, within TimeoutStopSec",
      async () => {
        const again = await systemd.start();
        running.push(again.broker);
        const raw = await silentSubscriber(again.port, "sd/never", 2);
        try {
          await deliverUnacknowledged(again.port, raw, "sd/never", 2);
          const signalled = performance.now();
          again.broker.kill(systemd.value("KillSignal") as Deno.Signal);
          const stopSeconds = Number(/^(\d+)s?$/.exec(systemd.value("TimeoutStopSec"))?.[1]);
          const status = await withTimeout(
            again.broker.finish(),
            stopSeconds * 1000,
            "exit before systemd's SIGKILL",
          );
          const waited = performance.now() - signalled;
          assert.equal(status.code, 0, again.broker.stderr);
          assert.ok(
            waited >= DRAIN_MS,
            `stopped after ${Math.round(waited)} ms, drain_timeout_ms is ${DRAIN_MS}`,
          );
          const disconnect = await raw.readPacket();
          assert.deepEqual([disconnect.type, disconnect.type === "disconnect" && disconnect.reasonCode], [
            "disconnect",
            0x8b,
          ]);
        } finally {
          await raw.close();
        }
      },
    );

    await t.step(
      "a secret the group cannot read fails ExecStartPre and ExecStart with the file named",
      async () => {
        const secret = `${etc}/passwd`;
        for (const [owner, mode] of [[service.gid, 0o600], [0, 0o640]]) {
          await Deno.chown(secret, 0, owner);
          await Deno.chmod(secret, mode);
          const pre = await systemd.execStartPre();
          assert.notEqual(pre.code, 0, "check-config accepted an unreadable secret");
          assert.match(
            pre.stderr,
            /auth\.password_file = \S+\/etc\/mqtt-proxy\/passwd: cannot read \(Permission denied/,
          );
          const broker = await systemd.execStart();
          running.push(broker);
          const status = await withTimeout(broker.finish(), 30_000, "start refusing");
          assert.notEqual(status.code, 0, "the broker started without its password file");
          assert.match(broker.stderr, /auth\.password_file = \S+: cannot read \(Permission denied/);
        }
        await Deno.chown(secret, 0, service.gid);
        await Deno.chmod(secret, 0o640);
      },
    );
  } finally {
    for (const broker of running) {
      broker.kill("SIGKILL");
      await broker.finish();
    }
    await user?.remove();
    await Deno.remove(work, { recursive: true });
  }
});
