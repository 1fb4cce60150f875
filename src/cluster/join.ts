/**
 * How a node with no state (new, or its disk lost) joins: it appends a snapshot request, keeps the entries
 * that follow its request, and installs the state another node sends for that request; then it applies
 * the kept entries on top. Entries before the request are in that state already.
 */
import type { ClusterEvent } from "./events.ts";
import { type ClusterState, decodeState } from "./snapshot.ts";

/** An entry kept while joining, to apply once the state is installed. */
export interface KeptEntry {
  position: bigint;
  at: number;
  event: ClusterEvent;
}

export class Join {
  readonly kept: KeptEntry[] = [];
  #requestedAt: bigint | undefined;
  #from: string | undefined;
  #pieces: (Uint8Array | undefined)[] = [];

  constructor(readonly node: string, readonly run: number) {}

  /** True once this node's own request is in the log. */
  get requested(): boolean {
    return this.#requestedAt !== undefined;
  }

  /**
   * Takes one log entry while joining. Returns the state and the position it stands for once the last
   * piece of the first answer arrives.
   */
  take(entry: KeptEntry): { state: ClusterState; position: bigint } | undefined {
    const { event, position } = entry;
    const mine = "node" in event && event.node === this.node && "run" in event && event.run === this.run;
    if (event.kind === "snapshotRequest" && mine) {
      this.#requestedAt = position;
      return undefined;
    }
    if (event.kind !== "snapshotChunk" || !mine) {
      if (this.#requestedAt !== undefined) this.kept.push(entry);
      return undefined;
    }
    if (this.#requestedAt === undefined) return undefined;
    this.#from ??= event.from;
    if (event.from !== this.#from) return undefined; // a second node answered too
    if (this.#pieces.length === 0) this.#pieces = new Array(event.count).fill(undefined);
    this.#pieces[event.index] = event.data.slice();
    if (this.#pieces.some((piece) => piece === undefined)) return undefined;
    const pieces = this.#pieces as Uint8Array[];
    const bytes = new Uint8Array(pieces.reduce((sum, piece) => sum + piece.byteLength, 0));
    let offset = 0;
    for (const piece of pieces) {
      bytes.set(piece, offset);
      offset += piece.byteLength;
    }
    return { state: decodeState(bytes), position: this.#requestedAt };
  }
}
