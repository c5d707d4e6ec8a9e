/**
 * Certificate rotation: renew once a fraction of the lifetime has passed and
 * hand the new material to a callback (listeners and dialers swap it for new
 * handshakes; live connections keep the old one).
 *
 * @module
 */

import { bounded } from "../_util/deadline.ts";
import { AbortedError } from "../channel/errors.ts";
import type { X509Certificate } from "./pem.ts";

/** A certificate with its key and the intermediates to present. */
export interface CertificateMaterial {
  readonly certificate: X509Certificate;
  readonly privateKey: CryptoKey;
  readonly intermediates: readonly X509Certificate[];
}

/** Timers and time, injectable for tests. */
export interface RotationClock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** The real clock. */
export const SYSTEM_CLOCK: RotationClock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
};

/** When and how to renew. */
export interface RotationConfig {
  /** Renew once this fraction of the lifetime (notBefore..notAfter) has passed; 0 < f < 1. */
  readonly renewAtFraction: number;
  /** Wait this long before trying again after a failed renewal. */
  readonly retryDelayMs: number;
  /** A renewal (the `renew` callback) that takes longer than this fails. */
  readonly renewTimeoutMs: number;
}

/** Defaults: renew at 70% of the lifetime, retry after 30 s, give a renewal 60 s. */
export const DEFAULT_ROTATION_CONFIG: RotationConfig = {
  renewAtFraction: 0.7,
  retryDelayMs: 30_000,
  renewTimeoutMs: 60_000,
};

/** Throw RangeError naming the field if `c` is unusable. */
export function verifyRotationConfig(c: RotationConfig): void {
  if (!(c.renewAtFraction > 0 && c.renewAtFraction < 1)) {
    throw new RangeError(`renewAtFraction: must be in (0, 1), got ${c.renewAtFraction}`);
  }
  for (const k of ["retryDelayMs", "renewTimeoutMs"] as const) {
    if (!Number.isSafeInteger(c[k]) || c[k] <= 0) {
      throw new RangeError(`${k}: must be a positive integer, got ${c[k]}`);
    }
  }
}

/** Options of {@link CertificateRotator}. */
export interface CertificateRotatorOptions {
  readonly initial: CertificateMaterial;
  /** Produce new material (e.g. a new key and CSR through bootstrap). */
  readonly renew: (
    current: CertificateMaterial,
    signal: AbortSignal,
  ) => Promise<CertificateMaterial>;
  /** Receives each new material; swap it into listeners and dialers here. */
  readonly onRotate: (material: CertificateMaterial) => void | Promise<void>;
  /** Told about each failed renewal (it will be retried). */
  readonly onError?: (err: unknown) => void;
  readonly config?: Partial<RotationConfig>;
  readonly clock?: RotationClock;
}

/** Longest single timer (setTimeout overflows past 2^31-1 ms). */
const MAX_TIMER_MS = 2 ** 31 - 1;

type RotatorState = "idle" | "running" | "stopped";

/**
 * Renews a certificate at a fraction of its lifetime.
 *
 * @example
 * ```ts
 * import { CertificateRotator, createRootCa, issueCredential } from "../../mod.ts";
 * const ca = await createRootCa({ commonName: "ca" });
 * const issue = () => issueCredential(ca, { profile: "client", commonName: "system:node:n1" });
 * const r = new CertificateRotator({ initial: await issue(), renew: issue, onRotate: () => {} });
 * const next = await r.rotateNow();
 * if (r.current !== next) throw new Error();
 * await r.stop();
 * ```
 */
export class CertificateRotator implements AsyncDisposable {
  readonly #opts: CertificateRotatorOptions;
  readonly #config: RotationConfig;
  readonly #clock: RotationClock;
  #current: CertificateMaterial;
  #state: RotatorState = "idle";
  #timer: unknown;
  #inflight: Promise<CertificateMaterial> | undefined;
  readonly #stop = new AbortController();

  constructor(opts: CertificateRotatorOptions) {
    this.#opts = opts;
    this.#config = { ...DEFAULT_ROTATION_CONFIG, ...opts.config };
    verifyRotationConfig(this.#config);
    this.#clock = opts.clock ?? SYSTEM_CLOCK;
    this.#current = opts.initial;
  }

  /** The material in use now. */
  get current(): CertificateMaterial {
    return this.#current;
  }

  /** When the current certificate is due for renewal (ms since the epoch). */
  get renewAt(): number {
    const c = this.#current.certificate;
    const nb = c.notBefore.getTime();
    const na = c.notAfter.getTime();
    return nb + Math.floor((na - nb) * this.#config.renewAtFraction);
  }

  #move(to: RotatorState): void {
    const from = this.#state;
    const ok =
      (from === "idle" && (to === "running" || to === "stopped")) ||
      (from === "running" && to === "stopped");
    if (!ok) throw new Error(`CertificateRotator: illegal state change ${from} -> ${to}`);
    this.#state = to;
  }

  /** Start the schedule. */
  start(): void {
    this.#move("running");
    this.#schedule(this.renewAt - this.#clock.now());
  }

  #schedule(delay: number): void {
    if (this.#state !== "running") return;
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    const d = Math.max(0, Math.min(delay, MAX_TIMER_MS));
    this.#timer = this.#clock.setTimeout(() => {
      this.#timer = undefined;
      if (this.#clock.now() < this.renewAt) {
        this.#schedule(this.renewAt - this.#clock.now());
        return;
      }
      this.rotateNow().then(
        () => {},
        () => {},
      );
    }, d);
  }

  /**
   * Renew now (coalesced with a renewal already running). On success the new
   * material is current and `onRotate` has run; on failure `onError` is told and
   * a retry is scheduled.
   */
  rotateNow(options: { signal?: AbortSignal } = {}): Promise<CertificateMaterial> {
    if (this.#state === "stopped") {
      return Promise.reject(new AbortedError("certificate rotation was stopped"));
    }
    if (this.#inflight === undefined) this.#inflight = this.#rotate();
    if (!options.signal) return this.#inflight;
    return bounded(this.#inflight, {
      timeoutMs: this.#config.renewTimeoutMs,
      what: "certificate rotation",
      signal: options.signal,
    });
  }

  async #rotate(): Promise<CertificateMaterial> {
    const ac = new AbortController();
    const onStop = (): void => ac.abort(this.#stop.signal.reason);
    this.#stop.signal.addEventListener("abort", onStop, { once: true });
    let next: CertificateMaterial;
    try {
      next = await bounded(this.#opts.renew(this.#current, ac.signal), {
        timeoutMs: this.#config.renewTimeoutMs,
        what: "certificate renewal",
        signal: this.#stop.signal,
        onCancel: (err) => ac.abort(err),
      });
      if (next.certificate.notAfter.getTime() <= this.#clock.now()) {
        throw new RangeError("renew: returned a certificate that is already expired");
      }
    } catch (e) {
      this.#inflight = undefined;
      if (this.#state !== "stopped") {
        this.#schedule(this.#config.retryDelayMs);
        this.#opts.onError?.(e);
      }
      throw e;
    } finally {
      this.#stop.signal.removeEventListener("abort", onStop);
    }
    this.#current = next;
    this.#inflight = undefined;
    this.#schedule(this.renewAt - this.#clock.now());
    await this.#opts.onRotate(next);
    return next;
  }

  /** Stop the schedule and abort a renewal in flight. */
  async stop(): Promise<void> {
    if (this.#state === "stopped") return;
    this.#move("stopped");
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#stop.abort(new AbortedError("certificate rotation was stopped"));
    await this.#inflight?.catch(() => {});
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}
