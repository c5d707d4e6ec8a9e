import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { ProtocolError } from "../../mod.ts";
import { CIPHERS, type DirectionKeys, MACS, makeOpener, makeSealer } from "../../src/ssh/cipher.ts";
import { decodeKexInit, encodeKexInit } from "../../src/ssh/kexinit.ts";
import { Outbox, PacketDecoder, PacketEncoder } from "../../src/ssh/packet_codec.ts";
import { VersionReader } from "../../src/ssh/version.ts";

type Suite = { name: string; cipher?: string; mac?: string };
const SUITES: Suite[] = [
  { name: "none" },
  ...Object.keys(CIPHERS)
    .filter((c) => CIPHERS[c]!.aead)
    .map((cipher) => ({ name: cipher, cipher })),
  ...["aes128-ctr", "aes256-ctr"].flatMap((cipher) =>
    Object.keys(MACS).map((mac) => ({ name: `${cipher}+${mac}`, cipher, mac })),
  ),
];

function keys(s: Suite, seed: number): DirectionKeys {
  const spec = CIPHERS[s.cipher!]!;
  const fill = (n: number, k: number): Uint8Array =>
    Uint8Array.from({ length: n }, (_, i) => (i * 7 + seed + k) & 0xff);
  return {
    iv: fill(spec.ivLength, 1),
    key: fill(spec.keyLength, 2),
    macKey: fill(s.mac ? MACS[s.mac]!.keyLength : 0, 3),
  };
}

function codec(s: Suite, seed: number, seq: number): { enc: PacketEncoder; dec: PacketDecoder } {
  const enc = new PacketEncoder();
  const dec = new PacketDecoder();
  if (s.cipher) {
    enc.sealer = makeSealer(s.cipher, s.mac, keys(s, seed));
    dec.opener = makeOpener(s.cipher, s.mac, keys(s, seed));
  }
  enc.seq = seq;
  dec.seq = seq;
  return { enc, dec };
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.byteLength;
  }
  return out;
}

/** Split `b` at the given cut points. */
function chunked(b: Uint8Array, cuts: number[]): Uint8Array[] {
  const points = [...new Set(cuts.map((c) => c % (b.byteLength + 1)))].sort((x, y) => x - y);
  const out: Uint8Array[] = [];
  let last = 0;
  for (const p of points) {
    out.push(b.subarray(last, p));
    last = p;
  }
  out.push(b.subarray(last));
  return out;
}

function drain(dec: PacketDecoder, limit = 10_000): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let i = 0; i < limit; i++) {
    const p = dec.next();
    if (!p) break;
    out.push(p.slice());
  }
  return out;
}

const payloads = fc.array(fc.uint8Array({ minLength: 1, maxLength: 3000 }), {
  minLength: 1,
  maxLength: 8,
});
// Sequence numbers start anywhere, including just below the 2^32 wrap.
const seqs = fc.oneof(
  fc.constant(0xfffffffd),
  fc.constant(0),
  fc.integer({ min: 0, max: 0xffffffff }),
);

describe("SSH packet codec properties", () => {
  for (const s of SUITES) {
    it(`${s.name}: round trip, any chunking, sequence numbers wrap`, () => {
      fc.assert(
        fc.property(
          payloads,
          seqs,
          fc.array(fc.nat(), { maxLength: 20 }),
          fc.nat(255),
          (ps, seq, cuts, seed) => {
            const { enc, dec } = codec(s, seed, seq);
            const wire = concat(ps.flatMap((p) => enc.encode(p)));
            const got: Uint8Array[] = [];
            for (const c of chunked(wire, cuts)) {
              dec.push(c);
              got.push(...drain(dec));
            }
            assert.deepEqual(
              got,
              ps.map((p) => Uint8Array.from(p)),
            );
            assert.equal(dec.buffered, 0);
            assert.equal(enc.seq, (seq + ps.length) >>> 0);
            assert.equal(dec.seq, enc.seq);
          },
        ),
        { numRuns: 60 },
      );
    });
    it(`${s.name}: head + body packets sealed back to back into one Outbox, taken at any point`, () => {
      fc.assert(
        fc.property(
          fc.array(
            fc.record({
              head: fc.uint8Array({ minLength: 1, maxLength: 40 }),
              body: fc.option(fc.uint8Array({ maxLength: 70_000 }), { nil: undefined }),
              take: fc.boolean(),
            }),
            { minLength: 1, maxLength: 12 },
          ),
          seqs,
          fc.nat(255),
          (ps, seq, seed) => {
            const { enc, dec } = codec(s, seed, seq);
            const out = new Outbox();
            const taken: Uint8Array[] = [];
            for (const p of ps) {
              enc.encodeInto(out, p.head, p.body);
              // What was taken is never written again: copy nothing, check it later.
              if (p.take) taken.push(...out.take());
            }
            taken.push(...out.take());
            assert.equal(out.bytes, 0);
            for (const c of taken) dec.push(c);
            const got = drain(dec);
            assert.deepEqual(
              got,
              ps.map((p) => concat(p.body ? [p.head, p.body] : [p.head])),
            );
            assert.equal(dec.buffered, 0);
            assert.equal(dec.seq, enc.seq);
          },
        ),
        { numRuns: 25 },
      );
    });
    if (s.cipher) {
      it(`${s.name}: one flipped bit is a PROTOCOL_ERROR, never a different payload`, () => {
        fc.assert(
          fc.property(
            payloads,
            fc.nat(),
            fc.integer({ min: 0, max: 7 }),
            fc.nat(255),
            (ps, where, bit, seed) => {
              const { enc, dec } = codec(s, seed, 5);
              const wire = concat(ps.flatMap((p) => enc.encode(p)));
              wire[where % wire.byteLength]! ^= 1 << bit;
              dec.push(wire);
              const got: Uint8Array[] = [];
              try {
                got.push(...drain(dec));
              } catch (e) {
                assert.ok(e instanceof ProtocolError, `untyped ${e}`);
              }
              // Whatever was delivered is an exact prefix of what was sent.
              assert.ok(got.length < ps.length, "every packet was delivered despite the flip");
              for (const [i, g] of got.entries()) assert.deepEqual(g, Uint8Array.from(ps[i]!));
            },
          ),
          { numRuns: 60 },
        );
      });
    }
    it(`${s.name}: random bytes give payloads, 'need more' or a PROTOCOL_ERROR`, () => {
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 4000 }), fc.nat(255), (junk, seed) => {
          const { dec } = codec(s, seed, 0);
          dec.push(junk);
          try {
            drain(dec);
          } catch (e) {
            assert.ok(e instanceof ProtocolError, `untyped ${e}`);
          }
        }),
        { numRuns: 100 },
      );
    });
  }

  it("none: the decoder equals a naive reference parser", () => {
    const naive = (b: Uint8Array): Uint8Array[] => {
      const out: Uint8Array[] = [];
      let o = 0;
      while (o + 4 <= b.byteLength) {
        const len = new DataView(b.buffer, b.byteOffset + o).getUint32(0);
        const pad = b[o + 4]!;
        out.push(b.slice(o + 5, o + 4 + len - pad));
        o += 4 + len;
      }
      return out;
    };
    fc.assert(
      fc.property(payloads, (ps) => {
        const enc = new PacketEncoder();
        const wire = concat(ps.flatMap((p) => enc.encode(p)));
        const dec = new PacketDecoder();
        dec.push(wire);
        assert.deepEqual(drain(dec), naive(wire));
      }),
    );
  });

  it("lengths over the cap and misaligned lengths are refused before any allocation", () => {
    const dec = new PacketDecoder(35_000);
    dec.push(Uint8Array.from([0x7f, 0xff, 0xff, 0xff]));
    assert.throws(() => dec.next(), ProtocolError);
    const dec2 = new PacketDecoder();
    dec2.push(Uint8Array.from([0, 0, 0, 13, 4]));
    assert.throws(() => dec2.next(), ProtocolError);
    const dec3 = new PacketDecoder();
    dec3.push(Uint8Array.from([0, 0, 0, 4]));
    assert.throws(() => dec3.next(), ProtocolError);
  });

  it("KEXINIT: round trip, and random bytes give a PROTOCOL_ERROR", () => {
    const name = fc.stringMatching(/^[a-z0-9@.-]{1,20}$/);
    const list = fc.array(name, { maxLength: 6 });
    fc.assert(
      fc.property(fc.array(list, { minLength: 8, maxLength: 8 }), (ls) => {
        const k = {
          kex: ls[0]!,
          hostKey: ls[1]!,
          cipherC2S: ls[2]!,
          cipherS2C: ls[3]!,
          macC2S: ls[4]!,
          macS2C: ls[5]!,
          compC2S: ls[6]!,
          compS2C: ls[7]!,
        };
        const d = decodeKexInit(encodeKexInit(k));
        assert.deepEqual(
          { ...d, cookie: undefined, firstKexFollows: undefined },
          { ...k, cookie: undefined, firstKexFollows: undefined },
        );
      }),
    );
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), (junk) => {
        const p = Uint8Array.from([20, ...junk]);
        try {
          decodeKexInit(p);
        } catch (e) {
          assert.ok(e instanceof ProtocolError, `untyped ${e}`);
        }
      }),
      { numRuns: 200 },
    );
  });

  it("version exchange: random banners give an identification, 'need more' or a PROTOCOL_ERROR", () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 400 }), { maxLength: 40 }), (chunks) => {
        const v = new VersionReader();
        try {
          for (const c of chunks) if (v.push(c)) break;
        } catch (e) {
          assert.ok(e instanceof ProtocolError, `untyped ${e}`);
        }
      }),
      { numRuns: 200 },
    );
    const v = new VersionReader();
    const got = v.push(new TextEncoder().encode("hello\r\nSSH-2.0-OpenSSH_9.2p1 Debian\r\nxyz"));
    assert.equal(got?.ident, "SSH-2.0-OpenSSH_9.2p1 Debian");
    assert.deepEqual(got?.rest, new TextEncoder().encode("xyz"));
  });
});
