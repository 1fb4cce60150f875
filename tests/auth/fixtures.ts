/** Temporary credential files and a virtual clock shared by the authentication tests. */
import type { Clock } from "../../src/auth/mod.ts";

/** Writes the files into a fresh temporary directory and returns their paths plus a cleanup. */
export async function temporaryFiles<Name extends string>(
  files: Record<Name, string>,
): Promise<{ paths: Record<Name, string>; [Symbol.asyncDispose](): Promise<void> }> {
  const dir = await Deno.makeTempDir({ prefix: "mqtt-auth-" });
  const paths = {} as Record<Name, string>;
  for (const [name, text] of Object.entries(files) as [Name, string][]) {
    paths[name] = `${dir}/${name}`;
    await Deno.writeTextFile(paths[name], text);
  }
  return { paths, [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }) };
}

/** A clock whose sleeps end only when the test runs it forward. */
export class VirtualClock implements Clock {
  time = 0;
  readonly #timers: { at: number; wake: () => void }[] = [];

  now(): number {
    return this.time;
  }

  sleep(milliseconds: number): Promise<void> {
    return new Promise((wake) => this.#timers.push({ at: this.time + milliseconds, wake }));
  }

  /**
   * Fires the earliest timer, once one is pending (real async work, such as password hashing, may still have to
   * register it); tests that step attempt by attempt use it with an await of each attempt in between.
   */
  async fireNext(): Promise<void> {
    while (this.#timers.length === 0) await new Promise((settle) => setTimeout(settle, 1));
    this.#timers.sort((a, b) => a.at - b.at);
    const next = this.#timers.shift()!;
    this.time = Math.max(this.time, next.at);
    next.wake();
  }

  /** Lets pending work settle, then fires timers in time order until none is left. */
  async runUntilIdle(): Promise<void> {
    for (;;) {
      await new Promise((settle) => setTimeout(settle, 0));
      if (this.#timers.length === 0) return;
      this.#timers.sort((a, b) => a.at - b.at);
      const next = this.#timers.shift()!;
      this.time = Math.max(this.time, next.at);
      next.wake();
    }
  }
}
