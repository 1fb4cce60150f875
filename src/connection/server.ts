import { rateLimited } from "../observe/mod.ts";
import type { Accepted } from "../transport/mod.ts";
import { OutboxPool } from "./outbox.ts";
import {
  type ClientConnectionInfo,
  Connection,
  type ConnectionContext,
  type ManagedContext,
  SWEEP_INTERVAL_MS,
} from "./connection.ts";

/** Open and total connections of one listener, kept by the manager. */
export interface ListenerCounts {
  /** The listener's name (for logs and the admin API). */
  readonly name: string;
  open: number;
  total: number;
}

/** How often a draining broker looks whether every delivery is acknowledged. */
const DRAIN_POLL_MS = 20;
/** A connection's last packets get this long to leave (the connection's own flush timeout). */
const CLOSE_GRACE_MS = 1000;
/** Connections refused over a limit are logged at most this often (a flood would flood the log too). */
const REFUSED_LOG_MS = 10_000;

/**
 * Owns the connection actors: starts one per accepted socket, tracks every one (no fire-and-forget task),
 * enforces the global connection limit, and drains them all at shutdown.
 */
export class ConnectionManager {
  /** Every connection whose serve() has not finished: each ends by calling {@link #finished}. */
  readonly #connections = new Set<Connection>();
  /** Set while shutdown waits for the last connection to finish. */
  #allFinished: (() => void) | undefined;
  #accepting = true;
  connectionsTotal = 0;
  #closedBytesReceived = 0;
  #closedBytesSent = 0;

  /** One sweep for every connection's CONNECT timeout, keep alive and linger, instead of a timer each. */
  readonly #sweep: ReturnType<typeof setInterval>;
  readonly #logRefused = rateLimited<string>(
    REFUSED_LOG_MS,
    (remote, suppressed) =>
      this.context.logger.warn("connection.refused", { remote, reason: "limit", suppressed }),
  );

  /** The context every connection shares, with the manager's end-of-connection callback. */
  readonly #context: ManagedContext;

  constructor(private readonly context: ConnectionContext, private readonly maxConnections: number) {
    const { outboxHighWaterMark, writeBuffers, readBuffers } = context;
    this.#context = {
      ...context,
      finished: this.#finished,
      outboxes: new OutboxPool(outboxHighWaterMark, writeBuffers, readBuffers),
      decoders: [],
    };
    this.#sweep = setInterval(() => {
      const now = performance.now();
      for (const connection of this.#connections) connection.checkDeadlines(now);
    }, SWEEP_INTERVAL_MS);
  }

  get connectionCount(): number {
    return this.#connections.size;
  }

  /** Bytes received and sent over all connections, open and closed. */
  traffic(): { bytesReceived: number; bytesSent: number } {
    let bytesReceived = this.#closedBytesReceived;
    let bytesSent = this.#closedBytesSent;
    for (const connection of this.#connections) {
      bytesReceived += connection.bytesReceived;
      bytesSent += connection.bytesSent;
    }
    return { bytesReceived, bytesSent };
  }

  /**
   * Takes ownership of an accepted socket, counted in its listener's `counts` while it is open.
   * `listenerLimit` is the listener's own maximum (0 = none).
   */
  accept(accepted: Accepted, counts: ListenerCounts, listenerLimit: number): void {
    const overGlobal = this.maxConnections > 0 && this.#connections.size >= this.maxConnections;
    const overListener = listenerLimit > 0 && counts.open >= listenerLimit;
    if (!this.#accepting || overGlobal || overListener) {
      this.#logRefused(accepted.remoteAddress);
      try {
        accepted.stream.close();
      } catch { /* already gone */ }
      return;
    }
    this.connectionsTotal++;
    counts.open++;
    counts.total++;
    const connection = new Connection(accepted, this.#context, counts);
    this.#connections.add(connection);
    // Tracked in #connections until it calls #finished; serve() never rejects (it logs what went wrong).
    void connection.serve();
  }

  /** The end of a connection's serve(): one callback for all of them, in their shared context. */
  readonly #finished = (connection: Connection): void => {
    this.#closedBytesReceived += connection.bytesReceived;
    this.#closedBytesSent += connection.bytesSent;
    if (this.#connections.delete(connection)) connection.listenerCounts.open--;
    if (this.#connections.size === 0) this.#allFinished?.();
  };

  /** The clients connected now (CONNECT accepted), in no particular order. */
  *clients(): Generator<ClientConnectionInfo> {
    for (const connection of this.#connections) {
      const client = connection.client;
      if (client) yield client;
    }
  }

  /** Disconnects the client with this id (v5: DISCONNECT `reasonCode`); false when it is not connected. */
  kick(clientId: string, reasonCode: number, reason: string): boolean {
    for (const connection of this.#connections) {
      if (connection.client?.clientId !== clientId) continue;
      connection.kick(reasonCode, reason);
      return true;
    }
    return false;
  }

  /** Outbound QoS 1/2 deliveries that connected clients have not acknowledged yet. */
  get unacknowledged(): number {
    let count = 0;
    for (const connection of this.#connections) count += connection.unacknowledged;
    return count;
  }

  /**
   * Drains: stops taking connections; lets connected clients acknowledge their QoS 1/2 deliveries (a
   * message acknowledged later would be re-sent on their next connection) while any are outstanding; then
   * tells v5 clients 0x8B and closes every connection. All of it within `deadlineMs`.
   */
  async shutdown(deadlineMs: number): Promise<void> {
    this.#accepting = false;
    const deadline = performance.now() + deadlineMs;
    while (this.unacknowledged > 0 && performance.now() < deadline) {
      await new Promise((resolve) =>
        setTimeout(resolve, Math.min(DRAIN_POLL_MS, deadline - performance.now()))
      );
    }
    clearInterval(this.#sweep);
    await Promise.all([...this.#connections].map((connection) => connection.shutdown()));
    let timer: ReturnType<typeof setTimeout> | undefined;
    // Closing gets at least the time a connection takes to flush its DISCONNECT, so that every session is
    // handed back to the broker before storage stops.
    const left = Math.max(CLOSE_GRACE_MS, deadline - performance.now());
    const closed = new Promise<void>((resolve) => timer = setTimeout(resolve, left));
    const finished = this.#connections.size === 0
      ? Promise.resolve()
      : new Promise<void>((resolve) => this.#allFinished = resolve);
    await Promise.race([finished, closed]);
    clearTimeout(timer);
  }
}
