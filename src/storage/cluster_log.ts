/**
 * The cluster log port: one totally ordered, durable log that every node of a cluster appends to and reads
 * in full, each node in the same order. The cluster layer replicates broker state by appending events and
 * applying them in log order on every node; adapters: `memory/` (one process, for tests) and `rocketmq/`
 * (Apache RocketMQ 5, the only folder that imports a RocketMQ client).
 */

/** One entry as read back from the log. */
export interface LogEntry {
  /**
   * Where the entry sits in the log: strictly increasing in log order, identical on every node, and the
   * same again when an entry is delivered a second time (after a crash or a redelivery), so a reader can
   * skip what it has already applied.
   */
  position: bigint;
  body: Uint8Array;
}

/** What a log did since it started, for /metrics. */
export interface ClusterLogStats {
  /** Entries the service acknowledged. */
  entriesAppended: number;
  /** Appends rejected to their caller (the service was unreachable until their deadline, or the log stopped). */
  appendsFailed: number;
  /** Messages sent to the service to carry them (an adapter that packs entries sends fewer). */
  messagesSent: number;
  /** Send attempts that failed (each is retried until its entries' deadline). */
  sendFailures: number;
  /** Bytes of entries waiting to be sent or acknowledged. */
  pendingBytes: number;
  /** Entries delivered to this node's applier and applied. */
  entriesApplied: number;
  /** Copies of a message the service had stored twice, dropped (see `consume`). */
  resendsDropped: number;
}

export interface ClusterLogHealth {
  ok: boolean;
  detail: string;
}

/**
 * A shared, totally ordered log.
 *
 * - `append` resolves once the entry is durable in the log service. Entries appended by one process land in
 *   the log in the order `append` was called (an adapter may pack several into one service message, or
 *   serialise its sends, to keep that order). It rejects with {@link ClusterLogError} when the entry cannot
 *   be made durable; the caller decides whether to hold and retry.
 * - `consume` delivers every entry of the log, from this node's cursor on, in log order, in batches; the next
 *   batch is delivered only after the returned promise resolves, and the cursor moves past a batch only
 *   then, so a node that dies while applying sees that batch again after restart. A reader new to the log
 *   starts at its tail. An entry may be delivered more than once (same position: the applier skips what it
 *   applied). An entry appended once is delivered at one position only, even when the service stored it
 *   twice (a send retried after its receipt was lost): the adapter drops the later copy. Applied twice,
 *   a copy would replay a client's claim (taking over its own connection) or its packets.
 */
export interface ClusterLog {
  /** Connects to the log service and prepares this node's cursor; rejects with a clear message if it cannot. */
  start(): Promise<void>;
  append(body: Uint8Array): Promise<void>;
  /** Starts the delivery loop; call once, after start(). Errors thrown by `apply` stop nothing: the batch is redelivered. */
  consume(apply: (entries: LogEntry[]) => Promise<void>): void;
  /** ok=false while the log service cannot be reached (appends fail or time out); detail says why. */
  health(): ClusterLogHealth;
  stats(): ClusterLogStats;
  /** Stops consuming, waits for appends in flight (bounded), disconnects. */
  stop(): Promise<void>;
}

/** An append or read the log service could not do. */
export class ClusterLogError extends Error {
  override readonly name = "ClusterLogError";
}
