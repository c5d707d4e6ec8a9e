import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { ProtocolError } from "../../src/channel/errors.ts";
import { decodePacket, encodePacket } from "../../src/konnectivity/codec.ts";
import { type Packet, PacketType } from "../../src/konnectivity/packet.ts";
import { naiveDecode, naiveEncode } from "../../src/testing/_fixtures/konnectivity_naive.ts";
import { arbPacket } from "../_harness/konnectivity_arb.ts";

type Outcome = { ok: Packet } | { err: "ProtocolError" };

function outcome(f: () => Packet): Outcome {
  try {
    return { ok: f() };
  } catch (e) {
    // Anything but a ProtocolError (TypeError, RangeError ...) is a crash: let it fail the property.
    if (e instanceof ProtocolError) return { err: "ProtocolError" };
    throw e;
  }
}

/** Bytes that look like packets: a valid encoding with random edits, or random bytes. */
function arbMangled(): fc.Arbitrary<Uint8Array> {
  const edited = fc
    .tuple(
      arbPacket(),
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }),
      fc.nat(),
      fc.boolean(),
    )
    .map(([p, edits, cut, doCut]) => {
      const b = encodePacket(p).slice();
      for (const [i, v] of edits) if (b.length > 0) b[i % b.length] = v;
      return doCut && b.length > 0 ? b.subarray(0, cut % b.length) : b;
    });
  return fc.oneof(edited, fc.uint8Array({ maxLength: 64 }));
}

describe("konnectivity codec: properties", () => {
  it("round trip: decode(encode(p)) equals p", () => {
    fc.assert(
      fc.property(arbPacket(), (p) => {
        assert.deepEqual(decodePacket(encodePacket(p)), p);
      }),
      { numRuns: 2000, includeErrorInReport: true },
    );
  });

  it("the fast encoder equals the naive twin byte for byte", () => {
    fc.assert(
      fc.property(arbPacket(), (p) => {
        assert.deepEqual(encodePacket(p), naiveEncode(p));
      }),
      { numRuns: 2000, includeErrorInReport: true },
    );
  });

  it("the fast decoder equals the naive twin on any bytes (same packet, or both ProtocolError)", () => {
    fc.assert(
      fc.property(arbMangled(), (b) => {
        assert.deepEqual(
          outcome(() => decodePacket(b)),
          outcome(() => naiveDecode(b)),
        );
      }),
      { numRuns: 5000, includeErrorInReport: true },
    );
  });

  it("random bytes give a packet or a ProtocolError, never another exception, and in bounded time", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2048 }), (b) => {
        const t0 = performance.now();
        const r = outcome(() => decodePacket(b));
        assert.ok(performance.now() - t0 < 1000, "decode took over a second");
        if ("ok" in r)
          assert.ok(r.ok.type >= PacketType.DIAL_REQ && r.ok.type <= PacketType.GO_AWAY);
      }),
      { numRuns: 5000, includeErrorInReport: true },
    );
  });

  it("encoding is canonical: re-encoding a decoded packet gives the same packet", () => {
    fc.assert(
      fc.property(arbMangled(), (b) => {
        const r = outcome(() => decodePacket(b));
        if ("ok" in r) assert.deepEqual(decodePacket(encodePacket(r.ok)), r.ok);
      }),
      { numRuns: 3000, includeErrorInReport: true },
    );
  });
});
