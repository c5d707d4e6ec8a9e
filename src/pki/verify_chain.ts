/**
 * `verifyChain`: spokewire's own certification path validation.
 *
 * Policy (a Web-PKI-leaning profile of RFC 5280):
 * - every certificate on the path (trust anchor included) is v3, has a positive
 *   serial of at most 20 octets, no duplicate extensions, no unknown critical
 *   extension, an acceptable key (RSA >= 2048 bits and a multiple of 8, ECDSA
 *   P-256/384/521 with a named curve, Ed25519) and is valid at `at`;
 * - signatures (never SHA-1 or MD5) verify over the exact signed bytes, and
 *   the outer and inner signature algorithms match;
 * - issuers have critical basicConstraints CA:TRUE, keyCertSign when keyUsage is
 *   present, a subjectKeyIdentifier, and their pathLenConstraint holds
 *   (self-issued intermediates do not count); non-anchors carry an authorityKeyIdentifier;
 * - the leaf is not a CA, has an extKeyUsage naming the usage (anyExtendedKeyUsage
 *   is not enough), and, when `name` is given, a SAN entry that matches it (DNS
 *   case-insensitive with one leftmost wildcard label, IPv4/IPv6 by bytes; the
 *   subject CN is never used). CA certificates with an extKeyUsage must allow the usage;
 * - name constraints (DNS, IP, directory name, email) of every CA apply to the
 *   certificates below it; constraints of other forms fail closed;
 * - path building is depth-first, anchors first, bounded by `maxDepth` intermediates
 *   and `maxCandidates` issuer candidates in total.
 *
 * @module
 */

import {
  AbortedError,
  MalformedInputError,
  PeerVerificationError,
  type VerificationReason,
} from "../channel/errors.ts";
import { bytesEqual, children, DerError, parseOne, Tag, toHex } from "./_der.ts";
import {
  checkAia,
  checkWellFormed,
  type GeneralNameEntry,
  KeyUsageBit,
  type ParsedCert,
  parseAki,
  parseBasicConstraints,
  parseCertificateDer,
  parseEku,
  parseGeneralNames,
  parseKeyUsage,
  parseNameConstraints,
  parseSki,
  type Subtree,
} from "./_parse.ts";
import { checkKeyStrength, verifySignature } from "./_signature.ts";
import { dnsInSubtree, ipInSubtree, validIpConstraint } from "./_subtrees.ts";
import { x509 } from "./_x509.ts";
import { certificateDer, identityOf, type LeafIdentity } from "./identity.ts";
import { dnsPatternMatches, normalizeDnsName, normalizeDnsPattern, parseIp } from "./names.ts";
import { EkuOid, ExtensionOid } from "./oids.ts";
import type { CertificateInput, X509Certificate } from "./pem.ts";

/** Which side the leaf authenticates: a TLS server or a TLS client. */
export type CertificateUsage = "server" | "client";

/** The name the leaf must carry: a DNS host name or an IP address. */
export type ExpectedName = { readonly dns: string } | { readonly ip: string };

/** Limits of path building. */
export interface ChainLimits {
  /** Most intermediate certificates between the leaf and the trust anchor. */
  readonly maxDepth: number;
  /** Most issuer candidates examined in total (guards against path-building blow-up). */
  readonly maxCandidates: number;
}

/** Defaults: 8 intermediates, 64 candidates. */
export const DEFAULT_CHAIN_LIMITS: ChainLimits = { maxDepth: 8, maxCandidates: 64 };

/** Options of {@link verifyChain}. */
export interface VerifyChainOptions extends Partial<ChainLimits> {
  /** Trust anchors. A path must end in one of them. */
  readonly roots: readonly CertificateInput[];
  /** The extended key usage the leaf must have. */
  readonly usage: CertificateUsage;
  /**
   * When given, the leaf's SAN must match it; given several, at least one of them
   * (a node name mapped to its DNS names and addresses). An empty list matches nothing.
   */
  readonly name?: ExpectedName | readonly ExpectedName[];
  /** The time at which every certificate must be valid; default now. */
  readonly at?: Date;
  readonly signal?: AbortSignal;
}

/** A successfully verified path. */
export interface VerifiedChain {
  /** Leaf first, trust anchor last. */
  readonly chain: readonly X509Certificate[];
  /** DER of each certificate in `chain`. */
  readonly der: readonly Uint8Array[];
  /** The leaf's identity. */
  readonly identity: LeafIdentity;
}

/** Everything we derived from one certificate. */
interface PathNode {
  readonly p: ParsedCert;
  readonly idx: number;
  readonly label: string;
  readonly bc?: { ca: boolean; pathLen?: number; critical: boolean };
  readonly ku?: number;
  readonly eku?: string[];
  readonly ski?: Uint8Array;
  readonly aki?: { keyId?: Uint8Array; hasIssuer: boolean; hasSerial: boolean };
  readonly san?: GeneralNameEntry[];
  readonly nc?: { permitted?: Subtree[]; excluded?: Subtree[] };
  readonly selfIssued: boolean;
  readonly key: string;
  /** Structural problem found while deriving; thrown when the node is used. */
  readonly defect?: PeerVerificationError;
}

const fail = (reason: VerificationReason, msg: string): PeerVerificationError =>
  new PeerVerificationError(reason, msg);

const ACCEPTED_CRITICAL: ReadonlySet<string> = new Set([
  ExtensionOid.basicConstraints,
  ExtensionOid.keyUsage,
  ExtensionOid.extKeyUsage,
  ExtensionOid.subjectAltName,
  ExtensionOid.nameConstraints,
  ExtensionOid.certificatePolicies,
]);

function describe(p: ParsedCert, fallback: string): string {
  const cn = p.commonNames[0];
  return cn ? `certificate "${cn}"` : fallback;
}

function derive(p: ParsedCert, idx: number, fallback: string): PathNode {
  const label = describe(p, fallback);
  let bc: PathNode["bc"];
  let ku: number | undefined;
  let eku: string[] | undefined;
  let ski: Uint8Array | undefined;
  let aki: PathNode["aki"];
  let san: GeneralNameEntry[] | undefined;
  let nc: PathNode["nc"];
  let defect: PeerVerificationError | undefined;
  const bad = (reason: VerificationReason, why: string): void => {
    defect ??= fail(reason, `${label}: ${why}`);
  };
  if (p.duplicateExtension) bad("malformed", `duplicate extension ${p.duplicateExtension}`);
  for (const e of p.extensions) {
    try {
      switch (e.oid) {
        case ExtensionOid.basicConstraints:
          bc = { ...parseBasicConstraints(e.value), critical: e.critical };
          break;
        case ExtensionOid.keyUsage:
          ku = parseKeyUsage(e.value);
          break;
        case ExtensionOid.extKeyUsage:
          eku = parseEku(e.value);
          break;
        case ExtensionOid.subjectKeyIdentifier:
          if (e.critical) bad("malformed", "subjectKeyIdentifier must not be critical");
          ski = parseSki(e.value);
          break;
        case ExtensionOid.authorityKeyIdentifier:
          if (e.critical) bad("malformed", "authorityKeyIdentifier must not be critical");
          aki = parseAki(e.value);
          break;
        case ExtensionOid.subjectAltName:
          san = parseGeneralNames(e.value);
          break;
        case ExtensionOid.nameConstraints:
          nc = parseNameConstraints(e.value);
          break;
        case ExtensionOid.authorityInfoAccess:
          if (e.critical) bad("malformed", "authorityInfoAccess must not be critical");
          checkAia(e.value);
          break;
        case ExtensionOid.policyConstraints:
          if (!e.critical) bad("malformed", "policyConstraints must be critical");
          checkWellFormed(e.value);
          break;
        default:
          checkWellFormed(e.value);
      }
    } catch (err) {
      if (!(err instanceof DerError)) throw err;
      bad("malformed", `extension ${e.oid} is malformed (${err.message})`);
    }
    if (e.critical && !ACCEPTED_CRITICAL.has(e.oid)) {
      bad("unknown-critical-extension", `unsupported critical extension ${e.oid}`);
    }
  }
  return {
    p,
    idx,
    label,
    bc,
    ku,
    eku,
    ski,
    aki,
    san,
    nc,
    selfIssued: bytesEqual(p.subjectDer, p.issuerDer),
    key: `${toHex(p.subjectDer)}/${toHex(p.spki.der)}`,
    defect,
  };
}

/** Checks that do not depend on where the certificate sits in the path. */
function checkCommon(n: PathNode, at: Date): void {
  const p = n.p;
  if (n.defect) throw n.defect;
  if (p.version !== 3) throw fail("malformed", `${n.label}: not a version 3 certificate`);
  const s = p.serial;
  // Trust anchors are configuration, not issued material: their serial is not judged.
  if (n.idx < 0) {
    // nothing
  } else if (s[0] & 0x80 || s.every((b) => b === 0)) {
    throw fail("malformed", `${n.label}: serial number must be positive`);
  }
  if (s.length > 21 || (s.length === 21 && s[0] !== 0)) {
    throw fail("malformed", `${n.label}: serial number longer than 20 octets`);
  }
  if (!bytesEqual(p.sigAlg.der, p.tbsSigAlg.der)) {
    throw fail("malformed", `${n.label}: signature algorithm differs from the signed one`);
  }
  if (p.issuerEmpty) throw fail("malformed", `${n.label}: empty issuer name`);
  if (n.san) {
    const sanExt = p.extensions.find((e) => e.oid === ExtensionOid.subjectAltName);
    if (p.subjectEmpty && !sanExt?.critical) {
      throw fail("malformed", `${n.label}: empty subject needs a critical subjectAltName`);
    }
    if (!p.subjectEmpty && sanExt?.critical) {
      throw fail(
        "malformed",
        `${n.label}: subjectAltName is critical but the subject is not empty`,
      );
    }
    for (const g of n.san) {
      if (g.type === "dns" && normalizeDnsPattern(g.value) === undefined) {
        throw fail("malformed", `${n.label}: SAN "${g.value}" is not a valid DNS name`);
      }
      if (g.type === "ip" && g.bytes.length !== 4 && g.bytes.length !== 16) {
        throw fail("malformed", `${n.label}: SAN IP address of ${g.bytes.length} bytes`);
      }
      if (g.type === "email" && !validEmail(g.value)) {
        throw fail("malformed", `${n.label}: SAN "${g.value}" is not a valid email address`);
      }
    }
  } else if (p.subjectEmpty) {
    throw fail("malformed", `${n.label}: neither subject nor subjectAltName`);
  }
  checkKeyStrength(p.spki, n.label);
  if (at < p.notBefore) {
    throw fail("not-yet-valid", `${n.label} is not valid before ${p.notBefore.toISOString()}`);
  }
  // notAfter names a whole second: the certificate is valid until that second ends.
  if (at.getTime() > p.notAfter.getTime() + 999) {
    throw fail("expired", `${n.label} expired at ${p.notAfter.toISOString()}`);
  }
}

function validEmail(v: string): boolean {
  const at = v.indexOf("@");
  if (at <= 0 || at !== v.lastIndexOf("@")) return false;
  return normalizeDnsName(v.slice(at + 1)) !== undefined;
}

function checkLeaf(
  n: PathNode,
  usage: CertificateUsage,
  name: ExpectedName | readonly ExpectedName[] | undefined,
): void {
  if (n.bc?.ca) throw fail("bad-key-usage", `${n.label} is a CA certificate, not an end entity`);
  if (n.ku !== undefined && n.ku & KeyUsageBit.keyCertSign) {
    throw fail("bad-key-usage", `${n.label} is an end entity with keyCertSign`);
  }
  if (n.nc) throw fail("malformed", `${n.label}: nameConstraints in an end-entity certificate`);
  const want = usage === "server" ? EkuOid.serverAuth : EkuOid.clientAuth;
  if (!n.eku) throw fail("bad-eku", `${n.label} has no extendedKeyUsage (needs ${usage}Auth)`);
  if (!n.eku.includes(want)) {
    throw fail("bad-eku", `${n.label} is not allowed for ${usage} authentication`);
  }
  if (n.eku.includes(EkuOid.any)) throw fail("bad-eku", `${n.label} has anyExtendedKeyUsage`);
  if (n.p.extensions.some((e) => e.oid === ExtensionOid.extKeyUsage && e.critical)) {
    throw fail("bad-eku", `${n.label}: extKeyUsage must not be critical in an end entity`);
  }
  if (name === undefined) return;
  const names: readonly ExpectedName[] = Array.isArray(name) ? name : [name as ExpectedName];
  let first: PeerVerificationError | undefined;
  for (const one of names) {
    try {
      matchName(n, one);
      return;
    } catch (e) {
      if (!(e instanceof PeerVerificationError)) throw e;
      first ??= e;
    }
  }
  throw first ?? fail("name-mismatch", `${n.label}: no expected name to match`);
}

function matchName(n: PathNode, name: ExpectedName): void {
  const sans = n.san ?? [];
  if ("dns" in name) {
    const host = normalizeDnsName(name.dns);
    if (host !== undefined) {
      for (const g of sans) {
        if (g.type !== "dns") continue;
        const pat = normalizeDnsPattern(g.value);
        if (pat !== undefined && dnsPatternMatches(pat, host)) return;
      }
    }
    throw fail("name-mismatch", `${n.label} is not valid for host name "${name.dns}"`);
  }
  const ip = parseIp(name.ip);
  if (ip) {
    for (const g of sans) if (g.type === "ip" && bytesEqual(g.bytes, ip)) return;
  }
  throw fail("name-mismatch", `${n.label} is not valid for IP address "${name.ip}"`);
}

/** Checks for a certificate used as an issuer (intermediate or anchor). */
function checkIssuer(n: PathNode, usage: CertificateUsage, anchor: boolean): void {
  if (!n.bc?.ca)
    throw fail("not-a-ca", `${n.label} is not a CA (basicConstraints CA:TRUE missing)`);
  if (!n.bc.critical) throw fail("malformed", `${n.label}: basicConstraints must be critical`);
  if (n.ku !== undefined && !(n.ku & KeyUsageBit.keyCertSign)) {
    throw fail("bad-key-usage", `${n.label} may not sign certificates (no keyCertSign)`);
  }
  if (!n.ski) throw fail("malformed", `${n.label}: CA certificate without subjectKeyIdentifier`);
  if (n.p.subjectEmpty) throw fail("malformed", `${n.label}: CA certificate with an empty subject`);
  if (n.eku && !n.eku.includes(usage === "server" ? EkuOid.serverAuth : EkuOid.clientAuth)) {
    if (!n.eku.includes(EkuOid.any)) {
      throw fail("bad-eku", `${n.label} restricts its subordinates away from ${usage}Auth`);
    }
  }
  if (n.nc) {
    if (!n.nc.permitted && !n.nc.excluded) {
      throw fail("malformed", `${n.label}: nameConstraints without subtrees`);
    }
    for (const t of [...(n.nc.permitted ?? []), ...(n.nc.excluded ?? [])]) {
      const b = t.base;
      if (b.type === "dns" && b.value !== "" && normalizeDnsName(b.value) === undefined) {
        throw fail("malformed", `${n.label}: invalid DNS name constraint "${b.value}"`);
      }
      if (b.type === "ip" && !validIpConstraint(b.bytes)) {
        throw fail("malformed", `${n.label}: invalid IP name constraint`);
      }
    }
  }
  if (anchor && n.selfIssued && n.eku) {
    throw fail("bad-eku", `${n.label}: a root certificate must not carry extKeyUsage`);
  }
  if (anchor && n.aki) {
    if (!n.aki.keyId || n.aki.hasIssuer || n.aki.hasSerial) {
      throw fail(
        "malformed",
        `${n.label}: trust anchor authorityKeyIdentifier must hold only a keyIdentifier`,
      );
    }
    if (n.selfIssued && !bytesEqual(n.aki.keyId, n.ski)) {
      throw fail(
        "malformed",
        `${n.label}: self-issued with authorityKeyIdentifier != subjectKeyIdentifier`,
      );
    }
  }
}

function emailInSubtree(email: string, base: string): boolean {
  const at = email.lastIndexOf("@");
  if (at <= 0) return false;
  const local = email.slice(0, at);
  const host = email.slice(at + 1).toLowerCase();
  if (base.includes("@")) {
    const bat = base.lastIndexOf("@");
    return local === base.slice(0, bat) && host === base.slice(bat + 1).toLowerCase();
  }
  const b = base.toLowerCase();
  if (b.startsWith(".")) return host.endsWith(b);
  return host === b;
}

function dnInSubtree(subject: Uint8Array, base: Uint8Array): boolean {
  const s = children(parseOne(subject, Tag.sequence));
  const b = children(parseOne(base, Tag.sequence));
  if (b.length > s.length) return false;
  return b.every((rdn, i) => bytesEqual(rdn.bytes, s[i].bytes));
}

function nameInSubtree(name: GeneralNameEntry, base: GeneralNameEntry): boolean | undefined {
  if (name.type !== base.type) return undefined;
  switch (name.type) {
    case "dns": {
      const b = (base as { value: string }).value.toLowerCase();
      const v = name.value.toLowerCase();
      if (v.startsWith("*.")) return dnsInSubtree(v.slice(2), b);
      return dnsInSubtree(v, b);
    }
    case "ip":
      return ipInSubtree(name.bytes, (base as { bytes: Uint8Array }).bytes);
    case "email":
      return emailInSubtree(name.value, (base as { value: string }).value);
    case "dn":
      return dnInSubtree(name.der, (base as { der: Uint8Array }).der);
    default:
      return undefined;
  }
}

/** Could a (possibly wildcard) name fall into an excluded subtree? */
function touchesExcluded(name: GeneralNameEntry, base: GeneralNameEntry): boolean {
  if (name.type === "dns" && base.type === "dns" && name.value.startsWith("*.")) {
    const x = name.value.slice(2).toLowerCase();
    const b = base.value.toLowerCase();
    return dnsInSubtree(x, b) || b.endsWith(`.${x}`);
  }
  return nameInSubtree(name, base) === true;
}

/** Most (name x subtree) comparisons one path may cost. */
export const MAX_NAME_CONSTRAINT_CHECKS = 1 << 16;

function checkNameConstraints(ca: PathNode, n: PathNode, budget: { left: number }): void {
  if (!ca.nc) return;
  const names: GeneralNameEntry[] = [...(n.san ?? [])];
  if (!n.p.subjectEmpty) names.push({ type: "dn", der: n.p.subjectDer });
  const permitted = ca.nc.permitted ?? [];
  const excluded = ca.nc.excluded ?? [];
  budget.left -= names.length * (permitted.length + excluded.length);
  if (budget.left < 0) {
    throw fail("path-building-limit", `${ca.label}: name constraints too costly to check`);
  }
  for (const name of names) {
    const supported =
      name.type === "dns" || name.type === "ip" || name.type === "email" || name.type === "dn";
    const sameType = (t: Subtree): boolean =>
      t.base.type === name.type &&
      (name.type !== "other" || (t.base as { tag: number }).tag === (name as { tag: number }).tag);
    const perm = permitted.filter(sameType);
    const excl = excluded.filter(sameType);
    if (!supported) {
      if (perm.length > 0 || excl.length > 0) {
        throw fail(
          "unsupported",
          `${ca.label}: name constraints of type ${name.type} are not supported`,
        );
      }
      continue;
    }
    if (perm.length > 0 && !perm.some((t) => nameInSubtree(name, t.base) === true)) {
      throw fail(
        "name-mismatch",
        `${n.label} has a name outside the subtrees permitted by ${ca.label}`,
      );
    }
    if (excl.some((t) => touchesExcluded(name, t.base))) {
      throw fail("name-mismatch", `${n.label} has a name excluded by ${ca.label}`);
    }
  }
}

/** Checks over a complete candidate path (leaf first, anchor last). */
function checkPath(path: readonly PathNode[]): void {
  const budget = { left: MAX_NAME_CONSTRAINT_CHECKS };
  for (let i = 1; i < path.length; i++) {
    const ca = path[i];
    if (ca.bc?.pathLen !== undefined) {
      let below = 0;
      for (let j = 1; j < i; j++) if (!path[j].selfIssued) below++;
      if (below > ca.bc.pathLen) {
        throw fail(
          "path-length",
          `${ca.label} allows ${ca.bc.pathLen} intermediates below it, found ${below}`,
        );
      }
    }
    for (let j = i - 1; j >= 0; j--) {
      if (j > 0 && path[j].selfIssued) continue;
      checkNameConstraints(ca, path[j], budget);
    }
  }
}

function parsePeerCert(input: CertificateInput, what: string, idx: number): PathNode {
  let der: Uint8Array;
  try {
    der = certificateDer(input);
  } catch (e) {
    if (e instanceof MalformedInputError) throw fail("malformed", `${what}: ${e.message}`);
    throw e;
  }
  try {
    return derive(parseCertificateDer(der), idx, what);
  } catch (e) {
    if (e instanceof DerError) {
      throw new PeerVerificationError("malformed", `${what} is malformed: ${e.message}`, {
        cause: e,
      });
    }
    throw e;
  }
}

/**
 * Parsed trust anchors, by PEM text and position: a TLS endpoint passes the same
 * bundle on every handshake, so each root is parsed once, not once per connection.
 * Bounded; nodes are immutable, so sharing them between calls is safe.
 */
const rootCache = new Map<string, PathNode>();
const ROOT_CACHE_LIMIT = 256;

function parseRoot(input: CertificateInput, idx: number): PathNode {
  if (typeof input === "string") {
    const key = `${idx}\n${input}`;
    const hit = rootCache.get(key);
    if (hit) return hit;
    const node = parseRootUncached(input, idx);
    if (rootCache.size >= ROOT_CACHE_LIMIT)
      rootCache.delete(rootCache.keys().next().value as string);
    rootCache.set(key, node);
    return node;
  }
  return parseRootUncached(input, idx);
}

function parseRootUncached(input: CertificateInput, idx: number): PathNode {
  try {
    return parsePeerCert(input, `root #${idx}`, -1 - idx);
  } catch (e) {
    if (e instanceof PeerVerificationError) {
      throw new MalformedInputError(`roots[${idx}]: ${e.message}`, { cause: e });
    }
    throw e;
  }
}

function checkLimit(name: keyof ChainLimits, v: number): void {
  if (!Number.isSafeInteger(v) || v < 0 || v > 1024) {
    throw new RangeError(`${name}: must be an integer 0..1024, got ${v}`);
  }
}

/**
 * Verify `leaf` (with the peer's `intermediates`, in any order) against `roots`.
 * Certificates are PEM text, DER bytes (as from a TLS handshake) or parsed objects.
 * Returns the verified chain (leaf first, anchor last) or throws
 * {@link PeerVerificationError} with one of these reasons: `malformed`, `expired`,
 * `not-yet-valid`, `untrusted-root`, `name-mismatch` (reference name or name
 * constraints), `bad-eku`, `bad-key-usage` (CA used as leaf, issuer without
 * keyCertSign), `not-a-ca`, `path-length`, `bad-signature`, `weak-key`,
 * `weak-algorithm`, `unknown-critical-extension`, `unsupported`, `chain-too-long`,
 * `path-building-limit`. Malformed roots are the caller's: {@link MalformedInputError}.
 *
 * @example
 * ```ts
 * import { createRootCa, issueCredential, verifyChain } from "../../mod.ts";
 * const ca = await createRootCa({ commonName: "ca" });
 * const leaf = await issueCredential(ca, { profile: "server", dnsNames: ["node-1.cluster"] });
 * const v = await verifyChain(leaf.certificate, leaf.intermediates, {
 *   roots: [ca.certificate], usage: "server", name: { dns: "NODE-1.cluster" },
 * });
 * if (v.chain.length !== 2) throw new Error();
 * ```
 */
export async function verifyChain(
  leaf: CertificateInput,
  intermediates: readonly CertificateInput[],
  opts: VerifyChainOptions,
): Promise<VerifiedChain> {
  const maxDepth = opts.maxDepth ?? DEFAULT_CHAIN_LIMITS.maxDepth;
  const maxCandidates = opts.maxCandidates ?? DEFAULT_CHAIN_LIMITS.maxCandidates;
  checkLimit("maxDepth", maxDepth);
  checkLimit("maxCandidates", maxCandidates);
  if (opts.usage !== "server" && opts.usage !== "client") {
    throw new RangeError(`usage: must be "server" or "client", got ${opts.usage}`);
  }
  if (!Array.isArray(opts.roots) || opts.roots.length === 0) {
    throw new RangeError("roots: at least one trust anchor is needed");
  }
  if (intermediates.length > 64)
    throw fail("chain-too-long", `peer sent ${intermediates.length} intermediates`);
  const at = opts.at ?? new Date();
  if (Number.isNaN(at.getTime())) throw new RangeError("at: invalid date");
  const signal = opts.signal;
  const checkAbort = (): void => {
    if (signal?.aborted)
      throw new AbortedError("certificate verification was aborted", { cause: signal.reason });
  };
  checkAbort();

  const leafNode = parsePeerCert(leaf, "leaf certificate", 0);
  const pool = intermediates.map((c, i) => parsePeerCert(c, `intermediate #${i}`, i + 1));
  const anchors = opts.roots.map((r, i) => parseRoot(r, i));
  const anchorDer = new Set(anchors.map((a) => toHex(a.p.der)));

  checkCommon(leafNode, at);
  checkLeaf(leafNode, opts.usage, opts.name);

  const commonOk = new Map<PathNode, PeerVerificationError | null>();
  const common = (n: PathNode): void => {
    let r = commonOk.get(n);
    if (r === undefined) {
      try {
        checkCommon(n, at);
        r = null;
      } catch (e) {
        if (!(e instanceof PeerVerificationError)) throw e;
        r = e;
      }
      commonOk.set(n, r);
    }
    if (r) throw r;
  };
  const sigCache = new Map<string, boolean>();
  let candidates = 0;
  let best: { depth: number; err: PeerVerificationError } | undefined;
  const record = (depth: number, err: PeerVerificationError): void => {
    if (!best || depth > best.depth) best = { depth, err };
  };

  const extend = async (path: PathNode[]): Promise<PathNode[] | undefined> => {
    const cur = path[path.length - 1];
    const anchorCands = anchors.filter((a) => bytesEqual(a.p.subjectDer, cur.p.issuerDer));
    const poolCands = pool.filter(
      (c) => bytesEqual(c.p.subjectDer, cur.p.issuerDer) && !anchorDer.has(toHex(c.p.der)),
    );
    const cands: [PathNode, boolean][] = [
      ...anchorCands.map((a): [PathNode, boolean] => [a, true]),
      ...poolCands.map((c): [PathNode, boolean] => [c, false]),
    ];
    for (const [cand, isAnchor] of cands) {
      if (path.some((n) => n.key === cand.key)) continue;
      candidates++;
      if (candidates > maxCandidates) {
        throw fail(
          "path-building-limit",
          `gave up after examining ${maxCandidates} issuer candidates`,
        );
      }
      checkAbort();
      const depth = path.length;
      try {
        if (cur.aki?.keyId && cand.ski && !bytesEqual(cur.aki.keyId, cand.ski)) {
          throw fail(
            "untrusted-root",
            `${cur.label}: issuer key identifier does not match ${cand.label}`,
          );
        }
        const logical = path.slice(1).filter((x) => !x.selfIssued).length;
        if (!isAnchor && logical + (cand.selfIssued ? 0 : 1) > maxDepth) {
          throw fail("chain-too-long", `more than ${maxDepth} intermediate certificates`);
        }
        common(cand);
        checkIssuer(cand, opts.usage, isAnchor);
        if (!cur.aki) {
          throw fail("malformed", `${cur.label}: no authorityKeyIdentifier`);
        }
        const sk = `${toHex(cur.p.der)}|${cand.key}`;
        let ok = sigCache.get(sk);
        if (ok === undefined) {
          ok = await verifySignature(
            cand.p.spki,
            cur.p.sigAlg,
            cur.p.tbs,
            cur.p.signature,
            cur.label,
          );
          sigCache.set(sk, ok);
        }
        if (!ok)
          throw fail("bad-signature", `${cur.label}: signature does not verify with ${cand.label}`);
        const next = [...path, cand];
        if (isAnchor) {
          checkPath(next);
          return next;
        }
        const r = await extend(next);
        if (r) return r;
      } catch (e) {
        if (!(e instanceof PeerVerificationError) || e.reason === "path-building-limit") throw e;
        record(depth, e);
      }
    }
    if (anchorCands.length === 0 && poolCands.length === 0) {
      record(
        path.length - 1,
        fail("untrusted-root", `${cur.label} was not issued by a trusted root`),
      );
    }
    return undefined;
  };

  const path = await extend([leafNode]);
  if (!path) {
    throw best?.err ?? fail("untrusted-root", "no path to a trusted root");
  }
  // The parsed X509Certificate objects cost more than the whole validation: build them
  // only when a caller reads `chain`.
  let chain: readonly X509Certificate[] | undefined;
  return {
    get chain(): readonly X509Certificate[] {
      chain ??= path.map((n) => new x509.X509Certificate(n.p.der.slice()));
      return chain;
    },
    der: path.map((n) => n.p.der),
    identity: identityOf(leafNode.p),
  };
}
