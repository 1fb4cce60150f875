/**
 * Bytes that arrive as events (WebSocket messages, node:tls "data" chunks), read back as a byte stream:
 * `read` fills the caller's buffer from the queued chunks, across chunk boundaries, and waits while
 * nothing is queued. MQTT frames may be split across chunks or packed several to one; the decoder copes.
 */
export class ChunkQueue {
  #chunks: Uint8Array[] = [];
  #offset = 0;
  #queued = 0;
  #ended = false;
  #wake: (() => void) | undefined;

  /** Bytes received and not read yet. */
  get queuedBytes(): number {
    return this.#queued;
  }

  get ended(): boolean {
    return this.#ended;
  }

  push(chunk: Uint8Array): void {
    if (this.#ended || chunk.byteLength === 0) return;
    this.#chunks.push(chunk);
    this.#queued += chunk.byteLength;
    this.#notify();
  }

  /** No more bytes will come; a waiting read returns what is queued, then null. */
  end(): void {
    this.#ended = true;
    this.#notify();
  }

  /** Ends and drops what was queued (the connection is being torn down). */
  discard(): void {
    this.#chunks = [];
    this.#offset = 0;
    this.#queued = 0;
    this.end();
  }

  async read(buffer: Uint8Array): Promise<number | null> {
    while (this.#chunks.length === 0) {
      if (this.#ended) return null;
      await new Promise<void>((resolve) => this.#wake = resolve);
    }
    let n = 0;
    while (n < buffer.byteLength && this.#chunks.length > 0) {
      const chunk = this.#chunks[0];
      const take = Math.min(buffer.byteLength - n, chunk.byteLength - this.#offset);
      buffer.set(chunk.subarray(this.#offset, this.#offset + take), n);
      n += take;
      this.#offset += take;
      if (this.#offset === chunk.byteLength) {
        this.#chunks.shift();
        this.#offset = 0;
      }
    }
    this.#queued -= n;
    return n;
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }
}
