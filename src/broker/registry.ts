import type { Session } from "../session/session.ts";
import type { Effect } from "../session/types.ts";
import type { TimerHandle } from "./clock.ts";

/** The broker's handle on a connected client's actor. */
export interface SessionLink {
  /**
   * Runs effects produced for this client by someone else's packet (routed deliveries, retained messages).
   * The list is the caller's and is reused after the call: keep the effects, not the list.
   */
  run(effects: Effect[]): void;
  /** False while the socket is backed up; QoS 0 deliveries are then dropped instead of buffered. */
  readonly writable: boolean;
  /** Ends the connection because a new one took its session [MQTT-3.1.4-3]. */
  takeOver(): void;
}

/** One client id's session and who holds it. */
export interface SessionEntry {
  session: Session;
  /**
   * Grows with every claim of this client id, across clean starts and restarts, so whatever a previous
   * holder still writes can be recognised as stale and refused.
   */
  epoch: number;
  /** The identity that owns the session (see OpenRequest.owner). */
  owner?: string;
  /** True while the client is connected, here or (in a cluster) on another node. */
  attached: boolean;
  /** The connection on this node, while the client is connected here. */
  link?: SessionLink;
  /** In a cluster, while the client is connected: the node (and run) holding it. */
  holder?: string;
  expiryTimer?: TimerHandle;
}

/**
 * Sessions by client id, with the epoch counter and one claim at a time per client id: a CONNECT that
 * must wait (for storage, or for a cluster) cannot interleave with another CONNECT for the same id.
 */
export class SessionRegistry {
  readonly #entries = new Map<string, SessionEntry>();
  readonly #claims = new Map<string, Promise<unknown>>();
  #lastEpoch = 0;

  constructor(private readonly now: () => number) {}

  get size(): number {
    return this.#entries.size;
  }

  get(clientId: string): SessionEntry | undefined {
    return this.#entries.get(clientId);
  }

  set(entry: SessionEntry): void {
    this.#entries.set(entry.session.clientId, entry);
    if (entry.epoch > this.#lastEpoch) this.#lastEpoch = entry.epoch;
  }

  /** Removes the entry if it is still the one registered for its client id. */
  delete(entry: SessionEntry): void {
    const clientId = entry.session.clientId;
    if (this.#entries.get(clientId) === entry) this.#entries.delete(clientId);
  }

  values(): IterableIterator<SessionEntry> {
    return this.#entries.values();
  }

  /**
   * A new epoch, larger than any before it in this process and, through the clock, than any before a
   * restart (epochs are microsecond-scale timestamps, bumped when claims come faster than that).
   */
  nextEpoch(): number {
    const epoch = Math.max(this.#lastEpoch + 1, this.now() * 1000);
    this.#lastEpoch = epoch;
    return epoch;
  }

  /** Runs `claim` after every earlier claim of the same client id has finished. */
  serialize<T>(clientId: string, claim: () => Promise<T>): Promise<T> {
    const previous = this.#claims.get(clientId) ?? Promise.resolve();
    const next = previous.then(claim, claim);
    const settled = next.then(() => {}, () => {});
    this.#claims.set(clientId, settled);
    settled.then(() => {
      if (this.#claims.get(clientId) === settled) this.#claims.delete(clientId);
    });
    return next;
  }
}
