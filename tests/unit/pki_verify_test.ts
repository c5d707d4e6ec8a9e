import assert from "node:assert/strict";
import { before, describe, test } from "node:test";
import {
  AbortedError,
  MalformedInputError,
  PeerVerificationError,
} from "../../src/channel/errors.ts";
import { x509 } from "../../src/pki/_x509.ts";
import {
  type CertificateAuthority,
  certificateToDer,
  certificateToPem,
  createIntermediateCa,
  createRootCa,
  type IssuedCredential,
  issueCredential,
  randomSerialHex,
  type VerifyChainOptions,
  verifyChain,
  type X509Certificate,
} from "../../src/pki/mod.ts";

const reason = (r: string) => (e: unknown) => {
  assert.ok(e instanceof PeerVerificationError, String(e));
  assert.equal(e.reason, r, e.message);
  return true;
};

let root: CertificateAuthority;
let ica: CertificateAuthority;
let leaf: IssuedCredential;
const opts = (o: Partial<VerifyChainOptions> = {}): VerifyChainOptions => ({
  roots: [root.certificate],
  usage: "server",
  ...o,
});

before(async () => {
  root = await createRootCa({ commonName: "v-root" });
  ica = await createIntermediateCa(root, { commonName: "v-ica", pathLength: 0 });
  leaf = await issueCredential(ica, {
    profile: "both",
    commonName: "system:node:n1",
    organizations: ["system:nodes"],
    dnsNames: ["n1.Cluster.Local", "*.apps.cluster.local"],
    ips: ["192.0.2.7", "2001:db8::7"],
  });
});

/** Sign an arbitrary certificate with `issuer` (for shapes our issuer refuses to make). */
async function craft(
  issuer: { certificate: X509Certificate; privateKey: CryptoKey },
  subject: string | x509.Name,
  extensions: x509.Extension[],
  signingAlgorithm: EcdsaParams = { name: "ECDSA", hash: "SHA-256" } as EcdsaParams,
): Promise<{ certificate: X509Certificate; privateKey: CryptoKey }> {
  const keys = (await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, [
    "sign",
    "verify",
  ])) as CryptoKeyPair;
  const ski = issuer.certificate.getExtension(x509.SubjectKeyIdentifierExtension)!.keyId;
  const certificate = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerialHex(),
    subject,
    issuer: issuer.certificate.subjectName,
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 86_400_000),
    publicKey: keys.publicKey,
    signingKey: issuer.privateKey,
    signingAlgorithm,
    extensions: [
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      new x509.AuthorityKeyIdentifierExtension(ski),
      ...extensions,
    ],
  });
  return { certificate, privateKey: keys.privateKey };
}

const LEAF_EXTS = (): x509.Extension[] => [
  new x509.BasicConstraintsExtension(false, undefined, true),
  new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
  new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
  new x509.SubjectAlternativeNameExtension([{ type: "dns", value: "crafted.example" }]),
];

describe("verifyChain: success paths", () => {
  test("accepts PEM, DER (as from a TLS handshake) and parsed input; returns chain and identity", async () => {
    const inputs = [
      [certificateToPem(leaf.certificate), leaf.intermediates.map((c) => certificateToPem(c))],
      [certificateToDer(leaf.certificate), leaf.intermediates.map(certificateToDer)],
      [leaf.certificate, leaf.intermediates],
    ] as const;
    for (const [l, inter] of inputs) {
      const v = await verifyChain(l, inter, opts({ roots: [certificateToDer(root.certificate)] }));
      assert.deepEqual(
        v.chain.map((c) => c.subject),
        ["O=system:nodes, CN=system:node:n1", "CN=v-ica", "CN=v-root"],
      );
      assert.equal(v.der.length, 3);
      assert.equal(v.identity.cn, "system:node:n1");
      assert.deepEqual(v.identity.groups, ["system:nodes"]);
    }
  });

  test("name matching: DNS case and trailing dot, one-label wildcard, IPv4, IPv6 in any spelling", async () => {
    for (const name of [
      { dns: "N1.CLUSTER.LOCAL" },
      { dns: "n1.cluster.local." },
      { dns: "web.apps.cluster.local" },
      { ip: "192.0.2.7" },
      { ip: "2001:0db8:0:0:0:0:0:7" },
      { ip: "[2001:db8::7]" },
    ]) {
      await verifyChain(leaf.certificate, leaf.intermediates, opts({ name }));
    }
    for (const name of [
      { dns: "apps.cluster.local" },
      { dns: "a.b.apps.cluster.local" },
      { dns: "n2.cluster.local" },
      { dns: "system:node:n1" },
      { ip: "192.0.2.8" },
      { ip: "::ffff:192.0.2.7" },
      { ip: "192.000.002.007" },
    ]) {
      await assert.rejects(
        verifyChain(leaf.certificate, leaf.intermediates, opts({ name })),
        reason("name-mismatch"),
      );
    }
  });

  test("intermediates in any order, with unrelated extras", async () => {
    const other = await createRootCa({ commonName: "unrelated" });
    await verifyChain(leaf.certificate, [other.certificate, ...leaf.intermediates], opts());
  });

  test("client usage", async () => {
    await verifyChain(leaf.certificate, leaf.intermediates, opts({ usage: "client" }));
  });
});

describe("verifyChain: each failure has its reason", () => {
  test("untrusted-root: missing intermediate, or another root", async () => {
    await assert.rejects(verifyChain(leaf.certificate, [], opts()), reason("untrusted-root"));
    const other = await createRootCa({ commonName: "v-root" }); // same name, other key
    await assert.rejects(
      verifyChain(leaf.certificate, leaf.intermediates, opts({ roots: [other.certificate] })),
      reason("untrusted-root"),
    );
  });

  test("bad-signature: a tampered leaf", async () => {
    const der = certificateToDer(leaf.certificate);
    der[der.length - 5] ^= 0x01;
    await assert.rejects(verifyChain(der, leaf.intermediates, opts()), reason("bad-signature"));
  });

  test("expired / not-yet-valid at a given time", async () => {
    await assert.rejects(
      verifyChain(
        leaf.certificate,
        leaf.intermediates,
        opts({ at: new Date(Date.now() + 400 * 86_400_000) }),
      ),
      reason("expired"),
    );
    await assert.rejects(
      verifyChain(
        leaf.certificate,
        leaf.intermediates,
        opts({ at: new Date(Date.now() - 86_400_000) }),
      ),
      reason("not-yet-valid"),
    );
  });

  test("bad-eku: client-only certificate used as a server", async () => {
    const c = await issueCredential(root, { profile: "client", commonName: "u" });
    await assert.rejects(verifyChain(c.certificate, [], opts()), reason("bad-eku"));
  });

  test("path-length: an intermediate under a pathLength 0 intermediate", async () => {
    const deeper = await craft(ica, "CN=deeper", [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true),
    ]);
    const l = await craft(deeper, "CN=l", LEAF_EXTS());
    await assert.rejects(
      verifyChain(l.certificate, [deeper.certificate, ica.certificate], opts()),
      reason("path-length"),
    );
  });

  test("not-a-ca: a leaf used as an issuer", async () => {
    const l = await craft(leaf, "CN=under-leaf", LEAF_EXTS());
    await assert.rejects(
      verifyChain(l.certificate, [leaf.certificate, ...leaf.intermediates], opts()),
      reason("not-a-ca"),
    );
  });

  test("bad-key-usage: a CA without keyCertSign", async () => {
    const noSign = await craft(root, "CN=no-sign", [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
    ]);
    const l = await craft(noSign, "CN=l", LEAF_EXTS());
    await assert.rejects(
      verifyChain(l.certificate, [noSign.certificate], opts()),
      reason("bad-key-usage"),
    );
  });

  test("unknown-critical-extension", async () => {
    const l = await craft(root, "CN=l", [
      ...LEAF_EXTS(),
      new x509.Extension("1.3.6.1.4.1.55555.1", true, new Uint8Array([5, 0])),
    ]);
    await assert.rejects(
      verifyChain(l.certificate, [], opts()),
      reason("unknown-critical-extension"),
    );
  });

  test("weak-algorithm: signed with ECDSA-SHA1", async () => {
    const l = await craft(root, "CN=l", LEAF_EXTS(), {
      name: "ECDSA",
      hash: "SHA-1",
    } as EcdsaParams);
    await assert.rejects(verifyChain(l.certificate, [], opts()), reason("weak-algorithm"));
  });

  test("malformed: garbage leaf or intermediate", async () => {
    await assert.rejects(
      verifyChain(new Uint8Array([0x30, 0x80, 0, 0]), [], opts()),
      reason("malformed"),
    );
    await assert.rejects(
      verifyChain(leaf.certificate, [new Uint8Array([1, 2, 3])], opts()),
      reason("malformed"),
    );
    await assert.rejects(verifyChain("not pem", [], opts()), reason("malformed"));
  });

  test("chain-too-long: maxDepth", async () => {
    await assert.rejects(
      verifyChain(leaf.certificate, leaf.intermediates, opts({ maxDepth: 0 })),
      reason("chain-too-long"),
    );
    await verifyChain(leaf.certificate, leaf.intermediates, opts({ maxDepth: 1 }));
  });

  test("path-building-limit: many look-alike intermediates", async () => {
    // 12 intermediates share one subject, each with its own key: only one really signed the leaf.
    const fakes: X509Certificate[] = [];
    for (let i = 0; i < 12; i++) {
      fakes.push(
        (
          await craft(root, ica.certificate.subjectName, [
            new x509.BasicConstraintsExtension(true, undefined, true),
            new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true),
          ])
        ).certificate,
      );
    }
    await assert.rejects(
      verifyChain(leaf.certificate, [...fakes, ...leaf.intermediates], opts({ maxCandidates: 5 })),
      reason("path-building-limit"),
    );
    // With a big enough budget the real path is still found.
    await verifyChain(
      leaf.certificate,
      [...fakes, ...leaf.intermediates],
      opts({ maxCandidates: 64 }),
    );
  });

  test("caller mistakes: bad roots, no roots, bad limits; abort", async () => {
    await assert.rejects(
      verifyChain(leaf.certificate, [], opts({ roots: [new Uint8Array([1])] })),
      MalformedInputError,
    );
    await assert.rejects(verifyChain(leaf.certificate, [], opts({ roots: [] })), RangeError);
    await assert.rejects(verifyChain(leaf.certificate, [], opts({ maxDepth: -1 })), /maxDepth/);
    await assert.rejects(
      verifyChain(leaf.certificate, [], opts({ usage: "both" as "server" })),
      /usage/,
    );
    const ac = new AbortController();
    ac.abort(new Error("stop"));
    await assert.rejects(
      verifyChain(leaf.certificate, leaf.intermediates, opts({ signal: ac.signal })),
      AbortedError,
    );
  });
});
