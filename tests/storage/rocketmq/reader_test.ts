/**
 * The RocketMQ log's read side without RocketMQ: a fake consumer that behaves like an orderly group (it
 * hands out the next batch only once the previous one is acknowledged) shows when the reader receives,
 * applies and acknowledges.
 */
import assert from "node:assert/strict";
import type { LogEntry } from "../../../src/storage/cluster_log.ts";
import { newWriter, packEntries } from "../../../src/storage/rocketmq/frames.ts";
import { silentLogger } from "../../../src/storage/rocketmq/options.ts";
import { type LogConsumer, LogReader, type ReceivedMessage } from "../../../src/storage/rocketmq/reader.ts";

const text = (value: string) => new TextEncoder().encode(value);

/** An orderly group over `count` one-entry messages: each receive waits until the previous batch is acked. */
class OrderlyFake implements LogConsumer<ReceivedMessage> {
  readonly calls: string[] = [];
  #next = 0;
  #unacked = 0;
  #waiting: (() => void) | undefined;
  #releaseAck: (() => void) | undefined;
  /** When set, acks wait until `releaseAck()`. */
  holdAcks = false;

  constructor(
    private readonly count: number,
    private readonly bodyAt = (offset: number) => packEntries([text(`e${offset}`)]),
  ) {}

  async receive(): Promise<ReceivedMessage[]> {
    this.calls.push("receive");
    // Like a long poll: parked while the previous batch is out or nothing is left, bounded by the test.
    for (let turn = 0; this.#unacked > 0 || this.#next >= this.count; turn++) {
      if (turn > 100) return [];
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, 5);
        function done() {
          clearTimeout(timer);
          resolve();
        }
        this.#waiting = done;
      });
    }
    const offset = this.#next++;
    this.#unacked = 1;
    this.calls.push(`got ${offset}`);
    return [{ messageId: `m${offset}`, offset, corrupted: false, body: this.bodyAt(offset) }];
  }

  async ack(message: ReceivedMessage): Promise<void> {
    this.calls.push(`ack ${message.offset}`);
    if (this.holdAcks) await new Promise<void>((resolve) => this.#releaseAck = resolve);
    this.#unacked = 0;
    this.calls.push(`acked ${message.offset}`);
    this.#waiting?.();
  }

  releaseAck(): void {
    this.#releaseAck?.();
  }

  changeInvisibleDuration(): Promise<void> {
    return Promise.resolve();
  }
}

function reader(consumer: LogConsumer<ReceivedMessage>, counters = { entriesApplied: 0, resendsDropped: 0 }) {
  return new LogReader(consumer, {
    receiveBatch: 32,
    invisibleMs: 30_000,
    awaitMs: 1000,
    requestTimeoutMs: 1000,
    logger: silentLogger,
    onReceiveResult: () => {},
    counters,
  });
}

Deno.test("rocketmq reader: the next receive is already waiting while a batch's ack is in flight", async () => {
  const consumer = new OrderlyFake(3);
  consumer.holdAcks = true;
  const applied: string[] = [];
  const log = reader(consumer);
  log.start((entries: LogEntry[]) => {
    applied.push(...entries.map((entry) => new TextDecoder().decode(entry.body)));
    return Promise.resolve();
  });
  for (let turn = 0; turn < 1000 && !consumer.calls.includes("ack 0"); turn++) {
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  await new Promise((resolve) => setTimeout(resolve, 1));
  const atAck = consumer.calls.slice(consumer.calls.indexOf("ack 0"));
  assert.deepEqual(atAck, ["ack 0", "receive"], "a receive goes out with the ack, before it completes");
  consumer.holdAcks = false;
  consumer.releaseAck();
  for (let turn = 0; turn < 1000 && applied.length < 3; turn++) {
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  assert.deepEqual(applied, ["e0", "e1", "e2"], "applied once each, in order");
  await log.stop(5000);
  const order = consumer.calls.filter((call) => /^(got|acked)/.test(call));
  assert.deepEqual(order, ["got 0", "acked 0", "got 1", "acked 1", "got 2", "acked 2"]);
});

Deno.test("rocketmq reader: a message stored twice (a re-send after a lost receipt) is applied once and both are acked", async () => {
  const writer = newWriter();
  const sequenceAt = [1, 2, 2, 3]; // offset 2 is offset 1 sent again
  const consumer = new OrderlyFake(
    4,
    (offset) => packEntries([text(`m${sequenceAt[offset]}`)], writer, sequenceAt[offset]),
  );
  const applied: string[] = [];
  const counters = { entriesApplied: 0, resendsDropped: 0 };
  const log = reader(consumer, counters);
  log.start((entries: LogEntry[]) => {
    applied.push(...entries.map((entry) => new TextDecoder().decode(entry.body)));
    return Promise.resolve();
  });
  for (let turn = 0; turn < 1000 && !consumer.calls.includes("acked 3"); turn++) {
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  await log.stop(5000);
  assert.deepEqual(counters, { entriesApplied: 3, resendsDropped: 1 }, "counted for /metrics");
  assert.deepEqual(applied, ["m1", "m2", "m3"]);
  assert.deepEqual(consumer.calls.filter((call) => call.startsWith("acked")), [
    "acked 0",
    "acked 1",
    "acked 2",
    "acked 3",
  ]);
});
