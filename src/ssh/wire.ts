/**
 * SSH data types (RFC 4251 §5): a bounds-checked reader and a growable writer.
 * Every read past the end or out of a limit throws {@link ProtocolError}.
 *
 * @module
 */

import { ProtocolError } from "../channel/errors.ts";

/** Longest name-list we parse (bytes). */
export const MAX_NAME_LIST_BYTES = 64 * 1024;
/** Most names in one name-list. */
export const MAX_NAME_LIST_ITEMS = 256;

const enc = new TextEncoder();
const dec = new TextDecoder("utf-8", { fatal: false });

/** Reads SSH types from a byte array; every read is bounds-checked. */
export class SshReader {
  readonly buf: Uint8Array;
  pos: number;
  readonly #view: DataView;

  constructor(buf: Uint8Array, pos = 0) {
    this.buf = buf;
    this.pos = pos;
    this.#view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  /** Bytes left. */
  get remaining(): number {
    return this.buf.byteLength - this.pos;
  }

  #need(n: number, what: string): void {
    if (n < 0 || this.pos + n > this.buf.byteLength) {
      throw new ProtocolError(
        `truncated SSH message: ${what} needs ${n} bytes, ${this.remaining} left`,
      );
    }
  }

  byte(): number {
    this.#need(1, "byte");
    return this.buf[this.pos++]!;
  }

  bool(): boolean {
    return this.byte() !== 0;
  }

  uint32(): number {
    this.#need(4, "uint32");
    const v = this.#view.getUint32(this.pos);
    this.pos += 4;
    return v;
  }

  /** A `string` as raw bytes (a view, not a copy). */
  bytes(max = this.buf.byteLength): Uint8Array {
    const n = this.uint32();
    if (n > max) throw new ProtocolError(`SSH string of ${n} bytes exceeds the limit ${max}`);
    this.#need(n, "string");
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  /** A `string` decoded as UTF-8. */
  string(max?: number): string {
    return dec.decode(this.bytes(max));
  }

  /** A `name-list`, capped in size and count. */
  nameList(): string[] {
    const raw = this.bytes(MAX_NAME_LIST_BYTES);
    if (raw.byteLength === 0) return [];
    for (const b of raw) {
      if (b < 0x21 || b > 0x7e) throw new ProtocolError("name-list holds a non-printable byte");
    }
    const names = dec.decode(raw).split(",");
    if (names.length > MAX_NAME_LIST_ITEMS) {
      throw new ProtocolError(`name-list has ${names.length} names, limit ${MAX_NAME_LIST_ITEMS}`);
    }
    if (names.some((n) => n === "")) throw new ProtocolError("name-list has an empty name");
    return names;
  }

  /** An `mpint` as its big-endian magnitude; negative values are refused. */
  mpint(maxBytes = 1025): Uint8Array {
    const raw = this.bytes(maxBytes);
    if (raw.byteLength > 0 && (raw[0]! & 0x80) !== 0) {
      throw new ProtocolError("negative mpint where a positive one is required");
    }
    let i = 0;
    while (i < raw.byteLength && raw[i] === 0) i++;
    return raw.subarray(i);
  }

  /** Raw bytes without a length prefix. */
  raw(n: number): Uint8Array {
    this.#need(n, "raw bytes");
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  /** Throw unless the whole message was consumed. */
  end(what: string): void {
    if (this.remaining !== 0) {
      throw new ProtocolError(`${what}: ${this.remaining} trailing bytes`);
    }
  }
}

/** Builds SSH messages. */
export class SshWriter {
  #buf: Uint8Array;
  #view: DataView;
  #len = 0;

  constructor(initial = 256) {
    this.#buf = new Uint8Array(initial);
    this.#view = new DataView(this.#buf.buffer);
  }

  #grow(n: number): void {
    if (this.#len + n <= this.#buf.byteLength) return;
    let size = this.#buf.byteLength * 2;
    while (size < this.#len + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.#buf.subarray(0, this.#len));
    this.#buf = next;
    this.#view = new DataView(next.buffer);
  }

  byte(v: number): this {
    this.#grow(1);
    this.#buf[this.#len++] = v;
    return this;
  }

  bool(v: boolean): this {
    return this.byte(v ? 1 : 0);
  }

  uint32(v: number): this {
    this.#grow(4);
    this.#view.setUint32(this.#len, v >>> 0);
    this.#len += 4;
    return this;
  }

  bytes(v: Uint8Array): this {
    this.uint32(v.byteLength);
    return this.raw(v);
  }

  string(v: string): this {
    return this.bytes(enc.encode(v));
  }

  nameList(v: readonly string[]): this {
    return this.string(v.join(","));
  }

  /** An mpint from a non-negative big-endian magnitude. */
  mpint(magnitude: Uint8Array): this {
    let i = 0;
    while (i < magnitude.byteLength && magnitude[i] === 0) i++;
    const m = magnitude.subarray(i);
    if (m.byteLength > 0 && (m[0]! & 0x80) !== 0) {
      this.uint32(m.byteLength + 1).byte(0);
      return this.raw(m);
    }
    return this.bytes(m);
  }

  raw(v: Uint8Array): this {
    this.#grow(v.byteLength);
    this.#buf.set(v, this.#len);
    this.#len += v.byteLength;
    return this;
  }

  /** The bytes written so far (a copy-free view). */
  finish(): Uint8Array {
    return this.#buf.subarray(0, this.#len);
  }
}

/** Encode a UTF-8 string. */
export function utf8(s: string): Uint8Array {
  return enc.encode(s);
}

/** Decode UTF-8 (lossy). */
export function fromUtf8(b: Uint8Array): string {
  return dec.decode(b);
}

/** Concatenate byte arrays. */
export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.byteLength;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.byteLength;
  }
  return out;
}

/** Constant-time equality of two byte arrays. */
export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  let d = 0;
  for (let i = 0; i < a.byteLength; i++) d |= a[i]! ^ b[i]!;
  return d === 0;
}

/** Standard base64 of bytes. */
export function toBase64(b: Uint8Array): string {
  let s = "";
  for (let i = 0; i < b.byteLength; i += 0x8000) {
    s += String.fromCharCode(...b.subarray(i, i + 0x8000));
  }
  return btoa(s);
}

/** Decode standard base64; returns undefined when malformed. */
export function fromBase64(s: string): Uint8Array | undefined {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(s) || s.length % 4 === 1) return undefined;
  try {
    const bin = atob(s);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  } catch {
    return undefined;
  }
}

/** base64url without padding (for JWK). */
export function toBase64Url(b: Uint8Array): string {
  return toBase64(b).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** View bytes as a WebCrypto BufferSource (our arrays never sit on a SharedArrayBuffer). */
export function bufferSource(u: Uint8Array): Uint8Array<ArrayBuffer> {
  return u as Uint8Array<ArrayBuffer>;
}
