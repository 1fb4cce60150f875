/**
 * How a node with no state (new, or its disk lost) joins: it appends a snapshot request, keeps the entries
 * that follow its request, and installs the state another node streams for that request part by part as
 * the pieces arrive; then it applies the kept entries on top. Entries before the request are in that
 * state already.
 */
import type { ClusterEvent } from "./events.ts";
import { type ClusterPart, SnapshotReader } from "./snapshot.ts";
import type { BrokerStatePart } from "../broker/mod.ts";
import type { LogEntry } from "../storage/cluster_log.ts";

/** The node answering a request: its id and run. */
export interface Sender {
  node: string;
  run: number;
}

/** What one log entry means to a join. */
export type JoinStep =
  /** Nothing to install. */
  | undefined
  /**
   * Broker parts to install, in order; `restarted`: the sender began its answer again, so what was
   * installed before must go first; `done`: the state is complete, as of log position `position`.
   */
  | { parts: BrokerStatePart[]; restarted: boolean; done?: { cluster: ClusterPart; position: bigint } };

export class Join {
  /**
   * The entries after the request, to apply once the state is installed: as bytes, copied out of the log's
   * buffers, which a decoded event is several times the size of (a publish's message, properties, origin).
   */
  readonly kept: LogEntry[] = [];
  #requestedAt: bigint | undefined;
  #sender: Sender | undefined;
  #reader = new SnapshotReader();
  /** The index of the piece expected next; undefined after a gap, until the sender starts again from 0. */
  #next: number | undefined = 0;
  #cluster: ClusterPart | undefined;

  constructor(readonly node: string, readonly run: number, readonly attempt: number) {}

  /** The node whose answer is being installed, once its first piece arrived. */
  get sender(): Sender | undefined {
    return this.#sender;
  }

  /**
   * Takes one log entry, decoded as `event`, while joining. Throws when the sender's stream cannot be read: a
   * record that does not decode, or a last piece that ends half-way through a part.
   */
  take(entry: LogEntry, event: ClusterEvent): JoinStep {
    const { position } = entry;
    const mine = "node" in event && event.node === this.node && "run" in event && event.run === this.run &&
      "attempt" in event && event.attempt === this.attempt;
    if (event.kind === "snapshotRequest" && mine) {
      this.#requestedAt = position;
      return undefined;
    }
    if (event.kind !== "snapshotChunk") {
      if (this.#requestedAt !== undefined) this.kept.push({ position, body: entry.body.slice() });
      return undefined;
    }
    if (!mine) return undefined; // another join's piece: applying it changes nothing, keeping it costs memory
    if (this.#requestedAt === undefined) return undefined;
    this.#sender ??= { node: event.from, run: event.fromRun };
    if (event.from !== this.#sender.node || event.fromRun !== this.#sender.run) return undefined; // a second answer
    // The sender's log keeps its pieces in order; a missing one was refused by the log, and the sender
    // then starts again from piece 0.
    const restarted = event.index === 0 && this.#next !== 0;
    if (restarted) {
      this.#reader = new SnapshotReader();
      this.#cluster = undefined;
    } else if (event.index !== this.#next) {
      this.#next = undefined;
      return undefined;
    }
    this.#next = event.index + 1;
    const parts: BrokerStatePart[] = [];
    for (const part of this.#reader.push(event.data)) {
      if (part.kind === "cluster") this.#cluster = part;
      else parts.push(part);
    }
    if (!event.last) return { parts, restarted };
    if (!this.#cluster || !this.#reader.atPartBoundary) {
      throw new Error(`the snapshot from ${event.from} ended half-way through a part`);
    }
    return { parts, restarted, done: { cluster: this.#cluster, position: this.#requestedAt } };
  }
}
