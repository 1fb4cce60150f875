/**
 * The RocketMQ log's read by offset without RocketMQ: stored messages decoded from bytes laid out as the
 * broker's commit log lays them out, and the pull reader over a fake broker that shows what it pulls,
 * commits and applies, and when.
 */
import assert from "node:assert/strict";
import v8 from "node:v8";
import vm from "node:vm";
import { crc32, deflateSync } from "node:zlib";
import type { LogEntry } from "../../../src/storage/cluster_log.ts";
import type { LogPuller, PulledBatch } from "../../../src/storage/rocketmq/broker_puller.ts";
import { newWriter, packEntries } from "../../../src/storage/rocketmq/frames.ts";
import { silentLogger } from "../../../src/storage/rocketmq/options.ts";
import { PullReader } from "../../../src/storage/rocketmq/pull_reader.ts";
import { decodeStoredMessages } from "../../../src/storage/rocketmq/stored_messages.ts";

const text = (value: string) => new TextEncoder().encode(value);
const MAGIC_V1 = -626843481;
const MAGIC_V2 = -626843477;

/** One message in the commit log's layout (MessageDecoder in RocketMQ's Java code). */
function stored(
  queueOffset: number,
  body: Uint8Array,
  { sysFlag = 0, magic = MAGIC_V1, crcOf = body }: { sysFlag?: number; magic?: number; crcOf?: Uint8Array } =
    {},
): Uint8Array {
  const bornHost = sysFlag & 0x10 ? 20 : 8;
  const storeHost = sysFlag & 0x20 ? 20 : 8;
  const topic = text("mqtt_log");
  const properties = text("UNIQ_KEY\u0001abc\u0002");
  const topicLengthBytes = magic === MAGIC_V2 ? 2 : 1;
  const size = 4 + 4 + 4 + 4 + 4 + 8 + 8 + 4 + 8 + bornHost + 8 + storeHost + 4 + 8 + 4 + body.length +
    topicLengthBytes + topic.length + 2 + properties.length;
  const bytes = new Uint8Array(size);
  const view = new DataView(bytes.buffer);
  let p = 0;
  const int = (value: number) => (view.setInt32(p, value), p += 4);
  const long = (value: number) => (view.setBigInt64(p, BigInt(value)), p += 8);
  int(size);
  int(magic);
  int(crc32(crcOf) & 0x7fffffff);
  int(0); // queue id
  int(0); // flag
  long(queueOffset);
  long(123_456); // physical offset
  int(sysFlag);
  long(Date.now()); // born timestamp
  p += bornHost;
  long(Date.now()); // store timestamp
  p += storeHost;
  int(0); // reconsume times
  long(0); // prepared transaction offset
  int(body.length);
  bytes.set(body, p);
  p += body.length;
  if (topicLengthBytes === 2) view.setInt16(p, topic.length);
  else view.setInt8(p, topic.length);
  p += topicLengthBytes;
  bytes.set(topic, p);
  p += topic.length;
  view.setInt16(p, properties.length);
  bytes.set(properties, p + 2);
  return bytes;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let at = 0;
  for (const part of parts) (out.set(part, at), at += part.length);
  return out;
}

Deno.test("stored messages: offsets and bodies of a pull answer, IPv4 or IPv6 hosts, either magic code", () => {
  const bodies = [text("first"), new Uint8Array(0), text("third, stored with IPv6 hosts"), text("fourth")];
  const answer = concat([
    stored(7, bodies[0]),
    stored(8, bodies[1]),
    stored(9, bodies[2], { sysFlag: 0x10 | 0x20 }),
    stored(10, bodies[3], { magic: MAGIC_V2 }),
  ]);
  const messages = decodeStoredMessages(answer);
  assert.deepEqual(messages.map((m) => m.queueOffset), [7, 8, 9, 10]);
  assert.deepEqual(messages.map((m) => [...m.body]), bodies.map((b) => [...b]));
});

Deno.test("stored messages: a zlib-compressed body comes back inflated; a wrong CRC or a cut answer is refused", () => {
  const body = text("x".repeat(5000));
  const deflated = new Uint8Array(deflateSync(body));
  const [message] = decodeStoredMessages(stored(3, deflated, { sysFlag: 0x1 }));
  assert.deepEqual([...message.body], [...body]);
  assert.throws(() => decodeStoredMessages(stored(3, text("body"), { crcOf: text("other") })), /CRC/);
  const whole = stored(3, text("body"));
  assert.throws(() => decodeStoredMessages(whole.subarray(0, whole.length - 1)), /bad size/);
  assert.throws(() => decodeStoredMessages(stored(3, text("body"), { magic: 1 })), /magic/);
  assert.throws(() => decodeStoredMessages(stored(3, deflated, { sysFlag: 0x1 | 0x100 })), /zlib/);
});

/**
 * A broker queue of one-entry messages `e<offset>` (or the bodies `bodyAt` gives); a pull at the end
 * waits until `land()` adds one.
 */
class FakeBroker implements LogPuller {
  readonly calls: string[] = [];
  committed: number;
  #messages: number;
  #waiting: (() => void) | undefined;
  closed = false;

  constructor(
    start: number,
    messages: number,
    private readonly bodyAt = (at: number) => packEntries([text(`e${at}`)]),
  ) {
    this.committed = start;
    this.#messages = messages;
  }

  land(): void {
    this.#messages++;
    this.#waiting?.();
  }

  committedOffset(): Promise<number> {
    return Promise.resolve(this.committed);
  }

  async pull(offset: number, commitOffset: number): Promise<PulledBatch> {
    this.calls.push(`pull ${offset} commit ${commitOffset}`);
    this.committed = commitOffset;
    while (offset >= this.#messages) {
      if (this.closed) throw new Error("closed");
      await new Promise<void>((resolve) => this.#waiting = resolve);
    }
    const end = Math.min(this.#messages, offset + 2); // two messages per answer
    const messages = [];
    for (let at = offset; at < end; at++) {
      messages.push({ queueOffset: at, body: this.bodyAt(at) });
    }
    return { status: "found", messages, nextOffset: end, minOffset: 0, maxOffset: this.#messages };
  }

  commit(offset: number): Promise<void> {
    this.calls.push(`commit ${offset}`);
    this.committed = offset;
    return Promise.resolve();
  }

  close(): Promise<void> {
    this.closed = true;
    this.#waiting?.();
    return Promise.resolve();
  }
}

function pullReader(broker: LogPuller, counters = { entriesApplied: 0, resendsDropped: 0 }) {
  return new PullReader(broker, {
    suspendMs: 1000,
    requestTimeoutMs: 1000,
    logger: silentLogger,
    onReceiveResult: () => {},
    counters,
  });
}

async function until(what: string, done: () => boolean): Promise<void> {
  for (let turn = 0; turn < 2000 && !done(); turn++) await new Promise((resolve) => setTimeout(resolve, 1));
  assert.ok(done(), `gave up waiting for ${what}`);
}

Deno.test("pull reader: the next pull goes out while a batch is applied, and commits only what was applied", async () => {
  const broker = new FakeBroker(5, 9);
  const reader = pullReader(broker);
  const applied: string[] = [];
  const positions: bigint[] = [];
  let release: (() => void) | undefined;
  reader.start(async (entries: LogEntry[]) => {
    if (applied.length === 0) await new Promise<void>((resolve) => release = resolve); // hold the first batch
    applied.push(...entries.map((entry) => new TextDecoder().decode(entry.body)));
    positions.push(...entries.map((entry) => entry.position));
  });
  await until("the first batch to be held", () => release !== undefined);
  await until("the next pull", () => broker.calls.length === 5);
  const lookBack = ["pull 0 commit 5", "pull 2 commit 5", "pull 4 commit 5"];
  assert.deepEqual(
    broker.calls,
    [...lookBack, "pull 5 commit 5", "pull 7 commit 5"],
    "read back to the start for recent writers; the next pull sent before the first batch was applied",
  );
  release!();
  await until("every message", () => applied.length === 4);
  assert.deepEqual(applied, ["e5", "e6", "e7", "e8"]);
  assert.deepEqual(
    positions,
    [5n << 16n, 6n << 16n, 7n << 16n, 8n << 16n],
    "offset << 16 | index, as popped",
  );
  broker.land();
  await until("the message that landed later", () => applied.length === 5);
  await reader.stop(1000);
  assert.deepEqual(broker.calls, [
    ...lookBack,
    "pull 5 commit 5",
    "pull 7 commit 5",
    "pull 9 commit 7",
    "pull 10 commit 9",
    "commit 10",
  ]);
  assert.equal(broker.committed, 10, "stop() commits what was applied");
});

Deno.test("pull reader: a batch whose apply fails is applied again, nothing after it, and never committed", async () => {
  const broker = new FakeBroker(0, 4);
  const reader = pullReader(broker);
  const attempts: string[][] = [];
  const committedAtApply: number[] = [];
  reader.start((entries: LogEntry[]) => {
    attempts.push(entries.map((entry) => new TextDecoder().decode(entry.body)));
    committedAtApply.push(broker.committed);
    return attempts.length <= 2 ? Promise.reject(new Error("store full")) : Promise.resolve();
  });
  await until("the retries and the next batch", () => attempts.length === 4);
  assert.deepEqual(attempts, [["e0", "e1"], ["e0", "e1"], ["e0", "e1"], ["e2", "e3"]]);
  assert.deepEqual(committedAtApply, [0, 0, 0, 2], "a batch is committed only after its apply succeeded");
  await reader.stop(1000);
  assert.equal(broker.committed, 4);
});

/** V8's full collection, made reachable at run time (as the broker's MemoryReclaimer does). */
function fullCollection(): () => void {
  v8.setFlagsFromString("--expose-gc");
  return vm.runInNewContext("gc");
}

Deno.test("pull reader: the answers of pulls it has applied are not kept (a node reading the log does not grow)", async () => {
  const broker = new FakeBroker(0, 40);
  const answers: WeakRef<PulledBatch>[] = [];
  const pull = broker.pull.bind(broker);
  broker.pull = async (...args) => {
    const answer = await pull(...args);
    answers.push(new WeakRef(answer));
    return answer;
  };
  const reader = pullReader(broker);
  let applied = 0;
  reader.start((entries: LogEntry[]) => {
    applied += entries.length;
    return Promise.resolve();
  });
  await until("every message", () => applied === 40);
  await new Promise((resolve) => setTimeout(resolve, 0));
  fullCollection()();
  const kept = answers.filter((answer) => answer.deref() !== undefined).length;
  await reader.stop(1000);
  // The answer being awaited (the next pull, not yet answered) and the one just applied may still be held.
  assert.ok(kept <= 2, `${kept} of ${answers.length} pulled answers still in memory after a collection`);
});

/**
 * Offsets 0–5 of one writer, whose message at offset 2 was stored twice: its receipt was lost when the
 * proxy died, so it was sent again and landed at offset 3 too.
 */
function queueWithResend(): (at: number) => Uint8Array {
  const writer = newWriter();
  const sequenceAt = [1, 2, 3, 3, 4, 5];
  return (at) => packEntries([text(`m${sequenceAt[at]}`)], writer, sequenceAt[at]);
}

Deno.test("pull reader: a message the broker stored twice (a re-send after a lost receipt) is applied once", async () => {
  const broker = new FakeBroker(0, 6, queueWithResend());
  const counters = { entriesApplied: 0, resendsDropped: 0 };
  const reader = pullReader(broker, counters);
  const applied: string[] = [];
  const positions: bigint[] = [];
  reader.start((entries: LogEntry[]) => {
    applied.push(...entries.map((entry) => new TextDecoder().decode(entry.body)));
    positions.push(...entries.map((entry) => entry.position));
    return Promise.resolve();
  });
  await until("every message", () => applied.length >= 5);
  await reader.stop(1000);
  assert.deepEqual(counters, { entriesApplied: 5, resendsDropped: 1 }, "counted for /metrics");
  assert.deepEqual(applied, ["m1", "m2", "m3", "m4", "m5"]);
  assert.deepEqual(
    positions,
    [0n, 1n << 16n, 2n << 16n, 4n << 16n, 5n << 16n],
    "the copy at offset 3 dropped",
  );
  assert.equal(broker.committed, 6, "the copy's offset is read past and committed");
});

Deno.test("pull reader: after a restart between a message and its copy, the copy is still dropped (it looks back)", async () => {
  // Applied and committed up to offset 3: the original (2) was applied before the restart, its copy (3) not.
  const broker = new FakeBroker(3, 6, queueWithResend());
  const reader = pullReader(broker);
  const applied: string[] = [];
  reader.start((entries: LogEntry[]) => {
    applied.push(...entries.map((entry) => new TextDecoder().decode(entry.body)));
    return Promise.resolve();
  });
  await until("every message", () => applied.length >= 2);
  await reader.stop(1000);
  assert.deepEqual(applied, ["m4", "m5"]);
});
