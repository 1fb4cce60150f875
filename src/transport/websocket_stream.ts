/**
 * The server side of a WebSocket (RFC 6455) as a {@link ByteStream}, over a TCP or TLS stream, after the
 * HTTP upgrade. MQTT travels in binary messages, split or packed in any way (MQTT §6): `read` returns the
 * payload bytes of binary frames as one continuous stream, unmasked in place in the caller's buffer, so
 * nothing is buffered beyond one read and a client that sends faster than it is read meets TCP flow
 * control. Pings are answered; a text frame closes with 1003, a protocol error with 1002, a close frame
 * with the close handshake.
 */
import type { ByteStream } from "./mod.ts";

/** The underlying stream; `closeWrite` (FIN after what was written), when it has one, makes the close clean. */
export type InnerStream = ByteStream & { closeWrite?(): Promise<void> };

const OPCODE_CONTINUATION = 0x0;
const OPCODE_TEXT = 0x1;
const OPCODE_BINARY = 0x2;
const OPCODE_CLOSE = 0x8;
const OPCODE_PING = 0x9;
const OPCODE_PONG = 0xa;

/** After our close frame, how long the peer has to close its side before the socket is closed anyway. */
const CLOSE_LINGER_MS = 1000;
/** Frames up to this size go out as one write (header and payload copied together); larger ones as two. */
const COALESCE_BYTES = 64 * 1024;

export class WebSocketServerStream implements ByteStream {
  /** Bytes read with the request head that belong to the first frames. */
  #pending: Uint8Array | undefined;
  #ended = false;
  #closing = false;
  #writes: Promise<void> = Promise.resolve();
  // The frame being read.
  #inPayload = false;
  readonly #header = new Uint8Array(14);
  #headerLength = 0;
  #headerNeeded = 2;
  #opcode = 0;
  #fin = false;
  readonly #mask = new Uint8Array(4);
  #maskOffset = 0;
  #remaining = 0;
  /** A fragmented binary message is open: continuation frames belong to it. */
  #messageOpen = false;
  /** Payload of the control frame being read (at most 125 bytes). */
  #control: Uint8Array | undefined;
  #controlLength = 0;

  constructor(
    private readonly inner: InnerStream,
    rest: Uint8Array,
    private readonly onRejected: (reason: string) => void = () => {},
  ) {
    if (rest.byteLength > 0) this.#pending = rest;
  }

  async read(buffer: Uint8Array): Promise<number | null> {
    for (;;) {
      if (this.#ended) return null;
      let n: number | null;
      if (this.#pending) {
        n = Math.min(this.#pending.byteLength, buffer.byteLength);
        buffer.set(this.#pending.subarray(0, n));
        this.#pending = n === this.#pending.byteLength ? undefined : this.#pending.subarray(n);
      } else {
        n = await this.inner.read(buffer);
      }
      if (n === null) {
        this.#ended = true;
        return null;
      }
      const payload = this.#parse(buffer, n);
      if (payload > 0) return payload;
    }
  }

  /** Sends `data` as one binary frame. */
  async write(data: Uint8Array): Promise<number> {
    if (this.#closing) throw new Deno.errors.BrokenPipe("WebSocket closed");
    await this.#send(OPCODE_BINARY, data);
    return data.byteLength;
  }

  /** Starts the close handshake (1000): a close frame after what was written, then the socket is closed. */
  close(): void {
    this.#fail(1000, "");
  }

  /**
   * Walks the `n` bytes read into `buffer`: frame headers are taken apart, control frames handled, and the
   * payload of binary frames is unmasked and moved to the front of `buffer`. Returns how many payload
   * bytes are there (always at most the bytes already walked, so moving them overwrites nothing unread).
   */
  #parse(buffer: Uint8Array, n: number): number {
    let out = 0;
    let i = 0;
    while (i < n && !this.#ended) {
      if (!this.#inPayload) {
        this.#header[this.#headerLength++] = buffer[i++];
        if (this.#headerLength === 2) this.#headerNeeded = headerSize(this.#header);
        if (this.#headerLength === this.#headerNeeded) this.#startFrame();
        continue;
      }
      const take = Math.min(n - i, this.#remaining);
      const mask = this.#mask;
      let offset = this.#maskOffset;
      if (this.#control) {
        for (let k = 0; k < take; k++) {
          this.#control[this.#controlLength++] = buffer[i + k] ^ mask[offset++ & 3];
        }
      } else {
        for (let k = 0; k < take; k++) buffer[out++] = buffer[i + k] ^ mask[offset++ & 3];
      }
      this.#maskOffset = offset & 3;
      i += take;
      this.#remaining -= take;
      if (this.#remaining === 0) this.#endFrame();
    }
    return out;
  }

  #startFrame(): void {
    const header = this.#header;
    this.#headerLength = 0;
    this.#headerNeeded = 2;
    this.#fin = (header[0] & 0x80) !== 0;
    this.#opcode = header[0] & 0x0f;
    const masked = (header[1] & 0x80) !== 0;
    let length = header[1] & 0x7f;
    let at = 2;
    if (length === 126) {
      length = (header[2] << 8) | header[3];
      at = 4;
    } else if (length === 127) {
      const high = (header[2] << 24 | header[3] << 16 | header[4] << 8 | header[5]) >>> 0;
      if (high >= 0x200000) return this.#reject(1009, "frame longer than 2^53 bytes");
      length = high * 0x1_0000_0000 +
        ((header[6] << 24 | header[7] << 16 | header[8] << 8 | header[9]) >>> 0);
      at = 10;
    }
    if ((header[0] & 0x70) !== 0) return this.#reject(1002, "reserved bits set");
    if (!masked) return this.#reject(1002, "client frames must be masked");
    this.#mask.set(header.subarray(at, at + 4));
    this.#maskOffset = 0;
    this.#remaining = length;
    this.#control = undefined;
    switch (this.#opcode) {
      case OPCODE_TEXT:
        return this.#reject(1003, "MQTT needs binary messages");
      case OPCODE_BINARY:
        if (this.#messageOpen) return this.#reject(1002, "new message inside a fragmented one");
        break;
      case OPCODE_CONTINUATION:
        if (!this.#messageOpen) return this.#reject(1002, "continuation without a message");
        break;
      case OPCODE_CLOSE:
      case OPCODE_PING:
      case OPCODE_PONG:
        if (!this.#fin || length > 125) return this.#reject(1002, "fragmented or long control frame");
        this.#control = new Uint8Array(length);
        this.#controlLength = 0;
        break;
      default:
        return this.#reject(1002, `unknown opcode ${this.#opcode}`);
    }
    this.#inPayload = true;
    if (length === 0) this.#endFrame();
  }

  #endFrame(): void {
    this.#inPayload = false;
    const control = this.#control;
    this.#control = undefined;
    switch (this.#opcode) {
      case OPCODE_BINARY:
      case OPCODE_CONTINUATION:
        this.#messageOpen = !this.#fin;
        return;
      case OPCODE_PING:
        void this.#send(OPCODE_PONG, control!).catch(() => {});
        return;
      case OPCODE_CLOSE: {
        // Echo the peer's code, as the close handshake asks; a close without one is answered 1000.
        const code = control!.byteLength >= 2 ? (control![0] << 8) | control![1] : 1000;
        this.#fail(code === 1005 || code === 1006 || code === 1015 ? 1000 : code, "");
        return;
      }
    }
  }

  #reject(code: number, reason: string): void {
    this.onRejected(reason);
    this.#fail(code, reason);
  }

  /** Ends reading, sends a close frame, then closes the socket once the peer closed or at the latest soon. */
  #fail(code: number, reason: string): void {
    this.#ended = true;
    this.#pending = undefined;
    if (this.#closing) return;
    this.#closing = true;
    const reasonBytes = new TextEncoder().encode(reason).subarray(0, 123);
    const payload = new Uint8Array(2 + reasonBytes.byteLength);
    payload[0] = code >> 8;
    payload[1] = code & 0xff;
    payload.set(reasonBytes, 2);
    const inner = this.inner;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const shut = () => {
      clearTimeout(timer);
      try {
        inner.close();
      } catch { /* already closed */ }
    };
    this.#send(OPCODE_CLOSE, payload, true)
      .then(() => inner.closeWrite?.())
      .then(() => timer = setTimeout(shut, CLOSE_LINGER_MS), shut);
  }

  /** Queues one frame; frames never interleave. */
  #send(opcode: number, payload: Uint8Array, evenWhenClosing = false): Promise<void> {
    if (this.#closing && !evenWhenClosing) {
      return Promise.reject(new Deno.errors.BrokenPipe("WebSocket closed"));
    }
    const header = frameHeader(opcode, payload.byteLength);
    const sent = this.#writes.then(async () => {
      if (payload.byteLength <= COALESCE_BYTES) {
        const frame = new Uint8Array(header.byteLength + payload.byteLength);
        frame.set(header);
        frame.set(payload, header.byteLength);
        await writeAll(this.inner, frame);
      } else {
        await writeAll(this.inner, header);
        await writeAll(this.inner, payload);
      }
    });
    this.#writes = sent.catch(() => {});
    return sent;
  }
}

/** Bytes of a client frame header: 2, plus the extended length, plus the masking key when the mask bit is set. */
function headerSize(header: Uint8Array): number {
  const length = header[1] & 0x7f;
  const extended = length === 126 ? 2 : length === 127 ? 8 : 0;
  return 2 + extended + ((header[1] & 0x80) !== 0 ? 4 : 0);
}

/** A server frame header (FIN set, never masked). */
function frameHeader(opcode: number, length: number): Uint8Array {
  if (length < 126) return Uint8Array.of(0x80 | opcode, length);
  if (length < 0x10000) return Uint8Array.of(0x80 | opcode, 126, length >> 8, length & 0xff);
  const header = new Uint8Array(10);
  header[0] = 0x80 | opcode;
  header[1] = 127;
  const view = new DataView(header.buffer);
  view.setUint32(2, Math.floor(length / 0x1_0000_0000));
  view.setUint32(6, length >>> 0);
  return header;
}

async function writeAll(stream: ByteStream, bytes: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < bytes.byteLength) {
    offset += await stream.write(offset === 0 ? bytes : bytes.subarray(offset));
  }
}
