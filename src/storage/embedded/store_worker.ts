/**
 * The embedded store's worker: owns the SQLite database, so that writing transactions, reading queues and
 * compacting never run on the broker's event loop. It answers each batch once it is durable; batches that
 * arrive in one of its turns share a log record (or a transaction), and the next one is written while an
 * fsync runs.
 */
/// <reference lib="deno.worker" />
import { StorageError, type StoredMessage } from "../port.ts";
import type { StorageLogger } from "./open_store.ts";
import type { CommitStats } from "./group_commit.ts";
import { StoreEngine } from "./store_engine.ts";
import type { FromWorker, ToWorker, WireError } from "./worker_protocol.ts";

const post = (message: FromWorker) => self.postMessage(message);

function wire(error: unknown): WireError {
  return {
    message: error instanceof Error ? error.message : String(error),
    reasonCode: error instanceof StorageError ? error.reasonCode : undefined,
  };
}

const logger: StorageLogger = {
  info: (event, fields) => post({ type: "log", level: "info", event, fields: plain(fields) }),
  warn: (event, fields) => post({ type: "log", level: "warn", event, fields: plain(fields) }),
  error: (event, fields) => post({ type: "log", level: "error", event, fields: plain(fields) }),
};

/** Log fields as clonable data (an Error becomes its message). */
function plain(fields: Record<string, unknown> | undefined): Record<string, unknown> | undefined {
  if (!fields) return undefined;
  return Object.fromEntries(
    Object.entries(fields).map(([key, value]) => [key, value instanceof Error ? value.message : value]),
  );
}

/** The payloads' buffers, each once: every payload read is a buffer of its own, handed to the broker. */
function ownBuffers(messages: (StoredMessage | undefined)[]): ArrayBuffer[] {
  return [...new Set(messages.flatMap((read) => read ? [read.payload.buffer as ArrayBuffer] : []))];
}

let engine: StoreEngine | undefined;

const stats = (): CommitStats => engine?.stats ?? { flushes: 0, syncs: 0, operations: 0 };

/** Batches received and not answered yet: their answers will carry the stats. */
let unanswered = 0;
/** The failure and low-disk state the broker's thread was last told. */
let reported: { error: string | undefined; lowDisk: boolean } = { error: undefined, lowDisk: false };

/**
 * The store's outcome after each batch and timed sync, sent only when the broker's thread would not learn it
 * otherwise: a change of state (a failure, a recovery, low disk), or new stats while no answer is on its way.
 * One after every batch and sync was a second message per answered batch for the broker's thread to take
 * (docs/storage.md, "Write path").
 */
function outcome(error: StorageError | undefined): void {
  const lowDisk = engine?.lowDisk ?? false;
  if (unanswered > 0 && error?.message === reported.error && lowDisk === reported.lowDisk) return;
  reported = { error: error?.message, lowDisk };
  post({ type: "outcome", error: error ? wire(error) : undefined, stats: stats(), lowDisk });
}

function answer(id: number, done: Promise<void>): void {
  unanswered++;
  done.then(
    () => {
      unanswered--;
      post({ type: "committed", id, stats: stats() });
    },
    (error) => {
      unanswered--;
      post({ type: "failed", id, error: wire(error), stats: stats() });
    },
  );
}

self.onmessage = async (event: MessageEvent<ToWorker>) => {
  const message = event.data;
  switch (message.type) {
    case "open":
      try {
        const opened = await StoreEngine.open(message.options, logger, outcome);
        engine = opened.engine;
        const { snapshot, nextMessageId, nextSequence } = opened;
        post({ type: "opened", snapshot, nextMessageId, nextSequence });
        // In this same turn: no batch or read is taken before recovery is complete.
        engine.dropOrphans(logger);
      } catch (error) {
        post({ type: "openFailed", error: wire(error) });
      }
      return;
    case "batch": {
      // The engine frees the payload buffer once its messages are in the log (an apply reads them back).
      answer(message.id, engine!.add(message.batch));
      return;
    }
    case "read":
      try {
        const page = engine!.readQueue(message.clientId, message.read, message.now);
        // Moved, not copied, as for readRetained: a drain reads every queued payload, and copies would be
        // garbage on both sides (this isolate's and the serialized page's) until their next collections.
        self.postMessage(
          { type: "queue", id: message.id, page } satisfies FromWorker,
          ownBuffers(page.deliveries.map((delivery) => delivery.message)),
        );
      } catch (error) {
        post({ type: "queue", id: message.id, error: wire(error) });
      }
      return;
    case "readRetained":
      try {
        const messages = engine!.readRetained(message.topics);
        // Each payload is a buffer of its own: moved to the broker, not copied, so that neither side keeps
        // garbage of a wildcard SUBSCRIBE's pages until its next collection.
        self.postMessage(
          { type: "retained", id: message.id, messages } satisfies FromWorker,
          ownBuffers(messages),
        );
      } catch (error) {
        post({ type: "retained", id: message.id, error: wire(error) });
      }
      return;
    case "close":
      try {
        await engine?.close();
        post({ type: "closed" });
      } catch (error) {
        post({ type: "closed", error: wire(error) });
      }
      engine = undefined;
      return;
  }
};
