/**
 * Poly1305 (RFC 8439 §2.5) for chacha20-poly1305@openssh.com. The per-block
 * work runs in a small WebAssembly function that {@link assemble} writes out
 * below (the five 26-bit limbs and 64-bit products of poly1305-donna-32, from
 * the RFC's arithmetic): four to six times the speed of @noble/ciphers'
 * JavaScript Poly1305, which capped chacha20-poly1305 at about 350 MB/s. Key
 * clamping and the final reduction stay in TypeScript. Where WebAssembly is
 * unavailable, @noble/ciphers' Poly1305 takes over.
 *
 * tests/property/ssh_poly1305_test.ts checks the result against
 * @noble/ciphers and the RFC 8439 vectors, edge cases included.
 *
 * @module
 */

import { poly1305 as noblePoly1305 } from "@noble/ciphers/_poly1305.js";

function uleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n >>>= 7;
    if (n === 0) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
}

function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
}

function vec(items: number[][]): number[] {
  return [...uleb(items.length), ...items.flat()];
}

function section(id: number, payload: number[]): number[] {
  return [id, ...uleb(payload.length), ...payload];
}

/**
 * The module: memory `m` (4 pages) holds r0..r4 as u32 at bytes 0..19 and
 * h0..h4 at 20..39; `b(ptr, len, hibit)` absorbs the 16-byte blocks at
 * [ptr, ptr + len) into h, adding `hibit` (2^24 in limb 4, that is 2^128, or
 * 0 for a padded final block) to each.
 */
function assemble(): Uint8Array<ArrayBuffer> {
  const I32 = 0x7f;
  const I64 = 0x7e;
  // locals: params ptr, len, hibit; then i64 r0..r4, s1..s4 (5r), h0..h4, d0..d4, carry, hibit64; i32 end
  const PTR = 0;
  const LEN = 1;
  const HB = 2;
  const R = [3, 4, 5, 6, 7];
  const S = [-1, 8, 9, 10, 11];
  const H = [12, 13, 14, 15, 16];
  const D = [17, 18, 19, 20, 21];
  const C = 22;
  const HB64 = 23;
  const END = 24;
  const MUL = 0x7e;
  const ADD = 0x7c;
  const AND = 0x83;
  const OR = 0x84;
  const SHR_U = 0x88;
  const MASK = 0x3ffffff;
  const c: number[] = [];
  const get = (x: number) => c.push(0x20, ...uleb(x));
  const set = (x: number) => c.push(0x21, ...uleb(x));
  const i64 = (v: number) => c.push(0x42, ...sleb(v));
  const i32 = (v: number) => c.push(0x41, ...sleb(v));
  const load32u = (off: number) => c.push(0x35, 2, ...uleb(off));
  const store32 = (off: number) => c.push(0x3e, 2, ...uleb(off));
  for (let i = 0; i < 5; i++) {
    i32(0);
    load32u(4 * i);
    set(R[i]!);
  }
  for (let i = 1; i < 5; i++) {
    get(R[i]!);
    i64(5);
    c.push(MUL);
    set(S[i]!);
  }
  for (let i = 0; i < 5; i++) {
    i32(0);
    load32u(20 + 4 * i);
    set(H[i]!);
  }
  get(HB);
  c.push(0xad); // i64.extend_i32_u
  set(HB64);
  get(PTR);
  get(LEN);
  c.push(0x6a); // i32.add
  set(END);
  c.push(0x02, 0x40, 0x03, 0x40); // block, loop
  get(PTR);
  get(END);
  c.push(0x4f, 0x0d, 1); // i32.ge_u, br_if 1
  // h += m (26-bit limbs of the little-endian block)
  const limbs: Array<[number, number]> = [
    [0, 0],
    [3, 2],
    [6, 4],
    [9, 6],
  ];
  limbs.forEach(([off, sh], i) => {
    get(H[i]!);
    get(PTR);
    load32u(off);
    if (sh) {
      i64(sh);
      c.push(SHR_U);
    }
    i64(MASK);
    c.push(AND, ADD);
    set(H[i]!);
  });
  get(H[4]!);
  get(PTR);
  load32u(12);
  i64(8);
  c.push(SHR_U);
  get(HB64);
  c.push(OR, ADD);
  set(H[4]!);
  // d = h * r mod 2^130 - 5 (limb products past limb 4 fold back times 5)
  for (let k = 0; k < 5; k++) {
    for (let i = 0; i < 5; i++) {
      get(H[i]!);
      get(i <= k ? R[k - i]! : S[k - i + 5]!);
      c.push(MUL);
      if (i > 0) c.push(ADD);
    }
    set(D[k]!);
  }
  // carry
  for (let k = 0; k < 5; k++) {
    if (k > 0) {
      get(D[k]!);
      get(C);
      c.push(ADD);
      set(D[k]!);
    }
    get(D[k]!);
    i64(26);
    c.push(SHR_U);
    set(C);
    get(D[k]!);
    i64(MASK);
    c.push(AND);
    set(H[k]!);
  }
  get(H[0]!);
  get(C);
  i64(5);
  c.push(MUL, ADD);
  set(H[0]!);
  get(H[0]!);
  i64(26);
  c.push(SHR_U);
  set(C);
  get(H[0]!);
  i64(MASK);
  c.push(AND);
  set(H[0]!);
  get(H[1]!);
  get(C);
  c.push(ADD);
  set(H[1]!);
  get(PTR);
  i32(16);
  c.push(0x6a);
  set(PTR);
  c.push(0x0c, 0, 0x0b, 0x0b); // br 0, end loop, end block
  for (let i = 0; i < 5; i++) {
    i32(0);
    get(H[i]!);
    store32(20 + 4 * i);
  }
  c.push(0x0b);
  const body = [
    ...vec([
      [...uleb(21), I64],
      [...uleb(1), I32],
    ]),
    ...c,
  ];
  return new Uint8Array([
    0x00,
    0x61,
    0x73,
    0x6d,
    0x01,
    0x00,
    0x00,
    0x00,
    ...section(1, vec([[0x60, ...vec([[I32], [I32], [I32]]), ...vec([])]])),
    ...section(3, vec([uleb(0)])),
    ...section(5, vec([[0x00, ...uleb(4)]])),
    ...section(
      7,
      vec([
        [1, 0x62, 0x00, 0],
        [1, 0x6d, 0x02, 0],
      ]),
    ),
    ...section(10, vec([[...uleb(body.length), ...body]])),
  ]);
}

const MSG_AT = 64;
/** Message bytes the module's memory (4 pages) holds at once, a multiple of 16. */
const AREA = 4 * 65536 - MSG_AT;
const M26 = 0x3ffffff;

interface Engine {
  readonly u8: Uint8Array;
  readonly u32: Uint32Array;
  readonly blocks: (ptr: number, len: number, hibit: number) => void;
}

let engine: Engine | null | undefined;

function load(): Engine | null {
  if (engine !== undefined) return engine;
  try {
    const inst = new WebAssembly.Instance(new WebAssembly.Module(assemble()), {});
    const mem = inst.exports.m as WebAssembly.Memory;
    engine = {
      u8: new Uint8Array(mem.buffer),
      u32: new Uint32Array(mem.buffer),
      blocks: inst.exports.b as Engine["blocks"],
    };
  } catch {
    engine = null;
  }
  return engine;
}

function le32(b: Uint8Array, i: number): number {
  return (b[i]! | (b[i + 1]! << 8) | (b[i + 2]! << 16) | (b[i + 3]! << 24)) >>> 0;
}

function put32(out: Uint8Array, at: number, v: number): void {
  out[at] = v & 0xff;
  out[at + 1] = (v >>> 8) & 0xff;
  out[at + 2] = (v >>> 16) & 0xff;
  out[at + 3] = (v >>> 24) & 0xff;
}

/**
 * The 16-byte Poly1305 tag of `msg` under the one-time `key` (32 bytes:
 * r || s), written into `out` at `at`.
 */
export function poly1305Into(msg: Uint8Array, key: Uint8Array, out: Uint8Array, at: number): void {
  const e = load();
  if (!e) {
    out.set(noblePoly1305(msg, key), at);
    return;
  }
  const { u8, u32 } = e;
  // r, clamped (RFC 8439 §2.5.1), as five 26-bit limbs; h = 0.
  u32[0] = le32(key, 0) & 0x3ffffff;
  u32[1] = (le32(key, 3) >>> 2) & 0x3ffff03;
  u32[2] = (le32(key, 6) >>> 4) & 0x3ffc0ff;
  u32[3] = (le32(key, 9) >>> 6) & 0x3f03fff;
  u32[4] = (le32(key, 12) >>> 8) & 0x00fffff;
  u32.fill(0, 5, 10);
  const len = msg.byteLength;
  const full = len - (len % 16);
  for (let o = 0; o < full; ) {
    const n = Math.min(AREA, full - o);
    u8.set(msg.subarray(o, o + n), MSG_AT);
    e.blocks(MSG_AT, n, 1 << 24);
    o += n;
  }
  if (full < len) {
    // The final partial block: its bytes, 0x01, zeros; no 2^128 bit.
    const r = len - full;
    u8.set(msg.subarray(full), MSG_AT);
    u8[MSG_AT + r] = 1;
    u8.fill(0, MSG_AT + r + 1, MSG_AT + 16);
    e.blocks(MSG_AT, 16, 0);
  }
  let h0 = u32[5]!;
  let h1 = u32[6]!;
  let h2 = u32[7]!;
  let h3 = u32[8]!;
  let h4 = u32[9]!;
  // Carry fully, then h mod p by a constant-time choice between h and h - p.
  let c = h1 >>> 26;
  h1 &= M26;
  h2 += c;
  c = h2 >>> 26;
  h2 &= M26;
  h3 += c;
  c = h3 >>> 26;
  h3 &= M26;
  h4 += c;
  c = h4 >>> 26;
  h4 &= M26;
  h0 += c * 5;
  c = h0 >>> 26;
  h0 &= M26;
  h1 += c;
  let g0 = h0 + 5;
  c = g0 >>> 26;
  g0 &= M26;
  let g1 = h1 + c;
  c = g1 >>> 26;
  g1 &= M26;
  let g2 = h2 + c;
  c = g2 >>> 26;
  g2 &= M26;
  let g3 = h3 + c;
  c = g3 >>> 26;
  g3 &= M26;
  let g4 = (h4 + c - (1 << 26)) | 0;
  let mask = (g4 >>> 31) - 1;
  g0 &= mask;
  g1 &= mask;
  g2 &= mask;
  g3 &= mask;
  g4 &= mask;
  mask = ~mask;
  h0 = (h0 & mask) | g0;
  h1 = (h1 & mask) | g1;
  h2 = (h2 & mask) | g2;
  h3 = (h3 & mask) | g3;
  h4 = (h4 & mask) | g4;
  // tag = (h + s) mod 2^128
  const t0 = (h0 | (h1 << 26)) >>> 0;
  const t1 = ((h1 >>> 6) | (h2 << 20)) >>> 0;
  const t2 = ((h2 >>> 12) | (h3 << 14)) >>> 0;
  const t3 = ((h3 >>> 18) | (h4 << 8)) >>> 0;
  let f = t0 + le32(key, 16);
  put32(out, at, f);
  f = t1 + le32(key, 20) + (f > 0xffffffff ? 1 : 0);
  put32(out, at + 4, f);
  f = t2 + le32(key, 24) + (f > 0xffffffff ? 1 : 0);
  put32(out, at + 8, f);
  f = t3 + le32(key, 28) + (f > 0xffffffff ? 1 : 0);
  put32(out, at + 12, f);
}

/** The 16-byte Poly1305 tag of `msg` under the one-time `key`. */
export function poly1305(msg: Uint8Array, key: Uint8Array): Uint8Array {
  const out = new Uint8Array(16);
  poly1305Into(msg, key, out, 0);
  return out;
}
