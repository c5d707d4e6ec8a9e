import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { ProtocolError } from "../../src/channel/errors.ts";
import {
  decodePacket,
  encodePacket,
  KONNECTIVITY_MAX_MESSAGE_SIZE,
} from "../../src/konnectivity/codec.ts";
import {
  describePacket,
  GoAwayCode,
  type Packet,
  PacketType,
} from "../../src/konnectivity/packet.ts";
import { naiveDecode, naiveEncode } from "../../src/testing/_fixtures/konnectivity_naive.ts";
import { peerSkip } from "../_harness/peers.ts";
import { bufbuildEncode, packetSchema } from "../_harness/proto_schema.ts";

const PROTO_DIR = fileURLToPath(new URL("../fixtures/", import.meta.url));
const te = new TextEncoder();

function hex(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}
function unhex(s: string): Uint8Array {
  return new Uint8Array(s.match(/../g)?.map((x) => Number.parseInt(x, 16)) ?? []);
}

/**
 * [packet, protobuf text format, expected hex]. The hex was produced by protoc 3.21 and is
 * re-checked below by @bufbuild/protobuf (always) and protoc (when installed).
 */
const GOLDEN: ReadonlyArray<readonly [Packet, string, string]> = [
  [
    {
      type: PacketType.DIAL_REQ,
      protocol: "tcp",
      address: "10.0.0.1:443",
      random: 1,
      window: 262144,
    },
    'type: DIAL_REQ dialRequest { protocol: "tcp" address: "10.0.0.1:443" random: 1 window: 262144 }',
    "12190a03746370120c31302e302e302e313a343433180120808010",
  ],
  [
    {
      type: PacketType.DIAL_REQ,
      protocol: "tcp",
      address: "10.0.0.1:443",
      random: 1,
      window: 262144,
      caller: "kube-apiserver",
    },
    'type: DIAL_REQ dialRequest { protocol: "tcp" address: "10.0.0.1:443" random: 1 window: 262144 caller: "kube-apiserver" }',
    "12290a03746370120c31302e302e302e313a3434331801208080102a0e6b7562652d617069736572766572",
  ],
  [
    { type: PacketType.DIAL_RSP, error: "", connectID: 2, random: 1, window: 262144 },
    "type: DIAL_RSP dialResponse { connectID: 2 random: 1 window: 262144 }",
    "08011a081002180120808010",
  ],
  [
    { type: PacketType.DIAL_RSP, error: "connection refused", connectID: 0, random: 7, window: 0 },
    'type: DIAL_RSP dialResponse { error: "connection refused" random: 7 }',
    "08011a160a12636f6e6e656374696f6e20726566757365641807",
  ],
  [
    { type: PacketType.DATA, connectID: 2, error: "", data: te.encode("hello") },
    'type: DATA data { connectID: 2 data: "hello" }',
    "0804220908021a0568656c6c6f",
  ],
  [
    { type: PacketType.DATA, connectID: 300, error: "", data: new Uint8Array(0) },
    "type: DATA data { connectID: 300 }",
    "0804220308ac02",
  ],
  [
    { type: PacketType.CLOSE_REQ, connectID: 2, error: "" },
    "type: CLOSE_REQ closeRequest { connectID: 2 }",
    "08022a020802",
  ],
  [
    { type: PacketType.CLOSE_REQ, connectID: Number.MAX_SAFE_INTEGER, error: "aborted" },
    'type: CLOSE_REQ closeRequest { connectID: 9007199254740991 error: "aborted" }',
    "08022a1208ffffffffffffff0f120761626f72746564",
  ],
  [
    { type: PacketType.CLOSE_RSP, error: "", connectID: 2 },
    "type: CLOSE_RSP closeResponse { connectID: 2 }",
    "080332021002",
  ],
  [
    { type: PacketType.DIAL_CLS, random: 5 },
    "type: DIAL_CLS closeDial { random: 5 }",
    "08053a020805",
  ],
  [{ type: PacketType.DRAIN }, "type: DRAIN drain { }", "08064200"],
  [
    { type: PacketType.WINDOW_UPDATE, connectID: 4, credit: 0x7fff_ffff },
    "type: WINDOW_UPDATE windowUpdate { connectID: 4 credit: 2147483647 }",
    "08074a08080410ffffffff07",
  ],
  [
    { type: PacketType.HALF_CLOSE, connectID: 3 },
    "type: HALF_CLOSE halfClose { connectID: 3 }",
    "080852020803",
  ],
  [
    { type: PacketType.PING, opaque: 1234567890123 },
    "type: PING ping { opaque: 1234567890123 }",
    "08095a0708cb89ec8ff723",
  ],
  [{ type: PacketType.PONG, opaque: 1 }, "type: PONG pong { opaque: 1 }", "080a62020801"],
  [
    { type: PacketType.GO_AWAY, code: GoAwayCode.PROTOCOL_ERROR, message: "bad packet" },
    'type: GO_AWAY goAway { code: PROTOCOL_ERROR message: "bad packet" }',
    "080b6a0e0801120a626164207061636b6574",
  ],
  [{ type: PacketType.GO_AWAY, code: 0, message: "" }, "type: GO_AWAY goAway { }", "080b6a00"],
  [
    { type: PacketType.DIAL_REQ, protocol: "", address: "", random: 0, window: 0 },
    "type: DIAL_REQ dialRequest { }",
    "1200",
  ],
];

function protocEncode(text: string): string {
  const out = execFileSync("protoc", ["--encode=Packet", "-I", PROTO_DIR, "konnectivity.proto"], {
    input: text,
  });
  return hex(new Uint8Array(out.buffer, out.byteOffset, out.byteLength));
}

function isProtocolError(e: unknown): boolean {
  assert.ok(e instanceof ProtocolError, `expected ProtocolError, got ${e}`);
  return true;
}

describe("konnectivity codec: golden vectors", () => {
  it("protoc (the reference encoder) produces every golden vector", {
    skip: peerSkip("protoc"),
  }, () => {
    for (const [, text, want] of GOLDEN) assert.equal(protocEncode(text), want, text);
  });

  it("@bufbuild/protobuf (a second encoder, on every machine) produces every golden vector", () => {
    const schema = packetSchema(`${PROTO_DIR}konnectivity.proto`);
    for (const [, text, want] of GOLDEN) assert.equal(bufbuildEncode(schema, text), want, text);
  });

  for (const [p, text, want] of GOLDEN) {
    it(`${describePacket(p)}: encode, decode and the naive twin agree with ${text.split(" ")[1]}`, () => {
      assert.equal(hex(encodePacket(p)), want);
      assert.equal(hex(naiveEncode(p)), want);
      assert.deepEqual(decodePacket(unhex(want)), p);
      assert.deepEqual(naiveDecode(unhex(want)), p);
    });
  }
});

describe("konnectivity codec: bounds checks", () => {
  it("DATA payload decodes as a view into the message (no copy)", () => {
    const msg = encodePacket({
      type: PacketType.DATA,
      connectID: 9,
      error: "",
      data: te.encode("abc"),
    });
    const p = decodePacket(msg);
    assert.equal(p.type, PacketType.DATA);
    if (p.type !== PacketType.DATA) return;
    assert.equal(p.data.buffer, msg.buffer);
    msg[msg.length - 1] = 0x5a;
    assert.equal(p.data[2], 0x5a);
  });

  it("unknown fields of every wire type are skipped, at both levels", () => {
    // Packet{type: HALF_CLOSE, 14: varint 1, 15: fixed64, halfClose{connectID 3, 9: bytes "zz", 10: fixed32}}
    const msg = unhex(
      "0808" + "7001" + "790102030405060708" + "520b" + "0803" + "4a027a7a" + "5501020304",
    );
    assert.deepEqual(decodePacket(msg), { type: PacketType.HALF_CLOSE, connectID: 3 });
    assert.deepEqual(naiveDecode(msg), { type: PacketType.HALF_CLOSE, connectID: 3 });
  });

  it("scalar fields that repeat: the last one wins", () => {
    const msg = unhex("0808" + "5204" + "0801" + "0807");
    assert.deepEqual(decodePacket(msg), { type: PacketType.HALF_CLOSE, connectID: 7 });
  });

  const BAD: ReadonlyArray<readonly [string, string]> = [
    ["unknown packet type 12", "080c7200"],
    ["unknown packet type, huge", "08ffffffffffffffffff017200"],
    ["no payload", "0808"],
    ["empty message (DIAL_REQ without payload)", ""],
    ["type and payload disagree", "080952020803"],
    ["two payloads", "080852020803" + "52020804"],
    ["truncated varint", "08"],
    ["varint of 11 bytes", "08ffffffffffffffffffff01"],
    ["varint over 64 bits (10th byte 0x02)", "08ffffffffffffffffff02"],
    ["length past the end", "08085205"],
    ["connectID above 2^53-1", "0808520a08ffffffffffffffff7f"],
    ["negative connectID (int64 -1)", "0808520b08ffffffffffffffffff01"],
    ["credit above 32 bits", "0807" + "4a08" + "0804" + "1080808080" + "10"],
    ["known field, wrong wire type", "080852020a00"],
    ["payload with wrong wire type", "080850"],
    ["group wire type 3", "0808" + "5203" + "0803" + "0b"],
    ["wire type 7", "0808" + "7f"],
    ["field number 0", "0808" + "0001" + "52020803"],
    ["invalid UTF-8 in address", "1204" + "1202" + "c328"],
    ["truncated fixed64", "0808" + "520b" + "0803" + "09010203"],
  ];
  for (const [what, h] of BAD) {
    it(`rejects ${what} with ProtocolError (fast and naive)`, () => {
      assert.throws(() => decodePacket(unhex(h)), isProtocolError);
      assert.throws(() => naiveDecode(unhex(h)), isProtocolError);
    });
  }

  it("rejects a message over the size limit before parsing it", () => {
    const msg = encodePacket({
      type: PacketType.DATA,
      connectID: 1,
      error: "",
      data: new Uint8Array(2000),
    });
    assert.throws(() => decodePacket(msg, { maxMessageSize: 1000 }), isProtocolError);
    assert.throws(
      () => decodePacket(new Uint8Array(KONNECTIVITY_MAX_MESSAGE_SIZE + 1)),
      isProtocolError,
    );
    assert.doesNotThrow(() => decodePacket(msg, { maxMessageSize: 4000 }));
  });

  it("encoding refuses ids it cannot represent (a caller bug: RangeError)", () => {
    assert.throws(() => encodePacket({ type: PacketType.HALF_CLOSE, connectID: -1 }), RangeError);
    assert.throws(
      () => encodePacket({ type: PacketType.HALF_CLOSE, connectID: 2 ** 53 }),
      RangeError,
    );
    assert.throws(
      () => encodePacket({ type: PacketType.WINDOW_UPDATE, connectID: 1, credit: 2 ** 32 }),
      RangeError,
    );
  });

  it("describePacket names every type and never prints DATA bytes", () => {
    for (const [p] of GOLDEN) assert.match(describePacket(p), /^[A-Z_]+( |$)/);
    const s = describePacket({
      type: PacketType.DATA,
      connectID: 2,
      error: "",
      data: te.encode("secret"),
    });
    assert.equal(s, "DATA connectID=2 bytes=6");
  });
});
