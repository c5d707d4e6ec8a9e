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
}

/** The running runtime: "deno" or "node" (for algorithm preference only). */
export const RUNTIME: "deno" | "node" =
  typeof (globalThis as { Deno?: unknown }).Deno === "object" ? "deno" : "node";

/** AES-CTR with a 16-byte initial counter block; the counter carries across `update` calls. */
export function aesCtr(key: Uint8Array, iv: Uint8Array): StreamCipher {
  const alg = key.byteLength === 16 ? "aes-128-ctr" : "aes-256-ctr";
  const c = nc.createCipheriv(alg, key, iv);
  return { update: (d) => u8(c.update(d)) };
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
  const c = nc.createCipheriv("chacha20", key, iv16);
  return { update: (d) => u8(c.update(d)) };
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
