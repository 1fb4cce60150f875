/**
 * TLS listeners (with or without client certificates) on our own TCP accept loop: each accepted socket is
 * handed on at once, as a stream whose first read waits for the TLS handshake. So a socket still in its
 * handshake is counted against the connection limits and closed at the CONNECT deadline like any other,
 * and closing it releases its descriptor at once. (`Deno.listenTls` cannot: a TlsConn closed before its
 * handshake keeps the TCP socket until the peer sends or closes, and its accept loop, like that of
 * `tls.createServer`, stops for good on EMFILE.)
 *
 * The TLS engine is node:tls: a `tls.Server` that never listens is handed each connection as a stream
 * over the `Deno.Conn`. It asks for a client certificate when there is a `caFile` but does not judge it:
 * `verifyClientCertificate` does, because the engine's verifier refuses X.509 v1 certificates that
 * OpenSSL-based brokers accept (client_cert.ts). The Common Name of a verified certificate is handed on as
 * `Accepted.certificateCommonName` when asked for.
 * Measured here: a handshake costs about 1.4–3 ms, and bulk throughput is 75–95% of `Deno.listenTls`'s.
 */
import { Buffer } from "node:buffer";
import { Duplex } from "node:stream";
import type { X509Certificate } from "node:crypto";
import tls from "node:tls";
import { ChunkQueue } from "./chunk_queue.ts";
import { parseCaBundle, verifyClientCertificate } from "./client_cert.ts";
import type { ByteStream } from "./mod.ts";
import { type Accepted, acceptLoop, type Listener, TcpSocket } from "./tcp.ts";

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
  /** Hand on the Common Name of a verified client certificate (listener.<name>.use_cn_as_username). */
  useCommonName?: boolean;
  /** Told about each failed handshake (bad or missing client certificate, garbage). */
  onHandshakeError?: (remoteAddress: string, error: unknown) => void;
}

/** The certificate, key and client-certificate policy, ready for one `tls.Server` per connection. */
export interface TlsEngine {
  cert: string;
  key: string;
  ca?: string;
  /** The certificates of `ca`, parsed once. */
  cas: X509Certificate[];
  requireClientCert: boolean;
}

/** Reads the PEM files of `options`; rejects when one is missing or require_client_cert lacks a CA. */
export async function loadTlsEngine(options: {
  name: string;
  certFile: string;
  keyFile: string;
  caFile?: string;
  requireClientCert?: boolean;
}): Promise<TlsEngine> {
  const [cert, key, ca] = await Promise.all([
    Deno.readTextFile(options.certFile),
    Deno.readTextFile(options.keyFile),
    options.caFile === undefined ? undefined : Deno.readTextFile(options.caFile),
  ]);
  const requireClientCert = options.requireClientCert ?? false;
  if (requireClientCert && ca === undefined) {
    throw new Error(`listener ${options.name}: require_client_cert needs ca_file`);
  }
  return { cert, key, ca, cas: ca === undefined ? [] : parseCaBundle(ca), requireClientCert };
}

/**
 * Listens for TLS connections and hands each one to `onAccept` as soon as it is accepted. Rejects when a
 * PEM file cannot be read or the address cannot be bound.
 */
export async function listenTls(
  options: TlsListenOptions,
  onAccept: (accepted: Accepted) => void,
  onError: (error: unknown) => void,
): Promise<Listener> {
  const engine = await loadTlsEngine(options);
  const listener = Deno.listen({ hostname: options.hostname, port: options.port, transport: "tcp" });
  const address = listener.addr as Deno.NetAddr;
  let closed = false;
  const done = acceptLoop(listener, () => closed, (conn) => {
    try {
      conn.setNoDelay(true); // small MQTT packets are not held back (Nagle)
    } catch { /* the peer may already be gone */ }
    const remote = conn.remoteAddr as Deno.NetAddr;
    const remoteAddress = `${remote.hostname}:${remote.port}`;
    // Known once the handshake is done: the connection reads it at CONNECT, which comes after.
    const stream = new TlsServerStream(conn, engine, (commonName) => {
      if (options.useCommonName) accepted.certificateCommonName = commonName;
    }, (error) => options.onHandshakeError?.(remoteAddress, error));
    const accepted: Accepted = { stream, remoteAddress };
    onAccept(accepted);
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

/** Most received bytes held for a reader that is behind; the socket is paused above it. */
const READ_HIGH_WATER_MARK = 256 * 1024;
/** An idle connection's pending read pins its buffer: small until the peer sends a full one. */
const SMALL_READ = 1024;
/** The largest TLS record. */
const LARGE_READ = 16 * 1024 + 512;

/** A TCP socket as a node stream, for node:tls to run over; destroying it closes the socket at once. */
function connDuplex(socket: TcpSocket): Duplex {
  let size = SMALL_READ;
  return new Duplex({
    read() {
      const buffer = new Uint8Array(size);
      socket.read(buffer).then((n) => {
        if (n === null) return void this.push(null);
        size = n === buffer.byteLength ? LARGE_READ : SMALL_READ;
        this.push(Buffer.from(buffer.buffer, 0, n));
      }, (error) => this.destroy(error));
    },
    write(chunk: Uint8Array, _encoding, callback) {
      writeFully(socket, chunk).then(() => callback(), callback);
    },
    final(callback) {
      socket.closeWrite().then(() => callback(), () => callback());
    },
    destroy(error, callback) {
      try {
        socket.close();
      } catch { /* already closed */ }
      callback(error);
    },
  });
}

async function writeFully(socket: TcpSocket, chunk: Uint8Array): Promise<void> {
  for (let offset = 0; offset < chunk.byteLength;) {
    offset += await socket.write(offset === 0 ? chunk : chunk.subarray(offset));
  }
}

/**
 * The server side of one TLS connection as a {@link ByteStream}: `read` waits for the handshake, then
 * returns decrypted bytes (the socket is paused while more than READ_HIGH_WATER_MARK wait); `write`
 * resolves once the socket has taken the bytes. A failed handshake ends the stream.
 */
export class TlsServerStream implements ByteStream {
  readonly #received = new ChunkQueue();
  readonly #duplex: Duplex;
  #socket: tls.TLSSocket | undefined;
  #paused = false;
  #closeTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    conn: Deno.Conn,
    engine: TlsEngine,
    onSecure: (commonName: string | undefined) => void,
    onHandshakeError: (error: unknown) => void,
  ) {
    this.#duplex = connDuplex(new TcpSocket(conn));
    // A server that never listens: it only runs the handshake (and sets `authorized`) for this connection.
    const server = tls.createServer({
      cert: engine.cert,
      key: engine.key,
      ca: engine.ca,
      requestCert: engine.ca !== undefined,
      rejectUnauthorized: false,
    });
    server.on("secureConnection", (socket: tls.TLSSocket) => {
      if (this.#received.ended) return void socket.destroy();
      let commonName: string | undefined;
      if (engine.ca !== undefined) {
        const peer = socket.getPeerCertificate(true);
        const verdict = socket.authorized ? { ok: true as const } : verifyClientCertificate(peer, engine.cas);
        if (verdict.ok) {
          const cn = peer?.subject?.CN as string | string[] | undefined;
          // "" for a verified certificate without a CN: it must not pass for a client without a certificate
          commonName = (Array.isArray(cn) ? cn[0] : cn) ?? "";
        } else if (engine.requireClientCert) {
          onHandshakeError(new Error(`client certificate refused: ${verdict.reason}`));
          socket.destroy();
          this.#received.end();
          return;
        }
      }
      this.#socket = socket;
      onSecure(commonName);
      this.#attach(socket);
    });
    server.on("tlsClientError", (error: Error) => {
      onHandshakeError(error);
      this.#duplex.destroy();
      this.#received.end();
    });
    this.#duplex.on("error", () => this.#received.end());
    this.#duplex.on("close", () => this.#received.end());
    server.emit("connection", this.#duplex);
  }

  #attach(socket: tls.TLSSocket): void {
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
      this.#socket?.resume();
    }
    return n;
  }

  write(data: Uint8Array): Promise<number> {
    const socket = this.#socket;
    if (!socket || socket.destroyed || !socket.writable) {
      return Promise.reject(new Deno.errors.BrokenPipe("TLS socket closed"));
    }
    // Under the socket's high-water mark the bytes are taken at once; above it, wait for "drain". The
    // socket keeps a reference to `data`: the outbox never reuses a chunk it has handed over.
    if (socket.write(data)) return Promise.resolve(data.byteLength);
    return new Promise((resolve, reject) => {
      const drained = () => {
        socket.off("close", closed);
        resolve(data.byteLength);
      };
      const closed = () => {
        socket.off("drain", drained);
        reject(new Deno.errors.BrokenPipe("TLS socket closed"));
      };
      socket.once("drain", drained);
      socket.once("close", closed);
    });
  }

  /** Sends close_notify and FIN after what was written (the WebSocket close handshake uses it). */
  closeWrite(): Promise<void> {
    this.#socket?.end();
    return Promise.resolve();
  }

  /**
   * After the handshake: close_notify and FIN after what was written, the socket destroyed at the latest
   * 1 s later. Before it (a silent or slow client): the socket is closed at once.
   */
  close(): void {
    this.#received.end();
    const socket = this.#socket;
    if (!socket) {
      this.#duplex.destroy();
      return;
    }
    if (socket.destroyed) return;
    socket.end();
    this.#closeTimer ??= setTimeout(() => socket.destroy(), 1000);
  }
}
