/**
 * The clock and timers a session uses, injectable so tests can drive time.
 *
 * @module
 */

/** A timer handle, opaque to the session. */
export type SessionTimerHandle = unknown;

/** What a session needs from a clock. */
export interface SessionTimers {
  /** Milliseconds, monotonic enough for timeouts. */
  now(): number;
  /**
   * Run `fn` after `ms`. `background` timers (keepalive) must not keep the
   * process alive on their own; others (a dial's timeout) should.
   */
  setTimeout(fn: () => void, ms: number, background?: boolean): SessionTimerHandle;
  clearTimeout(handle: SessionTimerHandle): void;
}

/** The real clock. Background timers are unref'd where the runtime allows, so an idle session never keeps a process alive. */
export const SYSTEM_TIMERS: SessionTimers = Object.freeze({
  now: (): number => performance.now(),
  setTimeout: (fn: () => void, ms: number, background?: boolean): SessionTimerHandle => {
    const t = setTimeout(fn, ms) as unknown as { unref?: () => void };
    if (background && typeof t === "object" && t !== null && typeof t.unref === "function") {
      t.unref();
    }
    return t;
  },
  clearTimeout: (h: SessionTimerHandle): void => clearTimeout(h as ReturnType<typeof setTimeout>),
});
