import assert from "node:assert/strict";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { MalformedInputError, PeerVerificationError } from "../../src/channel/errors.ts";
import { x509 } from "../../src/pki/_x509.ts";
import {
  certificateToDer,
  certificateToPem,
  createCsr,
  createIntermediateCa,
  createRootCa,
  csrToDer,
  csrToPem,
  DEFAULT_ISSUANCE_CONFIG,
  decodePem,
  exportPrivateKeyDer,
  exportPrivateKeyPem,
  generateKeyPair,
  importPrivateKey,
  issueCertificate,
  issueCredential,
  leafIdentity,
  parseCertificate,
  parseCertificates,
  parseCsr,
  readCertificatesFile,
  readPrivateKeyFile,
  verifyChain,
  verifyIssuanceConfig,
  writeCertificatesFile,
  writePrivateKeyFile,
} from "../../src/pki/mod.ts";

const isReason = (reason: string) => (e: unknown) =>
  e instanceof PeerVerificationError && e.reason === reason;

/** DER of the serial INTEGER's contents, read with the library. */
function serialBytes(hex: string): number {
  return hex.length / 2;
}

describe("root and intermediate CAs", () => {
  test("root: self-signed P-256 by default, CA extensions critical, SKI present, no AKI needed", async () => {
    const ca = await createRootCa({ commonName: "cluster-ca", organizations: ["spokewire"] });
    const c = ca.certificate;
    assert.equal(c.publicKey.algorithm.name, "ECDSA");
    assert.equal((c.publicKey.algorithm as EcKeyAlgorithm).namedCurve, "P-256");
    assert.equal(c.subject, c.issuer);
    assert.ok(await c.verify({ signatureOnly: true }));
    const bc = c.getExtension(x509.BasicConstraintsExtension)!;
    assert.equal(bc.ca, true);
    assert.equal(bc.critical, true);
    const ku = c.getExtension(x509.KeyUsagesExtension)!;
    assert.equal(ku.critical, true);
    assert.ok(ku.usages & x509.KeyUsageFlags.keyCertSign);
    assert.ok(c.getExtension(x509.SubjectKeyIdentifierExtension));
  });

  for (const keyAlgorithm of ["ecdsa-p384", "ed25519", "rsa-3072"] as const) {
    test(`root with ${keyAlgorithm}`, async () => {
      const ca = await createRootCa({ commonName: `ca-${keyAlgorithm}`, keyAlgorithm });
      assert.ok(await ca.certificate.verify({ signatureOnly: true }));
      const leaf = await issueCredential(ca, { profile: "server", dnsNames: ["a.example"] });
      await verifyChain(leaf.certificate, [], {
        roots: [ca.certificate],
        usage: "server",
        name: { dns: "a.example" },
      });
    });
  }

  test("serials are positive, random, at most 20 octets; validity is backdated a little", async () => {
    const now = new Date("2030-06-01T12:00:00Z");
    const ca = await createRootCa({ commonName: "ca", now });
    const seen = new Set<string>();
    for (let i = 0; i < 20; i++) {
      const leaf = await issueCredential(ca, { profile: "client", commonName: `u${i}`, now });
      const s = leaf.certificate.serialNumber;
      assert.ok(serialBytes(s) <= 20, s);
      assert.ok(Number.parseInt(s.slice(0, 2), 16) < 0x80, `negative serial ${s}`);
      assert.ok(!/^0+$/.test(s));
      seen.add(s);
      const back = now.getTime() - leaf.certificate.notBefore.getTime();
      assert.ok(back > 0 && back <= DEFAULT_ISSUANCE_CONFIG.backdateMs, `backdate ${back}`);
    }
    assert.equal(seen.size, 20);
  });

  test("intermediate: pathLength recorded, AKI matches the parent's SKI, must fit under parent", async () => {
    const root = await createRootCa({ commonName: "root", pathLength: 1 });
    const ica = await createIntermediateCa(root, { commonName: "ica", pathLength: 0 });
    assert.equal(ica.certificate.getExtension(x509.BasicConstraintsExtension)?.pathLength, 0);
    const aki = ica.certificate.getExtension(x509.AuthorityKeyIdentifierExtension)!;
    assert.equal(
      aki.keyId,
      root.certificate.getExtension(x509.SubjectKeyIdentifierExtension)!.keyId,
    );
    assert.equal(ica.chain.length, 2);
    await assert.rejects(
      createIntermediateCa(ica, { commonName: "too-deep", pathLength: 0 }),
      RangeError,
    );
    await assert.rejects(createIntermediateCa(root, { commonName: "unbounded" }), RangeError);
    assert.ok(ica.certificate.notAfter <= root.certificate.notAfter);
  });
});

describe("issuing by profile", () => {
  test("server / client / both carry the right EKU, names and subject", async () => {
    const ca = await createRootCa({ commonName: "ca" });
    for (const profile of ["server", "client", "both"] as const) {
      const leaf = await issueCredential(ca, {
        profile,
        commonName: "system:node:node-1",
        organizations: ["system:nodes", "extra-group"],
        dnsNames: profile === "client" ? [] : ["Node-1.Cluster.local", "*.svc.cluster.local"],
        ips: profile === "client" ? [] : ["10.0.0.9", "2001:db8::1"],
      });
      const eku = leaf.certificate.getExtension(x509.ExtendedKeyUsageExtension)!.usages;
      assert.equal(eku.includes(x509.ExtendedKeyUsage.serverAuth), profile !== "client");
      assert.equal(eku.includes(x509.ExtendedKeyUsage.clientAuth), profile !== "server");
      assert.equal(leaf.certificate.getExtension(x509.BasicConstraintsExtension)?.ca, false);
      const id = leafIdentity(leaf.certificate);
      assert.equal(id.cn, "system:node:node-1");
      assert.deepEqual(id.groups, ["system:nodes", "extra-group"]);
      if (profile !== "client") {
        assert.deepEqual(id.dnsNames, ["node-1.cluster.local", "*.svc.cluster.local"]);
        assert.deepEqual(id.ips, ["10.0.0.9", "2001:db8::1"]);
      }
      assert.match(id.fingerprintSha256Hex, /^[0-9a-f]{64}$/);
    }
  });

  test("bad requests are RangeErrors naming the field", async () => {
    const ca = await createRootCa({ commonName: "ca" });
    const { publicKey } = await generateKeyPair();
    const bad: [string, Parameters<typeof issueCertificate>[2]][] = [
      ["dnsNames", { profile: "server" }],
      ["commonName", { profile: "client" }],
      ["dnsNames", { profile: "server", dnsNames: ["bad_name.example"] }],
      ["dnsNames", { profile: "server", dnsNames: ["*"] }],
      ["ips", { profile: "server", ips: ["10.0.0.256"] }],
      ["validityMs", { profile: "client", commonName: "u", validityMs: 0 }],
      ["validityMs", { profile: "client", commonName: "u", validityMs: -5 }],
      ["validityMs", { profile: "client", commonName: "u", validityMs: 50 * 365 * 86_400_000 }],
      ["hash", { profile: "client", commonName: "u", hash: "SHA-1" as "SHA-256" }],
      ["profile", { profile: "admin" as "client", commonName: "u" }],
    ];
    for (const [field, opts] of bad) {
      await assert.rejects(issueCertificate(ca, publicKey, opts), (e: unknown) => {
        assert.ok(e instanceof RangeError, `${field}: ${e}`);
        assert.match(e.message, new RegExp(field));
        return true;
      });
    }
    await assert.rejects(
      createRootCa({ commonName: "ca", validityMs: 100 * 366 * 86_400_000 }),
      /validityMs/,
    );
    await assert.rejects(createRootCa({ commonName: "ca", pathLength: -1 }), /pathLength/);
    await assert.rejects(createRootCa({ commonName: "" }), /commonName/);
    assert.throws(
      () => verifyIssuanceConfig({ ...DEFAULT_ISSUANCE_CONFIG, backdateMs: 2 * 3600_000 }),
      /backdateMs/,
    );
    assert.throws(
      () => verifyIssuanceConfig({ ...DEFAULT_ISSUANCE_CONFIG, leafValidityMs: 0 }),
      /leafValidityMs/,
    );
  });

  test("weak keys are refused: P-192 and RSA-1024", async () => {
    const ca = await createRootCa({ commonName: "ca" });
    // A P-192 SubjectPublicKeyInfo (the point is never used: the curve alone is refused).
    const p192 = new Uint8Array([
      0x30,
      0x49,
      0x30,
      0x13,
      0x06,
      0x07,
      0x2a,
      0x86,
      0x48,
      0xce,
      0x3d,
      0x02,
      0x01,
      0x06,
      0x08,
      0x2a,
      0x86,
      0x48,
      0xce,
      0x3d,
      0x03,
      0x01,
      0x01,
      0x03,
      0x32,
      0x00,
      0x04,
      ...new Array(48).fill(1),
    ]);
    await assert.rejects(
      issueCertificate(ca, p192, { profile: "client", commonName: "u" }),
      isReason("weak-key"),
    );
    const rsa1024 = (await crypto.subtle.generateKey(
      {
        name: "RSASSA-PKCS1-v1_5",
        modulusLength: 1024,
        publicExponent: new Uint8Array([1, 0, 1]),
        hash: "SHA-256",
      },
      true,
      ["sign", "verify"],
    )) as CryptoKeyPair;
    await assert.rejects(
      issueCertificate(ca, rsa1024.publicKey, { profile: "client", commonName: "u" }),
      isReason("weak-key"),
    );
    await assert.rejects(createRootCa({ commonName: "weak", keys: rsa1024 }), isReason("weak-key"));
  });

  test("an RSA key bound to SHA-1 cannot sign", async () => {
    const keys = (await crypto.subtle.generateKey(
      {
        name: "RSASSA-PKCS1-v1_5",
        modulusLength: 2048,
        publicExponent: new Uint8Array([1, 0, 1]),
        hash: "SHA-1",
      },
      true,
      ["sign", "verify"],
    )) as CryptoKeyPair;
    await assert.rejects(createRootCa({ commonName: "sha1", keys }), /SHA-1/);
  });

  test("leaf validity is clamped to the issuer's notAfter", async () => {
    const ca = await createRootCa({ commonName: "short", validityMs: 3 * 86_400_000 });
    const leaf = await issueCredential(ca, { profile: "client", commonName: "u" });
    assert.equal(leaf.certificate.notAfter.getTime(), ca.certificate.notAfter.getTime());
  });
});

describe("PEM / DER import and export", () => {
  test("certificates round-trip through PEM and DER; bundles keep order", async () => {
    const root = await createRootCa({ commonName: "root" });
    const ica = await createIntermediateCa(root, { commonName: "ica" });
    const pem = certificateToPem(ica.chain);
    const back = parseCertificates(pem);
    assert.deepEqual(
      back.map((c) => c.subject),
      ["CN=ica", "CN=root"],
    );
    const der = certificateToDer(root.certificate);
    assert.equal(parseCertificate(der).subject, "CN=root");
    assert.equal(
      parseCertificate(certificateToPem(root.certificate)).serialNumber,
      root.certificate.serialNumber,
    );
    assert.throws(() => parseCertificate(pem), MalformedInputError); // two blocks, one wanted
    assert.throws(
      () => parseCertificate("-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n"),
      MalformedInputError,
    );
    assert.throws(() => parseCertificate(der.subarray(0, der.length - 1)), MalformedInputError);
    assert.throws(
      () => decodePem("-----BEGIN CERTIFICATE-----\nAAAA\n", "CERTIFICATE"),
      MalformedInputError,
    );
  });

  test("CSRs round-trip through PEM and DER", async () => {
    const { csr } = await createCsr({
      commonName: "system:node:n",
      organizations: ["system:nodes"],
      dnsNames: ["n"],
    });
    const again = parseCsr(csrToPem(csr));
    assert.equal(again.subject, csr.subject);
    assert.ok(await parseCsr(csrToDer(csr)).verify());
    assert.throws(
      () => parseCsr(new Uint8Array([0x30, 0x03, 0x02, 0x01, 0x00])),
      MalformedInputError,
    );
  });

  for (const alg of ["ecdsa-p256", "ecdsa-p384", "ed25519"] as const) {
    test(`PKCS#8 ${alg} keys round-trip (PEM and DER) and still match their public key`, async () => {
      const keys = await generateKeyPair(alg);
      const pem = await exportPrivateKeyPem(keys.privateKey);
      assert.match(pem, /^-----BEGIN PRIVATE KEY-----/);
      for (const input of [pem, await exportPrivateKeyDer(keys.privateKey)]) {
        const back = await importPrivateKey(input);
        const sigAlg = alg === "ed25519" ? { name: "Ed25519" } : { name: "ECDSA", hash: "SHA-256" };
        const msg = new TextEncoder().encode("spokewire");
        const sig = await crypto.subtle.sign(sigAlg, back.privateKey, msg);
        assert.ok(await crypto.subtle.verify(sigAlg, keys.publicKey, sig, msg));
        assert.deepEqual(
          new Uint8Array(await crypto.subtle.exportKey("spki", back.publicKey)),
          new Uint8Array(await crypto.subtle.exportKey("spki", keys.publicKey)),
        );
      }
    });
  }

  test("bad PKCS#8 input is MalformedInputError", async () => {
    await assert.rejects(importPrivateKey(new Uint8Array([1, 2, 3])), MalformedInputError);
    await assert.rejects(importPrivateKey("no pem here"), MalformedInputError);
  });
});

describe("file helpers", () => {
  const dir = mkdtempSync(join(tmpdir(), "spokewire-pki-files-"));
  after(() => rmSync(dir, { recursive: true, force: true }));

  test("write and read a chain and a key; the key file is 0600", async () => {
    const root = await createRootCa({ commonName: "root" });
    const ica = await createIntermediateCa(root, { commonName: "ica" });
    const leaf = await issueCredential(ica, { profile: "server", dnsNames: ["x.example"] });
    const chainPath = join(dir, "chain.pem");
    const keyPath = join(dir, "key.pem");
    await writeCertificatesFile(chainPath, [leaf.certificate, ...leaf.intermediates]);
    await writePrivateKeyFile(keyPath, leaf.privateKey);
    assert.equal(statSync(keyPath).mode & 0o777, 0o600);
    const [c, ...inter] = await readCertificatesFile(chainPath);
    await verifyChain(c, inter, {
      roots: [root.certificate],
      usage: "server",
      name: { dns: "x.example" },
    });
    const keys = await readPrivateKeyFile(keyPath);
    const pub = new Uint8Array(await crypto.subtle.exportKey("spki", keys.publicKey));
    assert.deepEqual(pub, new Uint8Array(c.publicKey.rawData));
  });
});
