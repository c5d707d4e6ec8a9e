/**
 * Hand-written protobuf encoder and decoder for Konnectivity packets, with the
 * bounds checks of SPEC.md section 2. DATA payloads decode as views into the
 * received message (no copy).
 *
 * @module
 */

import { ProtocolError } from "../channel/errors.ts";
import {
  type Packet,
  PacketType,
  type PacketTypeValue,
  PayloadField,
  packetTypeName,
} from "./packet.ts";

/** Hard cap on an encoded packet, whatever a session configures. */
export const KONNECTIVITY_MAX_MESSAGE_SIZE = 16 * 1024 * 1024;
/** Longest varint protobuf allows (64 bits in 7-bit groups). */
const MAX_VARINT_BYTES = 10;
/** Largest id or opaque value (JavaScript's largest exact integer). */
export const KONNECTIVITY_MAX_ID = Number.MAX_SAFE_INTEGER;

/** Protobuf wire types. */
const WireType = {
  /** varint */
  VARINT: 0,
  /** 8 bytes */
  I64: 1,
  /** length-delimited */
  LEN: 2,
  /** 4 bytes */
  I32: 5,
} as const;

/** Options of {@link decodePacket}. */
export interface PacketDecodeOptions {
  /** Reject messages longer than this (default and cap {@link KONNECTIVITY_MAX_MESSAGE_SIZE}). */
  readonly maxMessageSize?: number;
}

// ---- encoding ----------------------------------------------------------------

const utf8Encoder = new TextEncoder();

function varintLen(v: number): number {
  if (v < 0x80) return 1;
  if (v < 0x4000) return 2;
  if (v < 0x20_0000) return 3;
  if (v < 0x1000_0000) return 4;
  let n = 4;
  let x = Math.floor(v / 0x1000_0000);
  while (x > 0) {
    n++;
    x = Math.floor(x / 128);
  }
  return n;
}

function writeVarint(buf: Uint8Array, pos: number, v: number): number {
  while (v >= 0x8000_0000) {
    buf[pos++] = (v % 128) | 0x80;
    v = Math.floor(v / 128);
  }
  while (v >= 0x80) {
    buf[pos++] = (v & 0x7f) | 0x80;
    v >>>= 7;
  }
  buf[pos++] = v;
  return pos;
}

function utf8Len(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n += 4;
        i++;
      } else n += 3;
    } else n += 3;
  }
  return n;
}

function checkId(field: string, v: number): void {
  if (!Number.isSafeInteger(v) || v < 0) {
    throw new RangeError(`${field} must be an integer in [0, ${KONNECTIVITY_MAX_ID}], got ${v}`);
  }
}

function checkU32(field: string, v: number): void {
  if (!Number.isInteger(v) || v < 0 || v > 0xffff_ffff) {
    throw new RangeError(`${field} must be an integer in [0, 4294967295], got ${v}`);
  }
}

/** A field list of one sub-message: [fieldNumber, kind, value]. */
type Field =
  | readonly [number, "u", number]
  | readonly [number, "s", string]
  | readonly [number, "b", Uint8Array];

function fieldsOf(p: Packet): Field[] {
  switch (p.type) {
    case PacketType.DIAL_REQ:
      checkId("random", p.random);
      checkU32("window", p.window);
      return [
        [1, "s", p.protocol],
        [2, "s", p.address],
        [3, "u", p.random],
        [4, "u", p.window],
        [5, "s", p.caller ?? ""],
      ];
    case PacketType.DIAL_RSP:
      checkId("connectID", p.connectID);
      checkId("random", p.random);
      checkU32("window", p.window);
      return [
        [1, "s", p.error],
        [2, "u", p.connectID],
        [3, "u", p.random],
        [4, "u", p.window],
      ];
    case PacketType.DATA:
      checkId("connectID", p.connectID);
      return [
        [1, "u", p.connectID],
        [2, "s", p.error],
        [3, "b", p.data],
      ];
    case PacketType.CLOSE_REQ:
      checkId("connectID", p.connectID);
      return [
        [1, "u", p.connectID],
        [2, "s", p.error],
      ];
    case PacketType.CLOSE_RSP:
      checkId("connectID", p.connectID);
      return [
        [1, "s", p.error],
        [2, "u", p.connectID],
      ];
    case PacketType.DIAL_CLS:
      checkId("random", p.random);
      return [[1, "u", p.random]];
    case PacketType.DRAIN:
      return [];
    case PacketType.WINDOW_UPDATE:
      checkId("connectID", p.connectID);
      checkU32("credit", p.credit);
      return [
        [1, "u", p.connectID],
        [2, "u", p.credit],
      ];
    case PacketType.HALF_CLOSE:
      checkId("connectID", p.connectID);
      return [[1, "u", p.connectID]];
    case PacketType.PING:
    case PacketType.PONG:
      checkId("opaque", p.opaque);
      return [[1, "u", p.opaque]];
    case PacketType.GO_AWAY:
      checkU32("code", p.code);
      return [
        [1, "u", p.code],
        [2, "s", p.message],
      ];
    default:
      throw new TypeError(`unknown packet type ${(p as { type: unknown }).type}`);
  }
}

/** Payload field number by packet type (upstream's oneof order is not the enum order). */
const PAYLOAD_FIELD_BY_TYPE: readonly number[] = Object.entries(PacketType).map(
  ([name]) => PayloadField[name as keyof typeof PayloadField],
);

/** The payload field number for a packet type. */
function payloadFieldOf(type: PacketTypeValue): number {
  return PAYLOAD_FIELD_BY_TYPE[type];
}

function encodeData(connectID: number, error: string, data: Uint8Array): Uint8Array {
  checkId("connectID", connectID);
  const errLen = error === "" ? 0 : utf8Len(error);
  const dl = data.byteLength;
  const sub =
    (connectID === 0 ? 0 : 1 + varintLen(connectID)) +
    (errLen === 0 ? 0 : 1 + varintLen(errLen) + errLen) +
    (dl === 0 ? 0 : 1 + varintLen(dl) + dl);
  const total = 2 + 1 + varintLen(sub) + sub;
  const buf = new Uint8Array(total);
  buf[0] = 0x08; // field 1, varint
  buf[1] = PacketType.DATA;
  buf[2] = (PayloadField.DATA << 3) | WireType.LEN;
  let pos = writeVarint(buf, 3, sub);
  if (connectID !== 0) {
    buf[pos++] = 0x08;
    pos = writeVarint(buf, pos, connectID);
  }
  if (errLen !== 0) {
    buf[pos++] = 0x12;
    pos = writeVarint(buf, pos, errLen);
    pos += utf8Encoder.encodeInto(error, buf.subarray(pos)).written;
  }
  if (dl !== 0) {
    buf[pos++] = 0x1a;
    pos = writeVarint(buf, pos, dl);
    buf.set(data, pos);
  }
  return buf;
}

/**
 * Encode one packet as protobuf, byte for byte as `protoc` would (default
 * scalars omitted, the payload message always present). Throws `RangeError`
 * or `TypeError` for a packet that cannot be encoded (a caller bug).
 *
 * @example
 * ```ts
 * import { encodePacket } from "./codec.ts";
 * import { PacketType } from "./packet.ts";
 * const b = encodePacket({ type: PacketType.HALF_CLOSE, connectID: 3 });
 * if (b.length !== 6) throw new Error("unexpected size");
 * ```
 */
export function encodePacket(p: Packet): Uint8Array {
  if (p.type === PacketType.DATA) return encodeData(p.connectID, p.error, p.data);
  const fields = fieldsOf(p);
  const strings: Array<number> = [];
  let sub = 0;
  for (const [, kind, v] of fields) {
    if (kind === "u") {
      if (v !== 0) sub += 1 + varintLen(v);
    } else if (kind === "s") {
      const n = v === "" ? 0 : utf8Len(v);
      strings.push(n);
      if (n !== 0) sub += 1 + varintLen(n) + n;
    } else if (v.byteLength !== 0) {
      sub += 1 + varintLen(v.byteLength) + v.byteLength;
    }
  }
  const typeLen = p.type === 0 ? 0 : 1 + varintLen(p.type);
  const total = typeLen + 1 + varintLen(sub) + sub;
  if (total > KONNECTIVITY_MAX_MESSAGE_SIZE) {
    throw new RangeError(`packet of ${total} bytes exceeds ${KONNECTIVITY_MAX_MESSAGE_SIZE}`);
  }
  const buf = new Uint8Array(total);
  let pos = 0;
  if (p.type !== 0) {
    buf[pos++] = 0x08;
    pos = writeVarint(buf, pos, p.type);
  }
  buf[pos++] = (payloadFieldOf(p.type) << 3) | WireType.LEN;
  pos = writeVarint(buf, pos, sub);
  let si = 0;
  for (const [no, kind, v] of fields) {
    if (kind === "u") {
      if (v === 0) continue;
      buf[pos++] = (no << 3) | WireType.VARINT;
      pos = writeVarint(buf, pos, v);
    } else if (kind === "s") {
      const n = strings[si++];
      if (n === 0) continue;
      buf[pos++] = (no << 3) | WireType.LEN;
      pos = writeVarint(buf, pos, n);
      pos += utf8Encoder.encodeInto(v, buf.subarray(pos)).written;
    } else {
      if (v.byteLength === 0) continue;
      buf[pos++] = (no << 3) | WireType.LEN;
      pos = writeVarint(buf, pos, v.byteLength);
      buf.set(v, pos);
      pos += v.byteLength;
    }
  }
  return buf;
}

// ---- decoding ----------------------------------------------------------------

const utf8Decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** A cursor over one message; every read is bounds-checked. */
class Reader {
  readonly buf: Uint8Array;
  pos: number;
  end: number;

  constructor(buf: Uint8Array, pos: number, end: number) {
    this.buf = buf;
    this.pos = pos;
    this.end = end;
  }

  fail(what: string): never {
    throw new ProtocolError(`malformed packet: ${what} at byte ${this.pos}`);
  }

  /** A varint of up to 64 bits; values above 2^53 come back inexact (callers range-check). */
  varint(): number {
    const buf = this.buf;
    let pos = this.pos;
    const end = this.end;
    if (pos < end) {
      const b = buf[pos];
      if (b < 0x80) {
        this.pos = pos + 1;
        return b;
      }
    }
    let v = 0;
    let mul = 1;
    for (let i = 0; i < MAX_VARINT_BYTES; i++) {
      if (pos >= end) this.fail("truncated varint");
      const b = buf[pos++];
      if (i === 9 && b > 1) this.fail("varint longer than 64 bits");
      v += (b & 0x7f) * mul;
      if (b < 0x80) {
        this.pos = pos;
        return v;
      }
      mul *= 128;
    }
    return this.fail("varint longer than 10 bytes");
  }

  id(field: string): number {
    const v = this.varint();
    if (v > KONNECTIVITY_MAX_ID) this.fail(`${field} out of range`);
    return v;
  }

  u32(field: string): number {
    const v = this.varint();
    if (v > 0xffff_ffff) this.fail(`${field} does not fit 32 bits`);
    return v;
  }

  /** Start and end of a length-delimited field's body. */
  len(): number {
    const n = this.varint();
    if (n > this.end - this.pos) this.fail("length runs past the end of the message");
    return n;
  }

  bytes(): Uint8Array {
    const n = this.len();
    const start = this.pos;
    this.pos += n;
    return this.buf.subarray(start, start + n);
  }

  string(field: string): string {
    const n = this.len();
    if (n === 0) return "";
    const start = this.pos;
    this.pos += n;
    try {
      return utf8Decoder.decode(this.buf.subarray(start, start + n));
    } catch {
      return this.fail(`${field} is not valid UTF-8`);
    }
  }

  tag(): { no: number; wt: number } {
    const t = this.varint();
    if (t > 0xffff_ffff) this.fail("tag does not fit 32 bits");
    const no = Math.floor(t / 8);
    if (no === 0) this.fail("field number 0");
    return { no, wt: t & 7 };
  }

  skip(wt: number): void {
    switch (wt) {
      case WireType.VARINT:
        this.varint();
        return;
      case WireType.I64:
        if (this.end - this.pos < 8) this.fail("truncated fixed64");
        this.pos += 8;
        return;
      case WireType.LEN: {
        const n = this.len();
        this.pos += n;
        return;
      }
      case WireType.I32:
        if (this.end - this.pos < 4) this.fail("truncated fixed32");
        this.pos += 4;
        return;
      default:
        this.fail(`unsupported wire type ${wt}`);
    }
  }

  expect(wt: number, want: number, field: string): void {
    if (wt !== want) this.fail(`${field} has wire type ${wt}, want ${want}`);
  }

  /** An int64 id field (checked wire type and range). */
  idField(wt: number, field: string): number {
    this.expect(wt, WireType.VARINT, field);
    return this.id(field);
  }

  /** A uint32 field. */
  u32Field(wt: number, field: string): number {
    this.expect(wt, WireType.VARINT, field);
    return this.u32(field);
  }

  /** A string field. */
  stringField(wt: number, field: string): string {
    this.expect(wt, WireType.LEN, field);
    return this.string(field);
  }

  /** A bytes field, as a view. */
  bytesField(wt: number, field: string): Uint8Array {
    this.expect(wt, WireType.LEN, field);
    return this.bytes();
  }
}

function decodeSub(r: Reader, type: PacketTypeValue): Packet {
  // Scalars default to 0 / "" (proto3); the last occurrence of a field wins.
  let a = 0;
  let b = 0;
  let c = 0;
  let s1 = "";
  let s2 = "";
  let s3 = "";
  let data: Uint8Array = r.buf.subarray(r.pos, r.pos);
  while (r.pos < r.end) {
    const { no, wt } = r.tag();
    switch (type) {
      case PacketType.DIAL_REQ:
        if (no === 1) s1 = r.stringField(wt, "protocol");
        else if (no === 2) s2 = r.stringField(wt, "address");
        else if (no === 3) a = r.idField(wt, "random");
        else if (no === 4) b = r.u32Field(wt, "window");
        else if (no === 5) s3 = r.stringField(wt, "caller");
        else r.skip(wt);
        break;
      case PacketType.DIAL_RSP:
        if (no === 1) s1 = r.stringField(wt, "error");
        else if (no === 2) a = r.idField(wt, "connectID");
        else if (no === 3) b = r.idField(wt, "random");
        else if (no === 4) c = r.u32Field(wt, "window");
        else r.skip(wt);
        break;
      case PacketType.DATA:
        if (no === 1) a = r.idField(wt, "connectID");
        else if (no === 2) s1 = r.stringField(wt, "error");
        else if (no === 3) data = r.bytesField(wt, "data");
        else r.skip(wt);
        break;
      case PacketType.CLOSE_REQ:
        if (no === 1) a = r.idField(wt, "connectID");
        else if (no === 2) s1 = r.stringField(wt, "error");
        else r.skip(wt);
        break;
      case PacketType.CLOSE_RSP:
        if (no === 1) s1 = r.stringField(wt, "error");
        else if (no === 2) a = r.idField(wt, "connectID");
        else r.skip(wt);
        break;
      case PacketType.DIAL_CLS:
        if (no === 1) a = r.idField(wt, "random");
        else r.skip(wt);
        break;
      case PacketType.WINDOW_UPDATE:
        if (no === 1) a = r.idField(wt, "connectID");
        else if (no === 2) b = r.u32Field(wt, "credit");
        else r.skip(wt);
        break;
      case PacketType.HALF_CLOSE:
        if (no === 1) a = r.idField(wt, "connectID");
        else r.skip(wt);
        break;
      case PacketType.PING:
      case PacketType.PONG:
        if (no === 1) a = r.idField(wt, "opaque");
        else r.skip(wt);
        break;
      case PacketType.GO_AWAY:
        if (no === 1) a = r.u32Field(wt, "code");
        else if (no === 2) s1 = r.stringField(wt, "message");
        else r.skip(wt);
        break;
      default: // DRAIN: no fields
        r.skip(wt);
    }
  }
  switch (type) {
    case PacketType.DIAL_REQ:
      return s3 === ""
        ? { type, protocol: s1, address: s2, random: a, window: b }
        : { type, protocol: s1, address: s2, random: a, window: b, caller: s3 };
    case PacketType.DIAL_RSP:
      return { type, error: s1, connectID: a, random: b, window: c };
    case PacketType.DATA:
      return { type, connectID: a, error: s1, data };
    case PacketType.CLOSE_REQ:
      return { type, connectID: a, error: s1 };
    case PacketType.CLOSE_RSP:
      return { type, error: s1, connectID: a };
    case PacketType.DIAL_CLS:
      return { type, random: a };
    case PacketType.DRAIN:
      return { type };
    case PacketType.WINDOW_UPDATE:
      return { type, connectID: a, credit: b };
    case PacketType.HALF_CLOSE:
      return { type, connectID: a };
    case PacketType.PING:
      return { type, opaque: a };
    case PacketType.PONG:
      return { type, opaque: a };
    case PacketType.GO_AWAY:
      return { type, code: a, message: s1 };
  }
}

const MAX_TYPE = PacketType.GO_AWAY;

/**
 * Decode one message. Every malformed input (truncation, oversize, bad varint,
 * unknown packet type, type/payload mismatch, bad UTF-8) throws
 * {@link ProtocolError}; unknown fields are skipped. `DATA.data` is a view into
 * `msg`: the caller must not reuse `msg`'s memory while the view is alive.
 *
 * @example
 * ```ts
 * import { decodePacket, encodePacket } from "./codec.ts";
 * import { PacketType } from "./packet.ts";
 * const p = decodePacket(encodePacket({ type: PacketType.PING, opaque: 9 }));
 * if (p.type !== PacketType.PING || p.opaque !== 9) throw new Error("round trip");
 * ```
 */
export function decodePacket(msg: Uint8Array, options: PacketDecodeOptions = {}): Packet {
  const max = Math.min(
    options.maxMessageSize ?? KONNECTIVITY_MAX_MESSAGE_SIZE,
    KONNECTIVITY_MAX_MESSAGE_SIZE,
  );
  if (!(msg instanceof Uint8Array)) throw new ProtocolError("packet is not binary");
  if (msg.byteLength > max) {
    throw new ProtocolError(`packet of ${msg.byteLength} bytes exceeds the limit of ${max}`);
  }
  const r = new Reader(msg, 0, msg.byteLength);
  let type = 0;
  let payloadField = 0;
  let subStart = 0;
  let subEnd = 0;
  while (r.pos < r.end) {
    const { no, wt } = r.tag();
    if (no === 1) {
      r.expect(wt, WireType.VARINT, "type");
      type = r.varint();
    } else if (no >= PayloadField.DIAL_REQ && no <= PayloadField.GO_AWAY) {
      r.expect(wt, WireType.LEN, "payload");
      if (payloadField !== 0) r.fail("more than one payload");
      const n = r.len();
      payloadField = no;
      subStart = r.pos;
      subEnd = r.pos + n;
      r.pos = subEnd;
    } else {
      r.skip(wt);
    }
  }
  if (!Number.isInteger(type) || type < 0 || type > MAX_TYPE) {
    throw new ProtocolError(`unknown packet type ${packetTypeName(type)}`);
  }
  if (payloadField === 0) {
    throw new ProtocolError(`malformed packet: ${packetTypeName(type)} without its payload`);
  }
  const t = type as PacketTypeValue;
  if (payloadFieldOf(t) !== payloadField) {
    throw new ProtocolError(
      `malformed packet: type ${packetTypeName(type)} with payload field ${payloadField}`,
    );
  }
  r.pos = subStart;
  r.end = subEnd;
  return decodeSub(r, t);
}
