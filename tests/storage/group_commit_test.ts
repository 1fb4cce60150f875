import assert from "node:assert/strict";
import { setImmediate } from "node:timers";
import { StorageError } from "../../src/storage/mod.ts";
import { type CommitTarget, GroupCommit } from "../../src/storage/embedded/group_commit.ts";

/** A target whose syncs complete only when the test says so; records what each write contained. */
function controlledTarget() {
  const writes: string[][] = [];
  const syncs: PromiseWithResolvers<void>[] = [];
  const outcomes: (StorageError | undefined)[] = [];
  let failWrites: Error | undefined;
  const target: CommitTarget<string> = {
    write(operations) {
      if (failWrites) throw failWrites;
      writes.push([...operations]);
    },
    count: () => 1,
    sync() {
      const sync = Promise.withResolvers<void>();
      syncs.push(sync);
      return sync.promise;
    },
    toStorageError: (error) => new StorageError(String(error), 0x97),
    onOutcome: (error) => outcomes.push(error),
  };
  return {
    target,
    writes,
    syncs,
    outcomes,
    failNextWrites: (error: Error | undefined) => failWrites = error,
  };
}

/** An operation the controlled target only records: its name. */
const operation = (name: string): string => name;
const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

Deno.test("group commit: operations of one turn share one write; nothing is written during the call", async () => {
  const { target, writes, syncs } = controlledTarget();
  const commits = new GroupCommit(target, "sync", 10);
  for (let index = 0; index < 1000; index++) commits.add(operation(`op${index}`));
  assert.equal(writes.length, 0);
  assert.equal(commits.dirty, true);
  const flushed = commits.flush();
  await nextTurn();
  assert.equal(writes.length, 1);
  assert.equal(writes[0].length, 1000);
  assert.equal(commits.dirty, false);
  syncs[0].resolve();
  await flushed;
  assert.deepEqual(commits.stats, { flushes: 1, syncs: 1, operations: 1000 });
});

Deno.test("group commit: batches written while a sync runs share the next sync, which starts after it", async () => {
  const { target, writes, syncs } = controlledTarget();
  const commits = new GroupCommit(target, "sync", 10);
  commits.add(operation("a"));
  const first = commits.flush();
  await nextTurn();
  assert.deepEqual(writes, [["a"]]);
  assert.equal(syncs.length, 1);
  commits.add(operation("b"));
  const second = commits.flush();
  await nextTurn();
  commits.add(operation("c"));
  const third = commits.flush();
  await nextTurn();
  assert.deepEqual(writes, [["a"], ["b"], ["c"]], "writes do not wait for the running sync");
  assert.equal(syncs.length, 1, "one fsync in flight at a time");
  let secondDone = false;
  void second.then(() => secondDone = true);
  syncs[0].resolve();
  await first;
  await nextTurn();
  assert.equal(secondDone, false, "a batch is not durable before a sync that started after its write");
  assert.equal(syncs.length, 2, "the next sync starts when the previous one returns");
  syncs[1].resolve();
  await Promise.all([second, third]);
  assert.deepEqual(commits.stats, { flushes: 3, syncs: 2, operations: 3 });
});

Deno.test("group commit: flush with nothing pending resolves at once", async () => {
  const { target, writes } = controlledTarget();
  const commits = new GroupCommit(target, "sync", 10);
  await commits.flush();
  assert.deepEqual(writes, []);
});

Deno.test("group commit: a failed write rejects its batch with the StorageError and reports it", async () => {
  const { target, outcomes, failNextWrites, syncs } = controlledTarget();
  const commits = new GroupCommit(target, "sync", 10);
  failNextWrites(new Error("database or disk is full"));
  commits.add(operation("a"));
  await assert.rejects(
    commits.flush(),
    (error) => error instanceof StorageError && error.reasonCode === 0x97,
  );
  assert.equal(outcomes.length, 1);
  assert.ok(outcomes[0] instanceof StorageError);
  failNextWrites(undefined);
  commits.add(operation("b"));
  const flushed = commits.flush();
  await nextTurn();
  syncs[0].resolve();
  await flushed;
  assert.deepEqual(outcomes.slice(1), [undefined], "the next good batch reports recovery");
});

Deno.test("group commit: a failed batch nobody awaits does not surface as an unhandled rejection", async () => {
  const { target, failNextWrites, outcomes } = controlledTarget();
  const commits = new GroupCommit(target, "sync", 10);
  failNextWrites(new Error("disk I/O error"));
  commits.add(operation("a"));
  await nextTurn();
  await nextTurn();
  assert.equal(outcomes.length, 1);
  assert.ok(outcomes[0] instanceof StorageError);
});

Deno.test("group commit at durability batch: flush resolves after the write, one timed sync covers many", async () => {
  const { target, writes, syncs } = controlledTarget();
  const commits = new GroupCommit(target, "batch", 20);
  for (const name of ["a", "b", "c"]) {
    commits.add(operation(name));
    await commits.flush();
  }
  assert.deepEqual(writes, [["a"], ["b"], ["c"]]);
  assert.equal(syncs.length, 0);
  await new Promise((resolve) => setTimeout(resolve, 60));
  assert.equal(syncs.length, 1);
  syncs[0].resolve();
  await commits.close();
  assert.deepEqual(commits.stats, { flushes: 3, syncs: 1, operations: 3 });
});
