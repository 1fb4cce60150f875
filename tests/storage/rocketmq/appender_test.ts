/**
 * The RocketMQ log's append side without RocketMQ: a fake `send` shows what is packed into each message,
 * and failures show the bounded retries.
 */
import assert from "node:assert/strict";
import { ClusterLogError } from "../../../src/storage/cluster_log.ts";
import { BatchingAppender } from "../../../src/storage/rocketmq/appender.ts";
import { packEntries, unpackEntries } from "../../../src/storage/rocketmq/frames.ts";
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
  assert.ok(sizes.every((size) => size <= 1024 || size === 1 + 4 + 3000), `sizes ${sizes}`);
  assert.ok(sizes.includes(1 + 4 + 3000));
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
  await assert.rejects(log.append(new Uint8Array(200)), /backlog is full/);
  await log.close(50);
  await assert.rejects(queued, /stopped before the entry was sent/);
  await assert.rejects(log.append(text("late")), ClusterLogError);
  void inFlight.catch(() => {});
});

Deno.test("rocketmq frames: pack and unpack round-trip; anything else is refused", () => {
  const entries = [text(""), text("a"), new Uint8Array(70000).fill(7), text("")];
  assert.deepEqual(unpackEntries(packEntries(entries)), entries);
  assert.deepEqual(unpackEntries(packEntries([])), []);
  assert.throws(() => unpackEntries(text("hello")), /not a cluster log message/);
  assert.throws(() => unpackEntries(packEntries([text("abc")]).subarray(0, 6)), /overruns/);
  assert.throws(() => unpackEntries(Uint8Array.of(1, 0, 0)), /truncated/);
});

Deno.test("rocketmq names: a node's consumer group is within RocketMQ's alphabet and unique per node id", () => {
  assert.equal(consumerGroupFor("node-1"), "mqtt-node-node-1");
  const odd = consumerGroupFor("host.example.com:1883");
  assert.match(odd, /^mqtt-node-[A-Za-z0-9_-]+$/);
  assert.notEqual(odd, consumerGroupFor("host_example_com_1883"));
  assert.ok(consumerGroupFor("x".repeat(500)).length <= 120);
});
