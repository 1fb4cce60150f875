/**
 * The RocketMQ log's append side without RocketMQ: a fake `send` shows what is packed into each message,
 * and failures show the bounded retries.
 */
import assert from "node:assert/strict";
import { ClusterLogError } from "../../../src/storage/cluster_log.ts";
import { BatchingAppender } from "../../../src/storage/rocketmq/appender.ts";
import {
  EMPTY_MESSAGE_BYTES,
  newWriter,
  packEntries,
  ResendFilter,
  unpackEntries,
  unpackMessage,
} from "../../../src/storage/rocketmq/frames.ts";
import { consumerGroupFor } from "../../../src/storage/rocketmq/options.ts";

const text = (value: string) => new TextEncoder().encode(value);
const texts = (body: Uint8Array) => unpackEntries(body).map((entry) => new TextDecoder().decode(entry));

function appender(
  send: (body: Uint8Array) => Promise<void>,
  overrides: Partial<ConstructorParameters<typeof BatchingAppender>[0]> = {},
) {
  const results: unknown[] = [];
  const log = new BatchingAppender({
    maxBatchBytes: 1024,
    maxMessageBytes: 4096,
    maxPendingBytes: 1 << 20,
    appendTimeoutMs: 2000,
    lingerMs: 0,
    lingerBytes: 0,
    send,
    onSendResult: (error) => results.push(error),
    ...overrides,
  });
  return { log, results };
}

Deno.test("rocketmq appender: one send in flight; what is appended meanwhile goes in the next message, in order", async () => {
  const sent: string[][] = [];
  let release!: () => void;
  const firstSendHeld = new Promise<void>((resolve) => release = resolve);
  const { log } = appender(async (body) => {
    sent.push(texts(body));
    if (sent.length === 1) await firstSendHeld;
  });
  const first = log.append(text("a0"));
  await new Promise((resolve) => setTimeout(resolve, 10));
  const rest = Array.from({ length: 50 }, (_, i) => log.append(text(`b${i}`)));
  assert.equal(sent.length, 1, "nothing else is sent while a send is in flight");
  release();
  await Promise.all([first, ...rest]);
  assert.deepEqual(sent, [["a0"], Array.from({ length: 50 }, (_, i) => `b${i}`)]);
});

Deno.test("rocketmq appender: messages stay under maxBatchBytes; a larger entry goes alone; too large is refused", async () => {
  const sizes: number[] = [];
  const { log } = appender((body) => {
    sizes.push(body.length);
    return Promise.resolve();
  });
  const small = Array.from({ length: 40 }, () => log.append(new Uint8Array(100)));
  const big = log.append(new Uint8Array(3000));
  await Promise.all([...small, big]);
  assert.ok(sizes.every((size) => size <= 1024 || size === EMPTY_MESSAGE_BYTES + 4 + 3000), `sizes ${sizes}`);
  assert.ok(sizes.includes(EMPTY_MESSAGE_BYTES + 4 + 3000));
  await assert.rejects(log.append(new Uint8Array(5000)), ClusterLogError);
});

Deno.test("rocketmq appender: a failing service rejects appends with ClusterLogError after retries, within the timeout", async () => {
  let attempts = 0;
  const { log, results } = appender(() => {
    attempts++;
    return Promise.reject(new Error("UNAVAILABLE"));
  }, { appendTimeoutMs: 600 });
  const appends = [log.append(text("x")), log.append(text("y"))];
  for (const append of appends) {
    await assert.rejects(
      append,
      (error) => error instanceof ClusterLogError && /UNAVAILABLE/.test(error.message),
    );
  }
  assert.ok(attempts >= 2, `${attempts} attempts`);
  assert.ok(results.every((result) => result instanceof Error));
  assert.equal(log.idle, true);
});

Deno.test("rocketmq appender: the backlog is bounded; close() rejects what was never sent", async () => {
  const { log } = appender(() => new Promise(() => {}), { maxPendingBytes: 1000, appendTimeoutMs: 60_000 });
  const inFlight = log.append(new Uint8Array(10)); // taken by the send that never answers
  await new Promise((resolve) => setTimeout(resolve, 10));
  const queued = log.append(new Uint8Array(900));
  assert.equal(log.pendingBytes, 4 + 10 + 4 + 900, "the one in flight and the one queued, with their frames");
  await assert.rejects(log.append(new Uint8Array(200)), /backlog is full/);
  assert.equal(log.stats.appendsFailed, 1);
  await log.close(50);
  await assert.rejects(queued, /stopped before the entry was sent/);
  await assert.rejects(log.append(text("late")), ClusterLogError);
  assert.equal(log.stats.appendsFailed, 3, "refused, rejected at close, refused after close");
  void inFlight.catch(() => {});
});

Deno.test("rocketmq frames: pack and unpack round-trip; anything else is refused", () => {
  const entries = [text(""), text("a"), new Uint8Array(70000).fill(7), text("")];
  assert.deepEqual(unpackEntries(packEntries(entries)), entries);
  assert.deepEqual(unpackEntries(packEntries([])), []);
  assert.throws(() => unpackEntries(text("hello")), /not a cluster log message/);
  assert.throws(
    () => unpackEntries(packEntries([text("abc")]).subarray(0, EMPTY_MESSAGE_BYTES + 6)),
    /overruns/,
  );
  assert.throws(() => unpackEntries(Uint8Array.of(1, 0, 0)), /truncated/);
});

Deno.test("rocketmq frames: each message is stamped with its appender and a sequence; a retried send sends the same bytes", async () => {
  const sent: Uint8Array[] = [];
  const { log } = appender((body) => {
    sent.push(body.slice());
    return sent.length === 2
      ? Promise.reject(new Error("14 UNAVAILABLE: Connection dropped"))
      : Promise.resolve();
  });
  await log.append(text("a"));
  await log.append(text("b")); // its first send fails (stored or not, the appender cannot tell): sent again
  await log.append(text("c"));
  const stamps = sent.map((body) => unpackMessage(body).stamp);
  assert.equal(new Set(stamps.map((stamp) => stamp.writer)).size, 1, "one writer per appender");
  assert.deepEqual(stamps.map((stamp) => stamp.sequence), [1, 2, 2, 3]);
  assert.deepEqual(sent[2], sent[1], "the retry is byte for byte the first attempt");
  const otherSent: Uint8Array[] = [];
  await appender((body) => (otherSent.push(body.slice()), Promise.resolve())).log.append(text("x"));
  assert.notEqual(
    unpackMessage(otherSent[0]).stamp.writer,
    stamps[0].writer,
    "another appender, another writer",
  );
});

Deno.test("rocketmq frames: the resend filter drops only a later copy of a message already seen", () => {
  const filter = new ResendFilter();
  const a = unpackMessage(packEntries([], newWriter(), 1)).stamp.writer;
  const b = unpackMessage(packEntries([], newWriter(), 1)).stamp.writer;
  assert.equal(filter.fresh({ writer: a, sequence: 1 }, 10), true);
  assert.equal(filter.fresh({ writer: b, sequence: 1 }, 11), true, "writers are independent");
  assert.equal(filter.fresh({ writer: a, sequence: 2 }, 12), true);
  assert.equal(filter.fresh({ writer: a, sequence: 2 }, 13), false, "sent twice: the copy at a later offset");
  assert.equal(filter.fresh({ writer: a, sequence: 1 }, 14), false, "an older one's copy too");
  assert.equal(filter.fresh({ writer: a, sequence: 2 }, 12), true, "read again at its own offset: passed on");
  assert.equal(filter.fresh({ writer: a, sequence: 1 }, 10), true, "an earlier one read again: passed on");
  assert.equal(filter.fresh({ writer: a, sequence: 3 }, 15), true);
  assert.equal(filter.fresh({ writer: "", sequence: 0 }, 16), true, "unstamped (format 1): never dropped");
  assert.equal(filter.fresh({ writer: "", sequence: 0 }, 17), true);
});

Deno.test("rocketmq frames: a message of format 1 (no stamp) is still read", () => {
  const old = Uint8Array.of(1, 0, 0, 0, 2, 104, 105);
  assert.deepEqual(unpackMessage(old), { stamp: { writer: "", sequence: 0 }, entries: [text("hi")] });
});

Deno.test("rocketmq names: a node's consumer group is within RocketMQ's alphabet and unique per node id", () => {
  assert.equal(consumerGroupFor("node-1"), "mqtt-node-node-1");
  const odd = consumerGroupFor("host.example.com:1883");
  assert.match(odd, /^mqtt-node-[A-Za-z0-9_-]+$/);
  assert.notEqual(odd, consumerGroupFor("host_example_com_1883"));
  assert.ok(consumerGroupFor("x".repeat(500)).length <= 120);
});
