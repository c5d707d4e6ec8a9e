import assert from "node:assert/strict";
import { before, describe, test } from "node:test";
import fc from "fast-check";
import {
  type CertificateAuthority,
  certificateToDer,
  certificateToPem,
  createIntermediateCa,
  createRootCa,
  formatIp,
  issueCredential,
  leafIdentity,
  parseCertificate,
  parseCertificates,
  parseIp,
  verifyChain,
} from "../../src/pki/mod.ts";

const label = fc.stringMatching(/^[a-z0-9](?:[a-z0-9-]{0,14}[a-z0-9])?$/);
const dnsName = fc
  .array(label, { minLength: 2, maxLength: 4 })
  .map((ls) => ls.join("."))
  .filter((n) => n.length <= 253);
/** Random upper/lower case of a name. */
const recase = (s: string, bits: number[]): string =>
  Array.from(s, (c, i) => (bits[i % bits.length] ? c.toUpperCase() : c)).join("");
const text = fc.string({ unit: "grapheme", minLength: 1, maxLength: 16 });

let root: CertificateAuthority;
let ica: CertificateAuthority;
before(async () => {
  root = await createRootCa({ commonName: "prop-root" });
  ica = await createIntermediateCa(root, { commonName: "prop-ica", pathLength: 0 });
});

describe("issue -> export -> import -> verify round trips", () => {
  test("arbitrary CN, groups, DNS names and IPs survive PEM and DER and verify by every name", async () => {
    await fc.assert(
      fc.asyncProperty(
        text,
        fc.array(text, { maxLength: 3 }),
        fc.uniqueArray(dnsName, { minLength: 1, maxLength: 3 }),
        fc.array(fc.oneof(fc.ipV4(), fc.ipV6()), { maxLength: 3 }),
        fc.array(fc.integer({ min: 0, max: 1 }), { minLength: 1, maxLength: 8 }),
        fc.boolean(),
        async (cn, groups, dnsNames, ips, caseBits, viaDer) => {
          const leaf = await issueCredential(ica, {
            profile: "both",
            commonName: cn,
            organizations: groups,
            dnsNames,
            ips,
          });
          const pem = certificateToPem([leaf.certificate, ...leaf.intermediates]);
          const [l, ...inter] = viaDer
            ? [
                parseCertificate(certificateToDer(leaf.certificate)),
                ...leaf.intermediates.map((c) => parseCertificate(certificateToDer(c))),
              ]
            : parseCertificates(pem);
          const id = leafIdentity(l);
          assert.equal(id.cn, cn);
          assert.deepEqual(id.groups, groups);
          assert.deepEqual(id.dnsNames, dnsNames);
          assert.deepEqual(
            id.ips,
            ips.map((ip) => formatIp(parseIp(ip)!)),
          );
          for (const d of dnsNames) {
            const v = await verifyChain(l, inter, {
              roots: [root.certificate],
              usage: "server",
              name: { dns: recase(d, caseBits) },
            });
            assert.equal(v.identity.fingerprintSha256Hex, id.fingerprintSha256Hex);
          }
          for (const ip of ips) {
            await verifyChain(l, inter, {
              roots: [root.certificate],
              usage: "client",
              name: { ip },
            });
          }
        },
      ),
      { numRuns: 30 },
    );
  });

  test("IP text parses to the bytes its canonical form parses to", () => {
    fc.assert(
      fc.property(fc.oneof(fc.ipV4(), fc.ipV6()), (ip) => {
        const b = parseIp(ip);
        assert.ok(b, ip);
        assert.deepEqual(parseIp(formatIp(b)), b);
      }),
      { numRuns: 500 },
    );
  });
});
