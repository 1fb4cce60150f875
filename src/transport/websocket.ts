/**
 * MQTT over WebSocket (MQTT 5.0 §6, 3.1.1 §6): `Deno.serve` + `Deno.upgradeWebSocket` on one path,
 * subprotocol `mqtt` (or `mqttv3.1` for old clients), binary messages only. Each WebSocket is adapted to a
 * {@link ByteStream} that is faithful to the bytes: MQTT packets may be split across messages or several
 * packed in one, and the broker's incremental decoder sees one continuous stream either way.
 */
import { ChunkQueue } from "./chunk_queue.ts";
import type { ByteStream } from "./mod.ts";
import type { Accepted, Listener } from "./tcp.ts";

/** How a ws or wss listener is set up. */
export interface WebSocketListenOptions {
  name: string;
  hostname: string;
  port: number;
  /** The upgrade path; anything else is answered 404. Default `/mqtt`. */
  path?: string;
  /** PEM files: present for wss. */
  tls?: { certFile: string; keyFile: string };
  /**
   * Most received bytes held for a connection whose reader is behind. Deno's WebSocket cannot pause its
   * reads, so beyond this the connection is closed with 1009 (message too big). Default 4 MiB.
   */
  maxBufferedBytes?: number;
  /** Told when a connection is closed for a protocol violation or overflow (for logging). */
  onRejected?: (remoteAddress: string, reason: string) => void;
}

/** Subprotocols accepted, in order of preference (MQTT §6: the client MUST offer "mqtt"). */
const SUBPROTOCOLS = ["mqtt", "mqttv3.1"];

const DEFAULT_MAX_BUFFERED_BYTES = 4 << 20;

/** Sends wait while more than this many bytes are buffered in the WebSocket (write backpressure). */
const SEND_HIGH_WATER_MARK = 1 << 20;

/** Poll interval while waiting for the WebSocket's send buffer to drain (it has no drain event). */
const SEND_POLL_MS = 2;

const TEXT = { "content-type": "text/plain; charset=utf-8" };

/**
 * Serves WebSocket upgrades at `options.path` and hands each opened socket to `onAccept`. `close()` stops
 * taking new connections (503) but keeps the server up until the accepted WebSockets have closed, since
 * shutting `Deno.serve` down would cut them before the broker could tell them it is going away.
 */
export function listenWebSocket(
  options: WebSocketListenOptions,
  onAccept: (accepted: Accepted) => void,
  onError: (error: unknown) => void,
): Listener {
  const path = options.path ?? "/mqtt";
  const maxBuffered = options.maxBufferedBytes ?? DEFAULT_MAX_BUFFERED_BYTES;
  const onRejected = options.onRejected ?? (() => {});
  const open = new Set<WebSocket>();
  let closed = false;
  let stopping: Promise<void> | undefined;
  let acceptEnded!: () => void;
  const done = new Promise<void>((resolve) => acceptEnded = resolve);
  const tls = options.tls
    ? { cert: Deno.readTextFileSync(options.tls.certFile), key: Deno.readTextFileSync(options.tls.keyFile) }
    : {};

  const stopServer = () => stopping ??= server.shutdown().catch(onError);

  const handler = (request: Request, info: Deno.ServeHandlerInfo<Deno.NetAddr>): Response => {
    if (closed) return new Response("shutting down\n", { status: 503, headers: TEXT });
    if (new URL(request.url).pathname !== path) {
      return new Response("not found\n", { status: 404, headers: TEXT });
    }
    if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") {
      return new Response("MQTT over WebSocket only\n", {
        status: 426,
        headers: { ...TEXT, upgrade: "websocket" },
      });
    }
    const offered = (request.headers.get("sec-websocket-protocol") ?? "")
      .split(",").map((name) => name.trim()).filter((name) => name !== "");
    const protocol = SUBPROTOCOLS.find((name) => offered.includes(name));
    const remote = `${info.remoteAddr.hostname}:${info.remoteAddr.port}`;
    if (offered.length > 0 && protocol === undefined) {
      onRejected(remote, `no MQTT subprotocol among ${offered.join(", ")}`);
      return new Response("subprotocol mqtt required\n", { status: 400, headers: TEXT });
    }
    // No subprotocol offered at all is tolerated (some embedded clients omit it); a wrong one is not.
    const { socket, response } = Deno.upgradeWebSocket(request, protocol ? { protocol } : {});
    const stream = new WebSocketByteStream(socket, maxBuffered, (reason) => onRejected(remote, reason));
    open.add(socket);
    socket.addEventListener("open", () => {
      if (closed) stream.close();
      else onAccept({ stream, remoteAddress: remote });
    });
    socket.addEventListener("close", () => {
      open.delete(socket);
      if (closed && open.size === 0) void stopServer();
    });
    return response;
  };

  const server = Deno.serve({
    hostname: options.hostname,
    port: options.port,
    ...tls,
    onListen() {},
    onError(error) {
      onError(error);
      return new Response("internal error\n", { status: 500, headers: TEXT });
    },
  }, handler);

  return {
    name: options.name,
    port: server.addr.port,
    hostname: server.addr.hostname,
    close() {
      if (closed) return;
      closed = true;
      acceptEnded();
      if (open.size === 0) void stopServer();
    },
    // The accept side ends at close(); the HTTP server itself follows once the last WebSocket is gone.
    done,
  };
}

/**
 * A server-side WebSocket as a {@link ByteStream}: `read` returns bytes from the queued binary messages,
 * `write` sends one binary message per call and waits while the socket's send buffer is over
 * SEND_HIGH_WATER_MARK. Text messages are refused (MQTT §6: close the connection).
 */
export class WebSocketByteStream implements ByteStream {
  readonly #received = new ChunkQueue();

  constructor(
    private readonly socket: WebSocket,
    private readonly maxBufferedBytes: number,
    private readonly onRejected: (reason: string) => void,
  ) {
    socket.binaryType = "arraybuffer";
    socket.addEventListener("message", (event: MessageEvent) => {
      if (this.#received.ended) return;
      if (!(event.data instanceof ArrayBuffer)) {
        this.onRejected("text message");
        return this.#abort(1003, "MQTT needs binary messages");
      }
      const bytes = new Uint8Array(event.data);
      if (this.#received.queuedBytes + bytes.byteLength > this.maxBufferedBytes) {
        this.onRejected(`receive buffer over ${this.maxBufferedBytes} bytes`);
        return this.#abort(1009, "receive buffer full");
      }
      this.#received.push(bytes);
    });
    const end = () => this.#received.end();
    socket.addEventListener("close", end);
    socket.addEventListener("error", end);
  }

  /** Bytes received and not read yet. */
  get queuedBytes(): number {
    return this.#received.queuedBytes;
  }

  read(buffer: Uint8Array): Promise<number | null> {
    return this.#received.read(buffer);
  }

  async write(data: Uint8Array): Promise<number> {
    if (this.socket.readyState !== WebSocket.OPEN) throw new Deno.errors.BrokenPipe("WebSocket closed");
    this.socket.send(data);
    while (this.socket.bufferedAmount > SEND_HIGH_WATER_MARK && this.socket.readyState === WebSocket.OPEN) {
      await new Promise((resolve) => setTimeout(resolve, SEND_POLL_MS));
    }
    return data.byteLength;
  }

  close(): void {
    this.#received.end();
    if (this.socket.readyState === WebSocket.OPEN || this.socket.readyState === WebSocket.CONNECTING) {
      try {
        this.socket.close(1000);
      } catch { /* already closing */ }
    }
  }

  #abort(code: number, reason: string): void {
    this.#received.discard();
    try {
      this.socket.close(code, reason);
    } catch { /* already closing */ }
  }
}
