/**
 * Certificate authorities and issuing by profile: a self-signed root,
 * intermediates with a path length, and server / client / both leaves.
 *
 * @module
 */

import { PeerVerificationError } from "../channel/errors.ts";
import { DerError, encodeTlv, parseOne, Tag } from "./_der.ts";
import { type ParsedSpki, parseSpki } from "./_parse.ts";
import { checkKeyStrength } from "./_signature.ts";
import { x509 } from "./_x509.ts";
import { leafIdentity } from "./identity.ts";
import {
  DEFAULT_KEY_ALGORITHM,
  generateKeyPair,
  type KeyAlgorithm,
  type SignatureHash,
  signingAlgorithmFor,
} from "./keys.ts";
import { formatIp, normalizeDnsPattern, parseIp } from "./names.ts";
import { EkuOid } from "./oids.ts";
import type { X509Certificate } from "./pem.ts";

const DAY = 24 * 60 * 60 * 1000;

/** Validity limits and defaults for everything the CA signs. */
export interface IssuanceConfig {
  /** Lifetime of a leaf certificate when none is asked for. */
  readonly leafValidityMs: number;
  /** Longest lifetime a leaf may be given (refuses absurd validity). */
  readonly maxLeafValidityMs: number;
  /** Lifetime of a CA certificate when none is asked for. */
  readonly caValidityMs: number;
  /** Longest lifetime a CA certificate may be given. */
  readonly maxCaValidityMs: number;
  /** notBefore is set this far in the past, to absorb clock skew between nodes. */
  readonly backdateMs: number;
}

/** Defaults: leaves 1 year (at most 2), CAs 10 years (at most 30), 5 minutes backdate. */
export const DEFAULT_ISSUANCE_CONFIG: IssuanceConfig = {
  leafValidityMs: 365 * DAY,
  maxLeafValidityMs: 2 * 366 * DAY,
  caValidityMs: 10 * 365 * DAY,
  maxCaValidityMs: 30 * 366 * DAY,
  backdateMs: 5 * 60 * 1000,
};

/** Largest backdate allowed, so "small and bounded" stays true. */
export const MAX_BACKDATE_MS = 60 * 60 * 1000;

/** Throw RangeError naming the field if `c` is not a usable {@link IssuanceConfig}. */
export function verifyIssuanceConfig(c: IssuanceConfig): void {
  const pos = (name: keyof IssuanceConfig, max = Number.MAX_SAFE_INTEGER): void => {
    const v = c[name];
    if (!Number.isSafeInteger(v) || v <= 0 || v > max) {
      throw new RangeError(`${name}: must be a positive integer of milliseconds, got ${v}`);
    }
  };
  pos("leafValidityMs");
  pos("maxLeafValidityMs", 100 * 366 * DAY);
  pos("caValidityMs");
  pos("maxCaValidityMs", 100 * 366 * DAY);
  if (!Number.isSafeInteger(c.backdateMs) || c.backdateMs < 0 || c.backdateMs > MAX_BACKDATE_MS) {
    throw new RangeError(`backdateMs: must be 0..${MAX_BACKDATE_MS}, got ${c.backdateMs}`);
  }
  if (c.leafValidityMs > c.maxLeafValidityMs) {
    throw new RangeError(`leafValidityMs: ${c.leafValidityMs} exceeds maxLeafValidityMs`);
  }
  if (c.caValidityMs > c.maxCaValidityMs) {
    throw new RangeError(`caValidityMs: ${c.caValidityMs} exceeds maxCaValidityMs`);
  }
}

/** A CA: its certificate, its signing key, and the chain up to (and including) the root. */
export interface CertificateAuthority {
  readonly certificate: X509Certificate;
  readonly privateKey: CryptoKey;
  /** This CA's certificate first, then its issuers, ending with the root. */
  readonly chain: readonly X509Certificate[];
}

/** Options for a root or intermediate CA. */
export interface CaOptions {
  /** Subject common name, e.g. "spokewire-ca". */
  readonly commonName: string;
  /** Subject organisations. */
  readonly organizations?: readonly string[];
  /** Key type when `keys` is not given. Default ECDSA P-256. */
  readonly keyAlgorithm?: KeyAlgorithm;
  /** Use this key pair instead of generating one. */
  readonly keys?: CryptoKeyPair;
  /** Lifetime; default `config.caValidityMs`. */
  readonly validityMs?: number;
  /** basicConstraints pathLenConstraint; undefined = no limit. */
  readonly pathLength?: number;
  /** Signature hash; default SHA-256 (P-384: SHA-384). */
  readonly hash?: SignatureHash;
  /** The clock ("now"); default the current time. */
  readonly now?: Date;
  readonly config?: IssuanceConfig;
}

/** What a leaf certificate is for. */
export type CertificateProfile = "server" | "client" | "both";

/** Options for a leaf certificate. */
export interface IssueOptions {
  readonly profile: CertificateProfile;
  /** Common name; for client certificates the user, e.g. "system:node:node-1". */
  readonly commonName?: string;
  /** Organisations; for client certificates the groups, e.g. ["system:nodes"]. */
  readonly organizations?: readonly string[];
  /** SAN DNS names (a leftmost "*." wildcard is allowed). */
  readonly dnsNames?: readonly string[];
  /** SAN IP addresses, IPv4 or IPv6 text. */
  readonly ips?: readonly string[];
  /** Lifetime; default `config.leafValidityMs`, clamped to the CA's notAfter. */
  readonly validityMs?: number;
  readonly hash?: SignatureHash;
  readonly now?: Date;
  readonly config?: IssuanceConfig;
}

/** A leaf certificate with its private key and the chain to send with it. */
export interface IssuedCredential {
  readonly certificate: X509Certificate;
  readonly privateKey: CryptoKey;
  /** Intermediates between the leaf and the root (root excluded). */
  readonly intermediates: readonly X509Certificate[];
}

/** A positive serial of 16 random octets (at most 20 when encoded). */
export function randomSerialHex(): string {
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[0] &= 0x7f;
  if (b[0] === 0) b[0] = 0x01;
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

/**
 * Encode a subject (one RDN per organisation, then the CN) as DER with
 * UTF8String values, byte for byte as given (no escaping rules applied).
 */
export function encodeSubjectName(
  commonName: string | undefined,
  orgs: readonly string[] = [],
): Uint8Array {
  const utf8 = new TextEncoder();
  const rdn = (oidLast: number, value: string): Uint8Array =>
    encodeTlv(
      Tag.set,
      encodeTlv(
        Tag.sequence,
        concat([
          new Uint8Array([0x06, 0x03, 0x55, 0x04, oidLast]),
          encodeTlv(Tag.utf8String, utf8.encode(value)),
        ]),
      ),
    );
  const parts: Uint8Array[] = [];
  for (const o of orgs) {
    if (typeof o !== "string" || o.length === 0 || o.length > 64) {
      throw new RangeError(
        `organizations: each must be 1..64 characters, got ${JSON.stringify(o)}`,
      );
    }
    parts.push(rdn(0x0a, o));
  }
  if (commonName !== undefined) {
    if (typeof commonName !== "string" || commonName.length === 0 || commonName.length > 64) {
      throw new RangeError(
        `commonName: must be 1..64 characters, got ${JSON.stringify(commonName)}`,
      );
    }
    parts.push(rdn(0x03, commonName));
  }
  return encodeTlv(Tag.sequence, concat(parts));
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

function subjectName(commonName: string | undefined, orgs: readonly string[] = []): x509.Name {
  return new x509.Name(encodeSubjectName(commonName, orgs).buffer as ArrayBuffer);
}

async function spkiOf(key: CryptoKey | Uint8Array): Promise<Uint8Array> {
  if (key instanceof Uint8Array) return key;
  return new Uint8Array(await crypto.subtle.exportKey("spki", key));
}

/** Refuse weak or unsupported public keys (PeerVerificationError "weak-key" / "unsupported"). */
export async function checkPublicKey(key: CryptoKey | Uint8Array, what: string): Promise<void> {
  checkKeyStrength(parseSpkiDer(await spkiOf(key), what), what);
}

function parseSpkiDer(der: Uint8Array, what: string): ParsedSpki {
  try {
    return parseSpki(parseOne(der));
  } catch (e) {
    if (e instanceof DerError) {
      throw new PeerVerificationError("malformed", `${what}: bad public key`, { cause: e });
    }
    throw e;
  }
}

function validity(
  now: Date,
  wanted: number | undefined,
  def: number,
  max: number,
  backdate: number,
  ceiling?: Date,
): { notBefore: Date; notAfter: Date } {
  const ms = wanted ?? def;
  if (!Number.isSafeInteger(ms) || ms <= 0 || ms > max) {
    throw new RangeError(`validityMs: must be 1..${max} ms, got ${ms}`);
  }
  const t = now.getTime();
  if (!Number.isFinite(t)) throw new RangeError("now: invalid date");
  // Whole seconds: certificates carry no fractions.
  const notBefore = new Date(Math.floor((t - backdate) / 1000) * 1000);
  let notAfter = new Date(Math.floor((t + ms) / 1000) * 1000);
  if (ceiling && notAfter > ceiling) notAfter = ceiling;
  if (notAfter <= notBefore)
    throw new RangeError("validityMs: the issuer expires before this would start");
  return { notBefore, notAfter };
}

async function caExtensions(
  publicKey: CryptoKey,
  pathLength: number | undefined,
  issuer?: X509Certificate,
): Promise<x509.Extension[]> {
  if (
    pathLength !== undefined &&
    (!Number.isSafeInteger(pathLength) || pathLength < 0 || pathLength > 16)
  ) {
    throw new RangeError(`pathLength: must be 0..16, got ${pathLength}`);
  }
  const exts: x509.Extension[] = [
    new x509.BasicConstraintsExtension(true, pathLength, true),
    new x509.KeyUsagesExtension(
      x509.KeyUsageFlags.keyCertSign |
        x509.KeyUsageFlags.cRLSign |
        x509.KeyUsageFlags.digitalSignature,
      true,
    ),
    await x509.SubjectKeyIdentifierExtension.create(publicKey),
  ];
  if (issuer) exts.push(authorityKeyId(issuer));
  return exts;
}

function authorityKeyId(issuer: X509Certificate): x509.Extension {
  const ski = issuer.getExtension(x509.SubjectKeyIdentifierExtension);
  if (!ski) throw new RangeError("ca: the issuing certificate has no subjectKeyIdentifier");
  return new x509.AuthorityKeyIdentifierExtension(ski.keyId, false);
}

/**
 * Create a self-signed root CA (ECDSA P-256 unless `keyAlgorithm` says otherwise).
 *
 * @example
 * ```ts
 * import { createRootCa } from "../../mod.ts";
 * const ca = await createRootCa({ commonName: "cluster-ca" });
 * if (ca.chain.length !== 1) throw new Error();
 * ```
 */
export async function createRootCa(opts: CaOptions): Promise<CertificateAuthority> {
  const config = opts.config ?? DEFAULT_ISSUANCE_CONFIG;
  verifyIssuanceConfig(config);
  const keys = opts.keys ?? (await generateKeyPair(opts.keyAlgorithm ?? DEFAULT_KEY_ALGORITHM));
  await checkPublicKey(keys.publicKey, "CA key");
  const v = validity(
    opts.now ?? new Date(),
    opts.validityMs,
    config.caValidityMs,
    config.maxCaValidityMs,
    config.backdateMs,
  );
  const name = subjectName(opts.commonName, opts.organizations);
  const certificate = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerialHex(),
    subject: name,
    issuer: name,
    ...v,
    publicKey: keys.publicKey,
    signingKey: keys.privateKey,
    signingAlgorithm: signingAlgorithmFor(keys.privateKey, opts.hash),
    extensions: await caExtensions(keys.publicKey, opts.pathLength),
  });
  return { certificate, privateKey: keys.privateKey, chain: [certificate] };
}

function pathLenOf(cert: X509Certificate): number | undefined {
  return cert.getExtension(x509.BasicConstraintsExtension)?.pathLength;
}

/**
 * Create an intermediate CA signed by `parent`. Its path length must fit under the parent's.
 */
export async function createIntermediateCa(
  parent: CertificateAuthority,
  opts: CaOptions,
): Promise<CertificateAuthority> {
  const config = opts.config ?? DEFAULT_ISSUANCE_CONFIG;
  verifyIssuanceConfig(config);
  const parentLen = pathLenOf(parent.certificate);
  if (parentLen !== undefined) {
    if (parentLen === 0) throw new RangeError("pathLength: the parent CA has pathLength 0");
    if (opts.pathLength === undefined || opts.pathLength > parentLen - 1) {
      throw new RangeError(`pathLength: must be at most ${parentLen - 1} under this parent`);
    }
  }
  const keys = opts.keys ?? (await generateKeyPair(opts.keyAlgorithm ?? DEFAULT_KEY_ALGORITHM));
  await checkPublicKey(keys.publicKey, "CA key");
  const v = validity(
    opts.now ?? new Date(),
    opts.validityMs,
    config.caValidityMs,
    config.maxCaValidityMs,
    config.backdateMs,
    parent.certificate.notAfter,
  );
  const certificate = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerialHex(),
    subject: subjectName(opts.commonName, opts.organizations),
    issuer: parent.certificate.subjectName,
    ...v,
    publicKey: keys.publicKey,
    signingKey: parent.privateKey,
    signingAlgorithm: signingAlgorithmFor(parent.privateKey, opts.hash),
    extensions: await caExtensions(keys.publicKey, opts.pathLength, parent.certificate),
  });
  return { certificate, privateKey: keys.privateKey, chain: [certificate, ...parent.chain] };
}

/**
 * Issue a leaf certificate for `publicKey` (a CryptoKey or SPKI DER) by profile.
 * Server certificates need at least one DNS name or IP; client certificates a common name.
 * Weak keys are refused (PeerVerificationError "weak-key"); bad options are RangeErrors.
 *
 * @example
 * ```ts
 * import { createRootCa, generateKeyPair, issueCertificate } from "../../mod.ts";
 * const ca = await createRootCa({ commonName: "cluster-ca" });
 * const keys = await generateKeyPair();
 * const cert = await issueCertificate(ca, keys.publicKey, {
 *   profile: "client", commonName: "system:node:node-1", organizations: ["system:nodes"],
 * });
 * if (!cert.subject.includes("system:node:node-1")) throw new Error();
 * ```
 */
export async function issueCertificate(
  ca: CertificateAuthority,
  publicKey: CryptoKey | Uint8Array,
  opts: IssueOptions,
): Promise<X509Certificate> {
  const config = opts.config ?? DEFAULT_ISSUANCE_CONFIG;
  verifyIssuanceConfig(config);
  if (opts.profile !== "server" && opts.profile !== "client" && opts.profile !== "both") {
    throw new RangeError(`profile: must be "server", "client" or "both", got ${opts.profile}`);
  }
  const spki = await spkiOf(publicKey);
  const parsedKey = parseSpkiDer(spki, "leaf key");
  checkKeyStrength(parsedKey, "leaf key");
  const san: x509.JsonGeneralNames = [];
  for (const d of opts.dnsNames ?? []) {
    const n = normalizeDnsPattern(d);
    if (n === undefined)
      throw new RangeError(`dnsNames: ${JSON.stringify(d)} is not a valid DNS name`);
    san.push({ type: "dns", value: n });
  }
  const wantIps: string[] = [];
  for (const ip of opts.ips ?? []) {
    const b = parseIp(ip);
    if (b === undefined) throw new RangeError(`ips: ${JSON.stringify(ip)} is not an IP address`);
    // Canonical text only: the library mis-encodes some spellings (e.g. embedded IPv4 in IPv6).
    wantIps.push(formatIp(b));
    san.push({ type: "ip", value: formatIp(b) });
  }
  if (opts.profile !== "client" && san.length === 0) {
    throw new RangeError("dnsNames: a server certificate needs at least one DNS name or IP");
  }
  if (opts.profile !== "server" && opts.commonName === undefined) {
    throw new RangeError("commonName: a client certificate needs a common name (the user)");
  }
  const name = subjectName(opts.commonName, opts.organizations);
  const v = validity(
    opts.now ?? new Date(),
    opts.validityMs,
    config.leafValidityMs,
    config.maxLeafValidityMs,
    config.backdateMs,
    ca.certificate.notAfter,
  );
  const isRsa = parsedKey.kind === "rsa";
  let ku = x509.KeyUsageFlags.digitalSignature;
  if (isRsa && opts.profile !== "client") ku |= x509.KeyUsageFlags.keyEncipherment;
  const ekus: string[] = [];
  if (opts.profile !== "client") ekus.push(EkuOid.serverAuth);
  if (opts.profile !== "server") ekus.push(EkuOid.clientAuth);
  const exts: x509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(ku, true),
    new x509.ExtendedKeyUsageExtension(ekus, false),
    await x509.SubjectKeyIdentifierExtension.create(spki.slice().buffer as ArrayBuffer),
    authorityKeyId(ca.certificate),
  ];
  const subjectEmpty = opts.commonName === undefined && (opts.organizations ?? []).length === 0;
  if (san.length > 0) exts.push(new x509.SubjectAlternativeNameExtension(san, subjectEmpty));
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerialHex(),
    subject: name,
    issuer: ca.certificate.subjectName,
    ...v,
    publicKey: spki.slice().buffer as ArrayBuffer,
    signingKey: ca.privateKey,
    signingAlgorithm: signingAlgorithmFor(ca.privateKey, opts.hash),
    extensions: exts,
  });
  // Never hand out a certificate whose names differ from what was asked.
  const got = leafIdentity(cert);
  const wantDns = san.filter((g) => g.type === "dns").map((g) => g.value);
  if (got.dnsNames.join(",") !== wantDns.join(",") || got.ips.join(",") !== wantIps.join(",")) {
    throw new Error("internal error: issued certificate names differ from the request");
  }
  return cert;
}

/** Generate a key pair and issue a leaf for it in one step. */
export async function issueCredential(
  ca: CertificateAuthority,
  opts: IssueOptions & { readonly keyAlgorithm?: KeyAlgorithm },
): Promise<IssuedCredential> {
  const keys = await generateKeyPair(opts.keyAlgorithm ?? DEFAULT_KEY_ALGORITHM);
  const certificate = await issueCertificate(ca, keys.publicKey, opts);
  return {
    certificate,
    privateKey: keys.privateKey,
    intermediates: ca.chain.slice(0, -1),
  };
}
