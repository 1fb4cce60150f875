/**
 * Transports yield byte streams and know nothing of MQTT. A `Deno.Conn` (TCP or TLS) is one as it is;
 * WebSocket adapts to it.
 */
export interface ByteStream {
  /** Reads into `buffer`; resolves the byte count, or null at end of stream. */
  read(buffer: Uint8Array): Promise<number | null>;
  /** Writes some of `data`; resolves how many bytes were taken. */
  write(data: Uint8Array): Promise<number>;
  /**
   * Writes what the socket takes of `data` now, without waiting: the byte count, or undefined when it
   * takes nothing now (then {@link write} waits for room). Throws when the socket failed. Absent where
   * every write goes through the runtime.
   */
  writeNow?(data: Uint8Array): number | undefined;
  /** Ends the sending side only (TCP FIN) while reads go on; absent where the transport cannot. */
  closeWrite?(): Promise<void>;
  close(): void;
}

export * from "./tcp.ts";
export { epollStopped, epollUnsupported, listenEpollTcp } from "./epoll.ts";
export * from "./tls.ts";
export * from "./websocket.ts";
export { type HttpEndpoint, type HttpServeOptions, serveHttp } from "./http.ts";
