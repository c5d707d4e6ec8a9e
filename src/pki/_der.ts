/**
 * A small, strict DER reader used on hostile input (certificates, CSRs, keys).
 * Definite lengths only, minimal length encoding, bounded element counts.
 * It never recurses on its own: callers walk one level at a time.
 *
 * @module
 */

/** Thrown by the DER reader; callers map it to their public error type. */
export class DerError extends Error {
  override name = "DerError";
}

/** Universal tag numbers we read. */
export const Tag = {
  /** BOOLEAN */
  boolean: 0x01,
  /** INTEGER */
  integer: 0x02,
  /** BIT STRING */
  bitString: 0x03,
  /** OCTET STRING */
  octetString: 0x04,
  /** NULL */
  null: 0x05,
  /** OBJECT IDENTIFIER */
  oid: 0x06,
  /** UTF8String */
  utf8String: 0x0c,
  /** PrintableString */
  printableString: 0x13,
  /** TeletexString */
  teletexString: 0x14,
  /** IA5String */
  ia5String: 0x16,
  /** UTCTime */
  utcTime: 0x17,
  /** GeneralizedTime */
  generalizedTime: 0x18,
  /** UniversalString */
  universalString: 0x1c,
  /** BMPString */
  bmpString: 0x1e,
  /** SEQUENCE (constructed) */
  sequence: 0x30,
  /** SET (constructed) */
  set: 0x31,
} as const;

/** One element: its full encoding and its contents. */
export interface Tlv {
  /** The identifier octet (class, constructed bit and tag number). */
  readonly tag: number;
  /** The whole element, header included. */
  readonly bytes: Uint8Array;
  /** The contents octets. */
  readonly value: Uint8Array;
}

/** Most elements one constructed value may hold (bounds work on hostile input). */
export const MAX_CHILDREN = 4096;

/** Read the single element at `offset`; returns it and where the next one starts. */
export function readTlv(buf: Uint8Array, offset = 0): { tlv: Tlv; next: number } {
  if (offset + 2 > buf.length) throw new DerError("truncated header");
  const tag = buf[offset];
  if ((tag & 0x1f) === 0x1f) throw new DerError("multi-byte tags are not supported");
  let len = buf[offset + 1];
  let p = offset + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0) throw new DerError("indefinite length is not DER");
    if (n > 4) throw new DerError("length too long");
    if (p + n > buf.length) throw new DerError("truncated length");
    if (buf[p] === 0) throw new DerError("non-minimal length");
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[p + i];
    if (len < 0x80) throw new DerError("non-minimal length");
    p += n;
  }
  const end = p + len;
  if (end > buf.length) throw new DerError("truncated value");
  return {
    tlv: { tag, bytes: buf.subarray(offset, end), value: buf.subarray(p, end) },
    next: end,
  };
}

/** Parse `buf` as exactly one element, with no trailing bytes. */
export function parseOne(buf: Uint8Array, expectTag?: number): Tlv {
  const { tlv, next } = readTlv(buf, 0);
  if (next !== buf.length) throw new DerError("trailing data");
  if (expectTag !== undefined && tlv.tag !== expectTag) {
    throw new DerError(`expected tag 0x${expectTag.toString(16)}, got 0x${tlv.tag.toString(16)}`);
  }
  return tlv;
}

/** The elements inside a constructed element, which must fill it exactly. */
export function children(tlv: Tlv, expectTag?: number): Tlv[] {
  if (expectTag !== undefined && tlv.tag !== expectTag) {
    throw new DerError(`expected tag 0x${expectTag.toString(16)}, got 0x${tlv.tag.toString(16)}`);
  }
  if ((tlv.tag & 0x20) === 0) throw new DerError("expected a constructed element");
  const out: Tlv[] = [];
  let p = 0;
  while (p < tlv.value.length) {
    if (out.length >= MAX_CHILDREN) throw new DerError("too many elements");
    const r = readTlv(tlv.value, p);
    out.push(r.tlv);
    p = r.next;
  }
  return out;
}

/** Require a tag. */
export function expect(tlv: Tlv | undefined, tag: number, what: string): Tlv {
  if (tlv === undefined) throw new DerError(`missing ${what}`);
  if (tlv.tag !== tag) throw new DerError(`bad tag for ${what}`);
  return tlv;
}

/** Decode an OBJECT IDENTIFIER's contents to dotted form. */
export function decodeOid(value: Uint8Array): string {
  if (value.length === 0 || value.length > 64) throw new DerError("bad OID length");
  const parts: number[] = [];
  let acc = 0;
  let first = true;
  for (let i = 0; i < value.length; i++) {
    const b = value[i];
    if (acc === 0 && b === 0x80) throw new DerError("non-minimal OID arc");
    acc = acc * 128 + (b & 0x7f);
    if (acc > Number.MAX_SAFE_INTEGER / 256) throw new DerError("OID arc too large");
    if ((b & 0x80) === 0) {
      if (first) {
        const a = acc < 40 ? 0 : acc < 80 ? 1 : 2;
        parts.push(a, acc - a * 40);
        first = false;
      } else parts.push(acc);
      acc = 0;
    } else if (i === value.length - 1) throw new DerError("truncated OID");
  }
  return parts.join(".");
}

/** Read an OID element. */
export function readOid(tlv: Tlv | undefined, what = "OID"): string {
  return decodeOid(expect(tlv, Tag.oid, what).value);
}

/** Read a DER BOOLEAN (0x00 or 0xff only). */
export function readBoolean(tlv: Tlv): boolean {
  if (tlv.tag !== Tag.boolean || tlv.value.length !== 1) throw new DerError("bad BOOLEAN");
  if (tlv.value[0] === 0xff) return true;
  if (tlv.value[0] === 0) return false;
  throw new DerError("BOOLEAN is not DER");
}

/** Check an INTEGER's encoding is minimal and return its contents octets. */
export function integerBytes(tlv: Tlv | undefined, what = "INTEGER"): Uint8Array {
  const t = expect(tlv, Tag.integer, what);
  const v = t.value;
  if (v.length === 0) throw new DerError(`empty ${what}`);
  if (v.length > 1 && ((v[0] === 0 && (v[1] & 0x80) === 0) || (v[0] === 0xff && v[1] & 0x80))) {
    throw new DerError(`non-minimal ${what}`);
  }
  return v;
}

/** Read a small non-negative INTEGER. */
export function readSmallInt(tlv: Tlv | undefined, what = "INTEGER"): number {
  const v = integerBytes(tlv, what);
  if (v[0] & 0x80) throw new DerError(`negative ${what}`);
  if (v.length > 6) throw new DerError(`${what} too large`);
  let n = 0;
  for (const b of v) n = n * 256 + b;
  return n;
}

/** A BIT STRING's contents: unused bit count and the octets. */
export function readBitString(
  tlv: Tlv | undefined,
  what = "BIT STRING",
): {
  unused: number;
  bytes: Uint8Array;
} {
  const t = expect(tlv, Tag.bitString, what);
  if (t.value.length === 0) throw new DerError(`empty ${what}`);
  const unused = t.value[0];
  if (unused > 7 || (unused > 0 && t.value.length === 1)) throw new DerError(`bad ${what}`);
  return { unused, bytes: t.value.subarray(1) };
}

function digits(s: string, from: number, n: number): number {
  let v = 0;
  for (let i = from; i < from + n; i++) {
    const c = s.charCodeAt(i) - 48;
    if (c < 0 || c > 9) throw new DerError("bad time digit");
    v = v * 10 + c;
  }
  return v;
}

/** Read a UTCTime or GeneralizedTime in the strict RFC 5280 forms (seconds, Z, no fraction). */
export function readTime(tlv: Tlv | undefined): Date {
  if (tlv === undefined) throw new DerError("missing time");
  const s = String.fromCharCode(...tlv.value);
  let year: number;
  let rest: number;
  if (tlv.tag === Tag.utcTime) {
    if (s.length !== 13 || s[12] !== "Z") throw new DerError("bad UTCTime");
    const yy = digits(s, 0, 2);
    year = yy >= 50 ? 1900 + yy : 2000 + yy;
    rest = 2;
  } else if (tlv.tag === Tag.generalizedTime) {
    if (s.length !== 15 || s[14] !== "Z") throw new DerError("bad GeneralizedTime");
    year = digits(s, 0, 4);
    rest = 4;
  } else throw new DerError("bad time tag");
  const mo = digits(s, rest, 2);
  const d = digits(s, rest + 2, 2);
  const h = digits(s, rest + 4, 2);
  const mi = digits(s, rest + 6, 2);
  const se = digits(s, rest + 8, 2);
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 59) {
    throw new DerError("time out of range");
  }
  const ms = Date.UTC(year, mo - 1, d, h, mi, se);
  const check = new Date(ms);
  if (check.getUTCDate() !== d) throw new DerError("no such day");
  return check;
}

/** Decode a directory string (UTF8, Printable, IA5, Teletex as Latin-1, BMP, Universal). */
export function readString(tlv: Tlv): string {
  const v = tlv.value;
  switch (tlv.tag) {
    case Tag.utf8String:
      try {
        return new TextDecoder("utf-8", { fatal: true }).decode(v);
      } catch {
        throw new DerError("bad UTF8String");
      }
    case Tag.printableString:
    case Tag.ia5String:
    case Tag.teletexString: {
      let s = "";
      for (const b of v) s += String.fromCharCode(b);
      return s;
    }
    case Tag.bmpString: {
      if (v.length % 2) throw new DerError("bad BMPString");
      let s = "";
      for (let i = 0; i < v.length; i += 2) s += String.fromCharCode((v[i] << 8) | v[i + 1]);
      return s;
    }
    case Tag.universalString: {
      if (v.length % 4) throw new DerError("bad UniversalString");
      let s = "";
      for (let i = 0; i < v.length; i += 4) {
        const cp = ((v[i] << 24) | (v[i + 1] << 16) | (v[i + 2] << 8) | v[i + 3]) >>> 0;
        if (cp > 0x10ffff) throw new DerError("bad code point");
        s += String.fromCodePoint(cp);
      }
      return s;
    }
    default:
      throw new DerError("not a string type");
  }
}

/** Encode a DER length + tag around contents (for the few things we build by hand). */
export function encodeTlv(tag: number, contents: Uint8Array): Uint8Array {
  const n = contents.length;
  let header: number[];
  if (n < 0x80) header = [tag, n];
  else if (n < 0x100) header = [tag, 0x81, n];
  else if (n < 0x10000) header = [tag, 0x82, n >> 8, n & 0xff];
  else header = [tag, 0x83, n >> 16, (n >> 8) & 0xff, n & 0xff];
  const out = new Uint8Array(header.length + n);
  out.set(header);
  out.set(contents, header.length);
  return out;
}

/** Byte equality. */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Lower-case hex of bytes. */
export function toHex(b: Uint8Array): string {
  let s = "";
  for (const x of b) s += x.toString(16).padStart(2, "0");
  return s;
}
