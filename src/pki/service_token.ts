/**
 * Service-account-style tokens for agents without a certificate: a compact JWS
 * (RFC 7515) signed with ES256 (ECDSA P-256) or EdDSA (Ed25519) by a key from
 * the PKI, carrying `iss`, `aud`, `sub`, `exp`, `nbf`, `iat`, `jti` and the node
 * it was issued to, in the claim Kubernetes uses for bound service-account
 * tokens (`"kubernetes.io": { "node": { "name": ... } }`).
 *
 * The verifier holds several public keys at once (rotation: add the new key,
 * switch the issuer, drop the old key once its tokens have expired), picks the
 * key by `kid` (base64url SHA-256 of the key's SubjectPublicKeyInfo, as the
 * Kubernetes API server computes it), and accepts only the algorithm that key
 * type implies, so `alg: none`, HMAC with a public key as its secret and every
 * other algorithm are refused before any signature work. Each refusal is a
 * {@link TokenRefusedError} with a machine-readable `reason`.
 *
 * Only WebCrypto is used (the same in Node and Deno).
 *
 * @module
 */

import { AuthError, MalformedInputError } from "../channel/errors.ts";
import { DerError, parseOne, Tag } from "./_der.ts";
import { parseCertificateDer, parseSpki } from "./_parse.ts";
import { KeyOid } from "./oids.ts";
import { decodePem, importPrivateKey } from "./pem.ts";

/** Why a token was refused. The set is closed: callers may switch over it. */
export type TokenRefusalReason =
  /** Not a compact JWS with JSON header and claims, a bad field type, or too large. */
  | "malformed"
  /** `alg` is not ES256/EdDSA, or not the algorithm of the key named by `kid`. */
  | "unsupported-algorithm"
  /** No verification key has the token's `kid` (or, without `kid`, none verifies it). */
  | "unknown-key"
  /** The signature does not verify (tampered header, claims or signature). */
  | "bad-signature"
  /** `exp` has passed (beyond the clock skew), or `exp` is missing. */
  | "expired"
  /** `nbf` or `iat` is in the future (beyond the clock skew). */
  | "not-yet-valid"
  /** `exp` minus `iat` (or `nbf`) is longer than the verifier allows. */
  | "lifetime-too-long"
  /** `iss` is not an accepted issuer. */
  | "wrong-issuer"
  /** `aud` does not contain the verifier's audience. */
  | "wrong-audience"
  /** The token names no node, or another node than the one that presented it. */
  | "wrong-node"
  /** Refused by a caller's verifier hook (e.g. a TokenReview said no). */
  | "refused";

/** A token was refused; `reason` says why. Also an {@link AuthError} (`AUTH_FAILED`). */
export class TokenRefusedError extends AuthError {
  /** Machine-readable cause. */
  readonly reason: TokenRefusalReason;
  constructor(reason: TokenRefusalReason, message: string, options?: { cause?: unknown }) {
    super(`token refused (${reason}): ${message}`, options);
    this.reason = reason;
  }
}

/** JWS algorithms spokewire signs with; `EdDSA` is Ed25519 (RFC 8037). */
export type ServiceTokenAlgorithm = "ES256" | "EdDSA";

/** The claims of a verified token. */
export interface ServiceTokenClaims {
  readonly iss: string;
  /** Audiences, always as a list. */
  readonly aud: readonly string[];
  readonly sub: string;
  /** Seconds since the epoch. */
  readonly exp: number;
  readonly nbf?: number;
  readonly iat?: number;
  readonly jti?: string;
  /** The node the token was issued to. */
  readonly node: string;
  /** `kid` of the key that verified it. */
  readonly keyId: string;
}

/** Longest token text accepted (bounds work on hostile input). */
export const MAX_TOKEN_LENGTH = 8192;

const NODE_CLAIM = "kubernetes.io";
const NODE_NAME = /^[A-Za-z0-9._-]{1,253}$/;

// ---------------------------------------------------------------- base64url

const B64URL = /^[A-Za-z0-9_-]*$/;

function b64urlEncode(b: Uint8Array): string {
  let s = "";
  for (let i = 0; i < b.length; i += 0x8000) s += String.fromCharCode(...b.subarray(i, i + 0x8000));
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** Strict: no padding, no other alphabet, canonical trailing bits. */
function b64urlDecode(s: string): Uint8Array | undefined {
  if (!B64URL.test(s) || s.length % 4 === 1) return undefined;
  const pad = s.length % 4 === 0 ? "" : "=".repeat(4 - (s.length % 4));
  let bin: string;
  try {
    bin = atob(s.replace(/-/g, "+").replace(/_/g, "/") + pad);
  } catch {
    return undefined;
  }
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return b64urlEncode(out) === s ? out : undefined;
}

const utf8 = new TextEncoder();

function jsonPart(part: string, what: string): Record<string, unknown> {
  const bytes = b64urlDecode(part);
  if (!bytes) throw new TokenRefusedError("malformed", `${what} is not base64url`);
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch {
    throw new TokenRefusedError("malformed", `${what} is not UTF-8 JSON`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new TokenRefusedError("malformed", `${what} is not a JSON object`);
  }
  return value as Record<string, unknown>;
}

// ---------------------------------------------------------------- keys

/** A key as the verifier holds it. */
interface VerificationKey {
  readonly kid: string;
  readonly alg: ServiceTokenAlgorithm;
  readonly key: CryptoKey;
}

const ES256 = { name: "ECDSA", namedCurve: "P-256" } as const;
const ED25519 = { name: "Ed25519" } as const;

function algOfSpki(spkiDer: Uint8Array): ServiceTokenAlgorithm {
  let spki: ReturnType<typeof parseSpki>;
  try {
    spki = parseSpki(parseOne(spkiDer, Tag.sequence));
  } catch (e) {
    if (e instanceof DerError) throw new MalformedInputError(`bad public key: ${e.message}`);
    throw e;
  }
  if (spki.kind === "ec" && spki.curve === KeyOid.p256) return "ES256";
  if (spki.kind === "ed25519") return "EdDSA";
  throw new MalformedInputError(
    `token keys must be ECDSA P-256 or Ed25519, got a ${spki.kind} key${spki.curve ? ` (curve ${spki.curve})` : ""}`,
  );
}

async function keyId(spkiDer: Uint8Array): Promise<string> {
  return b64urlEncode(new Uint8Array(await crypto.subtle.digest("SHA-256", spkiDer.slice())));
}

async function spkiOf(key: CryptoKey): Promise<Uint8Array> {
  try {
    return new Uint8Array(await crypto.subtle.exportKey("spki", key));
  } catch (e) {
    throw new MalformedInputError("the public key cannot be exported as SPKI", { cause: e });
  }
}

async function verificationKey(spkiDer: Uint8Array): Promise<VerificationKey> {
  const alg = algOfSpki(spkiDer);
  const key = await crypto.subtle.importKey(
    "spki",
    spkiDer.slice(),
    alg === "ES256" ? ES256 : ED25519,
    false,
    ["verify"],
  );
  return { kid: await keyId(spkiDer), alg, key };
}

/**
 * The SubjectPublicKeyInfo DER of every key in PEM text: `PUBLIC KEY` blocks,
 * the public key of each `CERTIFICATE` and of each `PRIVATE KEY` (the kinds of
 * file the Kubernetes API server takes as `--service-account-key-file`).
 */
async function spkisFromPem(pem: string): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [...decodePem(pem, "PUBLIC KEY")];
  for (const der of decodePem(pem, "CERTIFICATE")) {
    try {
      out.push(parseCertificateDer(der).spki.der);
    } catch (e) {
      throw new MalformedInputError(`bad certificate: ${(e as Error).message}`, { cause: e });
    }
  }
  for (const der of decodePem(pem, "PRIVATE KEY")) {
    out.push(await spkiOf((await importPrivateKey(der)).publicKey));
  }
  if (out.length === 0) {
    throw new MalformedInputError("no PUBLIC KEY, CERTIFICATE or PRIVATE KEY PEM block found");
  }
  return out;
}

/** A verification key: PEM text (public keys, certificates or private keys) or a public CryptoKey. */
export type TokenKeyInput = string | CryptoKey;

/**
 * The `kid` spokewire puts in tokens signed by `key` (a private or public key):
 * base64url of the SHA-256 of its SubjectPublicKeyInfo, as Kubernetes computes it.
 */
export async function serviceTokenKeyId(key: CryptoKey | string): Promise<string> {
  if (typeof key === "string") {
    const spkis = await spkisFromPem(key);
    if (spkis.length !== 1)
      throw new MalformedInputError(`expected one key, found ${spkis.length}`);
    return keyId(spkis[0]);
  }
  return keyId(await spkiOf(await publicOf(key)));
}

async function publicOf(key: CryptoKey): Promise<CryptoKey> {
  if (key.type === "public") return key;
  const jwk = await crypto.subtle.exportKey("jwk", key);
  const pub: JsonWebKey = { kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y };
  for (const k of Object.keys(pub) as (keyof JsonWebKey)[]) if (pub[k] === undefined) delete pub[k];
  return crypto.subtle.importKey("jwk", pub, key.algorithm, true, ["verify"]);
}

// ---------------------------------------------------------------- issuing

/** What {@link issueServiceToken} puts in a token. */
export interface ServiceTokenRequest {
  /** `iss`: who issues it; the verifier's `issuer` must accept it. */
  readonly issuer: string;
  /** `aud`: who may accept it (one or several). */
  readonly audience: string | readonly string[];
  /** The node the token is for; the agent id it authenticates. */
  readonly node: string;
  /** `sub`. Default `system:node:<node>`. */
  readonly subject?: string;
  /** Lifetime from now. Default 1 hour. */
  readonly lifetimeMs?: number;
  /** Clock, ms since the epoch. Default `Date.now`. */
  readonly now?: () => number;
}

/** Default lifetime of an issued token: 1 hour (what Kubernetes projects by default). */
export const DEFAULT_SERVICE_TOKEN_LIFETIME_MS = 60 * 60 * 1000;

/**
 * Issue a token signed by `signingKey` (a private ECDSA P-256 or Ed25519 key:
 * a CryptoKey or PKCS#8 PEM). `nbf` and `iat` are now, `exp` now + lifetime,
 * `jti` random, `kid` from {@link serviceTokenKeyId}.
 *
 * @example
 * ```ts
 * import { generateKeyPair, issueServiceToken, createServiceTokenVerifier } from "../../mod.ts";
 * const keys = await generateKeyPair("ecdsa-p256");
 * const token = await issueServiceToken(keys.privateKey, {
 *   issuer: "https://cluster.example", audience: "konnectivity", node: "node-1",
 * });
 * const verifier = await createServiceTokenVerifier({
 *   keys: [keys.publicKey], issuer: "https://cluster.example", audience: "konnectivity",
 * });
 * if ((await verifier.verify(token)).node !== "node-1") throw new Error("node");
 * ```
 */
export async function issueServiceToken(
  signingKey: CryptoKey | string,
  request: ServiceTokenRequest,
): Promise<string> {
  const key =
    typeof signingKey === "string" ? (await importPrivateKey(signingKey)).privateKey : signingKey;
  if (key.type !== "private") throw new RangeError("signingKey: must be a private key");
  const name = (key.algorithm as { name: string; namedCurve?: string }).name;
  const curve = (key.algorithm as { namedCurve?: string }).namedCurve;
  let alg: ServiceTokenAlgorithm;
  if (name === "ECDSA" && curve === "P-256") alg = "ES256";
  else if (name === "Ed25519") alg = "EdDSA";
  else
    throw new RangeError(`signingKey: must be ECDSA P-256 or Ed25519, got ${name} ${curve ?? ""}`);
  if (typeof request.issuer !== "string" || request.issuer === "") {
    throw new RangeError("issuer: must be a non-empty string");
  }
  const aud = typeof request.audience === "string" ? [request.audience] : [...request.audience];
  if (aud.length === 0 || aud.some((a) => typeof a !== "string" || a === "")) {
    throw new RangeError("audience: must be one or more non-empty strings");
  }
  if (!NODE_NAME.test(request.node)) {
    throw new RangeError(`node: ${JSON.stringify(request.node)} is not a node name`);
  }
  const lifetimeMs = request.lifetimeMs ?? DEFAULT_SERVICE_TOKEN_LIFETIME_MS;
  if (!Number.isSafeInteger(lifetimeMs) || lifetimeMs < 1000) {
    throw new RangeError(`lifetimeMs: must be an integer >= 1000, got ${lifetimeMs}`);
  }
  const now = Math.floor((request.now ?? Date.now)() / 1000);
  const header = { alg, kid: await serviceTokenKeyId(key), typ: "JWT" };
  const claims = {
    iss: request.issuer,
    aud: aud.length === 1 ? aud[0] : aud,
    sub: request.subject ?? `system:node:${request.node}`,
    exp: now + Math.ceil(lifetimeMs / 1000),
    nbf: now,
    iat: now,
    jti: b64urlEncode(crypto.getRandomValues(new Uint8Array(16))),
    [NODE_CLAIM]: { node: { name: request.node } },
  };
  const input = `${b64urlEncode(utf8.encode(JSON.stringify(header)))}.${b64urlEncode(utf8.encode(JSON.stringify(claims)))}`;
  const sig = new Uint8Array(
    await crypto.subtle.sign(
      alg === "ES256" ? { name: "ECDSA", hash: "SHA-256" } : ED25519,
      key,
      utf8.encode(input),
    ),
  );
  return `${input}.${b64urlEncode(sig)}`;
}

// ---------------------------------------------------------------- verifying

/** Options of {@link createServiceTokenVerifier}. */
export interface ServiceTokenVerifierOptions {
  /**
   * Verification keys; several at once for rotation. Each entry is a public
   * CryptoKey or PEM text holding `PUBLIC KEY`, `CERTIFICATE` or `PRIVATE KEY`
   * blocks (all of them are used). ECDSA P-256 and Ed25519 only.
   */
  readonly keys: readonly TokenKeyInput[];
  /** Accepted `iss` value(s). */
  readonly issuer: string | readonly string[];
  /** This verifier's audience: a token's `aud` must contain it. */
  readonly audience: string;
  /** Tolerated clock difference for `exp`, `nbf` and `iat`. Default 60 s. */
  readonly clockSkewMs?: number;
  /** Longest lifetime (`exp` minus `nbf`/`iat`) accepted. Default 24 hours. */
  readonly maxLifetimeMs?: number;
  /** Clock, ms since the epoch. Default `Date.now`. */
  readonly now?: () => number;
}

/** Verifies tokens; see {@link createServiceTokenVerifier}. */
export interface ServiceTokenVerifier {
  /** The `kid` of each key held, in the order given. */
  readonly keyIds: readonly string[];
  /**
   * The token's claims, or a {@link TokenRefusedError}. With `node`, a token
   * issued to another node is refused (`wrong-node`).
   */
  verify(token: string, node?: string): Promise<ServiceTokenClaims>;
}

/** Default clock skew tolerated: 60 s. */
export const DEFAULT_TOKEN_CLOCK_SKEW_MS = 60_000;
/** Default longest token lifetime accepted: 24 hours. */
export const DEFAULT_TOKEN_MAX_LIFETIME_MS = 24 * 60 * 60 * 1000;

function claimString(claims: Record<string, unknown>, name: string): string | undefined {
  const v = claims[name];
  if (v === undefined) return undefined;
  if (typeof v !== "string") throw new TokenRefusedError("malformed", `${name} is not a string`);
  return v;
}

function claimTime(claims: Record<string, unknown>, name: string): number | undefined {
  const v = claims[name];
  if (v === undefined) return undefined;
  if (typeof v !== "number" || !Number.isFinite(v)) {
    throw new TokenRefusedError("malformed", `${name} is not a NumericDate`);
  }
  return v;
}

function nodeOf(claims: Record<string, unknown>): string | undefined {
  const k = claims[NODE_CLAIM];
  if (k === undefined) return undefined;
  const node = (k as { node?: { name?: unknown } } | null)?.node?.name;
  if (typeof node !== "string" || !NODE_NAME.test(node)) {
    throw new TokenRefusedError("malformed", `${NODE_CLAIM}.node.name is not a node name`);
  }
  return node;
}

/**
 * Build a token verifier. Keys are imported once, here; a key that does not
 * parse, or is not ECDSA P-256 / Ed25519, throws {@link MalformedInputError}.
 *
 * A token is accepted when: it is a compact JWS of at most 8 KiB; its `alg` is
 * the one its key type implies; its `kid` names a key held (without `kid`,
 * some key of that type verifies it); the signature verifies; `iss` is
 * accepted; `aud` contains the audience; `exp` is present and not past, `nbf`
 * and `iat` not in the future (each within the clock skew); the lifetime is
 * within `maxLifetimeMs`; it names a node (`kubernetes.io.node.name`, else a
 * `sub` of `system:node:<name>`), and that node is the one asked for.
 */
export async function createServiceTokenVerifier(
  options: ServiceTokenVerifierOptions,
): Promise<ServiceTokenVerifier> {
  const issuers = typeof options.issuer === "string" ? [options.issuer] : [...options.issuer];
  if (issuers.length === 0 || issuers.some((i) => typeof i !== "string" || i === "")) {
    throw new RangeError("issuer: must be one or more non-empty strings");
  }
  if (typeof options.audience !== "string" || options.audience === "") {
    throw new RangeError("audience: must be a non-empty string");
  }
  const skewMs = options.clockSkewMs ?? DEFAULT_TOKEN_CLOCK_SKEW_MS;
  if (!Number.isSafeInteger(skewMs) || skewMs < 0 || skewMs > 3_600_000) {
    throw new RangeError(`clockSkewMs: must be an integer in [0, 3600000], got ${skewMs}`);
  }
  const maxLifetimeMs = options.maxLifetimeMs ?? DEFAULT_TOKEN_MAX_LIFETIME_MS;
  if (!Number.isSafeInteger(maxLifetimeMs) || maxLifetimeMs < 1000) {
    throw new RangeError(`maxLifetimeMs: must be an integer >= 1000, got ${maxLifetimeMs}`);
  }
  if (!Array.isArray(options.keys) || options.keys.length === 0) {
    throw new RangeError("keys: at least one verification key is required");
  }
  const keys: VerificationKey[] = [];
  for (const input of options.keys) {
    const spkis =
      typeof input === "string" ? await spkisFromPem(input) : [await spkiOf(await publicOf(input))];
    for (const spki of spkis) {
      const k = await verificationKey(spki);
      if (!keys.some((have) => have.kid === k.kid)) keys.push(k);
    }
  }
  const now = options.now ?? Date.now;
  const audience = options.audience;

  async function verify(token: string, expectedNode?: string): Promise<ServiceTokenClaims> {
    if (typeof token !== "string" || token.length > MAX_TOKEN_LENGTH) {
      throw new TokenRefusedError("malformed", `not a string of at most ${MAX_TOKEN_LENGTH} chars`);
    }
    const parts = token.split(".");
    if (parts.length !== 3) {
      throw new TokenRefusedError("malformed", "not a compact JWS (header.claims.signature)");
    }
    const header = jsonPart(parts[0], "header");
    const alg = header.alg;
    if (alg !== "ES256" && alg !== "EdDSA" && alg !== "Ed25519") {
      throw new TokenRefusedError("unsupported-algorithm", `alg ${JSON.stringify(alg)}`);
    }
    const family: ServiceTokenAlgorithm = alg === "ES256" ? "ES256" : "EdDSA";
    if (header.crit !== undefined) {
      throw new TokenRefusedError("malformed", "crit header parameters are not supported");
    }
    if (header.kid !== undefined && typeof header.kid !== "string") {
      throw new TokenRefusedError("malformed", "kid is not a string");
    }
    const sig = b64urlDecode(parts[2]);
    if (!sig) throw new TokenRefusedError("malformed", "signature is not base64url");
    const claims = jsonPart(parts[1], "claims");
    const input = utf8.encode(`${parts[0]}.${parts[1]}`);
    let used: VerificationKey | undefined;
    if (header.kid !== undefined) {
      const k = keys.find((have) => have.kid === header.kid);
      if (!k)
        throw new TokenRefusedError("unknown-key", `no verification key has kid ${header.kid}`);
      if (k.alg !== family) {
        throw new TokenRefusedError(
          "unsupported-algorithm",
          `alg ${alg} does not fit key ${k.kid} (${k.alg})`,
        );
      }
      if (!(await check(k, sig, input))) {
        throw new TokenRefusedError("bad-signature", `signature does not verify with key ${k.kid}`);
      }
      used = k;
    } else {
      for (const k of keys) {
        if (k.alg === family && (await check(k, sig, input))) {
          used = k;
          break;
        }
      }
      if (!used) throw new TokenRefusedError("unknown-key", "no kid, and no key verifies it");
    }
    // Signed by a key we trust: now the claims mean something.
    const iss = claimString(claims, "iss");
    if (iss === undefined || !issuers.includes(iss)) {
      throw new TokenRefusedError("wrong-issuer", `iss ${JSON.stringify(iss)}`);
    }
    const audRaw = claims.aud;
    const aud =
      typeof audRaw === "string"
        ? [audRaw]
        : Array.isArray(audRaw) && audRaw.every((a) => typeof a === "string")
          ? (audRaw as string[])
          : undefined;
    if (aud === undefined) throw new TokenRefusedError("wrong-audience", "aud is missing");
    if (!aud.includes(audience)) {
      throw new TokenRefusedError(
        "wrong-audience",
        `aud ${JSON.stringify(audRaw)} lacks ${audience}`,
      );
    }
    const sub = claimString(claims, "sub") ?? "";
    const exp = claimTime(claims, "exp");
    const nbf = claimTime(claims, "nbf");
    const iat = claimTime(claims, "iat");
    const jti = claimString(claims, "jti");
    const t = now() / 1000;
    const skew = skewMs / 1000;
    if (exp === undefined) throw new TokenRefusedError("expired", "exp is missing");
    if (t > exp + skew) {
      throw new TokenRefusedError("expired", `expired at ${new Date(exp * 1000).toISOString()}`);
    }
    for (const [name, v] of [
      ["nbf", nbf],
      ["iat", iat],
    ] as const) {
      if (v !== undefined && v > t + skew) {
        throw new TokenRefusedError(
          "not-yet-valid",
          `${name} is ${new Date(v * 1000).toISOString()}`,
        );
      }
    }
    const start = nbf ?? iat;
    if (start === undefined || exp - start > maxLifetimeMs / 1000) {
      throw new TokenRefusedError(
        "lifetime-too-long",
        start === undefined
          ? "neither nbf nor iat is set"
          : `lives ${exp - start} s, more than ${maxLifetimeMs / 1000} s`,
      );
    }
    const fromSub = /^system:node:([A-Za-z0-9._-]{1,253})$/.exec(sub)?.[1];
    const node = nodeOf(claims) ?? fromSub;
    if (node === undefined) throw new TokenRefusedError("wrong-node", "the token names no node");
    if (expectedNode !== undefined && node !== expectedNode) {
      throw new TokenRefusedError(
        "wrong-node",
        `issued to node ${node}, presented as ${expectedNode}`,
      );
    }
    return Object.freeze({
      iss,
      aud: Object.freeze([...aud]),
      sub,
      exp,
      ...(nbf !== undefined ? { nbf } : {}),
      ...(iat !== undefined ? { iat } : {}),
      ...(jti !== undefined ? { jti } : {}),
      node,
      keyId: used.kid,
    });
  }

  return Object.freeze({ keyIds: Object.freeze(keys.map((k) => k.kid)), verify });
}

async function check(k: VerificationKey, sig: Uint8Array, input: Uint8Array): Promise<boolean> {
  // ES256 signatures are r||s, 32 bytes each; Ed25519 signatures are 64 bytes too.
  if (sig.length !== 64) return false;
  try {
    return await crypto.subtle.verify(
      k.alg === "ES256" ? { name: "ECDSA", hash: "SHA-256" } : ED25519,
      k.key,
      sig.slice(),
      input.slice(),
    );
  } catch {
    return false;
  }
}
