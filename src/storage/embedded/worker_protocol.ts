/**
 * The messages between the embedded adapter (on the broker's event loop) and the worker that owns the
 * database. Everything crossing is structured-cloneable data; errors travel as message and reason code.
 */
import type { QueuePage, QueueRead, StoredMessage } from "../port.ts";
import type { WireSnapshot } from "./records.ts";
import type { CommitStats } from "./group_commit.ts";
import type { EngineOptions } from "./store_engine.ts";
import type { WireBatch } from "./operations.ts";

export type ToWorker =
  | { type: "open"; options: EngineOptions }
  /**
   * The operations of one turn of the broker, encoded, with its payloads (both buffers moved: see
   * OperationBatch.encode); answered by "committed" or "failed" with the same id.
   */
  | { type: "batch"; id: number; batch: WireBatch }
  /** A queue read; answered by "queue" with the same id, after every batch sent before it is written. */
  | { type: "read"; id: number; clientId: string; read: QueueRead; now: number }
  /** Retained messages by topic; answered by "retained" with the same id, after the batches sent before it. */
  | { type: "readRetained"; id: number; topics: string[] }
  | { type: "close" };

export interface WireError {
  message: string;
  /** Set when it was a StorageError. */
  reasonCode?: number;
}

export type FromWorker =
  | { type: "opened"; snapshot: WireSnapshot; nextMessageId: number; nextSequence: number }
  | { type: "openFailed"; error: WireError }
  /** A batch's answer, with the stats as they are after it. */
  | { type: "committed"; id: number; stats: CommitStats }
  | { type: "failed"; id: number; error: WireError; stats: CommitStats }
  | { type: "queue"; id: number; page?: QueuePage; error?: WireError }
  | { type: "retained"; id: number; messages?: (StoredMessage | undefined)[]; error?: WireError }
  /**
   * For health(), stats() and the failure log: when the state changes, and after a timed sync or a failed
   * apply while no batch is waiting for its answer (the answers carry the stats).
   */
  | { type: "outcome"; error?: WireError; stats: CommitStats; lowDisk: boolean }
  | { type: "log"; level: "info" | "warn" | "error"; event: string; fields?: Record<string, unknown> }
  | { type: "closed"; error?: WireError };
