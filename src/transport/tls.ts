/**
 * TLS listeners. Two engines, because `Deno.listenTls` (rustls, fast) cannot ask for or verify client
 * certificates in Deno 2.9 (`ListenTlsOptions` has only cert, key and ALPN):
 * - no client certificates (no `caFile`, `requireClientCert` false): `Deno.listenTls`; the accepted
 *   `Deno.TlsConn` is the byte stream as it is;
 * - client certificates (mutual TLS): `node:tls` `createServer({ requestCert, rejectUnauthorized, ca })`,
 *   whose sockets are adapted to a {@link ByteStream}. The Common Name of a verified certificate is handed
 *   on as `Accepted.certificateCommonName` ("" when it has none).
 *
 * Either way the handshake runs off the accept loop, under a deadline, so a slow or silent client never
 * delays anyone else's accept.
 *
 * Known limit of `Deno.listenTls` (2.9.6): a `TlsConn` closed before its handshake completed does not
 * release its TCP socket; the socket stays open until the peer sends something or closes. A client that
 * connects and stays silent therefore holds one descriptor after its handshake deadline. node:tls closes
 * such sockets. Measured here (loopback, P-256 certificates, one core): a handshake costs about 1.5–3 ms
 * with `Deno.listenTls` and 2.7–6 ms with node:tls; QoS 0 publish+deliver of 100-byte messages on one
 * connection runs about 180 000/s with `Deno.listenTls`, while node:tls's slower writes make a flooding
 * client its own slow consumer (QoS 0 dropped) far sooner.
 */
import type { Buffer } from "node:buffer";
import type { AddressInfo } from "node:net";
import tls from "node:tls";
import { ChunkQueue } from "./chunk_queue.ts";
import { parseCaBundle, verifyClientCertificate } from "./client_cert.ts";
import type { ByteStream } from "./mod.ts";
import { type Accepted, acceptLoop, type Listener } from "./tcp.ts";

/** How a TLS listener is set up (PEM files, read once at start). */
export interface TlsListenOptions {
  name: string;
  hostname: string;
  port: number;
  certFile: string;
  keyFile: string;
  /** CAs that client certificates must chain to; setting it makes the listener ask for one. */
  caFile?: string;
  /** Refuse clients without a valid certificate (needs `caFile`). */
  requireClientCert: boolean;
  /** A handshake not done within this many milliseconds is abandoned. Default 10 000. */
  handshakeTimeoutMs?: number;
  /** Told about each failed handshake (bad or missing client certificate, timeout, garbage). */
  onHandshakeError?: (remoteAddress: string, error: unknown) => void;
}

const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000;

/**
 * Listens for TLS connections and hands each one, once its handshake is done, to `onAccept`. Resolves when
 * bound (the node:tls engine binds asynchronously). Rejects when a PEM file cannot be read or the address
 * cannot be bound.
 */
export async function listenTls(
  options: TlsListenOptions,
  onAccept: (accepted: Accepted) => void,
  onError: (error: unknown) => void,
): Promise<Listener> {
  const [cert, key, ca] = await Promise.all([
    Deno.readTextFile(options.certFile),
    Deno.readTextFile(options.keyFile),
    options.caFile === undefined ? undefined : Deno.readTextFile(options.caFile),
  ]);
  if (options.requireClientCert && ca === undefined) {
    throw new Error(`listener ${options.name}: require_client_cert needs ca_file`);
  }
  const timeoutMs = options.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS;
  const onHandshakeError = options.onHandshakeError ?? (() => {});
  return ca === undefined
    ? listenRustls(options, cert, key, timeoutMs, onHandshakeError, onAccept, onError)
    : await listenNodeTls(options, cert, key, ca, timeoutMs, onHandshakeError, onAccept, onError);
}

/** Server-authenticated TLS with `Deno.listenTls`. */
function listenRustls(
  options: TlsListenOptions,
  cert: string,
  key: string,
  timeoutMs: number,
  onHandshakeError: (remoteAddress: string, error: unknown) => void,
  onAccept: (accepted: Accepted) => void,
  onError: (error: unknown) => void,
): Listener {
  const listener = Deno.listenTls({ hostname: options.hostname, port: options.port, cert, key });
  const address = listener.addr;
  const handshaking = new Set<Deno.TlsConn>();
  let closed = false;

  const handshake = async (conn: Deno.TlsConn) => {
    const remote = `${conn.remoteAddr.hostname}:${conn.remoteAddr.port}`;
    handshaking.add(conn);
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      await Promise.race([
        conn.handshake(),
        new Promise((_, reject) => {
          timer = setTimeout(
            () => reject(new Deno.errors.TimedOut(`TLS handshake over ${timeoutMs} ms`)),
            timeoutMs,
          );
        }),
      ]);
    } catch (error) {
      handshaking.delete(conn);
      clearTimeout(timer);
      try {
        conn.close();
      } catch { /* already closed */ }
      if (!closed) onHandshakeError(remote, error);
      return;
    }
    clearTimeout(timer);
    handshaking.delete(conn);
    if (closed) {
      conn.close();
      return;
    }
    onAccept({ stream: conn, remoteAddress: remote });
  };

  // The handshake is never awaited here: the next accept does not wait for this client.
  const done = acceptLoop(listener, () => closed, (conn) => void handshake(conn), onError);

  return {
    name: options.name,
    port: address.port,
    hostname: address.hostname,
    close() {
      if (closed) return;
      closed = true;
      listener.close();
      for (const conn of handshaking) {
        try {
          conn.close(); // rejects its pending handshake, which then ends quietly
        } catch { /* already closed */ }
      }
    },
    done,
  };
}

/** Mutual TLS with `node:tls`: client certificates requested and verified against `ca`. */
async function listenNodeTls(
  options: TlsListenOptions,
  cert: string,
  key: string,
  ca: string,
  timeoutMs: number,
  onHandshakeError: (remoteAddress: string, error: unknown) => void,
  onAccept: (accepted: Accepted) => void,
  onError: (error: unknown) => void,
): Promise<Listener> {
  // The engine asks for a certificate but does not judge it: verifyClientCertificate does, because the
  // engine's verifier refuses X.509 v1 certificates that OpenSSL-based brokers accept (client_cert.ts).
  const cas = parseCaBundle(ca);
  const server = tls.createServer({
    cert,
    key,
    ca,
    requestCert: true,
    rejectUnauthorized: false,
    handshakeTimeout: timeoutMs,
  });
  let closed = false;
  const sockets = new Set<tls.TLSSocket>();
  server.on("secureConnection", (socket: tls.TLSSocket) => {
    const remote = remoteOf(socket);
    if (closed) {
      socket.destroy();
      return;
    }
    let commonName: string | undefined;
    const peer = socket.getPeerCertificate(true);
    const verdict = socket.authorized ? { ok: true as const } : verifyClientCertificate(peer, cas);
    if (verdict.ok) {
      const cn = peer?.subject?.CN as string | string[] | undefined;
      // "" for a verified certificate without a CN: it must not pass for a client without a certificate
      commonName = (Array.isArray(cn) ? cn[0] : cn) ?? "";
    } else if (options.requireClientCert) {
      onHandshakeError(remote, new Error(`client certificate refused: ${verdict.reason}`));
      socket.destroy();
      return;
    }
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    onAccept({
      stream: new NodeSocketStream(socket),
      remoteAddress: remote,
      certificateCommonName: commonName,
    });
  });
  server.on("tlsClientError", (error: Error, socket: tls.TLSSocket) => {
    if (!closed) onHandshakeError(remoteOf(socket), error);
    socket.destroy();
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.hostname, () => {
      server.off("error", reject);
      resolve();
    });
  });
  server.on("error", onError);
  const address = server.address() as AddressInfo;
  let resolveDone!: () => void;
  const done = new Promise<void>((resolve) => resolveDone = resolve);
  return {
    name: options.name,
    port: address.port,
    hostname: address.address,
    close() {
      if (closed) return;
      closed = true;
      // Stops accepting at once; node's "close" event would wait for the open connections, whose owners
      // close them (drain), so `done` does not wait for it.
      server.close();
      resolveDone();
    },
    done,
  };
}

/**
 * The peer's address; after a failed handshake the TLS socket has lost it and only the TCP socket under
 * it (node's `_parent`) still knows.
 */
function remoteOf(socket: tls.TLSSocket): string {
  const parent = (socket as unknown as { _parent?: { remoteAddress?: string; remotePort?: number } })._parent;
  const address = socket.remoteAddress ?? parent?.remoteAddress;
  const port = socket.remotePort ?? parent?.remotePort;
  return address === undefined ? "unknown address" : `${address}:${port}`;
}

/** Most received bytes held for a reader that is behind; the socket is paused above it. */
const READ_HIGH_WATER_MARK = 256 * 1024;

/**
 * A node `net`/`tls` socket as a {@link ByteStream}: received chunks are queued (the socket is paused while
 * more than READ_HIGH_WATER_MARK bytes wait) and `write` resolves once the socket has taken the bytes.
 */
export class NodeSocketStream implements ByteStream {
  readonly #received = new ChunkQueue();
  #paused = false;
  #closeTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(private readonly socket: tls.TLSSocket) {
    socket.on("data", (chunk: Buffer) => {
      this.#received.push(chunk);
      if (this.#received.queuedBytes >= READ_HIGH_WATER_MARK && !this.#paused) {
        this.#paused = true;
        socket.pause();
      }
    });
    const end = () => this.#received.end();
    socket.on("end", end);
    socket.on("error", end); // a reset is the end of the stream; the owner publishes the will
    socket.on("close", () => {
      clearTimeout(this.#closeTimer);
      end();
    });
  }

  async read(buffer: Uint8Array): Promise<number | null> {
    const n = await this.#received.read(buffer);
    if (this.#paused && this.#received.queuedBytes < READ_HIGH_WATER_MARK / 2) {
      this.#paused = false;
      this.socket.resume();
    }
    return n;
  }

  write(data: Uint8Array): Promise<number> {
    if (this.socket.destroyed || !this.socket.writable) {
      return Promise.reject(new Deno.errors.BrokenPipe("TLS socket closed"));
    }
    // Under the socket's high-water mark the bytes are taken at once; above it, wait for "drain". The
    // socket keeps a reference to `data`: the outbox never reuses a chunk it has handed over.
    if (this.socket.write(data)) return Promise.resolve(data.byteLength);
    return new Promise((resolve, reject) => {
      const drained = () => {
        this.socket.off("close", closed);
        resolve(data.byteLength);
      };
      const closed = () => {
        this.socket.off("drain", drained);
        reject(new Deno.errors.BrokenPipe("TLS socket closed"));
      };
      this.socket.once("drain", drained);
      this.socket.once("close", closed);
    });
  }

  /** Sends close_notify and FIN after what was written; the socket is destroyed at the latest 1 s later. */
  close(): void {
    if (this.socket.destroyed) return;
    this.socket.end();
    this.#closeTimer ??= setTimeout(() => this.socket.destroy(), 1000);
    this.#received.end();
  }
}
