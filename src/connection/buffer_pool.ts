/**
 * Read buffers shared by the connections of one manager. Each pending read pins its buffer, so an idle
 * connection reads into a small view carved from a shared slab (no buffer of its own: the view is a few
 * dozen bytes of one large ArrayBuffer), and only a busy connection borrows a large buffer, returned when
 * it quiets down. Views of different connections never overlap, so their reads may be pending at once.
 */
export class BufferPool {
  readonly #free: Uint8Array<ArrayBuffer>[] = [];
  readonly #freeSmall: Uint8Array<ArrayBuffer>[] = [];
  #slab: ArrayBuffer | undefined;
  #slabOffset = 0;

  /**
   * `size`: the large buffers; `maxFree`: how many of them are kept for reuse; `smallSize`: an idle
   * connection's view, enough for a PINGREQ or a typical CONNECT (a longer one takes two reads).
   */
  constructor(readonly size: number, private readonly maxFree: number, readonly smallSize = 64) {}

  take(): Uint8Array<ArrayBuffer> {
    return this.#free.pop() ?? new Uint8Array(this.size);
  }

  give(buffer: Uint8Array<ArrayBuffer>): void {
    if (buffer.byteLength !== this.size) return;
    if (this.#free.length < this.maxFree) this.#free.push(buffer);
  }

  /** A small view for an idle connection's pending read; hand it back with {@link giveSmall}. */
  takeSmall(): Uint8Array<ArrayBuffer> {
    const free = this.#freeSmall.pop();
    if (free) return free;
    if (this.#slab === undefined || this.#slabOffset + this.smallSize > this.#slab.byteLength) {
      this.#slab = new ArrayBuffer(SLAB_VIEWS * this.smallSize);
      this.#slabOffset = 0;
    }
    const view = new Uint8Array(this.#slab, this.#slabOffset, this.smallSize);
    this.#slabOffset += this.smallSize;
    return view;
  }

  /** Kept for the next connection: slabs are never freed, so the free views are what peak load left. */
  giveSmall(view: Uint8Array<ArrayBuffer>): void {
    this.#freeSmall.push(view);
  }
}

/** Views per slab: 64 KiB of 64-byte views. */
const SLAB_VIEWS = 1024;
