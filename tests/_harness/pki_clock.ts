/** A manual clock for rotation tests: time moves only when the test says so. */
import type { RotationClock } from "../../src/pki/mod.ts";

interface Timer {
  id: number;
  at: number;
  fn: () => void;
}

export class ManualClock implements RotationClock {
  #now: number;
  #next = 1;
  #timers: Timer[] = [];

  constructor(start: number) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  setTimeout(fn: () => void, ms: number): unknown {
    const t = { id: this.#next++, at: this.#now + ms, fn };
    this.#timers.push(t);
    return t.id;
  }

  clearTimeout(handle: unknown): void {
    this.#timers = this.#timers.filter((t) => t.id !== handle);
  }

  /** Pending timers (for assertions). */
  get pending(): number {
    return this.#timers.length;
  }

  /** When the earliest pending timer fires. */
  get nextAt(): number | undefined {
    return this.#timers.reduce<number | undefined>(
      (m, t) => (m === undefined || t.at < m ? t.at : m),
      undefined,
    );
  }

  /** Move time to `to`, firing every timer due by then, earliest first (bounded). */
  advanceTo(to: number): void {
    for (let i = 0; i < 10_000; i++) {
      const due = this.#timers.filter((t) => t.at <= to).sort((a, b) => a.at - b.at)[0];
      if (!due) break;
      this.#timers = this.#timers.filter((t) => t !== due);
      this.#now = Math.max(this.#now, due.at);
      due.fn();
    }
    this.#now = Math.max(this.#now, to);
  }
}
