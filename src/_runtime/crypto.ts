/**
 * Synchronous symmetric crypto through `node:crypto` (present in Deno and
 * Node). WebCrypto's AES-GCM is async per call, far too slow per SSH packet;
 * these adapters keep the packet path synchronous. Runtime-neutral interface:
 * Uint8Array in, Uint8Array out.
 *
 * @module
 */

import * as nc from "node:crypto";

/** A plain Uint8Array view of a node Buffer (no copy; `slice()` then copies as users expect). */
function u8(b: Uint8Array): Uint8Array {
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

/** A keyed stream cipher whose state carries across calls (AES-CTR). */
export interface StreamCipher {
  update(data: Uint8Array): Uint8Array;
  /**
   * Encrypt `data` into `out` at `at` (the keystream carries on as with
   * `update`); `data` may be the bytes it replaces. Returns the offset after.
   */
  updateInto(data: Uint8Array, out: Uint8Array, at: number): number;
}

function streamCipher(c: nc.Cipher): StreamCipher {
  return {
    update: (d) => u8(c.update(d)),
    updateInto(d, out, at) {
      const r = c.update(d);
      out.set(r, at);
      return at + r.byteLength;
    },
  };
}

/** The running runtime: "deno" or "node" (for algorithm preference only). */
export const RUNTIME: "deno" | "node" =
  typeof (globalThis as { Deno?: unknown }).Deno === "object" ? "deno" : "node";

/** AES-CTR with a 16-byte initial counter block; the counter carries across `update` calls. */
export function aesCtr(key: Uint8Array, iv: Uint8Array): StreamCipher {
  const alg = key.byteLength === 16 ? "aes-128-ctr" : "aes-256-ctr";
  return streamCipher(nc.createCipheriv(alg, key, iv));
}

/**
 * AES-GCM seal straight into `out`: the ciphertext of `parts` (in order, as
 * one plaintext) at `at`, then the 16-byte tag. A part may be the very bytes
 * of `out` its ciphertext replaces (each part is read before it is
 * overwritten). Returns the offset after the tag.
 */
export function aesGcmSealInto(
  key: Uint8Array,
  iv: Uint8Array,
  aad: Uint8Array,
  parts: readonly Uint8Array[],
  out: Uint8Array,
  at: number,
): number {
  const c = nc.createCipheriv(key.byteLength === 16 ? "aes-128-gcm" : "aes-256-gcm", key, iv);
  c.setAAD(aad);
  let o = at;
  for (const p of parts) {
    const ct = c.update(p);
    out.set(ct, o);
    o += ct.byteLength;
  }
  const fin = c.final();
  out.set(fin, o);
  o += fin.byteLength;
  out.set(c.getAuthTag(), o);
  return o + 16;
}

/** AES-GCM seal: returns ciphertext followed by the 16-byte tag. */
export function aesGcmSeal(
  key: Uint8Array,
  iv: Uint8Array,
  aad: Uint8Array,
  plaintext: Uint8Array,
): { ct: Uint8Array; tag: Uint8Array } {
  const alg = key.byteLength === 16 ? "aes-128-gcm" : "aes-256-gcm";
  const c = nc.createCipheriv(alg, key, iv);
  c.setAAD(aad);
  const ct = c.update(plaintext);
  c.final();
  return { ct: u8(ct), tag: u8(c.getAuthTag()) };
}

/** AES-GCM open: the plaintext, or undefined when the tag does not verify. */
export function aesGcmOpen(
  key: Uint8Array,
  iv: Uint8Array,
  aad: Uint8Array,
  ct: Uint8Array,
  tag: Uint8Array,
): Uint8Array | undefined {
  const alg = key.byteLength === 16 ? "aes-128-gcm" : "aes-256-gcm";
  const d = nc.createDecipheriv(alg, key, iv);
  d.setAAD(aad);
  d.setAuthTag(tag);
  const pt = d.update(ct);
  try {
    d.final();
  } catch {
    return undefined;
  }
  return u8(pt);
}

/**
 * Raw ChaCha20 (OpenSSL layout): `iv16` is the 32-bit little-endian block
 * counter followed by 12 nonce bytes. With the counter's upper half in bytes
 * 4..7 this is also the original 64-bit-nonce ChaCha20 that OpenSSH uses.
 */
export function chacha20(key: Uint8Array, iv16: Uint8Array): StreamCipher {
  return streamCipher(nc.createCipheriv("chacha20", key, iv16));
}

/** HMAC over the concatenation of `parts`, written into `out` at `at`; returns the offset after. */
export function hmacInto(
  alg: "sha256" | "sha512",
  key: Uint8Array,
  parts: readonly Uint8Array[],
  out: Uint8Array,
  at: number,
): number {
  const h = nc.createHmac(alg, key);
  for (const p of parts) h.update(p);
  const d = h.digest();
  out.set(d, at);
  return at + d.byteLength;
}

/** HMAC over the concatenation of `parts`. */
export function hmac(
  alg: "sha1" | "sha256" | "sha512",
  key: Uint8Array,
  ...parts: Uint8Array[]
): Uint8Array {
  const h = nc.createHmac(alg, key);
  for (const p of parts) h.update(p);
  return u8(h.digest());
}

/** A hash over the concatenation of `parts`. */
export function hash(alg: "sha1" | "sha256" | "sha512", ...parts: Uint8Array[]): Uint8Array {
  const h = nc.createHash(alg);
  for (const p of parts) h.update(p);
  return u8(h.digest());
}

/** Constant-time equality (lengths may differ: then false). */
export function timingSafeEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && nc.timingSafeEqual(a, b);
}
