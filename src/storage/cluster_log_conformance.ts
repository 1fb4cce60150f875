/**
 * The cluster log conformance suite: every adapter of `cluster_log.ts` must pass it (memory/ and
 * rocketmq/ do; see tests/storage/). Each case uses node ids of its own, so every reader is new to the log
 * and starts at its tail. The suite owns the log while it runs: no other process may append to it.
 */
import assert from "node:assert/strict";
import { type ClusterLog, ClusterLogError, type LogEntry } from "./cluster_log.ts";

export interface ClusterLogFactory {
  /** A new, not started handle for node `nodeId`; handles with one nodeId share a cursor (a restart). */
  open(nodeId: string): ClusterLog;
  /** Makes the log service unreachable and brings it back (for runClusterLogOutageConformance). */
  outage?: { begin(): Promise<void>; end(): Promise<void> };
  /** How long an append may take to settle when the service is gone (the adapter's append timeout). */
  appendTimeoutMs: number;
  /** The longest the suite waits for an awaited event before it fails (a bound, not a speed check). */
  waitMs?: number;
  /** Deno.test options for the adapter (e.g. sanitizers that a client library trips). */
  testOptions?: Omit<Deno.TestDefinition, "name" | "fn">;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const text = (value: string) => encoder.encode(value);

/** Applies a log into memory, checking the order rules as it goes; `problems` must stay empty. */
export class RecordingReader {
  /** Every batch handed to apply, failed ones included. */
  readonly deliveries: LogEntry[][] = [];
  readonly #applied = new Map<bigint, Uint8Array>();
  /** Positions in the order they were first applied. */
  readonly positions: bigint[] = [];
  readonly problems: string[] = [];
  /** apply throws for this many more calls. */
  failNext = 0;

  constructor(readonly log: ClusterLog) {
    log.consume((entries) => this.#apply(entries));
  }

  get count(): number {
    return this.positions.length;
  }

  bodies(): Uint8Array[] {
    return this.positions.map((position) => this.#applied.get(position)!);
  }

  texts(): string[] {
    return this.bodies().map((body) => decoder.decode(body));
  }

  #apply(entries: LogEntry[]): Promise<void> {
    this.deliveries.push(entries);
    if (this.failNext > 0) {
      this.failNext--;
      return Promise.reject(new Error("apply fails on purpose"));
    }
    for (const entry of entries) {
      const seen = this.#applied.get(entry.position);
      const last = this.positions.at(-1);
      if (seen) {
        if (!equalBytes(seen, entry.body)) {
          this.problems.push(`position ${entry.position} came with another body`);
        }
      } else if (last !== undefined && entry.position <= last) {
        this.problems.push(`position ${entry.position} came after ${last}`);
      } else {
        this.#applied.set(entry.position, entry.body);
        this.positions.push(entry.position);
      }
    }
    return Promise.resolve();
  }
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}

async function waitUntil(what: string, waitMs: number, done: () => boolean): Promise<void> {
  const deadline = Date.now() + waitMs;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`gave up after ${waitMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

interface CaseContext {
  /** Opens and starts a handle for node `<case id>-<suffix>`; stopped at the end of the case. */
  start(suffix: string): Promise<ClusterLog>;
  /** A started handle plus a reader on it. */
  reader(suffix: string): Promise<RecordingReader>;
  waitFor(reader: RecordingReader, count: number): Promise<void>;
  waitMs: number;
}

type RegisterCase = (title: string, body: (ctx: CaseContext) => Promise<void>) => void;

/** Registers a case as `cluster log conformance (<name>): <title>`; the handles it starts are stopped after it. */
function caseRegistrar(name: string, factory: ClusterLogFactory): RegisterCase {
  const waitMs = factory.waitMs ?? 60_000;
  return (title, body) => {
    Deno.test({
      ...factory.testOptions,
      name: `cluster log conformance (${name}): ${title}`,
      fn: async () => {
        const caseId = `c${crypto.randomUUID().slice(0, 8)}`;
        const opened: ClusterLog[] = [];
        const start = async (suffix: string) => {
          const log = factory.open(`${caseId}-${suffix}`);
          opened.push(log);
          await log.start();
          return log;
        };
        const ctx: CaseContext = {
          start,
          reader: async (suffix) => new RecordingReader(await start(suffix)),
          waitFor: (reader, count) =>
            waitUntil(`${count} entries (have ${reader.count})`, waitMs, () => reader.count >= count),
          waitMs,
        };
        try {
          await body(ctx);
        } finally {
          await Promise.all(opened.map((log) => log.stop()));
        }
      },
    });
  };
}

/** Registers the suite's tests (all but the outage case) as `cluster log conformance (<name>): ...`. */
export function runClusterLogConformance(name: string, factory: ClusterLogFactory): void {
  const test = caseRegistrar(name, factory);

  test("health is not ok before start and after stop; append and consume refuse outside them", async () => {
    const log = factory.open(`h${crypto.randomUUID().slice(0, 8)}`);
    assert.equal(log.health().ok, false);
    await assert.rejects(log.append(text("early")), ClusterLogError);
    assert.throws(() => log.consume(() => Promise.resolve()), ClusterLogError);
    await log.start();
    try {
      assert.equal(log.health().ok, true, log.health().detail);
      assert.notEqual(log.health().detail, "");
    } finally {
      await log.stop();
    }
    assert.equal(log.health().ok, false);
    await assert.rejects(log.append(text("late")), ClusterLogError);
    await log.stop(); // twice is fine
  });

  test("stats count what was appended, sent and applied (failed appends: the outage case)", async (ctx) => {
    const writer = await ctx.start("writer");
    const reader = await ctx.reader("reader");
    const fresh = writer.stats();
    assert.deepEqual(
      [fresh.entriesAppended, fresh.appendsFailed, fresh.pendingBytes],
      [0, 0, 0],
      "nothing before the first append",
    );
    await Promise.all(Array.from({ length: 20 }, (_, i) => writer.append(text(`s${i}`))));
    await ctx.waitFor(reader, 20);
    const written = writer.stats();
    assert.equal(written.entriesAppended, 20);
    assert.equal(written.pendingBytes, 0, "everything acknowledged");
    assert.ok(written.messagesSent >= 1 && written.messagesSent <= 20, `${written.messagesSent} messages`);
    await waitUntil("the reader's count", ctx.waitMs, () => reader.log.stats().entriesApplied >= 20);
    assert.equal(reader.log.stats().entriesApplied, 20, "a reader new to the log counts what it applied");
    assert.equal(reader.log.stats().entriesAppended, 0, "the reader appended nothing");
  });

  test("every reader gets every entry, in one total order identical on all readers", async (ctx) => {
    const nodes = ["a", "b", "c"];
    const readers = await Promise.all(nodes.map((node) => ctx.reader(node)));
    const perNode = 300;
    await Promise.all(
      readers.flatMap((reader, n) =>
        Array.from({ length: perNode }, (_, i) => reader.log.append(text(`${nodes[n]}:${i}`)))
      ),
    );
    for (const reader of readers) await ctx.waitFor(reader, nodes.length * perNode);
    for (const reader of readers) {
      assert.deepEqual(reader.problems, []);
      assert.equal(reader.count, nodes.length * perNode);
      assert.deepEqual(reader.positions, readers[0].positions);
      assert.deepEqual(reader.texts(), readers[0].texts());
    }
    for (const node of nodes) {
      const own = readers[0].texts().filter((entry) => entry.startsWith(`${node}:`));
      assert.deepEqual(
        own,
        Array.from({ length: perNode }, (_, i) => `${node}:${i}`),
        `order of ${node}'s appends`,
      );
    }
  });

  test("one appender's entries land in the order append was called, awaited or not", async (ctx) => {
    const reader = await ctx.reader("reader");
    const writer = await ctx.start("writer");
    const expected: string[] = [];
    const pending: Promise<void>[] = [];
    for (let round = 0; round < 5; round++) {
      for (let i = 0; i < 50; i++) {
        expected.push(`${round}.${i}`);
        pending.push(writer.append(text(`${round}.${i}`)));
      }
      expected.push(`${round}.awaited`);
      await writer.append(text(`${round}.awaited`));
    }
    await Promise.all(pending);
    await ctx.waitFor(reader, expected.length);
    assert.deepEqual(reader.problems, []);
    assert.deepEqual(reader.texts(), expected);
  });

  test("a reader new to the log starts at its tail and gets every entry from there", async (ctx) => {
    const writer = await ctx.start("writer");
    for (let i = 0; i < 20; i++) await writer.append(text(`before:${i}`));
    const late = await ctx.reader("late");
    const after = Array.from({ length: 50 }, (_, i) => `after:${i}`);
    await Promise.all(after.map((entry) => writer.append(text(entry))));
    await ctx.waitFor(late, after.length);
    // The log is totally ordered: an entry from before the reader started would have come first.
    assert.deepEqual(late.problems, []);
    assert.deepEqual(late.texts(), after);
  });

  test("an apply that throws gets the same batch again, same positions, nothing after it meanwhile", async (ctx) => {
    const reader = await ctx.reader("reader");
    reader.failNext = 3;
    const writer = await ctx.start("writer");
    const expected = Array.from({ length: 40 }, (_, i) => `e${i}`);
    await Promise.all(expected.map((entry) => writer.append(text(entry))));
    await ctx.waitFor(reader, expected.length);
    assert.deepEqual(reader.problems, []);
    assert.deepEqual(reader.texts(), expected);
    assert.ok(reader.deliveries.length >= 4, `${reader.deliveries.length} deliveries`);
    const first = reader.deliveries[3][0];
    for (const failed of reader.deliveries.slice(0, 3)) {
      assert.equal(failed[0].position, first.position, "a redelivery starts where the failed batch did");
      assert.deepEqual(failed[0].body, first.body);
    }
  });

  test("a restarted reader resumes after its last applied batch", async (ctx) => {
    const writer = await ctx.start("writer");
    const first = await ctx.reader("node");
    const before = Array.from({ length: 30 }, (_, i) => `one:${i}`);
    await Promise.all(before.map((entry) => writer.append(text(entry))));
    await ctx.waitFor(first, before.length);
    await first.log.stop();
    const after = Array.from({ length: 30 }, (_, i) => `two:${i}`);
    await Promise.all(after.map((entry) => writer.append(text(entry))));
    const second = await ctx.reader("node"); // same node id: same cursor
    await ctx.waitFor(second, after.length);
    assert.deepEqual(first.texts(), before);
    assert.deepEqual(second.problems, []);
    assert.deepEqual(second.texts(), after);
    assert.ok(second.positions[0] > first.positions.at(-1)!);
  });

  test("a batch whose apply never succeeded is delivered again after a restart", async (ctx) => {
    const writer = await ctx.start("writer");
    const failing = await ctx.reader("node");
    failing.failNext = Number.POSITIVE_INFINITY;
    const entries = Array.from({ length: 5 }, (_, i) => `stuck:${i}`);
    await Promise.all(entries.map((entry) => writer.append(text(entry))));
    await waitUntil("a failed delivery", ctx.waitMs, () => failing.deliveries.length > 0);
    await failing.log.stop();
    const failedPositions = failing.deliveries[0].map((entry) => entry.position);
    const restarted = await ctx.reader("node");
    await ctx.waitFor(restarted, entries.length);
    assert.deepEqual(restarted.texts(), entries);
    assert.deepEqual(restarted.positions.slice(0, failedPositions.length), failedPositions);
  });

  test("small, empty and 1 MiB entries round-trip byte-exact and in order", async (ctx) => {
    const reader = await ctx.reader("reader");
    const writer = await ctx.start("writer");
    let seed = 7;
    const random = () => (seed = (seed * 1103515245 + 12345) >>> 0) >>> 16;
    const bodies: Uint8Array[] = [];
    const randomBody = (length: number) => Uint8Array.from({ length }, () => random() & 0xff);
    for (let i = 0; i < 3000; i++) bodies.push(randomBody(random() % 200));
    bodies.push(new Uint8Array(0), randomBody(1024 * 1024), new Uint8Array(0));
    for (let i = 0; i < 200; i++) bodies.push(randomBody(random() % 64));
    await Promise.all(bodies.map((body) => writer.append(body)));
    await ctx.waitFor(reader, bodies.length);
    assert.deepEqual(reader.problems, []);
    const got = reader.bodies();
    assert.equal(got.length, bodies.length);
    got.forEach((body, i) =>
      assert.ok(equalBytes(body, bodies[i]), `entry ${i} (${bodies[i].length} bytes) differs`)
    );
  });

  test("stop() settles every append in flight; what it acknowledged is in the log", async (ctx) => {
    const reader = await ctx.reader("reader");
    const writer = await ctx.start("writer");
    const appends = Array.from({ length: 200 }, (_, i) => writer.append(text(`s${i}`)));
    await writer.stop();
    const settled = await Promise.allSettled(appends);
    const acked: string[] = [];
    settled.forEach((result, i) => {
      if (result.status === "fulfilled") acked.push(`s${i}`);
      else assert.ok(result.reason instanceof ClusterLogError, String(result.reason));
    });
    await assert.rejects(writer.append(text("after stop")), ClusterLogError);
    await ctx.waitFor(reader, acked.length);
    assert.deepEqual(reader.texts().slice(0, acked.length), acked);
  });
}

/** Registers the outage case (needs `factory.outage`); separate because a real outage takes a while. */
export function runClusterLogOutageConformance(name: string, factory: ClusterLogFactory): void {
  const { outage, appendTimeoutMs } = factory;
  if (!outage) throw new Error("the outage case needs factory.outage");
  caseRegistrar(name, factory)(
    "an outage mid-stream: appends settle within their timeout, health says so, all resumes",
    async (ctx) => {
      const reader = await ctx.reader("reader");
      const writer = await ctx.start("writer");
      const acked: string[] = [];
      const failures: string[] = [];
      let next = 0;
      let recovered = false;
      let ackedAfterRecovery = 0;
      const appendOne = async () => {
        const entry = `o${next++}`;
        const settle = writer.append(text(entry));
        // Liveness, not speed: an append never hangs while the service is gone.
        const bound = appendTimeoutMs * 3;
        const result = await Promise.race([
          settle.then(() => "acked", (error) => error instanceof ClusterLogError ? "failed" : `${error}`),
          new Promise<string>((resolve) => setTimeout(() => resolve("hung"), bound)),
        ]);
        if (result === "acked") {
          acked.push(entry);
          if (recovered) ackedAfterRecovery++;
        } else if (result === "failed") failures.push(entry);
        else throw new Error(`append of ${entry} did not settle within ${bound} ms: ${result}`);
      };
      const stream = (async () => {
        // Bounded: ends after 100 appends acknowledged since the service came back (or the wait bound).
        const deadline = Date.now() + ctx.waitMs * 3;
        while (ackedAfterRecovery < 100 && Date.now() < deadline) {
          await Promise.all(Array.from({ length: 5 }, appendOne));
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
      })();
      await waitUntil("entries before the outage", ctx.waitMs, () => acked.length >= 50);
      await outage.begin();
      await waitUntil(
        "health to report the outage",
        ctx.waitMs,
        () => !writer.health().ok && !reader.log.health().ok,
      );
      const detail = writer.health().detail;
      await waitUntil(
        "an append to fail (not hang) during the outage",
        ctx.waitMs,
        () => failures.length > 0,
      );
      await outage.end();
      recovered = true;
      await stream;
      assert.ok(
        ackedAfterRecovery >= 100,
        `only ${ackedAfterRecovery} appends acknowledged after the outage`,
      );
      const { entriesAppended, appendsFailed } = writer.stats();
      assert.deepEqual(
        { entriesAppended, appendsFailed },
        { entriesAppended: acked.length, appendsFailed: failures.length },
        "stats count every acknowledged and every failed append",
      );
      await waitUntil("health to recover", ctx.waitMs, () => writer.health().ok && reader.log.health().ok);
      const missing = () => {
        const applied = new Set(reader.texts());
        return acked.filter((entry) => !applied.has(entry));
      };
      await waitUntil("every acknowledged entry", ctx.waitMs, () => missing().length === 0);
      assert.notEqual(detail, "");
      assert.deepEqual(reader.problems, []);
      // A send that timed out may still have landed, and its retry lands again: first occurrences keep order.
      const order = [...new Set(reader.texts())].map((entry) => Number(entry.slice(1)));
      assert.deepEqual(order, [...order].sort((a, b) => a - b), "one appender's order");
    },
  );
}
