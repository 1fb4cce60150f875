/**
 * The process's memory against `limits.memory_bytes`: while it is over, the broker takes no new messages
 * (QoS 0 dropped, QoS 1/2 refused with 0x97 Quota exceeded), so what clients send cannot push it out of
 * memory; below 90% of the limit it takes them again. The usage comes from a probe the composition root
 * samples (the JavaScript heap in use plus the buffers outside it: queues, retained messages, in-flight and
 * outbound frames alike), so it covers everything the broker holds, not an estimate of each part.
 */
export class MemoryBudget {
  #used = 0;
  #over = false;
  /** Messages not taken because the budget was exceeded. */
  refused = 0;

  constructor(readonly limitBytes: number) {}

  /** True while the last sample was over the limit (and has not yet fallen below 90% of it). */
  get over(): boolean {
    return this.#over;
  }

  get usedBytes(): number {
    return this.#used;
  }

  /**
   * Records a sample of the bytes in use; says whether the budget turned over or under with it. A sample
   * counts garbage too, so before turning over it asks `reclaim` (if given) to collect and measure again.
   */
  sample(usedBytes: number, reclaim?: () => number | undefined): "over" | "under" | undefined {
    this.#used = usedBytes;
    if (this.limitBytes <= 0) return undefined;
    if (!this.#over && usedBytes >= this.limitBytes) {
      this.#used = reclaim?.() ?? usedBytes;
      if (this.#used < this.limitBytes) return undefined;
      this.#over = true;
      return "over";
    }
    if (this.#over && usedBytes < this.limitBytes * 0.9) {
      this.#over = false;
      return "under";
    }
    return undefined;
  }
}
