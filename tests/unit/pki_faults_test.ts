/**
 * Fault checklist, sections A and B (cases 1-19) as they apply to src/pki: verifyChain
 * on both usages, issuing, and the node CSR bootstrap. Cases the x509-limbo suite already
 * covers for the server side (tests/unit/pki_limbo_test.ts) get client-side or
 * issuing-side twins here; certificates with shapes our issuer refuses are crafted.
 */
import assert from "node:assert/strict";
import { before, describe, test } from "node:test";
import { CsrDeniedError, PeerVerificationError } from "../../src/channel/errors.ts";
import { children, encodeTlv, parseOne, Tag } from "../../src/pki/_der.ts";
import { x509 } from "../../src/pki/_x509.ts";
import {
  BootstrapTokenStore,
  type CertificateAuthority,
  certificateToDer,
  createIntermediateCa,
  createNodeCsr,
  createRootCa,
  csrToDer,
  DEFAULT_ISSUANCE_CONFIG,
  type ExpectedName,
  generateKeyPair,
  type IssuanceConfig,
  issueCertificate,
  issueCredential,
  leafIdentity,
  NodeCsrSigner,
  randomSerialHex,
  type VerifyChainOptions,
  verifyChain,
  type X509Certificate,
} from "../../src/pki/mod.ts";

const T = new Date("2031-06-01T12:00:00Z");
const S = 1000;
const DAY = 86_400_000;

const reason =
  (...rs: string[]) =>
  (e: unknown) => {
    assert.ok(e instanceof PeerVerificationError, String(e));
    assert.ok(rs.includes(e.reason), `${e.reason}: ${e.message}`);
    return true;
  };

interface Made {
  readonly certificate: X509Certificate;
  readonly privateKey: CryptoKey;
}

async function p256(): Promise<CryptoKeyPair> {
  return await generateKeyPair("ecdsa-p256");
}

interface MakeOptions {
  readonly subject: string;
  /** Signer; self-signed when absent. */
  readonly issuer?: Made;
  readonly nb?: Date;
  readonly na?: Date;
  readonly ca?: boolean;
  readonly pathLen?: number;
  /** Leaf EKUs (default serverAuth + clientAuth); `null` for none. */
  readonly eku?: string[] | null;
  readonly san?: x509.JsonGeneralNames | null;
  /** Replaces the default basicConstraints/keyUsage/EKU/SAN set. */
  readonly exts?: x509.Extension[];
  readonly extra?: x509.Extension[];
  readonly keys?: CryptoKeyPair;
  /** Pretend the issuer has this name (for look-alike CAs). */
  readonly issuerName?: string;
  /** Claim this certificate's key id as the authority key id (for look-alike CAs). */
  readonly akiOf?: Made;
}

/** Craft any certificate: explicit validity, extensions and signer. */
async function make(o: MakeOptions): Promise<Made> {
  const keys = o.keys ?? (await p256());
  const signer = o.issuer?.privateKey ?? keys.privateKey;
  const exts: x509.Extension[] = o.exts ?? [
    new x509.BasicConstraintsExtension(!!o.ca, o.pathLen, true),
    new x509.KeyUsagesExtension(
      o.ca
        ? x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign
        : x509.KeyUsageFlags.digitalSignature,
      true,
    ),
    ...(o.ca || o.eku === null
      ? []
      : [
          new x509.ExtendedKeyUsageExtension(
            o.eku ?? [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth],
          ),
        ]),
    ...(o.ca || o.san === null
      ? []
      : [
          new x509.SubjectAlternativeNameExtension(
            o.san ?? [{ type: "dns", value: "node-1.cluster.local" }],
          ),
        ]),
  ];
  const akiFrom = (o.akiOf ?? o.issuer)?.certificate.getExtension(
    x509.SubjectKeyIdentifierExtension,
  );
  const certificate = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerialHex(),
    subject: o.subject,
    issuer: o.issuerName ?? o.issuer?.certificate.subject ?? o.subject,
    notBefore: o.nb ?? new Date(T.getTime() - DAY),
    notAfter: o.na ?? new Date(T.getTime() + DAY),
    publicKey: keys.publicKey,
    signingKey: signer,
    signingAlgorithm: { name: "ECDSA", hash: "SHA-256" },
    extensions: [
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      ...(akiFrom ? [new x509.AuthorityKeyIdentifierExtension(akiFrom.keyId)] : []),
      ...exts,
      ...(o.extra ?? []),
    ],
  });
  return { certificate, privateKey: keys.privateKey };
}

let root: Made;
let ica: Made;
before(async () => {
  root = await make({ subject: "CN=faults-root", ca: true });
  ica = await make({ subject: "CN=faults-ica", ca: true, issuer: root });
});

function verify(leaf: Made, o: Partial<VerifyChainOptions> & { ints?: Made[] } = {}) {
  return verifyChain(
    leaf.certificate,
    (o.ints ?? [ica]).map((m) => m.certificate),
    { roots: [root.certificate], usage: "server", at: T, ...o },
  );
}

// ---- 1 ------------------------------------------------------------------------------

describe("checklist 1: expired or not yet valid, at each position, on both usages", () => {
  const NB = new Date(T.getTime() - 10 * S);
  const NA = new Date(T.getTime() + 10 * S);
  for (const pos of ["leaf", "intermediate", "root"] as const) {
    test(`${pos}: 1 s and 5 s outside its validity fails, typed; inside passes`, async () => {
      const r = pos === "root" ? await make({ subject: "CN=r1", ca: true, nb: NB, na: NA }) : root;
      const i =
        pos === "intermediate" || pos === "root"
          ? await make({ subject: "CN=i1", ca: true, issuer: r, nb: NB, na: NA })
          : ica;
      const l = await make({ subject: "CN=l1", issuer: i, nb: NB, na: NA });
      for (const usage of ["server", "client"] as const) {
        const o = { roots: [r.certificate], ints: [i], usage };
        await verify(l, { ...o, at: NB });
        await verify(l, { ...o, at: new Date(NA.getTime() + 999) }); // notAfter's whole second
        for (const d of [1, 5]) {
          await assert.rejects(
            verify(l, { ...o, at: new Date(NA.getTime() + d * S) }),
            reason("expired"),
          );
          await assert.rejects(
            verify(l, { ...o, at: new Date(NB.getTime() - d * S) }),
            reason("not-yet-valid"),
          );
        }
      }
    });
  }

  test("the issuer never makes a leaf that outlives its CA (no expired-issuer chains from us)", async () => {
    const ca = await createRootCa({ commonName: "short", now: T, validityMs: 2 * DAY });
    const leaf = await issueCredential(ca, { profile: "client", commonName: "c", now: T });
    assert.ok(leaf.certificate.notAfter <= ca.certificate.notAfter);
  });
});

// ---- 2 ------------------------------------------------------------------------------

describe("checklist 2: wrong EKU", () => {
  test("client side: a serverAuth-only certificate is refused as a client", async () => {
    const l = await make({ subject: "CN=s", issuer: ica, eku: [x509.ExtendedKeyUsage.serverAuth] });
    await verify(l, { usage: "server" });
    await assert.rejects(verify(l, { usage: "client" }), reason("bad-eku"));
  });

  test("server side: a clientAuth-only certificate is refused as a server", async () => {
    const l = await make({ subject: "CN=c", issuer: ica, eku: [x509.ExtendedKeyUsage.clientAuth] });
    await verify(l, { usage: "client" });
    await assert.rejects(verify(l, { usage: "server" }), reason("bad-eku"));
  });

  test("anyExtendedKeyUsage is refused (strict), alone or beside the right usage; no EKU is refused", async () => {
    const any = "2.5.29.37.0";
    for (const eku of [[any], [any, x509.ExtendedKeyUsage.clientAuth], null]) {
      const l = await make({ subject: "CN=any", issuer: ica, eku });
      for (const usage of ["server", "client"] as const) {
        await assert.rejects(verify(l, { usage }), reason("bad-eku"));
      }
    }
  });
});

// ---- 3 and 4 ------------------------------------------------------------------------

describe("checklist 3 and 4: names", () => {
  const cases: [string, x509.JsonGeneralNames, ExpectedName, boolean][] = [
    [
      "another node",
      [{ type: "dns", value: "node-1.cluster.local" }],
      { dns: "node-2.cluster.local" },
      false,
    ],
    [
      "subdomain of the apex",
      [{ type: "dns", value: "cluster.local" }],
      { dns: "a.cluster.local" },
      false,
    ],
    [
      "apex of a wildcard",
      [{ type: "dns", value: "*.cluster.local" }],
      { dns: "cluster.local" },
      false,
    ],
    [
      "two labels under a wildcard",
      [{ type: "dns", value: "*.cluster.local" }],
      { dns: "a.b.cluster.local" },
      false,
    ],
    [
      "one label under a wildcard",
      [{ type: "dns", value: "*.cluster.local" }],
      { dns: "A.cluster.local." },
      true,
    ],
    [
      "case differs",
      [{ type: "dns", value: "Node-1.Cluster.Local" }],
      { dns: "node-1.cluster.local" },
      true,
    ],
    [
      "an IP asked, only a DNS SAN spelling it",
      [{ type: "dns", value: "192.0.2.7" }],
      { ip: "192.0.2.7" },
      false,
    ],
    ["another IP", [{ type: "ip", value: "192.0.2.7" }], { ip: "192.0.2.8" }, false],
    [
      "IPv6 in another spelling",
      [{ type: "ip", value: "2001:db8::7" }],
      { ip: "2001:0DB8:0:0:0:0:0:7" },
      true,
    ],
    [
      "IPv6 asked, IPv4 in the SAN",
      [{ type: "ip", value: "192.0.2.7" }],
      { ip: "::ffff:192.0.2.8" },
      false,
    ],
  ];
  for (const [what, san, name, ok] of cases) {
    test(`${ok ? "accepts" : "refuses"}: ${what}`, async () => {
      const l = await make({ subject: "CN=n", issuer: ica, san });
      if (ok) await verify(l, { name });
      else await assert.rejects(verify(l, { name }), reason("name-mismatch"));
    });
  }

  test("a wildcard in a non-leftmost label is refused, and never issued", async () => {
    const l = await make({
      subject: "CN=w",
      issuer: ica,
      san: [{ type: "dns", value: "a.*.cluster.local" }],
    });
    await assert.rejects(
      verify(l, { name: { dns: "a.b.cluster.local" } }),
      reason("malformed", "name-mismatch"),
    );
    const ca = await createRootCa({ commonName: "w" });
    await assert.rejects(
      issueCredential(ca, { profile: "server", dnsNames: ["a.*.cluster.local"] }),
      RangeError,
    );
  });

  test("4: no SAN, the name only in the CN: refused (the CN is never read)", async () => {
    const l = await make({ subject: "CN=node-1.cluster.local", issuer: ica, san: null });
    await assert.rejects(
      verify(l, { name: { dns: "node-1.cluster.local" } }),
      reason("name-mismatch"),
    );
  });
});

// ---- 5 and 6 ------------------------------------------------------------------------

describe("checklist 5 and 6: unknown CA, self-signed peer, attacker CA", () => {
  test("a self-signed peer, or one from an unknown CA, is refused on both usages", async () => {
    const self = await make({ subject: "CN=self" });
    const other = await make({ subject: "CN=other-root", ca: true });
    const fromOther = await make({ subject: "CN=o", issuer: other });
    for (const usage of ["server", "client"] as const) {
      await assert.rejects(verify(self, { usage, ints: [] }), reason("untrusted-root", "not-a-ca"));
      await assert.rejects(verify(fromOther, { usage, ints: [other] }), reason("untrusted-root"));
    }
  });

  test("no trust anchors is a caller error, never a fallback to system roots", async () => {
    const l = await make({ subject: "CN=l", issuer: ica });
    await assert.rejects(verify(l, { roots: [] }), RangeError);
  });

  test("6: an attacker CA with the same name (and claimed key id) as the real root is refused", async () => {
    const evilKeys = await p256();
    // Same subject as the real root; self-signed; sent along as an "intermediate".
    const evilRoot = await make({ subject: "CN=faults-root", ca: true, keys: evilKeys });
    // Its intermediate claims the real root's key id, so only the signature can tell.
    const evilIca = await make({
      subject: "CN=faults-ica",
      ca: true,
      issuer: evilRoot,
      akiOf: root,
    });
    const evilLeaf = await make({ subject: "CN=mitm", issuer: evilIca });
    for (const usage of ["server", "client"] as const) {
      await assert.rejects(
        verify(evilLeaf, { usage, ints: [evilIca, evilRoot] }),
        reason("bad-signature", "untrusted-root", "malformed"),
      );
      await assert.rejects(
        verify(evilLeaf, { usage, ints: [evilIca, ica] }),
        reason("bad-signature", "untrusted-root"),
      );
    }
  });
});

// ---- 8 ------------------------------------------------------------------------------

describe("checklist 8: the identity is the verified leaf's", () => {
  test("verifyChain reports exactly the leaf's CN and O; the signer will not issue another node's", async () => {
    const l = await make({ subject: "O=system:nodes, CN=system:node:A", issuer: ica });
    const v = await verify(l, { usage: "client" });
    assert.equal(v.identity.cn, "system:node:A");
    assert.deepEqual(v.identity.groups, ["system:nodes"]);
    const ca = await createRootCa({ commonName: "id" });
    const tokens = new BootstrapTokenStore();
    const signer = new NodeCsrSigner({ ca, tokens, approve: () => true });
    const { csrPem } = await createNodeCsr({ nodeName: "A" });
    await assert.rejects(
      signer.sign({ csr: csrPem, token: tokens.issue(), nodeName: "B" }),
      (e: unknown) => e instanceof CsrDeniedError && e.reason === "bad-common-name",
    );
  });
});

// ---- 9 ------------------------------------------------------------------------------

describe("checklist 9: path length", () => {
  test("a CA under pathlen:0 that issues a CA is refused; the issuer refuses to make one", async () => {
    const i0 = await make({ subject: "CN=i0", ca: true, pathLen: 0, issuer: root });
    const i1 = await make({ subject: "CN=i1", ca: true, issuer: i0 });
    const l = await make({ subject: "CN=l", issuer: i1 });
    for (const usage of ["server", "client"] as const) {
      await assert.rejects(verify(l, { usage, ints: [i1, i0] }), reason("path-length"));
    }
    const ca = await createRootCa({ commonName: "pl", pathLength: 0 });
    await assert.rejects(createIntermediateCa(ca, { commonName: "x", pathLength: 0 }), RangeError);
    const ca1 = await createRootCa({ commonName: "pl1", pathLength: 1 });
    await assert.rejects(createIntermediateCa(ca1, { commonName: "y" }), RangeError);
  });

  test("too many intermediates: maxDepth", async () => {
    let up = root;
    const chain: Made[] = [];
    for (let k = 0; k < 4; k++) {
      up = await make({ subject: `CN=deep-${k}`, ca: true, issuer: up });
      chain.unshift(up);
    }
    const l = await make({ subject: "CN=l", issuer: up });
    await verify(l, { ints: chain, maxDepth: 4 });
    await assert.rejects(verify(l, { ints: chain, maxDepth: 3 }), reason("chain-too-long"));
  });
});

// ---- 11 and 12 ----------------------------------------------------------------------

describe("checklist 11 and 12: CA flags and extensions", () => {
  test("issuer CA:false or without basicConstraints; leaf marked CA; leaf with keyCertSign", async () => {
    const notCa = await make({ subject: "CN=nca", issuer: root });
    const noBc = await make({
      subject: "CN=nobc",
      issuer: root,
      exts: [new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true)],
    });
    for (const bad of [notCa, noBc]) {
      const l = await make({ subject: "CN=l", issuer: bad });
      await assert.rejects(verify(l, { usage: "client", ints: [bad] }), reason("not-a-ca"));
    }
    const leafCa = await make({
      subject: "CN=leafca",
      issuer: ica,
      extra: [new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth])],
      ca: true,
    });
    await assert.rejects(verify(leafCa, { usage: "client" }), reason("bad-key-usage"));
    const kcs = await make({
      subject: "CN=kcs",
      issuer: ica,
      exts: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(
          x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyCertSign,
          true,
        ),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]),
      ],
    });
    await assert.rejects(verify(kcs, { usage: "client" }), reason("bad-key-usage"));
  });

  test("a v1 certificate (no version, no extensions) is refused", async () => {
    const l = await make({ subject: "CN=v1", issuer: ica });
    const der = certificateToDer(l.certificate);
    const [tbs, alg, sig] = children(parseOne(der, Tag.sequence));
    const fields = children(tbs).filter((f) => f.tag !== 0xa0 && f.tag !== 0xa3);
    const cat = (ps: Uint8Array[]): Uint8Array => {
      const out = new Uint8Array(ps.reduce((n, p) => n + p.length, 0));
      let o = 0;
      for (const p of ps) {
        out.set(p, o);
        o += p.length;
      }
      return out;
    };
    const v1Tbs = encodeTlv(Tag.sequence, cat(fields.map((f) => f.bytes)));
    const v1 = encodeTlv(Tag.sequence, cat([v1Tbs, alg.bytes, sig.bytes]));
    await assert.rejects(
      verifyChain(v1, [certificateToDer(ica.certificate)], {
        roots: [root.certificate],
        usage: "client",
        at: T,
      }),
      (e: unknown) => reason("malformed")(e) && /version 3/.test((e as Error).message),
    );
  });

  test("unknown critical extension, duplicate extension, critical SKI/AKI, malformed SAN (client usage)", async () => {
    const ski = new Uint8Array(20).fill(7);
    const bad: [string, x509.Extension[], string][] = [
      [
        "unknown critical",
        [new x509.Extension("1.3.6.1.4.1.99999.1", true, new Uint8Array([5, 0]))],
        "unknown-critical-extension",
      ],
      [
        "duplicate",
        [new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth])],
        "malformed",
      ],
      [
        "critical SKI",
        [
          new x509.SubjectKeyIdentifierExtension(
            Array.from(ski, (b) => b.toString(16).padStart(2, "0")).join(""),
            true,
          ),
        ],
        "malformed",
      ],
      [
        "malformed SAN",
        [new x509.Extension("2.5.29.17", false, new Uint8Array([0x30, 0x03, 0x82, 0x05, 0x61]))],
        "malformed",
      ],
    ];
    for (const [what, extra, r] of bad) {
      const l = await make({
        subject: `CN=${what.replace(/ /g, "-")}`,
        issuer: ica,
        extra,
        san: what === "malformed SAN" ? null : undefined,
      });
      await assert.rejects(verify(l, { usage: "client" }), reason(r), what);
    }
  });
});

// ---- 13 -----------------------------------------------------------------------------

describe("checklist 13: weak crypto is neither accepted nor issued", () => {
  test("an RSA-1024 leaf is refused (weak-key) and our CA will not certify that key", async () => {
    const weak = (await crypto.subtle.generateKey(
      {
        name: "RSASSA-PKCS1-v1_5",
        modulusLength: 1024,
        publicExponent: new Uint8Array([1, 0, 1]),
        hash: "SHA-256",
      },
      true,
      ["sign", "verify"],
    )) as CryptoKeyPair;
    const l = await make({ subject: "CN=rsa1024", issuer: ica, keys: weak });
    await assert.rejects(verify(l, { usage: "client" }), reason("weak-key"));
    const ca = await createRootCa({ commonName: "w" });
    await assert.rejects(
      issueCertificate(ca, weak.publicKey, { profile: "client", commonName: "c" }),
      reason("weak-key"),
    );
  });
});

// ---- 14 and 15 ----------------------------------------------------------------------

describe("checklist 14 and 15: path-building DoS and malformed or oversized input", () => {
  test("an intermediate cycle (A signs B, B signs A) ends typed, without a path", async () => {
    const ka = await p256();
    const kb = await p256();
    const a0 = await make({ subject: "CN=cyc-a", ca: true, keys: ka });
    const b = await make({ subject: "CN=cyc-b", ca: true, keys: kb, issuer: a0 });
    const a = await make({ subject: "CN=cyc-a", ca: true, keys: ka, issuer: b });
    const l = await make({ subject: "CN=l", issuer: a });
    for (const usage of ["server", "client"] as const) {
      await assert.rejects(
        verify(l, { usage, ints: [a, b] }),
        reason("untrusted-root", "chain-too-long", "path-building-limit"),
      );
    }
  });

  test("more than 64 intermediates are refused before any path building", async () => {
    const l = await make({ subject: "CN=l", issuer: ica });
    const many = Array.from({ length: 100 }, () => certificateToDer(ica.certificate));
    await assert.rejects(
      verifyChain(l.certificate, many, { roots: [root.certificate], usage: "server", at: T }),
      reason("chain-too-long"),
    );
  });

  test("garbage, a 1 MB certificate, and a length claiming 2 GiB: malformed, nothing allocated for it", async () => {
    const huge = new Uint8Array(1024 * 1024 + 8);
    huge.set([0x30, 0x83, 0x10, 0x00, 0x00]); // SEQUENCE of 1 MiB of zeros
    const liar = new Uint8Array([0x30, 0x84, 0x7f, 0xff, 0xff, 0xff, 0x30, 0x00]);
    const good = await make({ subject: "CN=l", issuer: ica });
    for (const input of [huge.subarray(0, 5 + 0x100000), liar, new Uint8Array([0x30])]) {
      await assert.rejects(
        verifyChain(input, [], { roots: [root.certificate], usage: "server", at: T }),
        reason("malformed"),
      );
      // ... and as an intermediate next to a good leaf.
      await assert.rejects(
        verifyChain(good.certificate, [input, certificateToDer(ica.certificate)], {
          roots: [root.certificate],
          usage: "server",
          at: T,
        }),
        reason("malformed"),
      );
    }
  });
});

// ---- 17 -----------------------------------------------------------------------------

describe("checklist 17: CSR usages must be exactly the profile's", () => {
  let ca: CertificateAuthority;
  before(async () => {
    ca = await createRootCa({ commonName: "csr-usages", now: new Date(T.getTime() - DAY) });
  });
  async function csr(exts: x509.Extension[], keys?: CryptoKeyPair): Promise<Uint8Array> {
    const k = keys ?? (await p256());
    const alg =
      k.privateKey.algorithm.name === "ECDSA"
        ? { name: "ECDSA", hash: "SHA-256" }
        : k.privateKey.algorithm;
    const req = await x509.Pkcs10CertificateRequestGenerator.create({
      name: "O=system:nodes, CN=system:node:node-1",
      keys: k,
      signingAlgorithm: alg,
      extensions: exts,
    });
    return csrToDer(req);
  }
  function sign(der: Uint8Array, profile: "client" | "server" = "client") {
    const tokens = new BootstrapTokenStore({ now: () => T.getTime() });
    const signer = new NodeCsrSigner({
      ca,
      tokens,
      approve: () => true,
      now: () => T,
      policy: { allowedDnsNames: (n) => [n] },
    });
    return signer.sign({ csr: der, token: tokens.issue(), nodeName: "node-1", profile });
  }
  const denied = (e: unknown): boolean => {
    assert.ok(e instanceof CsrDeniedError, String(e));
    assert.equal(e.reason, "bad-extension", e.message);
    return true;
  };
  const KU = x509.KeyUsageFlags;
  const EKU = x509.ExtendedKeyUsage;

  test("keyCertSign, cRLSign, keyEncipherment on an EC key, or no digitalSignature: denied", async () => {
    for (const flags of [
      KU.digitalSignature | KU.keyCertSign,
      KU.digitalSignature | KU.cRLSign,
      KU.digitalSignature | KU.keyEncipherment,
      KU.keyAgreement,
    ]) {
      await assert.rejects(sign(await csr([new x509.KeyUsagesExtension(flags, true)])), denied);
    }
  });

  test("EKUs other than the profile's: codeSigning, serverAuth on a client certificate, anyEKU", async () => {
    for (const ekus of [
      [EKU.codeSigning],
      [EKU.clientAuth, EKU.serverAuth],
      ["2.5.29.37.0"],
      [EKU.clientAuth, EKU.codeSigning],
    ]) {
      await assert.rejects(sign(await csr([new x509.ExtendedKeyUsageExtension(ekus)])), denied);
    }
  });

  test("exactly the profile's usages are accepted (and issued as the profile says)", async () => {
    const { certificate } = await sign(
      await csr([
        new x509.KeyUsagesExtension(KU.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([EKU.clientAuth]),
      ]),
    );
    const eku = certificate.getExtension(x509.ExtendedKeyUsageExtension);
    assert.deepEqual([...(eku?.usages ?? [])], [EKU.clientAuth]);
    const rsa = await generateKeyPair("rsa-3072");
    await sign(
      await csr(
        [
          new x509.KeyUsagesExtension(KU.digitalSignature | KU.keyEncipherment, true),
          new x509.ExtendedKeyUsageExtension([EKU.clientAuth]),
        ],
        rsa,
      ),
    );
  });
});

// ---- 18 -----------------------------------------------------------------------------

describe("checklist 18: bootstrap tokens are single-use and expire", () => {
  test("a token used by one node cannot be reused by another; its TTL is bounded", async () => {
    let now = T.getTime();
    const tokens = new BootstrapTokenStore({ now: () => now });
    const t = tokens.issue({ ttlMs: 60_000 });
    tokens.consume(t, "node-1");
    assert.throws(
      () => tokens.check(t, "node-2"),
      (e: unknown) =>
        e instanceof CsrDeniedError && ["token-used", "token-invalid"].includes(e.reason),
    );
    const t2 = tokens.issue({ ttlMs: 60_000 });
    now += 60_001;
    assert.throws(
      () => tokens.check(t2, "node-1"),
      (e: unknown) => e instanceof CsrDeniedError && e.reason === "token-expired",
    );
    assert.throws(() => tokens.issue({ ttlMs: 25 * 3600 * 1000 }), RangeError);
  });
});

// ---- 19 -----------------------------------------------------------------------------

describe("checklist 19: issued-certificate hygiene", () => {
  test("serials positive, <= 20 octets, unique; SKI/AKI present and linked; CA constraints critical; bounded backdate", async () => {
    const now = T;
    const rootCa = await createRootCa({ commonName: "hyg-root", now });
    const mid = await createIntermediateCa(rootCa, { commonName: "hyg-ica", pathLength: 0, now });
    const serials = new Set<string>();
    const certs: X509Certificate[] = [rootCa.certificate, mid.certificate];
    for (let k = 0; k < 40; k++) {
      const c = await issueCredential(mid, {
        profile: k % 2 ? "server" : "client",
        commonName: `system:node:n${k}`,
        dnsNames: [`n${k}.cluster.local`],
        now,
      });
      certs.push(c.certificate);
    }
    for (const c of certs) {
      const serial = c.serialNumber;
      assert.ok(/^[0-9a-f]+$/i.test(serial));
      const bytes = serial.length / 2;
      assert.ok(bytes >= 1 && bytes <= 20, `serial of ${bytes} octets`);
      assert.ok(Number.parseInt(serial.slice(0, 2), 16) < 0x80, "positive");
      assert.ok(!/^0+$/.test(serial), "non-zero");
      assert.ok(!serials.has(serial), "unique");
      serials.add(serial);
      const ski = c.getExtension(x509.SubjectKeyIdentifierExtension);
      assert.ok(ski && !ski.critical, "SKI present, not critical");
      const bc = c.getExtension(x509.BasicConstraintsExtension);
      assert.ok(bc?.critical, "basicConstraints critical");
      if (c !== rootCa.certificate) {
        const aki = c.getExtension(x509.AuthorityKeyIdentifierExtension);
        assert.ok(aki && !aki.critical, "AKI present, not critical");
        const issuer = c === mid.certificate ? rootCa.certificate : mid.certificate;
        assert.equal(aki.keyId, issuer.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId);
      }
      if (bc?.ca) {
        const ku = c.getExtension(x509.KeyUsagesExtension);
        assert.ok(ku?.critical && ku.usages & x509.KeyUsageFlags.keyCertSign);
      }
      const back = now.getTime() - c.notBefore.getTime();
      assert.ok(back >= 0 && back <= DEFAULT_ISSUANCE_CONFIG.backdateMs, `backdated ${back} ms`);
    }
    // And our own output passes our strict validator (serial, AKI/SKI, CA rules) as-is.
    for (const c of certs.slice(2)) {
      const id = leafIdentity(c);
      const usage =
        id.dnsNames.length &&
        c
          .getExtension(x509.ExtendedKeyUsageExtension)
          ?.usages.includes(x509.ExtendedKeyUsage.serverAuth)
          ? "server"
          : "client";
      await verifyChain(c, [mid.certificate], { roots: [rootCa.certificate], usage, at: now });
    }
  });

  test("validity never exceeds the configured maximum; asking for more is refused", async () => {
    const config: IssuanceConfig = {
      ...DEFAULT_ISSUANCE_CONFIG,
      leafValidityMs: 7 * DAY,
      maxLeafValidityMs: 30 * DAY,
    };
    const ca = await createRootCa({ commonName: "v", now: T });
    const c = await issueCredential(ca, { profile: "client", commonName: "c", now: T, config });
    const life = c.certificate.notAfter.getTime() - c.certificate.notBefore.getTime();
    assert.ok(life <= 7 * DAY + config.backdateMs);
    await assert.rejects(
      issueCredential(ca, {
        profile: "client",
        commonName: "c",
        now: T,
        config,
        validityMs: 31 * DAY,
      }),
      RangeError,
    );
    await assert.rejects(
      createRootCa({ commonName: "x", config: { ...config, backdateMs: 2 * 3600 * 1000 } }),
      RangeError,
    );
  });
});
