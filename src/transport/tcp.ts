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
 * An accepted TCP socket: the socket alone, for an idle client must stay cheap. Its remote address is made
 * into text when asked for (at CONNECT, in a log line): the socket holds the address anyway. A TCP client
 * has no certificate.
 */
class TcpAccepted implements Accepted {
  constructor(readonly stream: Deno.TcpConn) {}

  get remoteAddress(): string {
    const remote = this.stream.remoteAddr;
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
