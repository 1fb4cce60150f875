import type { SharedSessionState } from "../session/outbound.ts";
import { Session, SessionInUse } from "../session/session.ts";
import type { QueuePage, QueuePosition } from "../storage/port.ts";
import type { HeapItem } from "./indexed_heap.ts";
import type { RetainedReader } from "./retained_reader.ts";
import type { SessionOwner } from "./session_quota.ts";
import type { SessionLink } from "./types.ts";

/**
 * What an entry holds only while its session is in use (its client connected, or pages or retained messages
 * being read for it), in the same object as what the session holds only then (SessionInUse). A broker may
 * hold millions of offline sessions, which need none of it: one object while in use and none after, not
 * eight fields of every entry (64 B per offline session).
 */
class InUse extends SessionInUse {
  link: SessionLink | undefined = undefined;
  holder: string | undefined = undefined;
  pageAfter: QueuePosition | undefined = undefined;
  pageRead: Promise<QueuePage | undefined> | undefined = undefined;
  retainedReader: RetainedReader | undefined = undefined;

  override isEmpty(): boolean {
    return super.isEmpty() && this.link === undefined && this.holder === undefined &&
      this.pageAfter === undefined && this.pageRead === undefined && this.retainedReader === undefined;
  }
}

const ATTACHED = 1;
const DISCARDED = 2;

/**
 * One client id's session and who holds it: the session itself, with the registry's bookkeeping. One object
 * per client, not a session and an entry pointing at it (32 B less per offline session).
 */
export class SessionEntry extends Session implements HeapItem {
  heapIndex = -1;
  /** {@link ATTACHED} and {@link DISCARDED}: one field, not two. */
  #flags = 0;
  /** The owner the session is counted for against the caps on persistent sessions (SessionQuota), if any. */
  quotaOwner: SessionOwner | undefined = undefined;

  constructor(
    clientId: string,
    shared: SharedSessionState,
    /**
     * Grows with every claim of this client id, across clean starts and restarts, so whatever a previous
     * holder still writes can be recognised as stale and refused.
     */
    public epoch: number,
    /** The identity that owns the session (see OpenRequest.owner). */
    public owner?: string,
    /**
     * ms since the epoch when the client left; undefined while connected. With the session's expiry
     * interval it says when the session expires: the registry's expiry queue orders offline sessions by
     * that, with no timer (and no deadline of its own, a boxed number) per session.
     */
    public disconnectedAt?: number,
  ) {
    super(clientId, shared);
  }

  /** The entry as a session, for code that takes a session or what holds one (RouteTarget). */
  get session(): Session {
    return this;
  }

  /** True while the client is connected, here or (in a cluster) on another node. */
  get attached(): boolean {
    return (this.#flags & ATTACHED) !== 0;
  }

  set attached(attached: boolean) {
    this.#flags = attached ? this.#flags | ATTACHED : this.#flags & ~ATTACHED;
  }

  /**
   * True once the entry left the registry (its session ended, or another entry replaced it): a handle
   * that still holds it is stale, whatever its epoch.
   */
  get discarded(): boolean {
    return (this.#flags & DISCARDED) !== 0;
  }

  set discarded(discarded: boolean) {
    this.#flags = discarded ? this.#flags | DISCARDED : this.#flags & ~DISCARDED;
  }

  /** The connection on this node, while the client is connected here. */
  get link(): SessionLink | undefined {
    return this.entryInUse()?.link;
  }

  set link(link: SessionLink | undefined) {
    this.setInUse("link", link);
  }

  /** In a cluster, while the client is connected: the node (and run) holding it. */
  get holder(): string | undefined {
    return this.entryInUse()?.holder;
  }

  set holder(holder: string | undefined) {
    this.setInUse("holder", holder);
  }

  /** Where the last page read back from storage ended: the next one starts after it. */
  get pageAfter(): QueuePosition | undefined {
    return this.entryInUse()?.pageAfter;
  }

  set pageAfter(position: QueuePosition | undefined) {
    this.setInUse("pageAfter", position);
  }

  /** The page read running for this session, if any; a read that is not this one any more is dropped. */
  get pageRead(): Promise<QueuePage | undefined> | undefined {
    return this.entryInUse()?.pageRead;
  }

  set pageRead(read: Promise<QueuePage | undefined> | undefined) {
    this.setInUse("pageRead", read);
  }

  /** Retained messages SUBSCRIBEs matched that wait to be read from the store and sent (see Broker). */
  get retainedReader(): RetainedReader | undefined {
    return this.entryInUse()?.retainedReader;
  }

  set retainedReader(reader: RetainedReader | undefined) {
    this.setInUse("retainedReader", reader);
  }

  /** The in-use state (see InUse), if the entry has one. */
  private entryInUse(): InUse | undefined {
    return this.inUse as InUse | undefined;
  }

  protected override newInUse(): InUse {
    return new InUse();
  }

  /**
   * Sets a field of the in-use state: made for the first value, let go with the last. TypeScript-private,
   * not #private: a #method gives every instance a brand field (8 B), as Session says.
   */
  private setInUse<K extends "link" | "holder" | "pageAfter" | "pageRead" | "retainedReader">(
    field: K,
    value: InUse[K],
  ): void {
    if (this.inUse === undefined) {
      if (value === undefined) return;
      this.inUse = this.newInUse();
    }
    (this.inUse as InUse)[field] = value;
    if (value === undefined) this.releaseInUse();
  }
}
