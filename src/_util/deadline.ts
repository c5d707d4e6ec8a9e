/**
 * Bounded waits: every wait in spokewire has a timeout and honours an AbortSignal.
 *
 * @module
 */

import { AbortedError, TimeoutError } from "../channel/errors.ts";

/**
 * Wait for `promise`, but no longer than `timeoutMs` and no longer than `signal`
 * allows. On timeout or abort, `onCancel` runs (to free what the wait held) and
 * the returned promise rejects with a {@link TimeoutError} or {@link AbortedError}.
 */
export function bounded<T>(
  promise: Promise<T>,
  opts: { timeoutMs: number; what: string; signal?: AbortSignal; onCancel?: (err: Error) => void },
): Promise<T> {
  const { timeoutMs, what, signal, onCancel } = opts;
  if (signal?.aborted) {
    const err = new AbortedError(`${what} was aborted`, { cause: signal.reason });
    onCancel?.(err);
    promise.catch(() => {});
    return Promise.reject(err);
  }
  return new Promise<T>((resolve, reject) => {
    let done = false;
    const finish = (): void => {
      done = true;
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
    };
    const fail = (err: Error): void => {
      if (done) return;
      finish();
      onCancel?.(err);
      reject(err);
    };
    const onAbort = (): void =>
      fail(new AbortedError(`${what} was aborted`, { cause: signal?.reason }));
    const timer = setTimeout(
      () => fail(new TimeoutError(`${what} timed out after ${timeoutMs} ms`, timeoutMs)),
      timeoutMs,
    );
    signal?.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (v) => {
        if (done) return;
        finish();
        resolve(v);
      },
      (e) => {
        if (done) return;
        finish();
        reject(e);
      },
    );
  });
}

/** A promise with its resolve and reject exposed (Promise.withResolvers is not on Node 20). */
export interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
  reject(reason: unknown): void;
}

/** Create a {@link Deferred}. */
export function deferred<T>(): Deferred<T> {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}
