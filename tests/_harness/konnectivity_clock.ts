/** A fake clock implementing SessionTimers: time moves only when the test says so. */

import type { SessionTimerHandle, SessionTimers } from "../../src/konnectivity/timers.ts";

interface Entry {
  at: number;
  seq: number;
  fn: () => void;
}

export class FakeClock implements SessionTimers {
  #now = 0;
  #seq = 0;
  readonly #timers = new Map<number, Entry>();

  now(): number {
    return this.#now;
  }

  setTimeout(fn: () => void, ms: number): SessionTimerHandle {
    const seq = ++this.#seq;
    this.#timers.set(seq, { at: this.#now + Math.max(0, ms), seq, fn });
    return seq;
  }

  clearTimeout(handle: SessionTimerHandle): void {
    this.#timers.delete(handle as number);
  }

  /** Timers waiting to fire. */
  get pending(): number {
    return this.#timers.size;
  }

  /** Move time forward by `ms`, firing due timers in order (bounded: 100 000 firings). */
  advance(ms: number): void {
    const end = this.#now + ms;
    for (let i = 0; i < 100_000; i++) {
      let next: Entry | undefined;
      for (const e of this.#timers.values()) {
        if (e.at <= end && (!next || e.at < next.at || (e.at === next.at && e.seq < next.seq))) {
          next = e;
        }
      }
      if (!next) break;
      this.#timers.delete(next.seq);
      this.#now = next.at;
      next.fn();
    }
    this.#now = end;
  }
}
