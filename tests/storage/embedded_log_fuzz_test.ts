/**
 * The operation log's reader against damage: a log of twenty flushed groups, left by a crash, is cut at a
 * random offset or has a random byte changed, then the store starts on it. The start never fails, and it
 * replays exactly the records before the damage: a record cut short or failing its checksum ends its file's
 * replay (the rest is logged as dropped), whatever its header claims.
 *
 * Seeded and replayable: the seed is printed; `FUZZ_SEED=1234 deno test -A tests/storage/` replays one.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { readWholeQueue } from "../../src/storage/conformance.ts";
import { sample } from "../../src/storage/conformance_samples.ts";
import { LOG_SUFFIXES } from "../../src/storage/embedded/operation_log.ts";
import {
  capturingLogger,
  copyStoreFiles,
  embeddedStore,
  STORE_FILE,
  withTempDir,
} from "./embedded_helpers.ts";
import { Rng } from "../fuzz/fuzz.ts";

const GROUPS = 20;
const TRIALS = 40;
/** A log record's header: body length, checksum, sequence (operation_log.ts). */
const HEADER_BYTES = 16;

/** Where each record of a log file ends. */
function recordEnds(log: Uint8Array): number[] {
  const view = new DataView(log.buffer, log.byteOffset, log.byteLength);
  const ends: number[] = [];
  for (let at = 0; at < log.byteLength; at = ends[ends.length - 1]) {
    ends.push(at + HEADER_BYTES + view.getUint32(at, true));
  }
  return ends;
}

Deno.test("embedded log fuzz: a log cut or changed at a random place replays exactly the records before it", async () => {
  const seed = Number(Deno.env.get("FUZZ_SEED") ?? Math.floor(Math.random() * 2 ** 31));
  // deno-lint-ignore no-console
  console.log(`    [log fuzz] seed ${seed}`);
  const rng = new Rng(seed);
  await withTempDir(async (dir) => {
    const live = join(dir, "live"), crashed = join(dir, "crashed");
    const storage = embeddedStore(live, { applyIntervalMs: 3_600_000 });
    await storage.start();
    try {
      storage.saveSession(sample.session("a"));
      for (let group = 0; group < GROUPS; group++) {
        const payload = new Uint8Array(rng.int(0, 3000)).fill(group);
        storage.saveQueueEntry(
          sample.entry("a", storage.appendMessage(sample.message(`t/${group}`, { payload }))),
        );
        await storage.flush();
      }
      await Deno.mkdir(crashed);
      await copyStoreFiles(live, crashed);
    } finally {
      await storage.stop();
    }
    const logPath = join(crashed, STORE_FILE + LOG_SUFFIXES[0]);
    const log = Deno.readFileSync(logPath);
    const ends = recordEnds(log);
    assert.equal(ends.length, GROUPS, "every group is a record of the first file, none applied");

    for (let trial = 0; trial < TRIALS; trial++) {
      const copy = join(dir, `trial-${trial}`);
      await Deno.mkdir(copy);
      await copyStoreFiles(crashed, copy);
      const at = rng.int(0, log.byteLength - 1);
      const cut = rng.bool();
      const damaged = cut ? log.slice(0, at) : log.slice();
      if (!cut) damaged[at] ^= rng.int(1, 255);
      Deno.writeFileSync(join(copy, STORE_FILE + LOG_SUFFIXES[0]), damaged);
      // The record holding the damage and those after it are dropped; the session is in the first.
      const intact = ends.filter((end) => end <= at).length;
      const what = `trial ${trial}: ${cut ? "cut" : "byte changed"} at ${at}`;
      // A cut between two records leaves nothing torn behind.
      const torn = !cut || (at > 0 && !ends.includes(at));

      const logger = capturingLogger();
      const reopened = embeddedStore(copy, { logger });
      const snapshot = await reopened.start();
      const topics = intact > 0 ? (await readWholeQueue(reopened, "a")).map((d) => d.message.topic) : [];
      await reopened.stop();
      assert.equal(snapshot.sessions.length, intact > 0 ? 1 : 0, what);
      assert.deepEqual(topics, Array.from({ length: intact }, (_, group) => `t/${group}`), what);
      const dropped = logger.events.filter((event) => event.event === "storage.log_tail_dropped");
      assert.equal(dropped.length, torn ? 1 : 0, `${what}: a torn or damaged record is logged once`);
      await Deno.remove(copy, { recursive: true });
    }
  });
});
