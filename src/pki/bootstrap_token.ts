/**
 * Single-use bootstrap tokens with an expiry, in the kubeadm format
 * `<6 chars id>.<16 chars secret>` ([a-z0-9]). Only a SHA-256 of each secret is kept.
 *
 * @module
 */

import { sha256 } from "@noble/hashes/sha2.js";
import { CsrDeniedError } from "../channel/errors.ts";

/** Limits of a {@link BootstrapTokenStore}. */
export interface BootstrapTokenConfig {
  /** Lifetime of a token when none is asked for. */
  readonly defaultTtlMs: number;
  /** Longest lifetime a token may be given. */
  readonly maxTtlMs: number;
  /** Most live tokens held (bounds memory). */
  readonly maxTokens: number;
}

/** Defaults: 1 hour, at most 24 hours, 10 000 tokens. */
export const DEFAULT_BOOTSTRAP_TOKEN_CONFIG: BootstrapTokenConfig = {
  defaultTtlMs: 60 * 60 * 1000,
  maxTtlMs: 24 * 60 * 60 * 1000,
  maxTokens: 10_000,
};

/** Throw RangeError naming the field if `c` is unusable. */
export function verifyBootstrapTokenConfig(c: BootstrapTokenConfig): void {
  for (const k of ["defaultTtlMs", "maxTtlMs", "maxTokens"] as const) {
    if (!Number.isSafeInteger(c[k]) || c[k] <= 0) {
      throw new RangeError(`${k}: must be a positive integer, got ${c[k]}`);
    }
  }
  if (c.defaultTtlMs > c.maxTtlMs) throw new RangeError("defaultTtlMs: exceeds maxTtlMs");
}

const ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789";
const TOKEN = /^([a-z0-9]{6})\.([a-z0-9]{16})$/;

function randomString(n: number): string {
  let s = "";
  while (s.length < n) {
    for (const b of crypto.getRandomValues(new Uint8Array(n * 2))) {
      if (b < 252 && s.length < n) s += ALPHABET[b % 36];
    }
  }
  return s;
}

function digest(secret: string): Uint8Array {
  return sha256(new TextEncoder().encode(secret));
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  let d = a.length ^ b.length;
  for (let i = 0; i < Math.min(a.length, b.length); i++) d |= a[i] ^ b[i];
  return d === 0;
}

interface Entry {
  readonly secret: Uint8Array;
  readonly expiresAt: number;
  readonly nodeName?: string;
  used: boolean;
}

/** Options of {@link BootstrapTokenStore}. */
export interface BootstrapTokenStoreOptions {
  readonly config?: BootstrapTokenConfig;
  /** The clock, in ms since the epoch; default Date.now. */
  readonly now?: () => number;
}

/**
 * Issues and redeems single-use bootstrap tokens.
 *
 * @example
 * ```ts
 * import { BootstrapTokenStore } from "../../mod.ts";
 * const store = new BootstrapTokenStore();
 * const token = store.issue({ nodeName: "node-1" });
 * store.check(token, "node-1");
 * store.consume(token, "node-1");
 * ```
 */
export class BootstrapTokenStore {
  readonly #config: BootstrapTokenConfig;
  readonly #now: () => number;
  readonly #tokens = new Map<string, Entry>();

  constructor(opts: BootstrapTokenStoreOptions = {}) {
    this.#config = opts.config ?? DEFAULT_BOOTSTRAP_TOKEN_CONFIG;
    verifyBootstrapTokenConfig(this.#config);
    this.#now = opts.now ?? Date.now;
  }

  /** Live (unused, unexpired) tokens held. */
  get size(): number {
    this.prune();
    return this.#tokens.size;
  }

  /** Make a token, optionally bound to one node name. */
  issue(opts: { ttlMs?: number; nodeName?: string } = {}): string {
    const ttl = opts.ttlMs ?? this.#config.defaultTtlMs;
    if (!Number.isSafeInteger(ttl) || ttl <= 0 || ttl > this.#config.maxTtlMs) {
      throw new RangeError(`ttlMs: must be 1..${this.#config.maxTtlMs}, got ${ttl}`);
    }
    this.prune();
    if (this.#tokens.size >= this.#config.maxTokens) {
      throw new RangeError(`maxTokens: ${this.#config.maxTokens} live tokens already`);
    }
    let id = randomString(6);
    while (this.#tokens.has(id)) id = randomString(6);
    const secret = randomString(16);
    this.#tokens.set(id, {
      secret: digest(secret),
      expiresAt: this.#now() + ttl,
      nodeName: opts.nodeName,
      used: false,
    });
    return `${id}.${secret}`;
  }

  /** Forget used and expired tokens. */
  prune(): void {
    const now = this.#now();
    for (const [id, e] of this.#tokens) if (e.used || now > e.expiresAt) this.#tokens.delete(id);
  }

  /**
   * Check that `token` is valid for `nodeName` without using it. Throws
   * CsrDeniedError: `token-invalid`, `token-expired`, `token-used`, `token-node-mismatch`.
   */
  check(token: string, nodeName: string): void {
    this.#lookup(token, nodeName);
  }

  /** Check and use up `token` (atomically: a second consume fails with `token-used`). */
  consume(token: string, nodeName: string): void {
    this.#lookup(token, nodeName).used = true;
  }

  #lookup(token: string, nodeName: string): Entry {
    const m = typeof token === "string" ? TOKEN.exec(token) : null;
    if (!m) throw new CsrDeniedError("token-invalid", "bootstrap token is malformed");
    const e = this.#tokens.get(m[1]);
    if (!e || !sameBytes(e.secret, digest(m[2]))) {
      throw new CsrDeniedError("token-invalid", `bootstrap token ${m[1]} is not known`);
    }
    if (e.used) throw new CsrDeniedError("token-used", `bootstrap token ${m[1]} was already used`);
    if (this.#now() > e.expiresAt) {
      throw new CsrDeniedError(
        "token-expired",
        `bootstrap token ${m[1]} expired at ${new Date(e.expiresAt).toISOString()}`,
      );
    }
    if (e.nodeName !== undefined && e.nodeName !== nodeName) {
      throw new CsrDeniedError(
        "token-node-mismatch",
        `bootstrap token ${m[1]} is for node "${e.nodeName}", not "${nodeName}"`,
      );
    }
    return e;
  }
}
