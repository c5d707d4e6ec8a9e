/**
 * Service-account-style tokens: issue, verify, and every refusal with its reason.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  AuthError,
  certificateToPem,
  createRootCa,
  createServiceTokenVerifier,
  exportPrivateKeyPem,
  generateKeyPair,
  issueCertificate,
  issueServiceToken,
  MalformedInputError,
  type ServiceTokenVerifierOptions,
  serviceTokenKeyId,
  type TokenRefusalReason,
  TokenRefusedError,
} from "../../mod.ts";

const T0 = Date.UTC(2026, 11, 7, 12, 0, 0);
const ISS = "https://cluster.example";
const AUD = "konnectivity-server";

const enc = new TextEncoder();
function b64url(b: Uint8Array | string): string {
  const bytes = typeof b === "string" ? enc.encode(b) : b;
  let s = "";
  for (const x of bytes) s += String.fromCharCode(x);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}
function unb64url(s: string): Uint8Array {
  const bin = atob(s.replace(/-/g, "+").replace(/_/g, "/") + "=".repeat((4 - (s.length % 4)) % 4));
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}
function decodePart(part: string): Record<string, unknown> {
  return JSON.parse(new TextDecoder().decode(unb64url(part)));
}
function spkiPem(der: ArrayBuffer): string {
  const b = btoa(String.fromCharCode(...new Uint8Array(der)));
  return `-----BEGIN PUBLIC KEY-----\n${b.match(/.{1,64}/g)?.join("\n")}\n-----END PUBLIC KEY-----\n`;
}

async function refused(
  p: Promise<unknown>,
  reason: TokenRefusalReason,
  text?: RegExp,
): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof TokenRefusedError, `not a TokenRefusedError: ${e}`);
    assert.ok(e instanceof AuthError);
    assert.equal(e.code, "AUTH_FAILED");
    assert.equal(e.reason, reason, e.message);
    if (text) assert.match(e.message, text);
    return true;
  });
}

async function setup(alg: "ecdsa-p256" | "ed25519" = "ecdsa-p256") {
  const keys = await generateKeyPair(alg);
  let clock = T0;
  const opts: ServiceTokenVerifierOptions = {
    keys: [keys.publicKey],
    issuer: ISS,
    audience: AUD,
    now: () => clock,
  };
  const verifier = await createServiceTokenVerifier(opts);
  const issue = (over: Partial<Parameters<typeof issueServiceToken>[1]> = {}) =>
    issueServiceToken(keys.privateKey, {
      issuer: ISS,
      audience: AUD,
      node: "node-1",
      now: () => T0,
      ...over,
    });
  return {
    keys,
    verifier,
    issue,
    setClock: (t: number) => {
      clock = t;
    },
  };
}

/** Re-sign `header.claims` with the key, as an attacker holding it (or a test) would. */
async function sign(key: CryptoKey, header: object, claims: object): Promise<string> {
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
  const algo =
    key.algorithm.name === "ECDSA" ? { name: "ECDSA", hash: "SHA-256" } : { name: "Ed25519" };
  const sig = new Uint8Array(await crypto.subtle.sign(algo, key, enc.encode(input)));
  return `${input}.${b64url(sig)}`;
}

describe("service tokens", () => {
  for (const alg of ["ecdsa-p256", "ed25519"] as const) {
    it(`${alg}: an issued token verifies, with its claims`, async () => {
      const { keys, verifier, issue } = await setup(alg);
      const token = await issue({ lifetimeMs: 600_000 });
      const [h, c] = token.split(".");
      const header = decodePart(h);
      assert.equal(header.alg, alg === "ed25519" ? "EdDSA" : "ES256");
      assert.equal(header.kid, await serviceTokenKeyId(keys.publicKey));
      assert.equal(header.kid, await serviceTokenKeyId(keys.privateKey));
      const raw = decodePart(c);
      assert.deepEqual(raw["kubernetes.io"], { node: { name: "node-1" } });
      const claims = await verifier.verify(token, "node-1");
      assert.equal(claims.iss, ISS);
      assert.deepEqual(claims.aud, [AUD]);
      assert.equal(claims.sub, "system:node:node-1");
      assert.equal(claims.node, "node-1");
      assert.equal(claims.iat, T0 / 1000);
      assert.equal(claims.nbf, T0 / 1000);
      assert.equal(claims.exp, T0 / 1000 + 600);
      assert.equal(claims.keyId, header.kid);
      assert.equal(typeof claims.jti, "string");
      // The verifier without an expected node returns the node the token names.
      assert.equal((await verifier.verify(token)).node, "node-1");
    });
  }

  it("expired, beyond the clock skew only", async () => {
    const { verifier, issue, setClock } = await setup();
    const token = await issue({ lifetimeMs: 600_000 });
    setClock(T0 + 600_000 + 59_000); // within the 60 s default skew
    await verifier.verify(token);
    setClock(T0 + 600_000 + 61_000);
    await refused(verifier.verify(token), "expired", /expired at/);
  });

  it("not yet valid, beyond the clock skew only", async () => {
    const { verifier, issue, setClock } = await setup();
    const token = await issue();
    setClock(T0 - 59_000);
    await verifier.verify(token);
    setClock(T0 - 61_000);
    await refused(verifier.verify(token), "not-yet-valid", /nbf/);
  });

  it("clockSkewMs is honoured", async () => {
    const { keys, issue } = await setup();
    const v = await createServiceTokenVerifier({
      keys: [keys.publicKey],
      issuer: ISS,
      audience: AUD,
      clockSkewMs: 0,
      now: () => T0 - 1000,
    });
    await refused(v.verify(await issue()), "not-yet-valid");
  });

  it("wrong audience, wrong issuer", async () => {
    const { verifier, issue } = await setup();
    await refused(
      verifier.verify(await issue({ audience: "kubelet" })),
      "wrong-audience",
      /kubelet/,
    );
    await verifier.verify(await issue({ audience: ["kubelet", AUD] }));
    await refused(verifier.verify(await issue({ issuer: "https://evil.example" })), "wrong-issuer");
  });

  it("a token for another node", async () => {
    const { verifier, issue } = await setup();
    const token = await issue({ node: "node-1" });
    await refused(verifier.verify(token, "node-2"), "wrong-node", /node-1.*node-2/);
  });

  it("a token that names no node", async () => {
    const { keys, verifier } = await setup();
    const now = T0 / 1000;
    const kid = await serviceTokenKeyId(keys.publicKey);
    const token = await sign(
      keys.privateKey,
      { alg: "ES256", kid },
      { iss: ISS, aud: AUD, sub: "system:serviceaccount:kube-system:x", exp: now + 60, iat: now },
    );
    await refused(verifier.verify(token), "wrong-node", /names no node/);
    // sub system:node:<name> names a node too.
    const bySub = await sign(
      keys.privateKey,
      { alg: "ES256", kid },
      { iss: ISS, aud: AUD, sub: "system:node:node-3", exp: now + 60, iat: now },
    );
    assert.equal((await verifier.verify(bySub, "node-3")).node, "node-3");
  });

  it("unknown key: signed by a key the verifier does not hold", async () => {
    const { verifier } = await setup();
    const other = await setup();
    await refused(verifier.verify(await other.issue()), "unknown-key");
    // Without a kid, no key verifies it: unknown too.
    const [h, c] = (await other.issue()).split(".");
    const header = decodePart(h);
    delete header.kid;
    const token = await sign(other.keys.privateKey, header, decodePart(c));
    await refused(verifier.verify(token), "unknown-key");
  });

  it("alg none, HS256 with the public key as secret, and other algorithms", async () => {
    const { keys, verifier, issue } = await setup();
    const [, c] = (await issue()).split(".");
    const kid = await serviceTokenKeyId(keys.publicKey);
    const none = `${b64url(JSON.stringify({ alg: "none", kid }))}.${c}.`;
    await refused(verifier.verify(none), "unsupported-algorithm", /none/);
    const noneCase = `${b64url(JSON.stringify({ alg: "None" }))}.${c}.`;
    await refused(verifier.verify(noneCase), "unsupported-algorithm");
    // The classic confusion: HMAC keyed with the verifier's public key (as PEM and as DER).
    const spki = await crypto.subtle.exportKey("spki", keys.publicKey);
    for (const secret of [enc.encode(spkiPem(spki)), new Uint8Array(spki)]) {
      const input = `${b64url(JSON.stringify({ alg: "HS256", kid, typ: "JWT" }))}.${c}`;
      const hk = await crypto.subtle.importKey(
        "raw",
        secret,
        { name: "HMAC", hash: "SHA-256" },
        false,
        ["sign"],
      );
      const mac = new Uint8Array(await crypto.subtle.sign("HMAC", hk, enc.encode(input)));
      await refused(verifier.verify(`${input}.${b64url(mac)}`), "unsupported-algorithm", /HS256/);
    }
    for (const alg of ["RS256", "ES384", "PS256", "ES256K", 7, null]) {
      const t = `${b64url(JSON.stringify({ alg, kid }))}.${c}.${b64url(new Uint8Array(64))}`;
      await refused(verifier.verify(t), "unsupported-algorithm");
    }
  });

  it("alg confusion between key types: EdDSA header on an ECDSA key's kid", async () => {
    const ec = await setup("ecdsa-p256");
    const ed = await setup("ed25519");
    const both = await createServiceTokenVerifier({
      keys: [ec.keys.publicKey, ed.keys.publicKey],
      issuer: ISS,
      audience: AUD,
      now: () => T0,
    });
    assert.equal(both.keyIds.length, 2);
    const [, c] = (await ed.issue()).split(".");
    const ecKid = await serviceTokenKeyId(ec.keys.publicKey);
    const forged = await sign(ed.keys.privateKey, { alg: "EdDSA", kid: ecKid }, decodePart(c));
    await refused(both.verify(forged), "unsupported-algorithm", /does not fit/);
  });

  it("tampered claims, header or signature", async () => {
    const { verifier, issue } = await setup();
    const token = await issue();
    const [h, c, s] = token.split(".");
    const claims = decodePart(c);
    claims["kubernetes.io"] = { node: { name: "node-2" } };
    await refused(verifier.verify(`${h}.${b64url(JSON.stringify(claims))}.${s}`), "bad-signature");
    const header = decodePart(h);
    header.typ = "at+jwt";
    await refused(verifier.verify(`${b64url(JSON.stringify(header))}.${c}.${s}`), "bad-signature");
    const sig = unb64url(s);
    sig[10] ^= 1;
    await refused(verifier.verify(`${h}.${c}.${b64url(sig)}`), "bad-signature");
    await refused(verifier.verify(`${h}.${c}.${b64url(sig.subarray(0, 63))}`), "bad-signature");
    await refused(verifier.verify(`${h}.${c}.${b64url(new Uint8Array(64))}`), "bad-signature");
  });

  it("malformed tokens", async () => {
    const { verifier, issue } = await setup();
    const token = await issue();
    const [h, c, s] = token.split(".");
    const cases = [
      "",
      "a.b",
      `${token}.x`,
      `${h}.${c}.${s}=`, // padding
      `${h}.${c}.${s.slice(0, -1)}+`, // standard alphabet
      `${h}.${c}.${s.slice(0, -1)}`, // a non-canonical tail, or a 4n+1 length
      `${b64url("not json")}.${c}.${s}`,
      `${b64url("[1]")}.${c}.${s}`,
      `${h}.${b64url(new Uint8Array([0xff, 0xfe]))}.${s}`,
      "x".repeat(9000),
    ];
    for (const t of cases) await refused(verifier.verify(t), "malformed");
    await refused(verifier.verify(7 as unknown as string), "malformed");
  });

  it("bad claim types and lifetimes, signed by a trusted key", async () => {
    const { keys, verifier } = await setup();
    const kid = await serviceTokenKeyId(keys.publicKey);
    const now = T0 / 1000;
    const base = { iss: ISS, aud: AUD, sub: "x", "kubernetes.io": { node: { name: "node-1" } } };
    const go = (claims: object, header: object = { alg: "ES256", kid }) =>
      sign(keys.privateKey, header, claims).then((t) => verifier.verify(t));
    await refused(go({ ...base, iat: now }), "expired", /exp is missing/);
    await refused(go({ ...base, exp: "soon", iat: now }), "malformed");
    await refused(go({ ...base, exp: now + 60 }), "lifetime-too-long", /neither nbf nor iat/);
    await refused(go({ ...base, exp: now + 25 * 3600, iat: now }), "lifetime-too-long");
    await refused(go({ ...base, exp: now + 60, iat: now + 3600 }), "not-yet-valid", /iat/);
    await refused(go({ ...base, aud: undefined, exp: now + 60, iat: now }), "wrong-audience");
    await refused(go({ ...base, aud: [7], exp: now + 60, iat: now }), "wrong-audience");
    await refused(go({ ...base, iss: 7, exp: now + 60, iat: now }), "malformed");
    await refused(
      go({ ...base, "kubernetes.io": { node: { name: "a b" } }, exp: now + 60, iat: now }),
      "malformed",
    );
    await refused(
      go({ ...base, exp: now + 60, iat: now }, { alg: "ES256", kid, crit: ["b64"] }),
      "malformed",
    );
    await refused(go({ ...base, exp: now + 60, iat: now }, { alg: "ES256", kid: 7 }), "malformed");
    // A longer lifetime when the verifier allows it.
    const long = await createServiceTokenVerifier({
      keys: [keys.publicKey],
      issuer: ISS,
      audience: AUD,
      maxLifetimeMs: 48 * 3600_000,
      now: () => T0,
    });
    const t = await sign(
      keys.privateKey,
      { alg: "ES256", kid },
      { ...base, exp: now + 25 * 3600, iat: now },
    );
    assert.equal((await long.verify(t)).node, "node-1");
  });

  it("rotation: several keys at once, in any form (public, certificate, private PEM)", async () => {
    const a = await setup("ecdsa-p256");
    const b = await setup("ed25519");
    const c = await setup("ecdsa-p256");
    const ca = await createRootCa({ commonName: "token-ca" });
    const cert = certificateToPem(
      await issueCertificate(ca, c.keys.publicKey, {
        profile: "client",
        commonName: "token-signer",
      }),
    );
    const pem =
      spkiPem(await crypto.subtle.exportKey("spki", a.keys.publicKey)) +
      (await exportPrivateKeyPem(b.keys.privateKey));
    const v = await createServiceTokenVerifier({
      keys: [pem, cert],
      issuer: [ISS, "https://old.example"],
      audience: AUD,
      now: () => T0,
    });
    assert.equal(v.keyIds.length, 3);
    for (const s of [a, b, c])
      assert.equal((await v.verify(await s.issue(), "node-1")).node, "node-1");
    await v.verify(await a.issue({ issuer: "https://old.example" }));
    // Dropping a key refuses its tokens.
    const without = await createServiceTokenVerifier({
      keys: [cert],
      issuer: ISS,
      audience: AUD,
      now: () => T0,
    });
    await refused(without.verify(await a.issue()), "unknown-key");
    // A PEM private key signs as well as a CryptoKey.
    const fromPem = await issueServiceToken(await exportPrivateKeyPem(b.keys.privateKey), {
      issuer: ISS,
      audience: AUD,
      node: "node-9",
      now: () => T0,
    });
    assert.equal((await v.verify(fromPem, "node-9")).node, "node-9");
  });

  it("bad keys and options are refused when given", async () => {
    const rsa = await generateKeyPair("rsa-3072");
    const p384 = await generateKeyPair("ecdsa-p384");
    for (const k of [rsa.publicKey, p384.publicKey]) {
      await assert.rejects(
        createServiceTokenVerifier({ keys: [k], issuer: ISS, audience: AUD }),
        MalformedInputError,
      );
    }
    await assert.rejects(
      createServiceTokenVerifier({ keys: ["no pem here"], issuer: ISS, audience: AUD }),
      MalformedInputError,
    );
    await assert.rejects(
      createServiceTokenVerifier({
        keys: ["-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"],
        issuer: ISS,
        audience: AUD,
      }),
      MalformedInputError,
    );
    const ok = (await generateKeyPair()).publicKey;
    await assert.rejects(
      createServiceTokenVerifier({ keys: [], issuer: ISS, audience: AUD }),
      RangeError,
    );
    await assert.rejects(
      createServiceTokenVerifier({ keys: [ok], issuer: "", audience: AUD }),
      RangeError,
    );
    await assert.rejects(
      createServiceTokenVerifier({ keys: [ok], issuer: ISS, audience: "" }),
      RangeError,
    );
    await assert.rejects(
      createServiceTokenVerifier({ keys: [ok], issuer: ISS, audience: AUD, clockSkewMs: -1 }),
      RangeError,
    );
    await assert.rejects(
      issueServiceToken(rsa.privateKey, { issuer: ISS, audience: AUD, node: "n" }),
      RangeError,
    );
    const ec = await generateKeyPair();
    await assert.rejects(
      issueServiceToken(ec.publicKey, { issuer: ISS, audience: AUD, node: "n" }),
      RangeError,
    );
    await assert.rejects(
      issueServiceToken(ec.privateKey, { issuer: ISS, audience: AUD, node: "a b" }),
      RangeError,
    );
    await assert.rejects(
      issueServiceToken(ec.privateKey, { issuer: ISS, audience: [], node: "n" }),
      RangeError,
    );
    await assert.rejects(
      issueServiceToken(ec.privateKey, { issuer: ISS, audience: AUD, node: "n", lifetimeMs: 10 }),
      RangeError,
    );
  });
});
