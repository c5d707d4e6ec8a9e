/**
 * Random and mutated bytes fed to every PKI parser give a typed error
 * (MalformedInputError, PeerVerificationError or CsrDeniedError with reason
 * "malformed" where the input is unparseable), never a crash or a hang.
 */
import { before, describe, test } from "node:test";
import fc from "fast-check";
import {
  CsrDeniedError,
  MalformedInputError,
  PeerVerificationError,
} from "../../src/channel/errors.ts";
import {
  BootstrapTokenStore,
  type CertificateAuthority,
  certificateToDer,
  createNodeCsr,
  createRootCa,
  csrToDer,
  decodePem,
  encodePem,
  exportPrivateKeyDer,
  generateKeyPair,
  type IssuedCredential,
  importPrivateKey,
  issueCredential,
  leafIdentity,
  NodeCsrSigner,
  parseCertificate,
  parseCsr,
  verifyChain,
} from "../../src/pki/mod.ts";

let ca: CertificateAuthority;
let leaf: IssuedCredential;
let csrDer: Uint8Array;
let keyDer: Uint8Array;
before(async () => {
  ca = await createRootCa({ commonName: "fuzz-ca" });
  leaf = await issueCredential(ca, {
    profile: "both",
    commonName: "n",
    dnsNames: ["n.example"],
    ips: ["10.0.0.1"],
  });
  csrDer = csrToDer((await createNodeCsr({ nodeName: "n" })).csr);
  keyDer = await exportPrivateKeyDer((await generateKeyPair()).privateKey);
});

/** Random bytes, or a valid encoding with a few bytes changed and maybe truncated. */
function mangled(valid: () => Uint8Array): fc.Arbitrary<Uint8Array> {
  const random = fc.uint8Array({ maxLength: 600 });
  const edited = fc
    .tuple(
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), {
        minLength: 1,
        maxLength: 4,
      }),
      fc.option(fc.nat()),
    )
    .map(([edits, cut]) => {
      let b = valid().slice();
      for (const [i, v] of edits) b[i % b.length] = v;
      if (cut !== null) b = b.subarray(0, cut % (b.length + 1));
      return b;
    });
  return fc.oneof(random, edited);
}

const malformedPeer = (e: unknown): boolean => e instanceof PeerVerificationError;
const typedMalformed = (e: unknown): boolean =>
  e instanceof MalformedInputError ||
  (e instanceof PeerVerificationError && e.reason === "malformed");

function syncOutcome(f: () => unknown, ok: (e: unknown) => boolean): void {
  try {
    f();
  } catch (e) {
    if (!ok(e)) throw e;
  }
}
async function asyncOutcome(f: () => Promise<unknown>, ok: (e: unknown) => boolean): Promise<void> {
  try {
    await f();
  } catch (e) {
    if (!ok(e)) throw e;
  }
}

describe("parsers under random input", () => {
  test("parseCertificate and leafIdentity: value or MalformedInputError", () => {
    fc.assert(
      fc.property(
        mangled(() => certificateToDer(leaf.certificate)),
        (b) => {
          syncOutcome(() => parseCertificate(b), typedMalformed);
          syncOutcome(() => leafIdentity(b), typedMalformed);
          syncOutcome(() => parseCertificate(encodePem(b, "CERTIFICATE")), typedMalformed);
        },
      ),
      { numRuns: 400 },
    );
  });

  test("parseCsr: value or MalformedInputError", () => {
    fc.assert(
      fc.property(
        mangled(() => csrDer),
        (b) => syncOutcome(() => parseCsr(b), typedMalformed),
      ),
      { numRuns: 400 },
    );
  });

  test("decodePem: random text gives blocks or MalformedInputError", () => {
    const pemish = fc
      .array(
        fc.oneof(
          fc.constantFrom(
            "-----BEGIN CERTIFICATE-----",
            "-----END CERTIFICATE-----",
            "-----BEGIN X-----",
            "AAAA",
            "===",
            "Proc-Type: 4",
          ),
          fc.string(),
        ),
        { maxLength: 8 },
      )
      .map((l) => l.join("\n"));
    fc.assert(
      fc.property(pemish, (t) => syncOutcome(() => decodePem(t, "CERTIFICATE"), typedMalformed)),
      { numRuns: 500 },
    );
  });

  test("importPrivateKey: key or MalformedInputError", async () => {
    await fc.assert(
      fc.asyncProperty(
        mangled(() => keyDer),
        (b) => asyncOutcome(() => importPrivateKey(b), typedMalformed),
      ),
      { numRuns: 200 },
    );
  });

  test("verifyChain: success or PeerVerificationError, as leaf and as intermediate", async () => {
    await fc.assert(
      fc.asyncProperty(
        mangled(() => certificateToDer(leaf.certificate)),
        async (b) => {
          await asyncOutcome(
            () => verifyChain(b, [], { roots: [ca.certificate], usage: "server" }),
            malformedPeer,
          );
          await asyncOutcome(
            () => verifyChain(leaf.certificate, [b], { roots: [ca.certificate], usage: "server" }),
            malformedPeer,
          );
        },
      ),
      { numRuns: 200 },
    );
  });

  test("NodeCsrSigner: mangled CSRs are denied with a typed reason", async () => {
    const tokens = new BootstrapTokenStore();
    const signer = new NodeCsrSigner({ ca, tokens, approve: () => true });
    await fc.assert(
      fc.asyncProperty(
        mangled(() => csrDer),
        async (b) => {
          await asyncOutcome(
            () => signer.sign({ csr: b, token: tokens.issue(), nodeName: "n" }),
            (e) => e instanceof CsrDeniedError,
          );
        },
      ),
      { numRuns: 200 },
    );
  });
});
