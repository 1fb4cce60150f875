/**
 * Large read buffers shared by the connections of one manager. Each pending read pins its buffer, so an
 * idle connection reads into a small one and only a busy connection borrows a large one, returned when
 * it quiets down.
 */
export class BufferPool {
  readonly #free: Uint8Array<ArrayBuffer>[] = [];

  constructor(readonly size: number, private readonly maxFree: number) {}

  take(): Uint8Array<ArrayBuffer> {
    return this.#free.pop() ?? new Uint8Array(this.size);
  }

  give(buffer: Uint8Array<ArrayBuffer>): void {
    if (buffer.byteLength === this.size && this.#free.length < this.maxFree) this.#free.push(buffer);
  }
}
