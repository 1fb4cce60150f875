import type { ByteStream } from "./mod.ts";

/** An accepted connection, as handed to the broker's connection factory. */
export interface Accepted {
  stream: ByteStream;
  remoteAddress: string;
  /** Common name of a verified client certificate (mTLS), "" for one without a CN; absent without one. */
  certificateCommonName?: string;
}

/** A running listener. */
export interface Listener {
  readonly name: string;
  /** The bound port (useful when 0 was asked for). */
  readonly port: number;
  readonly hostname: string;
  /** Stops accepting; open connections are left to their owners. */
  close(): void;
  /** Settles when the accept loop has ended. */
  readonly done: Promise<void>;
}

/**
 * The runtime's read op, which `Deno.Conn.read` wraps. That wrapper adds each pending read's promise to a
 * Set on the connection (for `unref`) and deletes it after: a connection once idle across two scavenges has
 * that Set's table in V8's old generation, and V8 makes a hash table's replacement in the old one's
 * generation, so from then on reads left about 114 B of old-generation garbage each. At 10k msg/s QoS 1
 * that was 2.3 MB/s and a full collection every 3.5 s, whose 20 ms of marking on the broker's core was the
 * latency tail. We never unref a socket, so the op alone does all we need. Found by name at the first
 * socket, with `Deno.Conn.read` as the fallback should a later runtime move it.
 */
interface ReadOp {
  read(rid: number, buffer: Uint8Array): Promise<number>;
}
const internal = Deno as unknown as { internal?: symbol } & Record<symbol, { core?: Partial<ReadOp> }>;
const readOp = internal.internal === undefined ? undefined : internal[internal.internal]?.core;
let ridKey: symbol | undefined | null;

function ridOf(conn: Deno.Conn): number | undefined {
  ridKey ??= Object.getOwnPropertySymbols(conn).find((key) => key.description === "Deno.internal.rid") ??
    null;
  const rid: unknown = ridKey === null ? undefined : (conn as unknown as Record<symbol, unknown>)[ridKey];
  return typeof rid === "number" && typeof readOp?.read === "function" ? rid : undefined;
}

/** A TCP socket as a {@link ByteStream}, read with the runtime's read op (see {@link ReadOp}). */
export class TcpSocket implements ByteStream {
  readonly #rid: number | undefined;

  constructor(readonly conn: Deno.Conn) {
    this.#rid = ridOf(conn);
  }

  /** Whether reads go straight to the runtime's op (false: through `Deno.Conn.read`). */
  get readsDirectly(): boolean {
    return this.#rid !== undefined;
  }

  async read(buffer: Uint8Array): Promise<number | null> {
    if (this.#rid === undefined) return this.conn.read(buffer);
    if (buffer.byteLength === 0) return 0;
    const n = await readOp!.read!(this.#rid, buffer);
    return n === 0 ? null : n;
  }

  write(data: Uint8Array): Promise<number> {
    return this.conn.write(data);
  }

  closeWrite(): Promise<void> {
    return this.conn.closeWrite();
  }

  close(): void {
    this.conn.close();
  }
}

/**
 * An accepted TCP socket: the socket alone, its own stream, for an idle client must stay cheap. Its remote
 * address is made into text when asked for (at CONNECT, in a log line): the socket holds the address
 * anyway. A TCP client has no certificate.
 */
class TcpAccepted extends TcpSocket implements Accepted {
  get stream(): ByteStream {
    return this;
  }

  get remoteAddress(): string {
    const remote = this.conn.remoteAddr as Deno.NetAddr;
    return `${remote.hostname}:${remote.port}`;
  }
}

/**
 * Accepts TCP connections in a `Deno.listen` loop, with Nagle off so that small MQTT packets are not
 * delayed. Each connection is handed to `onAccept`, which owns it from then on.
 */
export function listenTcp(
  options: { name: string; hostname: string; port: number },
  onAccept: (accepted: Accepted) => void,
  onError: (error: unknown) => void,
): Listener {
  const listener = Deno.listen({ hostname: options.hostname, port: options.port, transport: "tcp" });
  const address = listener.addr as Deno.NetAddr;
  let closed = false;
  const done = acceptLoop(listener, () => closed, (conn) => {
    try {
      conn.setNoDelay(true);
    } catch { /* the peer may already be gone */ }
    onAccept(new TcpAccepted(conn));
  }, onError);
  return {
    name: options.name,
    port: address.port,
    hostname: address.hostname,
    close() {
      if (closed) return;
      closed = true;
      listener.close();
    },
    done,
  };
}

/**
 * Accepts until the listener is closed, handing each connection to `onConnection`. An accept error other
 * than the close (e.g. EMFILE) is reported and retried after a pause, once descriptors may be free again.
 */
export async function acceptLoop<C extends Deno.Conn>(
  listener: Deno.Listener<C>,
  isClosed: () => boolean,
  onConnection: (conn: C) => void,
  onError: (error: unknown) => void,
): Promise<void> {
  for (;;) {
    let conn: C;
    try {
      conn = await listener.accept();
    } catch (error) {
      if (isClosed() || error instanceof Deno.errors.BadResource) return;
      onError(error);
      await new Promise((resolve) => setTimeout(resolve, 100));
      continue;
    }
    onConnection(conn);
  }
}
