/**
 * The naive twin of src/konnectivity/codec.ts: written differently on purpose
 * (BigInt varints, generic field maps, arrays of numbers, no views) so that a
 * property can check the fast codec against it. Same rules, see SPEC.md.
 */

import { ProtocolError } from "../../channel/errors.ts";
import type { Packet } from "../../konnectivity/packet.ts";

/** Packet.payload field numbers, indexed by packet type (from the .proto). */
const PAYLOAD_NO = [2, 3, 5, 6, 4, 7, 8, 9, 10, 11, 12, 13];

/** `optstr`: a string present in the packet object only when non-empty. */
type Kind = "id" | "u32" | "str" | "optstr" | "bytes";

/** Field tables: [name, number, kind] per packet type, in field-number order. */
const SCHEMA: Record<number, ReadonlyArray<readonly [string, number, Kind]>> = {
  0: [
    ["protocol", 1, "str"],
    ["address", 2, "str"],
    ["random", 3, "id"],
    ["window", 4, "u32"],
    ["caller", 5, "optstr"],
  ],
  1: [
    ["error", 1, "str"],
    ["connectID", 2, "id"],
    ["random", 3, "id"],
    ["window", 4, "u32"],
  ],
  2: [
    ["connectID", 1, "id"],
    ["error", 2, "str"],
  ],
  3: [
    ["error", 1, "str"],
    ["connectID", 2, "id"],
  ],
  4: [
    ["connectID", 1, "id"],
    ["error", 2, "str"],
    ["data", 3, "bytes"],
  ],
  5: [["random", 1, "id"]],
  6: [],
  7: [
    ["connectID", 1, "id"],
    ["credit", 2, "u32"],
  ],
  8: [["connectID", 1, "id"]],
  9: [["opaque", 1, "id"]],
  10: [["opaque", 1, "id"]],
  11: [
    ["code", 1, "u32"],
    ["message", 2, "str"],
  ],
};

function pushVarint(out: number[], v: bigint): void {
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) b |= 0x80;
    out.push(b);
  } while (v > 0n);
}

/** Encode like protoc: default scalars omitted, payload always present. */
export function naiveEncode(p: Packet): Uint8Array {
  const rec = p as unknown as Record<string, unknown>;
  const sub: number[] = [];
  for (const [name, no, kind] of SCHEMA[p.type]) {
    const v = rec[name];
    if (kind === "id" || kind === "u32") {
      if (v === 0) continue;
      pushVarint(sub, BigInt(no * 8));
      pushVarint(sub, BigInt(v as number));
    } else {
      const bytes =
        kind === "bytes"
          ? (v as Uint8Array)
          : new TextEncoder().encode((v as string | undefined) ?? "");
      if (bytes.length === 0) continue;
      pushVarint(sub, BigInt(no * 8 + 2));
      pushVarint(sub, BigInt(bytes.length));
      for (const b of bytes) sub.push(b);
    }
  }
  const out: number[] = [];
  if (p.type !== 0) {
    out.push(8);
    pushVarint(out, BigInt(p.type));
  }
  pushVarint(out, BigInt(PAYLOAD_NO[p.type] * 8 + 2));
  pushVarint(out, BigInt(sub.length));
  return new Uint8Array([...out, ...sub]);
}

interface Raw {
  no: number;
  wt: number;
  value: bigint | Uint8Array;
}

function bad(what: string): never {
  throw new ProtocolError(`naive: ${what}`);
}

/** Split a message into raw fields (generic protobuf parse). */
function parseFields(b: Uint8Array): Raw[] {
  const fields: Raw[] = [];
  let i = 0;
  const varint = (): bigint => {
    let v = 0n;
    for (let k = 0; k < 10; k++) {
      if (i >= b.length) bad("truncated varint");
      const x = b[i++];
      if (k === 9 && x > 1) bad("varint > 64 bits");
      v |= BigInt(x & 0x7f) << BigInt(7 * k);
      if ((x & 0x80) === 0) return v;
    }
    return bad("varint > 10 bytes");
  };
  while (i < b.length) {
    const tag = varint();
    if (tag > 0xffffffffn) bad("tag > 32 bits");
    const no = Number(tag >> 3n);
    const wt = Number(tag & 7n);
    if (no === 0) bad("field 0");
    if (wt === 0) fields.push({ no, wt, value: varint() });
    else if (wt === 2) {
      const n = varint();
      if (n > BigInt(b.length - i)) bad("length past end");
      fields.push({ no, wt, value: b.slice(i, i + Number(n)) });
      i += Number(n);
    } else if (wt === 1 || wt === 5) {
      const n = wt === 1 ? 8 : 4;
      if (b.length - i < n) bad("truncated fixed");
      fields.push({ no, wt, value: b.slice(i, i + n) });
      i += n;
    } else bad(`wire type ${wt}`);
  }
  return fields;
}

/** Decode with the same rules as the fast codec. */
export function naiveDecode(b: Uint8Array): Packet {
  const top = parseFields(b);
  let type = 0n;
  let payload: Raw | undefined;
  for (const f of top) {
    if (f.no === 1) {
      if (f.wt !== 0) bad("type wire type");
      type = f.value as bigint;
    } else if (f.no >= 2 && f.no <= 13) {
      if (f.wt !== 2) bad("payload wire type");
      if (payload) bad("two payloads");
      payload = f;
    }
  }
  if (type > 11n) bad("unknown type");
  if (!payload) bad("no payload");
  const t = Number(type);
  if (payload.no !== PAYLOAD_NO[t]) bad("type/payload mismatch");
  const schema = SCHEMA[t];
  const out: Record<string, unknown> = { type: t };
  for (const [name, , kind] of schema) {
    if (kind !== "optstr")
      out[name] = kind === "str" ? "" : kind === "bytes" ? new Uint8Array(0) : 0;
  }
  for (const f of parseFields(payload.value as Uint8Array)) {
    const entry = schema.find(([, no]) => no === f.no);
    if (!entry) continue;
    const [name, , kind] = entry;
    if (kind === "id" || kind === "u32") {
      if (f.wt !== 0) bad(`${name} wire type`);
      const v = f.value as bigint;
      if (kind === "id" && v > BigInt(Number.MAX_SAFE_INTEGER)) bad(`${name} range`);
      if (kind === "u32" && v > 0xffffffffn) bad(`${name} range`);
      out[name] = Number(v);
    } else {
      if (f.wt !== 2) bad(`${name} wire type`);
      const bytes = f.value as Uint8Array;
      if (kind === "bytes") out[name] = bytes;
      else {
        try {
          out[name] = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes);
        } catch {
          bad(`${name} utf-8`);
        }
      }
    }
  }
  for (const [name, , kind] of schema) if (kind === "optstr" && out[name] === "") delete out[name];
  return out as unknown as Packet;
}
