/**
 * MQTT over WebSocket (MQTT 5.0 §6, 3.1.1 §6) on our own accept loop: each accepted socket (TCP, or TLS
 * for wss) is handed on at once as a stream whose first read runs the HTTP upgrade on `path` with the
 * subprotocol `mqtt` (or `mqttv3.1` for old clients). So a socket that sends nothing, or half a request,
 * is counted against the connection limits and closed at the CONNECT deadline like any other, and running
 * out of descriptors only pauses the accept loop. After the upgrade, {@link WebSocketServerStream} carries
 * the bytes.
 */
import { readRequestHead, type RequestHead, textResponse, writeAll } from "./http_head.ts";
import type { ByteStream } from "./mod.ts";
import { type Accepted, acceptLoop, type Listener, TcpSocket } from "./tcp.ts";
import { loadTlsEngine, type TlsEngine, TlsServerStream } from "./tls.ts";
import { type InnerStream, WebSocketServerStream } from "./websocket_stream.ts";

/** How a ws or wss listener is set up. */
export interface WebSocketListenOptions {
  name: string;
  hostname: string;
  port: number;
  /** The upgrade path; anything else is answered 404. Default `/mqtt`. */
  path?: string;
  /** PEM files: present for wss. */
  tls?: { certFile: string; keyFile: string };
  /** Told when a connection is refused or closed for a protocol violation (for logging). */
  onRejected?: (remoteAddress: string, reason: string) => void;
}

/** Subprotocols accepted, in order of preference (MQTT §6: the client MUST offer "mqtt"). */
const SUBPROTOCOLS = ["mqtt", "mqttv3.1"];

/** The most bytes of request head read before answering 431. */
const MAX_HEAD_BYTES = 16 * 1024;

/** After an error response, how long the client has to read it before the socket is closed. */
const RESPONSE_LINGER_MS = 1000;

/** Serves WebSocket upgrades at `options.path`; each accepted socket goes to `onAccept` at once. */
export async function listenWebSocket(
  options: WebSocketListenOptions,
  onAccept: (accepted: Accepted) => void,
  onError: (error: unknown) => void,
): Promise<Listener> {
  const path = options.path ?? "/mqtt";
  const onRejected = options.onRejected ?? (() => {});
  const engine: TlsEngine | undefined = options.tls
    ? await loadTlsEngine({ name: options.name, ...options.tls })
    : undefined;
  const listener = Deno.listen({ hostname: options.hostname, port: options.port, transport: "tcp" });
  const address = listener.addr as Deno.NetAddr;
  let closed = false;
  const done = acceptLoop(listener, () => closed, (conn) => {
    const remote = conn.remoteAddr as Deno.NetAddr;
    const remoteAddress = `${remote.hostname}:${remote.port}`;
    const reject = (reason: string) => onRejected(remoteAddress, reason);
    try {
      conn.setNoDelay(true); // small MQTT packets are not held back (Nagle)
    } catch { /* the peer may already be gone */ }
    const inner: InnerStream = engine
      ? new TlsServerStream(conn, engine, () => {}, (error) => reject(`TLS: ${error}`))
      : new TcpSocket(conn);
    onAccept({ stream: new UpgradingStream(inner, path, reject), remoteAddress });
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

/** A socket before and after its upgrade: the first read runs the upgrade; then it is the WebSocket. */
class UpgradingStream implements ByteStream {
  #socket: WebSocketServerStream | undefined;
  #upgrading: Promise<WebSocketServerStream | undefined> | undefined;
  #closed = false;
  /** An error response is on its way: the socket closes itself after it. */
  #answered = false;

  constructor(
    private readonly inner: InnerStream,
    private readonly path: string,
    private readonly onRejected: (reason: string) => void,
  ) {}

  async read(buffer: Uint8Array): Promise<number | null> {
    this.#socket ??= await (this.#upgrading ??= this.#upgrade());
    return this.#socket ? this.#socket.read(buffer) : null;
  }

  write(data: Uint8Array): Promise<number> {
    if (!this.#socket) return Promise.reject(new Deno.errors.BrokenPipe("WebSocket not open"));
    return this.#socket.write(data);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#socket) this.#socket.close();
    else if (!this.#answered) this.#closeInner();
  }

  #closeInner(): void {
    try {
      this.inner.close();
    } catch { /* already closed */ }
  }

  async #upgrade(): Promise<WebSocketServerStream | undefined> {
    const result = await readRequestHead(this.inner, MAX_HEAD_BYTES).catch(() => ({
      kind: "ended" as const,
    }));
    if (this.#closed) return undefined;
    if (result.kind === "ended") {
      this.#closeInner();
      return undefined;
    }
    if (result.kind === "too_large") return this.#answer(431, "request head too large\n");
    if (result.kind === "malformed") return this.#answer(400, "malformed request\n");
    const { head, rest } = result;
    const refusal = this.#refusal(head);
    if (refusal) {
      if (refusal.status === 400) this.onRejected(refusal.text.trim());
      return this.#answer(refusal.status, refusal.text, refusal.headers);
    }
    const protocol = SUBPROTOCOLS.find((name) => offeredProtocols(head).includes(name));
    const accept = await acceptKey(head.headers.get("sec-websocket-key")!);
    const headers = [
      "HTTP/1.1 101 Switching Protocols",
      "upgrade: websocket",
      "connection: Upgrade",
      `sec-websocket-accept: ${accept}`,
      // No subprotocol offered at all is tolerated (some embedded clients omit it); a wrong one is not.
      ...(protocol ? [`sec-websocket-protocol: ${protocol}`] : []),
    ];
    try {
      await writeAll(this.inner, new TextEncoder().encode(headers.join("\r\n") + "\r\n\r\n"));
    } catch {
      this.#closeInner();
      return undefined;
    }
    if (this.#closed) return undefined;
    return new WebSocketServerStream(this.inner, rest, this.onRejected);
  }

  #refusal(head: RequestHead): { status: number; text: string; headers?: [string, string][] } | undefined {
    const pathname = head.target.split("?")[0];
    if (pathname !== this.path) return { status: 404, text: "not found\n" };
    if (head.headers.get("upgrade")?.toLowerCase() !== "websocket") {
      return { status: 426, text: "MQTT over WebSocket only\n", headers: [["upgrade", "websocket"]] };
    }
    if (head.method !== "GET") return { status: 400, text: "the upgrade must be a GET\n" };
    if (head.headers.get("sec-websocket-version") !== "13") {
      return { status: 426, text: "WebSocket version 13 only\n", headers: [["sec-websocket-version", "13"]] };
    }
    if (!head.headers.get("sec-websocket-key")) return { status: 400, text: "no Sec-WebSocket-Key\n" };
    const offered = offeredProtocols(head);
    if (offered.length > 0 && !SUBPROTOCOLS.some((name) => offered.includes(name))) {
      return { status: 400, text: `subprotocol mqtt required, not ${offered.join(", ")}\n` };
    }
    return undefined;
  }

  /** Sends an error response, then closes once the client has had time to read it. */
  async #answer(status: number, text: string, headers: [string, string][] = []): Promise<undefined> {
    this.#answered = true;
    try {
      await writeAll(this.inner, textResponse(status, text, headers));
      await this.inner.closeWrite?.();
      await new Promise((resolve) => setTimeout(resolve, RESPONSE_LINGER_MS));
    } catch { /* the client is gone */ }
    this.#closeInner();
    return undefined;
  }
}

function offeredProtocols(head: RequestHead): string[] {
  return (head.headers.get("sec-websocket-protocol") ?? "")
    .split(",").map((name) => name.trim()).filter((name) => name !== "");
}

/** Sec-WebSocket-Accept: base64 of SHA-1 of the key and the RFC 6455 GUID. */
async function acceptKey(key: string): Promise<string> {
  const data = new TextEncoder().encode(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-1", data));
  return btoa(String.fromCharCode(...digest));
}
