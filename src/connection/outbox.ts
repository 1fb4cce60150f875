import type { ForwardTarget } from "../codec/mod.ts";
import type { ByteStream } from "../transport/mod.ts";
import type { BufferPool } from "./buffer_pool.ts";

/** Frames that wait, in order, for a storage flush (or only for the held frames before them). */
interface HeldSegment {
  frames: Uint8Array[];
  /** True once its flush settled, or from the start for frames merely queued behind held ones. */
  released: boolean;
  gated: boolean;
}

/**
 * The empty lists every outbox starts with (an idle connection has nothing queued): replaced by lists of
 * its own before anything is added, never added to.
 */
const NOTHING_READY: never[] = [];
/** The largest buffer a backlog grows to: one write of up to 1 MiB. */
const MAX_WRITE = 1 << 20;
const NOTHING_HELD: never[] = [];

/** The connection an outbox writes for. */
export interface OutboxOwner {
  /** The socket failed (the peer is gone). */
  writeFailed(error: unknown): void;
  /** `bytes` more reached the socket. */
  written(bytes: number): void;
  /** Everything is written and nothing is held: the owner may let this outbox go until it sends again. */
  outboxIdle(): void;
}

/**
 * Outgoing bytes of one connection. Frames queued during one turn of the event loop are copied into one
 * pooled buffer and go out in a single write (a small send costs about 7 µs in the kernel here; batching
 * is worth 60–100×), so no frame object outlives the turn it was queued in and an idle connection holds
 * no buffer at all. Encoders may write straight into the buffer ({@link reserve}). The queue's size tells
 * the session whether the client keeps up.
 */
export class Outbox implements ForwardTarget {
  /** The size of the last buffer taken (it doubles while writes back up). */
  #bufferSize = 0;
  /** The pooled buffer being filled, and how much of it is. */
  #chunk: Uint8Array<ArrayBuffer> | undefined;
  #filled = 0;
  /**
   * Filled buffers (or frames too large for one) waiting for the socket, oldest first, and beside each the
   * pooled buffer to give back once it is written (two lists: no object per write).
   */
  #ready: Uint8Array[] = NOTHING_READY;
  #readyPooled: (Uint8Array<ArrayBuffer> | undefined)[] = NOTHING_READY;
  /** The write in progress. */
  #inFlight: Uint8Array | undefined;
  #inFlightPooled: Uint8Array<ArrayBuffer> | undefined;
  /** Frames waiting for storage, oldest first; everything behind a held segment waits too, to keep order. */
  #held: HeldSegment[] = NOTHING_HELD;
  /** While frames are held, a {@link reserve} gets a buffer of its own: this one. */
  #scratch: Uint8Array | undefined;
  /** {@link bufferWords}, and the buffer it views. */
  #words: DataView | undefined;
  #wordsOf: Uint8Array | undefined;
  #queuedBytes = 0;
  #scheduled = false;
  #closed = false;
  #drained: (() => void) | undefined;

  /**
   * Callbacks bound to this outbox for the microtask and the write promise, made with it: an idle connection
   * holds no outbox (see {@link OutboxPool}), so they cost it nothing. (Made where they are used, their
   * closures made every call of those methods allocate a context, a queued packet or a write each.)
   */
  readonly #flushNow = () => this.#flush();
  readonly #onWritten = (n: number) => this.#written(n);
  readonly #onFailed = (error: unknown) => this.#failed(error);

  constructor(
    private stream: ByteStream,
    private readonly highWaterMark: number,
    /** Where a burst's first buffer comes from: small, enough for acks and a few messages. */
    private readonly small: BufferPool,
    /** Where the buffers after it come from, once a burst fills a small one. */
    private readonly large: BufferPool,
    private owner: OutboxOwner,
  ) {}

  /** Hands an idle outbox (from the pool) to another connection. */
  rebind(stream: ByteStream, owner: OutboxOwner): void {
    this.stream = stream;
    this.owner = owner;
    this.#bufferSize = 0;
    this.#scratch = undefined;
    this.#forgetWords();
  }

  /** Bytes queued and not yet handed to the socket. */
  get queuedBytes(): number {
    return this.#queuedBytes;
  }

  get writable(): boolean {
    return !this.#closed && this.#queuedBytes < this.highWaterMark;
  }

  /** Bytes that may still be queued before the high-water mark (0 once closed). */
  get room(): number {
    return this.#closed ? 0 : this.highWaterMark - this.#queuedBytes;
  }

  /** Queues a whole frame. Small frames are copied; a large one is sent as it is: do not change it later. */
  push(frame: Uint8Array): void {
    if (this.#closed) return;
    const length = frame.byteLength;
    if (this.#held.length > 0) {
      this.#queuedBytes += length;
      return this.#hold(frame.slice());
    }
    if (length > this.large.size) {
      // Too large to batch: it goes out on its own, after what is queued before it.
      this.#queuedBytes += length;
      this.#seal();
      this.#enqueue(frame, undefined);
      return this.#schedule();
    }
    const at = this.reserve(length);
    this.buffer.set(frame, at);
  }

  /**
   * Room for `length` more bytes, counted as queued: returns where in {@link buffer} to write them. The
   * bytes must be written before anything else is queued.
   */
  reserve(length: number): number {
    this.#queuedBytes += length;
    if (this.#held.length > 0 || this.#closed || length > this.large.size) {
      const own = new Uint8Array(length);
      this.#scratch = own;
      if (this.#held.length > 0) this.#hold(own);
      else if (!this.#closed) {
        this.#seal();
        this.#enqueue(own, undefined);
        this.#schedule();
      }
      return 0;
    }
    this.#scratch = undefined;
    if (
      (this.#chunk === undefined || this.#filled + length > this.#chunk.byteLength) &&
      !this.#moveToLarge(length)
    ) {
      const filledUp = this.#chunk !== undefined;
      const bursting = filledUp || this.#inFlight !== undefined || this.#ready.length > 0;
      this.#seal();
      this.#chunk = this.#nextBuffer(bursting, filledUp, length);
    }
    const at = this.#filled;
    this.#filled += length;
    this.#schedule();
    return at;
  }

  /** The buffer the last {@link reserve} made room in. */
  get buffer(): Uint8Array {
    return this.#scratch ?? this.#chunk!;
  }

  /**
   * A DataView of exactly {@link buffer}, made when asked: one per buffer filled, let go with it (it pins
   * the buffer).
   */
  get bufferWords(): DataView {
    const buffer = this.buffer;
    if (this.#wordsOf !== buffer) {
      this.#wordsOf = buffer;
      this.#words = new DataView(buffer.buffer, buffer.byteOffset, buffer.byteLength);
    }
    return this.#words!;
  }

  /**
   * Holds the frames queued since the last hold and not yet written until `durable` settles: a PUBLISH or
   * PUBREL goes out only after the session state it implies is stored, so a crash cannot make the client
   * see a packet id the restarted broker does not know. Each frame waits for its own flush only; order
   * is kept.
   */
  holdUntil(durable: Promise<void>): void {
    let segment = this.#held.at(-1);
    if (!segment) {
      this.#seal();
      if (this.#ready.length === 0) return;
      // What the socket has not been handed yet waits; a write already in progress cannot be taken back.
      // Their pooled buffers are not given back: the held bytes still live in them.
      segment = { frames: this.#ready, released: false, gated: true };
      this.#ready = NOTHING_READY;
      this.#readyPooled = NOTHING_READY;
      if (this.#held === NOTHING_HELD) this.#held = [];
      this.#held.push(segment);
    } else if (!segment.gated) {
      segment.gated = true;
      segment.released = false;
    } else {
      return; // nothing was queued since the last hold
    }
    const held = segment;
    durable.catch(() => {}).then(() => {
      held.released = true;
      this.#release();
    });
  }

  /** Resolves when everything queued so far was written (or the stream failed). */
  drain(): Promise<void> {
    if (this.#idle()) return Promise.resolve();
    return new Promise((resolve) => {
      const previous = this.#drained;
      this.#drained = () => {
        previous?.();
        resolve();
      };
    });
  }

  /** Stops writing; queued frames are discarded. */
  close(): void {
    this.#closed = true;
    this.#chunk = undefined;
    this.#forgetWords();
    this.#filled = 0;
    this.#ready = NOTHING_READY;
    this.#readyPooled = NOTHING_READY;
    this.#held = NOTHING_HELD;
    this.#queuedBytes = 0;
  }

  #forgetWords(): void {
    this.#words = undefined;
    this.#wordsOf = undefined;
  }

  #idle(): boolean {
    return this.#inFlight === undefined && this.#ready.length === 0 && this.#filled === 0 &&
      this.#held.length === 0;
  }

  #hold(frame: Uint8Array): void {
    const tail = this.#held.at(-1)!;
    if (!tail.gated) tail.frames.push(frame);
    else this.#held.push({ frames: [frame], released: true, gated: false });
  }

  /**
   * A buffer to fill: a small one to start with; a large one once the turn has filled one already or
   * writes are waiting; and when the buffer before it filled up (`filledUp`) while a write is still in
   * flight, one twice its size (up to MAX_WRITE): a client that reads slowly then gets fewer, larger writes,
   * not a queue of them. A buffer ended before it filled (a hold seals it) is no reason to grow: doubling
   * then made every turn of a persistent subscriber's busy connection allocate up to 1 MiB for a few
   * hundred bytes.
   */
  #nextBuffer(bursting: boolean, filledUp: boolean, length: number): Uint8Array<ArrayBuffer> {
    if (!bursting && length <= this.small.size) {
      this.#bufferSize = this.small.size;
      return this.small.take();
    }
    if (!filledUp || this.#inFlight === undefined || this.#bufferSize < this.large.size) {
      this.#bufferSize = this.large.size;
      return this.large.take();
    }
    this.#bufferSize = Math.min(MAX_WRITE, this.#bufferSize * 2);
    return new Uint8Array(this.#bufferSize);
  }

  /**
   * Moves a burst that outgrew the small buffer it started in (not yet handed to the socket: it is the one
   * being filled) into a large one, so that it still goes out in one write; false when it is no such burst.
   * Sealed instead, it went out in two: a fan-out's subscriber, whose window of 100 messages one read of
   * acknowledgements freed, got 4 KiB in one write and the rest in the next.
   */
  #moveToLarge(length: number): boolean {
    const chunk = this.#chunk;
    if (
      chunk === undefined || chunk.byteLength !== this.small.size || this.#filled + length > this.large.size
    ) {
      return false;
    }
    const large = this.large.take();
    large.set(chunk.subarray(0, this.#filled));
    this.small.give(chunk);
    this.#chunk = large;
    this.#bufferSize = this.large.size;
    this.#forgetWords();
    return true;
  }

  #enqueue(bytes: Uint8Array, pooled: Uint8Array<ArrayBuffer> | undefined): void {
    if (this.#ready === NOTHING_READY) {
      this.#ready = [];
      this.#readyPooled = [];
    }
    this.#ready.push(bytes);
    this.#readyPooled.push(pooled);
  }

  /** Moves the buffer being filled to the ready list. */
  #seal(): void {
    if (this.#chunk === undefined || this.#filled === 0) return;
    this.#enqueue(this.#chunk.subarray(0, this.#filled), this.#chunk);
    this.#chunk = undefined;
    this.#forgetWords();
    this.#filled = 0;
  }

  #release(): void {
    while (this.#held.length > 0 && this.#held[0].released) {
      for (const frame of this.#held.shift()!.frames) this.#enqueue(frame, undefined);
    }
    this.#schedule();
  }

  #schedule(): void {
    if (this.#scheduled || this.#inFlight !== undefined || this.#closed) return;
    this.#scheduled = true;
    queueMicrotask(this.#flushNow);
  }

  /** Hands the next buffer to the socket, unless a write is in flight. */
  #flush(): void {
    this.#scheduled = false;
    if (this.#inFlight === undefined) this.#pump();
  }

  /** A write the runtime finished. */
  #written(n: number): void {
    if (this.#advance(n)) this.#pump();
  }

  /**
   * Writes what is queued, one buffer at a time, with no promise of our own per write; what the socket takes
   * at once is followed in this loop (one nested call per buffer overflowed the stack with thousands queued),
   * until a write has to wait.
   */
  #pump(): void {
    while (!this.#closed) {
      if (this.#inFlight === undefined && !this.#takeNext()) return this.#settle();
      if (!this.#write(this.#inFlight!)) return;
    }
  }

  /** Makes the next queued buffer the one in flight; false when nothing is queued. */
  #takeNext(): boolean {
    if (this.#ready.length > 0) {
      this.#inFlight = this.#ready.shift();
      this.#inFlightPooled = this.#readyPooled.shift();
    } else if (this.#filled > 0) {
      // The usual case: one buffer filled this turn, written without going through the ready list.
      this.#inFlight = this.#chunk!.subarray(0, this.#filled);
      this.#inFlightPooled = this.#chunk;
      this.#chunk = undefined;
      this.#forgetWords();
      this.#filled = 0;
    } else {
      return false;
    }
    return true;
  }

  /**
   * Writes the buffer in flight at once where the socket lets us (io = epoll: a send that does not block),
   * else through the runtime's promise: no promise, callback or microtask per write where the socket has
   * room. True when bytes were taken now and writing may go on.
   */
  #write(data: Uint8Array): boolean {
    const stream = this.stream;
    if (stream.writeNow !== undefined) {
      let n;
      try {
        n = stream.writeNow(data);
      } catch (error) {
        this.#failed(error);
        return false;
      }
      if (n !== undefined) return this.#advance(n);
    }
    stream.write(data).then(this.#onWritten, this.#onFailed);
    return false;
  }

  /**
   * `n` bytes of the buffer in flight were written: what is left of it stays in flight, a finished one goes
   * back to its pool. False once the outbox is closed.
   */
  #advance(n: number): boolean {
    const current = this.#inFlight!;
    this.owner.written(n);
    if (this.#closed) {
      this.#inFlight = undefined;
      this.#settle();
      return false;
    }
    this.#queuedBytes -= n;
    if (n < current.byteLength) {
      this.#inFlight = current.subarray(n);
      return true;
    }
    this.#inFlight = undefined;
    const done = this.#inFlightPooled;
    if (done) (done.byteLength === this.small.size ? this.small : this.large).give(done);
    this.#inFlightPooled = undefined;
    return true;
  }

  #failed(error: unknown): void {
    this.#inFlight = undefined;
    if (this.#closed) return this.#settle();
    this.close();
    this.owner.writeFailed(error);
    this.#settle();
  }

  /** Nothing left to write (or nothing will be): wake whoever waits in {@link drain}. */
  #settle(): void {
    if (!this.#closed && !this.#idle()) return;
    const drained = this.#drained;
    this.#drained = undefined;
    drained?.();
    if (!this.#closed && !this.#scheduled && this.#idle()) this.owner.outboxIdle();
  }
}

/**
 * Outboxes that idle connections let go, for the next connection that sends. Without it a connection storm
 * made an outbox (and its callbacks) per client for the CONNACK alone, and each lived just long enough to be
 * promoted to V8's old generation and die there: some 450 bytes per client, held until the next full
 * collection. Only idle, open outboxes come back (see Outbox.rebind).
 */
export class OutboxPool {
  readonly #free: Outbox[] = [];

  constructor(
    private readonly highWaterMark: number,
    private readonly small: BufferPool,
    private readonly large: BufferPool,
    /** How many idle outboxes are kept: about the number of connections that start a write at once. */
    private readonly maxFree = 256,
  ) {}

  take(stream: ByteStream, owner: OutboxOwner): Outbox {
    const outbox = this.#free.pop();
    if (outbox === undefined) return new Outbox(stream, this.highWaterMark, this.small, this.large, owner);
    outbox.rebind(stream, owner);
    return outbox;
  }

  /** An outbox that just went idle (everything written, nothing held, not closed); its owner let it go. */
  give(outbox: Outbox): void {
    if (this.#free.length < this.maxFree) this.#free.push(outbox);
  }
}
