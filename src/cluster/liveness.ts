/**
 * What a node knows of the others' liveness, from the heartbeats it applied: who runs (node and run), when
 * each was last heard, and which silent ones it already asked the log to declare gone. The log decides:
 * a "node down" takes effect only if no later heartbeat of that run came first (see {@link isGone}).
 */

/** A node's run and its last heartbeat, as the log has them. */
export interface PeerState {
  run: number;
  /** Log time of its last heartbeat applied; {@link NEVER} when none was. */
  lastBeat: number;
}

/** The last heartbeat of a node never heard from. */
export const NEVER = -1;

interface Peer extends PeerState {
  /** Local time when its last heartbeat was applied here. */
  heardAt: number;
  declaredDown: boolean;
}

export class Liveness {
  readonly #peers = new Map<string, Peer>();

  constructor(private readonly self: string, private readonly now: () => number) {}

  /** True when some node other than this one was heard of. */
  get othersKnown(): boolean {
    for (const node of this.#peers.keys()) if (node !== this.self) return true;
    return false;
  }

  /**
   * A heartbeat of `node`'s run `run` at log time `at`. Returns the earlier run it ends when the node
   * restarted (its clients are gone), undefined otherwise. A late beat of an earlier run changes nothing.
   */
  heard(node: string, run: number, at: number): PeerState | undefined {
    const peer = this.#peers.get(node);
    if (peer && peer.run > run) return undefined;
    this.#peers.set(node, { run, lastBeat: at, heardAt: this.now(), declaredDown: false });
    return peer && peer.run < run ? { run: peer.run, lastBeat: peer.lastBeat } : undefined;
  }

  /** A node that holds clients must be watched even if none of its heartbeats reached us yet. */
  watch(node: string, run: number): void {
    if (!this.#peers.has(node)) {
      this.#peers.set(node, { run, lastBeat: NEVER, heardAt: this.now(), declaredDown: false });
    }
  }

  /** Nodes silent for `timeoutMs`, each returned once, to be declared gone through the log. */
  silent(timeoutMs: number): ({ node: string } & PeerState)[] {
    const now = this.now();
    const found = [];
    for (const [node, peer] of this.#peers) {
      if (node === this.self || peer.declaredDown || now - peer.heardAt < timeoutMs) continue;
      peer.declaredDown = true;
      found.push({ node, run: peer.run, lastBeat: peer.lastBeat, silentMs: now - peer.heardAt });
    }
    return found;
  }

  /** Whether a "node down" for `node`'s run, last heard at `lastBeat`, holds: it has not spoken since. */
  isGone(node: string, run: number, lastBeat: number): boolean {
    const peer = this.#peers.get(node);
    return !(peer && peer.run === run && peer.lastBeat !== lastBeat);
  }

  /** Forgets `node`'s run once it is declared gone. */
  forget(node: string, run: number): void {
    if (this.#peers.get(node)?.run === run) this.#peers.delete(node);
  }

  /** Nodes believed alive (this one included), except `except`. */
  alive(except: string): string[] {
    const nodes = [this.self];
    for (const [node, peer] of this.#peers) if (node !== this.self && !peer.declaredDown) nodes.push(node);
    return nodes.filter((node) => node !== except);
  }

  /** Every other node heard of: its run, when it was last heard here (local time), and whether declared gone. */
  peers(): { node: string; run: number; heardAt: number; declaredDown: boolean }[] {
    return [...this.#peers].filter(([node]) => node !== this.self).map(([node, peer]) => ({
      node,
      run: peer.run,
      heardAt: peer.heardAt,
      declaredDown: peer.declaredDown,
    }));
  }

  /** The liveness view, for a joining node. */
  exportAll(): [node: string, run: number, lastBeat: number][] {
    return [...this.#peers].map(([node, peer]) => [node, peer.run, peer.lastBeat]);
  }

  importAll(peers: [node: string, run: number, lastBeat: number][]): void {
    for (const [node, run, lastBeat] of peers) {
      if (node !== this.self) {
        this.#peers.set(node, { run, lastBeat, heardAt: this.now(), declaredDown: false });
      }
    }
  }
}
