import assert from "node:assert/strict";
import { before, describe, test } from "node:test";
import { CsrDeniedError } from "../../src/channel/errors.ts";
import { x509 } from "../../src/pki/_x509.ts";
import {
  BootstrapTokenStore,
  type CertificateAuthority,
  type CsrApprovalContext,
  type CsrDenyReason,
  type CsrInput,
  createCsr,
  createNodeCsr,
  createRootCa,
  csrToDer,
  generateKeyPair,
  leafIdentity,
  NodeCsrSigner,
  type NodeCsrSignerOptions,
  verifyChain,
} from "../../src/pki/mod.ts";

const AT = new Date("2031-01-01T00:00:00Z");
let ca: CertificateAuthority;
before(async () => {
  ca = await createRootCa({ commonName: "bootstrap-ca", now: new Date(AT.getTime() - 86_400_000) });
});

function setup(over: Partial<NodeCsrSignerOptions> = {}) {
  let now = AT.getTime();
  const tokens = new BootstrapTokenStore({ now: () => now });
  const seen: CsrApprovalContext[] = [];
  const signer = new NodeCsrSigner({
    ca,
    tokens,
    approve: (ctx) => {
      seen.push(ctx);
      return true;
    },
    policy: {
      allowedDnsNames: (n) => [n, `${n}.nodes.cluster.local`],
      allowedIps: (n) => (n === "node-1" ? ["10.0.0.11", "fd00::11"] : []),
      controlPlaneIps: ["10.96.0.1", "192.168.0.10"],
    },
    now: () => new Date(now),
    ...over,
  });
  return { tokens, signer, seen, advance: (ms: number) => (now += ms) };
}

async function denied(p: Promise<unknown>, reason: CsrDenyReason): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof CsrDeniedError, String(e));
    assert.equal(e.code, "CSR_DENIED");
    assert.equal(e.reason, reason, e.message);
    return true;
  });
}

async function csrWith(name: x509.JsonName, extensions: x509.Extension[] = [], alg?: EcdsaParams) {
  const keys = await generateKeyPair();
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name,
    keys,
    signingAlgorithm: alg ?? { name: "ECDSA", hash: "SHA-256" },
    extensions,
  });
  return csrToDer(csr);
}

const NODE_SUBJECT: x509.JsonName = [{ O: ["system:nodes"] }, { CN: ["system:node:node-1"] }];

describe("approved CSRs", () => {
  test("client certificate: CN/O as asked, verifies as a client, hook saw the request", async () => {
    const { tokens, signer, seen } = setup();
    const { csrPem } = await createNodeCsr({ nodeName: "node-1" });
    const { certificate } = await signer.sign({
      csr: csrPem,
      token: tokens.issue(),
      nodeName: "node-1",
    });
    const v = await verifyChain(certificate, [], {
      roots: [ca.certificate],
      usage: "client",
      at: AT,
    });
    assert.equal(v.identity.cn, "system:node:node-1");
    assert.deepEqual(v.identity.groups, ["system:nodes"]);
    assert.equal(seen.length, 1);
    assert.equal(seen[0].nodeName, "node-1");
  });

  test("serving certificate with allowed names and IPs", async () => {
    const { tokens, signer } = setup();
    const { csrPem } = await createNodeCsr({
      nodeName: "node-1",
      dnsNames: ["node-1", "Node-1.nodes.cluster.local"],
      ips: ["10.0.0.11", "fd00:0::11"],
    });
    const { certificate } = await signer.sign({
      csr: csrPem,
      token: tokens.issue(),
      nodeName: "node-1",
      profile: "server",
    });
    const id = leafIdentity(certificate);
    assert.deepEqual(id.dnsNames, ["node-1", "node-1.nodes.cluster.local"]);
    assert.deepEqual(id.ips, ["10.0.0.11", "fd00::11"]);
    await verifyChain(certificate, [], {
      roots: [ca.certificate],
      usage: "server",
      name: { ip: "fd00::11" },
      at: AT,
    });
  });
});

describe("bootstrap token rules", () => {
  test("token-invalid: malformed, unknown, wrong secret", async () => {
    const { tokens, signer } = setup();
    const { csrPem } = await createNodeCsr({ nodeName: "node-1" });
    const good = tokens.issue();
    for (const token of [
      "",
      "nope",
      "abcdef.0123456789abcdef",
      `${good.slice(0, 7)}${"0".repeat(16)}`,
    ]) {
      await denied(signer.sign({ csr: csrPem, token, nodeName: "node-1" }), "token-invalid");
    }
  });

  test("token-expired", async () => {
    const { tokens, signer, advance } = setup();
    const { csrPem } = await createNodeCsr({ nodeName: "node-1" });
    const token = tokens.issue({ ttlMs: 60_000 });
    advance(60_001);
    await denied(signer.sign({ csr: csrPem, token, nodeName: "node-1" }), "token-expired");
  });

  test("token-used: single use, also under concurrent requests", async () => {
    const { tokens, signer } = setup();
    const { csrPem } = await createNodeCsr({ nodeName: "node-1" });
    const token = tokens.issue();
    await signer.sign({ csr: csrPem, token, nodeName: "node-1" });
    await denied(signer.sign({ csr: csrPem, token, nodeName: "node-1" }), "token-used");
    const t2 = tokens.issue();
    const results = await Promise.allSettled(
      [1, 2, 3].map(() => signer.sign({ csr: csrPem, token: t2, nodeName: "node-1" })),
    );
    assert.equal(results.filter((r) => r.status === "fulfilled").length, 1);
    for (const r of results) {
      if (r.status === "rejected") assert.equal((r.reason as CsrDeniedError).reason, "token-used");
    }
  });

  test("token-node-mismatch: a token bound to another node", async () => {
    const { tokens, signer } = setup();
    const { csrPem } = await createNodeCsr({ nodeName: "node-1" });
    await denied(
      signer.sign({ csr: csrPem, token: tokens.issue({ nodeName: "node-2" }), nodeName: "node-1" }),
      "token-node-mismatch",
    );
  });

  test("a denied CSR does not burn the token; a denial by the hook does", async () => {
    const { tokens, signer } = setup();
    const token = tokens.issue();
    const { csrPem: wrong } = await createNodeCsr({ nodeName: "node-9" });
    await denied(signer.sign({ csr: wrong, token, nodeName: "node-1" }), "bad-common-name");
    const { csrPem } = await createNodeCsr({ nodeName: "node-1" });
    await signer.sign({ csr: csrPem, token, nodeName: "node-1" });
  });
});

describe("CSR policy rules: each violation is denied with its reason", () => {
  const cases: [CsrDenyReason, string, () => Promise<CsrInput>, ("client" | "server")?][] = [
    ["malformed", "garbage bytes", async () => new Uint8Array([0x30, 0x03, 0x02, 0x01, 0x00])],
    [
      "malformed",
      "garbage PEM",
      async () => "-----BEGIN CERTIFICATE REQUEST-----\n@@@@\n-----END CERTIFICATE REQUEST-----\n",
    ],
    [
      "bad-signature",
      "signature does not verify (proof of possession)",
      async () => {
        const der = await csrWith(NODE_SUBJECT);
        der[der.length - 2] ^= 0x40;
        return der;
      },
    ],
    [
      "weak-algorithm",
      "signed with ECDSA-SHA1",
      async () => await csrWith(NODE_SUBJECT, [], { name: "ECDSA", hash: "SHA-1" } as EcdsaParams),
    ],
    [
      "unsupported-key",
      "unknown signature algorithm (ecdsa-with-SHA224)",
      async () => {
        const der = await csrWith(NODE_SUBJECT);
        // The outer AlgorithmIdentifier's OID ends in ...04 03 02; make it ...04 03 01.
        const oid = [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
        for (let i = der.length - oid.length; i > 0; i--) {
          if (oid.every((b, j) => der[i + j] === b)) {
            der[i + oid.length - 1] = 0x01;
            break;
          }
        }
        return der;
      },
    ],
    [
      "weak-key",
      "RSA-1024 key",
      async () => {
        const keys = (await crypto.subtle.generateKey(
          {
            name: "RSASSA-PKCS1-v1_5",
            modulusLength: 1024,
            publicExponent: new Uint8Array([1, 0, 1]),
            hash: "SHA-256",
          },
          true,
          ["sign", "verify"],
        )) as CryptoKeyPair;
        return (
          await createCsr({
            commonName: "system:node:node-1",
            organizations: ["system:nodes"],
            keys,
          })
        ).csrPem;
      },
    ],
    [
      "bad-common-name",
      "CN of another node",
      async () => (await createNodeCsr({ nodeName: "node-2" })).csrPem,
    ],
    [
      "bad-common-name",
      "CN without the system:node: prefix",
      async () =>
        (await createCsr({ commonName: "node-1", organizations: ["system:nodes"] })).csrPem,
    ],
    [
      "bad-common-name",
      "no CN",
      async () => (await createCsr({ organizations: ["system:nodes"] })).csrPem,
    ],
    [
      "bad-common-name",
      "two CNs",
      async () =>
        await csrWith([
          { O: ["system:nodes"] },
          { CN: ["system:node:node-1"] },
          { CN: ["system:node:node-1"] },
        ]),
    ],
    [
      "bad-organization",
      "no O",
      async () => (await createCsr({ commonName: "system:node:node-1" })).csrPem,
    ],
    [
      "bad-organization",
      "O system:masters",
      async () =>
        (await createCsr({ commonName: "system:node:node-1", organizations: ["system:masters"] }))
          .csrPem,
    ],
    [
      "bad-organization",
      "extra O",
      async () =>
        (
          await createCsr({
            commonName: "system:node:node-1",
            organizations: ["system:nodes", "system:masters"],
          })
        ).csrPem,
    ],
    [
      "bad-subject",
      "OU present",
      async () =>
        await csrWith([{ O: ["system:nodes"] }, { OU: ["ops"] }, { CN: ["system:node:node-1"] }]),
    ],
    [
      "control-plane-san",
      "DNS kubernetes",
      async () => (await createNodeCsr({ nodeName: "node-1", dnsNames: ["kubernetes"] })).csrPem,
      "server",
    ],
    [
      "control-plane-san",
      "DNS kubernetes.default.svc.cluster.local",
      async () =>
        (
          await createNodeCsr({
            nodeName: "node-1",
            dnsNames: ["node-1", "KUBERNETES.default.svc.cluster.local"],
          })
        ).csrPem,
      "server",
    ],
    [
      "control-plane-san",
      "API server IP",
      async () => (await createNodeCsr({ nodeName: "node-1", ips: ["10.96.0.1"] })).csrPem,
      "server",
    ],
    [
      "control-plane-san",
      "API server IP in its IPv4-mapped IPv6 spelling",
      async () => (await createNodeCsr({ nodeName: "node-1", ips: ["::ffff:c0a8:000a"] })).csrPem,
      "server",
    ],
    [
      "san-not-allowed",
      "DNS of another node",
      async () => (await createNodeCsr({ nodeName: "node-1", dnsNames: ["node-2"] })).csrPem,
      "server",
    ],
    [
      "san-not-allowed",
      "IP not allowed for this node",
      async () => (await createNodeCsr({ nodeName: "node-1", ips: ["10.0.0.12"] })).csrPem,
      "server",
    ],
    [
      "san-not-allowed",
      "any SAN on a client certificate",
      async () => (await createNodeCsr({ nodeName: "node-1", dnsNames: ["node-1"] })).csrPem,
      "client",
    ],
    [
      "san-not-allowed",
      "serving certificate without names",
      async () => (await createNodeCsr({ nodeName: "node-1" })).csrPem,
      "server",
    ],
    [
      "email-san",
      "email SAN",
      async () =>
        (
          await createCsr({
            commonName: "system:node:node-1",
            organizations: ["system:nodes"],
            emails: ["a@b.example"],
          })
        ).csrPem,
    ],
    [
      "uri-san",
      "URI SAN",
      async () =>
        (
          await createCsr({
            commonName: "system:node:node-1",
            organizations: ["system:nodes"],
            uris: ["spiffe://cluster/ns/x"],
          })
        ).csrPem,
    ],
    [
      "other-san",
      "otherName (UPN) SAN",
      async () =>
        await csrWith(NODE_SUBJECT, [
          new x509.SubjectAlternativeNameExtension([{ type: "upn", value: "admin@corp" }]),
        ]),
    ],
    [
      "bad-extension",
      "asks for CA:TRUE",
      async () =>
        await csrWith(NODE_SUBJECT, [new x509.BasicConstraintsExtension(true, undefined, true)]),
    ],
    [
      "bad-extension",
      "asks for an extension we never grant",
      async () =>
        await csrWith(NODE_SUBJECT, [
          new x509.Extension("1.2.3.4.5", false, new Uint8Array([0x05, 0x00])),
        ]),
    ],
  ];
  for (const [reason, what, make, profile] of cases) {
    test(`${reason}: ${what}`, async () => {
      const { tokens, signer, seen } = setup();
      await denied(
        signer.sign({ csr: await make(), token: tokens.issue(), nodeName: "node-1", profile }),
        reason,
      );
      assert.equal(seen.length, 0, "the hook is only asked after every automatic check passed");
    });
  }

  test("email and URI SANs pass the email/uri rules only when allowed (and are still not issued)", async () => {
    const { tokens, signer } = setup({ policy: { allowEmailSans: true } });
    const { csrPem } = await createCsr({
      commonName: "system:node:node-1",
      organizations: ["system:nodes"],
      emails: ["a@b.example"],
    });
    await denied(
      signer.sign({ csr: csrPem, token: tokens.issue(), nodeName: "node-1" }),
      "san-not-allowed",
    );
  });

  test("hook-denied", async () => {
    const { tokens, signer } = setup({ approve: () => false });
    const { csrPem } = await createNodeCsr({ nodeName: "node-1" });
    await denied(
      signer.sign({ csr: csrPem, token: tokens.issue(), nodeName: "node-1" }),
      "hook-denied",
    );
  });

  test("hook-failed: the hook throws", async () => {
    const { tokens, signer } = setup({
      approve: () => {
        throw new Error("approver down");
      },
    });
    const { csrPem } = await createNodeCsr({ nodeName: "node-1" });
    await denied(
      signer.sign({ csr: csrPem, token: tokens.issue(), nodeName: "node-1" }),
      "hook-failed",
    );
  });

  test("hook-failed: the hook never answers (bounded by approvalTimeoutMs, its signal fires)", async () => {
    let hookSignal: AbortSignal | undefined;
    const { tokens, signer } = setup({
      approve: (_ctx, signal) => {
        hookSignal = signal;
        return new Promise<boolean>(() => {});
      },
      policy: { approvalTimeoutMs: 20 },
    });
    const { csrPem } = await createNodeCsr({ nodeName: "node-1" });
    await denied(
      signer.sign({ csr: csrPem, token: tokens.issue(), nodeName: "node-1" }),
      "hook-failed",
    );
    assert.equal(hookSignal?.aborted, true);
  });

  test("policy is validated", () => {
    assert.throws(() => setup({ policy: { controlPlaneIps: ["not-an-ip"] } }), /controlPlaneIps/);
    assert.throws(() => setup({ policy: { approvalTimeoutMs: 0 } }), /approvalTimeoutMs/);
  });
});
