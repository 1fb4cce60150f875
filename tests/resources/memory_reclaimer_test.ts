/**
 * After a burst of messages into offline queues, the broker gives the memory back to the system
 * (MemoryReclaimer and the storage worker) instead of keeping it resident: a quiet broker's V8 would not
 * collect the burst's garbage for a long time, the worker would keep the payload buffers it has written
 * until its own next collection, and glibc returns only the top of its main heap by itself.
 */
import assert from "node:assert/strict";
import { encode, type ProtocolVersion } from "../../src/codec/mod.ts";
import { RECLAIM_INTERVAL_MS } from "../../src/observe/memory_reclaimer.ts";
import { connect, publishPacket, subscribe, subscription } from "../helpers/clients.ts";
import { MB, startLimitedBroker } from "./support.ts";

const SESSIONS = 10;
const PER_SESSION = 6_000;
const PAYLOAD = "x".repeat(4096);
const WINDOW = 500;
const V4: ProtocolVersion = 4;

/**
 * Resident bytes of the process's main malloc heap (the `[heap]` mapping), read by a child process: Deno lets
 * a process read /proc only with --allow-all, and the test task grants named permissions.
 */
async function heapResident(pid: number): Promise<number> {
  const output = await new Deno.Command("cat", { args: [`/proc/${pid}/smaps`] }).output();
  assert.ok(output.success, `cannot read /proc/${pid}/smaps`);
  const smaps = new TextDecoder().decode(output.stdout);
  const at = smaps.indexOf("[heap]");
  if (at < 0) return 0;
  return Number(/\nRss:\s+(\d+) kB/.exec(smaps.slice(at))![1]) * 1024;
}

Deno.test("memory: a burst's memory goes back to the system once the broker is quiet", async () => {
  const storeDir = await Deno.makeTempDir({ prefix: "mqtt-proxy-trim-" });
  const limited = await startLimitedBroker(["storage.type = embedded", `storage.dir = ${storeDir}`]);
  try {
    const pid = limited.broker.child.pid;
    for (let session = 0; session < SESSIONS; session++) {
      const { client } = await connect(limited.port, `queue-${session}`, V4, { cleanStart: false });
      await subscribe(client, V4, [subscription(`burst/${session}`, 1)]);
      await client.close();
    }
    const before = await heapResident(pid);
    // The heap's largest size while the burst runs (a trim may already run during it).
    let peak = before;
    let bursting = true;
    const watching = (async () => {
      while (bursting) {
        peak = Math.max(peak, await heapResident(pid));
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    })();

    const { client: publisher } = await connect(limited.port, "publisher", V4);
    const total = SESSIONS * PER_SESSION;
    for (let sent = 0; sent < total;) {
      const window = [];
      for (const end = Math.min(total, sent + WINDOW); sent < end; sent++) {
        const packet = publishPacket(`burst/${sent % SESSIONS}`, PAYLOAD, 1, {
          packetId: (sent % WINDOW) + 1,
        });
        window.push(encode(packet, V4));
      }
      const bytes = new Uint8Array(window.reduce((sum, frame) => sum + frame.length, 0));
      window.reduce((offset, frame) => (bytes.set(frame, offset), offset + frame.length), 0);
      await publisher.send(bytes);
      for (let acked = 0; acked < window.length; acked++) {
        assert.equal((await publisher.readPacket()).type, "puback");
      }
    }
    await publisher.close();
    bursting = false;
    await watching;
    assert.ok(
      peak - before >= 16 * MB,
      `the burst should grow the main heap (it is what this test watches): ${before} -> ${peak} bytes`,
    );

    // Some seconds after the burst's end the broker is quiet: the heap goes back to about its size
    // before the burst (at most half the growth is left). Without the reclaimer the heap kept its size to the
    // byte, and with only a trim it depended on when V8 happened to collect (CI: 27.47 -> 27.40 MB).
    const settled = before + (peak - before) / 2;
    let after = peak;
    for (let waited = 0; waited < RECLAIM_INTERVAL_MS * 3 && after > settled; waited += 250) {
      await new Promise((resolve) => setTimeout(resolve, 250));
      after = await heapResident(pid);
    }
    assert.ok(
      after <= settled,
      `main heap before the burst ${before}, at its largest ${peak}, ${
        RECLAIM_INTERVAL_MS * 3
      } ms later ${after} bytes`,
    );
    assert.ok(await limited.alive());
  } finally {
    await limited.stop();
    await Deno.remove(storeDir, { recursive: true });
  }
});
