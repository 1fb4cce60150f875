import type { Accepted } from "../transport/mod.ts";
import { Connection, type ConnectionContext } from "./connection.ts";

/** Deadlines are checked this often: a keep alive of 1 s is enforced between 1.5 and 1.75 s. */
const SWEEP_INTERVAL_MS = 250;

/**
 * Owns the connection actors: starts one per accepted socket, tracks every one (no fire-and-forget task),
 * enforces the global connection limit, and drains them all at shutdown.
 */
export class ConnectionManager {
  readonly #connections = new Set<Connection>();
  readonly #tasks = new Set<Promise<void>>();
  #accepting = true;
  connectionsTotal = 0;
  #closedBytesReceived = 0;
  #closedBytesSent = 0;

  /** One sweep for every connection's CONNECT timeout and keep alive, instead of a timer each. */
  readonly #sweep: ReturnType<typeof setInterval>;

  constructor(private readonly context: ConnectionContext, private readonly maxConnections: number) {
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

  /** Takes ownership of an accepted socket. `listenerLimit` is the listener's own maximum (0 = none). */
  accept(accepted: Accepted, listenerCount: () => number, listenerLimit: number, onDone: () => void): void {
    const overGlobal = this.maxConnections > 0 && this.#connections.size >= this.maxConnections;
    const overListener = listenerLimit > 0 && listenerCount() >= listenerLimit;
    if (!this.#accepting || overGlobal || overListener) {
      this.context.logger.warn("connection.refused", { remote: accepted.remoteAddress, reason: "limit" });
      try {
        accepted.stream.close();
      } catch { /* already gone */ }
      return;
    }
    this.connectionsTotal++;
    const connection = new Connection(accepted, this.context);
    this.#connections.add(connection);
    const task = connection.serve()
      .catch((error) => this.context.logger.error("connection.crashed", { error }))
      .finally(() => {
        this.#closedBytesReceived += connection.bytesReceived;
        this.#closedBytesSent += connection.bytesSent;
        this.#connections.delete(connection);
        this.#tasks.delete(task);
        onDone();
      });
    this.#tasks.add(task);
  }

  /** Stops taking connections, tells v5 clients 0x8B, and waits for every actor up to `deadlineMs`. */
  async shutdown(deadlineMs: number): Promise<void> {
    this.#accepting = false;
    clearInterval(this.#sweep);
    await Promise.all([...this.#connections].map((connection) => connection.shutdown()));
    let timer: ReturnType<typeof setTimeout> | undefined;
    const deadline = new Promise<void>((resolve) => timer = setTimeout(resolve, deadlineMs));
    await Promise.race([Promise.all([...this.#tasks]), deadline]);
    clearTimeout(timer);
  }
}
