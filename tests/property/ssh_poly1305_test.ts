import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { poly1305 as noblePoly1305 } from "@noble/ciphers/_poly1305.js";
import fc from "fast-check";
import { poly1305, poly1305Into } from "../../src/ssh/poly1305.ts";

const hex = (b: Uint8Array): string =>
  Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
const unhex = (h: string): Uint8Array =>
  new Uint8Array((h.match(/../g) ?? []).map((x) => Number.parseInt(x, 16)));

describe("Poly1305 (WebAssembly block function)", () => {
  it("matches RFC 8439 §2.5.2", () => {
    const key = unhex("85d6be7857556d337f4452fe42d506a80103808afb0db2fd4abff6af4149f51b");
    const msg = new TextEncoder().encode("Cryptographic Forum Research Group");
    assert.equal(hex(poly1305(msg, key)), "a8061dc1305136c6c22b8baf0c0127a9");
  });

  it("matches the RFC 8439 A.3 edge vectors (h >= p, carries, wrap of h + s)", () => {
    const vectors: Array<[string, string, string]> = [
      [
        "0200000000000000000000000000000000000000000000000000000000000000",
        "ffffffffffffffffffffffffffffffff",
        "03000000000000000000000000000000",
      ],
      [
        "02000000000000000000000000000000ffffffffffffffffffffffffffffffff",
        "02000000000000000000000000000000",
        "03000000000000000000000000000000",
      ],
      [
        "0100000000000000000000000000000000000000000000000000000000000000",
        "fffffffffffffffffffffffffffffffff0ffffffffffffffffffffffffffffff11000000000000000000000000000000",
        "05000000000000000000000000000000",
      ],
      [
        "0100000000000000000000000000000000000000000000000000000000000000",
        "fffffffffffffffffffffffffffffffffbfefefefefefefefefefefefefefefe01010101010101010101010101010101",
        "00000000000000000000000000000000",
      ],
      [
        "0200000000000000000000000000000000000000000000000000000000000000",
        "fdffffffffffffffffffffffffffffff",
        "faffffffffffffffffffffffffffffff",
      ],
      [
        "0100000000000000040000000000000000000000000000000000000000000000",
        "e33594d7505e43b900000000000000003394d7505e4379cd01000000000000000000000000000000000000000000000001000000000000000000000000000000",
        "14000000000000005500000000000000",
      ],
      [
        "0100000000000000040000000000000000000000000000000000000000000000",
        "e33594d7505e43b900000000000000003394d7505e4379cd010000000000000000000000000000000000000000000000",
        "13000000000000000000000000000000",
      ],
    ];
    for (const [key, msg, tag] of vectors) assert.equal(hex(poly1305(unhex(msg), unhex(key))), tag);
  });

  it("agrees with @noble/ciphers on random keys and messages", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uint8Array({ maxLength: 2100 }),
        (key, msg) => {
          assert.equal(hex(poly1305(msg, key)), hex(noblePoly1305(msg, key)));
        },
      ),
      { numRuns: 2000 },
    );
  });

  it("agrees with @noble/ciphers on all-ones keys and messages (maximal carries)", () => {
    const key = new Uint8Array(32).fill(0xff);
    for (let n = 0; n <= 300; n++) {
      for (const fill of [0xff, 0xfe, 0x00]) {
        const msg = new Uint8Array(n).fill(fill);
        assert.equal(hex(poly1305(msg, key)), hex(noblePoly1305(msg, key)), `n=${n} fill=${fill}`);
      }
    }
  });

  it("handles messages larger than the module's memory, and writes at an offset", () => {
    const key = crypto.getRandomValues(new Uint8Array(32));
    const msg = new Uint8Array(600_000 + 7);
    for (let i = 0; i < msg.length; i++) msg[i] = (i * 31 + 7) & 0xff;
    const out = new Uint8Array(40);
    poly1305Into(msg, key, out, 9);
    assert.equal(hex(out.subarray(9, 25)), hex(noblePoly1305(msg, key)));
    assert.equal(hex(out.subarray(0, 9)), "000000000000000000");
    assert.equal(hex(out.subarray(25)), "000000000000000000000000000000");
  });
});
