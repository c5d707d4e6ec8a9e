/**
 * Strict parsing of certificates, CSRs, names, keys and the extensions that
 * path validation reads, straight from DER (the exact signed bytes are kept).
 *
 * @module
 */

import {
  children,
  DerError,
  decodeOid,
  expect,
  integerBytes,
  parseOne,
  readBitString,
  readBoolean,
  readOid,
  readSmallInt,
  readString,
  readTime,
  Tag,
  type Tlv,
} from "./_der.ts";
import { CsrAttributeOid, KeyOid, NameOid } from "./oids.ts";

/** An AlgorithmIdentifier: OID, raw parameters (if any) and the whole encoding. */
export interface AlgId {
  readonly oid: string;
  readonly params?: Tlv;
  readonly der: Uint8Array;
}

/** A subjectPublicKeyInfo, classified. */
export interface ParsedSpki {
  readonly der: Uint8Array;
  readonly alg: AlgId;
  /** The subjectPublicKey bits. */
  readonly key: Uint8Array;
  /** "ec", "rsa", "ed25519", "dsa" or "other". */
  readonly kind: "ec" | "rsa" | "ed25519" | "dsa" | "other";
  /** For EC: the named curve OID; undefined when parameters are explicit or missing. */
  readonly curve?: string;
  /** For RSA: modulus length in bits. */
  readonly rsaBits?: number;
}

/** One GeneralName. */
export type GeneralNameEntry =
  | { readonly type: "dns"; readonly value: string }
  | { readonly type: "ip"; readonly bytes: Uint8Array }
  | { readonly type: "email"; readonly value: string }
  | { readonly type: "uri"; readonly value: string }
  | { readonly type: "dn"; readonly der: Uint8Array }
  | { readonly type: "other"; readonly tag: number };

/** One name-constraints subtree. */
export interface Subtree {
  readonly base: GeneralNameEntry;
}

/** One extension as found in the certificate. */
export interface RawExtension {
  readonly oid: string;
  readonly critical: boolean;
  readonly value: Uint8Array;
}

/** The parts of a certificate path validation looks at. */
export interface ParsedCert {
  readonly der: Uint8Array;
  readonly tbs: Uint8Array;
  readonly sigAlg: AlgId;
  readonly tbsSigAlg: AlgId;
  readonly signature: Uint8Array;
  readonly version: number;
  readonly serial: Uint8Array;
  readonly issuerDer: Uint8Array;
  readonly subjectDer: Uint8Array;
  readonly subjectEmpty: boolean;
  readonly issuerEmpty: boolean;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly spki: ParsedSpki;
  readonly extensions: readonly RawExtension[];
  /** Set when two extensions share an OID. */
  readonly duplicateExtension?: string;
  readonly commonNames: readonly string[];
  readonly organizations: readonly string[];
}

/** A certificate signing request. */
export interface ParsedCsr {
  readonly der: Uint8Array;
  readonly info: Uint8Array;
  readonly sigAlg: AlgId;
  readonly signature: Uint8Array;
  readonly subjectDer: Uint8Array;
  readonly commonNames: readonly string[];
  readonly organizations: readonly string[];
  readonly otherSubjectAttributes: readonly string[];
  readonly spki: ParsedSpki;
  readonly extensions: readonly RawExtension[];
  readonly duplicateExtension?: string;
  readonly attributeOids: readonly string[];
}

/** Parse an AlgorithmIdentifier. */
export function parseAlgId(tlv: Tlv | undefined): AlgId {
  const t = expect(tlv, Tag.sequence, "AlgorithmIdentifier");
  const kids = children(t);
  if (kids.length < 1 || kids.length > 2) throw new DerError("bad AlgorithmIdentifier");
  return { oid: readOid(kids[0]), params: kids[1], der: t.bytes };
}

/** Parse a SubjectPublicKeyInfo. */
export function parseSpki(tlv: Tlv | undefined): ParsedSpki {
  const t = expect(tlv, Tag.sequence, "SubjectPublicKeyInfo");
  const kids = children(t);
  if (kids.length !== 2) throw new DerError("bad SubjectPublicKeyInfo");
  const alg = parseAlgId(kids[0]);
  const bits = readBitString(kids[1], "subjectPublicKey");
  if (bits.unused !== 0) throw new DerError("subjectPublicKey has unused bits");
  const key = bits.bytes;
  switch (alg.oid) {
    case KeyOid.ecPublicKey: {
      const curve = alg.params?.tag === Tag.oid ? decodeOid(alg.params.value) : undefined;
      if (key.length === 0 || (key[0] !== 4 && key[0] !== 2 && key[0] !== 3)) {
        throw new DerError("bad EC point");
      }
      return { der: t.bytes, alg, key, kind: "ec", curve };
    }
    case KeyOid.rsaEncryption: {
      if (!alg.params || alg.params.tag !== Tag.null || alg.params.value.length !== 0) {
        throw new DerError("RSA key parameters must be NULL");
      }
      const rsa = children(parseOne(key, Tag.sequence));
      if (rsa.length !== 2) throw new DerError("bad RSAPublicKey");
      const n = integerBytes(rsa[0], "modulus");
      integerBytes(rsa[1], "exponent");
      if (n[0] & 0x80) throw new DerError("negative modulus");
      let i = 0;
      while (i < n.length && n[i] === 0) i++;
      const rsaBits = i === n.length ? 0 : (n.length - i - 1) * 8 + (32 - Math.clz32(n[i]));
      return { der: t.bytes, alg, key, kind: "rsa", rsaBits };
    }
    case KeyOid.ed25519:
      if (alg.params !== undefined || key.length !== 32) throw new DerError("bad Ed25519 key");
      return { der: t.bytes, alg, key, kind: "ed25519" };
    case KeyOid.dsa:
      return { der: t.bytes, alg, key, kind: "dsa" };
    default:
      return { der: t.bytes, alg, key, kind: "other" };
  }
}

/** Read the attributes of a Name we care about; validates its structure. */
export function parseName(tlv: Tlv): {
  empty: boolean;
  commonNames: string[];
  organizations: string[];
  others: string[];
} {
  const rdns = children(tlv, Tag.sequence);
  const commonNames: string[] = [];
  const organizations: string[] = [];
  const others: string[] = [];
  for (const rdn of rdns) {
    const atvs = children(rdn, Tag.set);
    if (atvs.length === 0) throw new DerError("empty RDN");
    for (const atv of atvs) {
      const kids = children(atv, Tag.sequence);
      if (kids.length !== 2) throw new DerError("bad AttributeTypeAndValue");
      const oid = readOid(kids[0]);
      if (oid === NameOid.commonName) commonNames.push(readString(kids[1]));
      else if (oid === NameOid.organization) organizations.push(readString(kids[1]));
      else others.push(oid);
    }
  }
  return { empty: rdns.length === 0, commonNames, organizations, others };
}

function parseExtensions(tlv: Tlv): { list: RawExtension[]; duplicate?: string } {
  const list: RawExtension[] = [];
  const seen = new Set<string>();
  let duplicate: string | undefined;
  const exts = children(tlv, Tag.sequence);
  if (exts.length === 0) throw new DerError("empty extensions");
  for (const e of exts) {
    const kids = children(e, Tag.sequence);
    if (kids.length < 2 || kids.length > 3) throw new DerError("bad Extension");
    const oid = readOid(kids[0]);
    let critical = false;
    let idx = 1;
    if (kids.length === 3) {
      critical = readBoolean(kids[1]);
      idx = 2;
    }
    const value = expect(kids[idx], Tag.octetString, "extnValue").value;
    if (seen.has(oid)) duplicate = oid;
    seen.add(oid);
    list.push({ oid, critical, value });
  }
  return { list, duplicate };
}

/** Parse a DER X.509 certificate (throws DerError). */
export function parseCertificateDer(der: Uint8Array): ParsedCert {
  const cert = parseOne(der, Tag.sequence);
  const top = children(cert);
  if (top.length !== 3) throw new DerError("Certificate must have three parts");
  const tbsTlv = expect(top[0], Tag.sequence, "tbsCertificate");
  const sigAlg = parseAlgId(top[1]);
  const sig = readBitString(top[2], "signatureValue");
  if (sig.unused !== 0) throw new DerError("signature has unused bits");
  const f = children(tbsTlv);
  let i = 0;
  let version = 1;
  if (f[0]?.tag === 0xa0) {
    const v = children(f[0]);
    if (v.length !== 1) throw new DerError("bad version");
    version = readSmallInt(v[0], "version") + 1;
    if (version === 1) throw new DerError("explicit v1 version is not DER");
    if (version > 3) throw new DerError("unknown version");
    i = 1;
  }
  const serial = integerBytes(f[i++], "serialNumber");
  const tbsSigAlg = parseAlgId(f[i++]);
  const issuer = expect(f[i++], Tag.sequence, "issuer");
  const validity = children(expect(f[i++], Tag.sequence, "validity"));
  if (validity.length !== 2) throw new DerError("bad validity");
  const notBefore = readTime(validity[0]);
  const notAfter = readTime(validity[1]);
  const subject = expect(f[i++], Tag.sequence, "subject");
  const spki = parseSpki(f[i++]);
  if (f[i]?.tag === 0x81 || f[i]?.tag === 0xa1) i++;
  if (f[i]?.tag === 0x82 || f[i]?.tag === 0xa2) i++;
  let extensions: RawExtension[] = [];
  let duplicate: string | undefined;
  if (f[i]?.tag === 0xa3) {
    if (version !== 3) throw new DerError("extensions need version 3");
    const wrap = children(f[i]);
    if (wrap.length !== 1) throw new DerError("bad extensions wrapper");
    const r = parseExtensions(wrap[0]);
    extensions = r.list;
    duplicate = r.duplicate;
    i++;
  }
  if (i !== f.length) throw new DerError("unexpected fields in tbsCertificate");
  const iss = parseName(issuer);
  const sub = parseName(subject);
  return {
    der: cert.bytes,
    tbs: tbsTlv.bytes,
    sigAlg,
    tbsSigAlg,
    signature: sig.bytes,
    version,
    serial,
    issuerDer: issuer.bytes,
    subjectDer: subject.bytes,
    subjectEmpty: sub.empty,
    issuerEmpty: iss.empty,
    notBefore,
    notAfter,
    spki,
    extensions,
    duplicateExtension: duplicate,
    commonNames: sub.commonNames,
    organizations: sub.organizations,
  };
}

/** Parse a DER PKCS#10 certification request (throws DerError). */
export function parseCsrDer(der: Uint8Array): ParsedCsr {
  const top = children(parseOne(der, Tag.sequence));
  if (top.length !== 3) throw new DerError("CertificationRequest must have three parts");
  const info = expect(top[0], Tag.sequence, "certificationRequestInfo");
  const sigAlg = parseAlgId(top[1]);
  const sig = readBitString(top[2], "signature");
  if (sig.unused !== 0) throw new DerError("signature has unused bits");
  const f = children(info);
  if (f.length !== 4) throw new DerError("bad certificationRequestInfo");
  if (readSmallInt(f[0], "version") !== 0) throw new DerError("unknown CSR version");
  const subject = expect(f[1], Tag.sequence, "subject");
  const name = parseName(subject);
  const spki = parseSpki(f[2]);
  const attrs = children(expect(f[3], 0xa0, "attributes"));
  const attributeOids: string[] = [];
  let extensions: RawExtension[] = [];
  let duplicate: string | undefined;
  for (const a of attrs) {
    const kids = children(a, Tag.sequence);
    if (kids.length !== 2) throw new DerError("bad Attribute");
    const oid = readOid(kids[0]);
    const values = children(kids[1], Tag.set);
    attributeOids.push(oid);
    if (oid === CsrAttributeOid.extensionRequest) {
      if (values.length !== 1 || extensions.length > 0) throw new DerError("bad extensionRequest");
      const r = parseExtensions(values[0]);
      extensions = r.list;
      duplicate = r.duplicate;
    }
  }
  return {
    der,
    info: info.bytes,
    sigAlg,
    signature: sig.bytes,
    subjectDer: subject.bytes,
    commonNames: name.commonNames,
    organizations: name.organizations,
    otherSubjectAttributes: name.others,
    spki,
    extensions,
    duplicateExtension: duplicate,
    attributeOids,
  };
}

/** Parse one GeneralName. */
export function parseGeneralName(t: Tlv): GeneralNameEntry {
  const ascii = (): string => {
    let s = "";
    for (const b of t.value) {
      if (b > 0x7e || b < 0x20) throw new DerError("non-ASCII IA5String in GeneralName");
      s += String.fromCharCode(b);
    }
    return s;
  };
  switch (t.tag) {
    case 0x82:
      return { type: "dns", value: ascii() };
    case 0x87:
      return { type: "ip", bytes: t.value };
    case 0x81:
      return { type: "email", value: ascii() };
    case 0x86:
      return { type: "uri", value: ascii() };
    case 0xa4: {
      const inner = children(t);
      if (inner.length !== 1) throw new DerError("bad directoryName");
      parseName(inner[0]);
      return { type: "dn", der: inner[0].bytes };
    }
    case 0xa0:
    case 0xa3:
    case 0xa5:
    case 0x88:
      return { type: "other", tag: t.tag };
    default:
      throw new DerError("bad GeneralName tag");
  }
}

/** subjectAltName / a GeneralNames sequence (must not be empty). */
export function parseGeneralNames(value: Uint8Array): GeneralNameEntry[] {
  const kids = children(parseOne(value, Tag.sequence));
  if (kids.length === 0) throw new DerError("empty GeneralNames");
  return kids.map(parseGeneralName);
}

/** basicConstraints. */
export function parseBasicConstraints(value: Uint8Array): { ca: boolean; pathLen?: number } {
  const kids = children(parseOne(value, Tag.sequence));
  let i = 0;
  let ca = false;
  if (kids[i]?.tag === Tag.boolean) {
    ca = readBoolean(kids[i]);
    i++;
  }
  let pathLen: number | undefined;
  if (kids[i]?.tag === Tag.integer) {
    pathLen = readSmallInt(kids[i], "pathLenConstraint");
    i++;
  }
  if (i !== kids.length) throw new DerError("bad basicConstraints");
  return { ca, pathLen };
}

/** keyUsage as a bit mask (bit 0 = digitalSignature ... bit 8 = decipherOnly). */
export function parseKeyUsage(value: Uint8Array): number {
  const { unused, bytes } = readBitString(parseOne(value));
  if (bytes.length > 2) throw new DerError("keyUsage too long");
  let mask = 0;
  for (let bit = 0; bit < bytes.length * 8 - unused; bit++) {
    if (bytes[bit >> 3] & (0x80 >> (bit & 7))) mask |= 1 << bit;
  }
  return mask;
}

/** Bit numbers of keyUsage. */
export const KeyUsageBit = {
  /** digitalSignature */
  digitalSignature: 1 << 0,
  /** keyEncipherment */
  keyEncipherment: 1 << 2,
  /** keyCertSign */
  keyCertSign: 1 << 5,
  /** cRLSign */
  cRLSign: 1 << 6,
} as const;

/** extKeyUsage (must not be empty). */
export function parseEku(value: Uint8Array): string[] {
  const kids = children(parseOne(value, Tag.sequence));
  if (kids.length === 0) throw new DerError("empty extKeyUsage");
  return kids.map((k) => readOid(k));
}

/** subjectKeyIdentifier. */
export function parseSki(value: Uint8Array): Uint8Array {
  return parseOne(value, Tag.octetString).value;
}

/** authorityKeyIdentifier. */
export function parseAki(value: Uint8Array): {
  keyId?: Uint8Array;
  hasIssuer: boolean;
  hasSerial: boolean;
} {
  const kids = children(parseOne(value, Tag.sequence));
  let keyId: Uint8Array | undefined;
  let hasIssuer = false;
  let hasSerial = false;
  for (const k of kids) {
    if (k.tag === 0x80) keyId = k.value;
    else if (k.tag === 0xa1) hasIssuer = true;
    else if (k.tag === 0x82) hasSerial = true;
    else throw new DerError("bad authorityKeyIdentifier");
  }
  return { keyId, hasIssuer, hasSerial };
}

/** nameConstraints: permitted and excluded subtrees (each undefined if absent). */
export function parseNameConstraints(value: Uint8Array): {
  permitted?: Subtree[];
  excluded?: Subtree[];
} {
  const kids = children(parseOne(value, Tag.sequence));
  const out: { permitted?: Subtree[]; excluded?: Subtree[] } = {};
  for (const k of kids) {
    const list = children(k);
    if (list.length === 0) throw new DerError("empty GeneralSubtrees");
    const trees = list.map((st) => {
      const parts = children(st, Tag.sequence);
      if (parts.length < 1) throw new DerError("bad GeneralSubtree");
      for (const p of parts.slice(1)) {
        if (p.tag === 0x80) {
          if (readSmallIntImplicit(p) !== 0) throw new DerError("minimum must be 0");
        } else throw new DerError("maximum is not allowed");
      }
      return { base: parseGeneralName(parts[0]) };
    });
    if (k.tag === 0xa0 && !out.permitted) out.permitted = trees;
    else if (k.tag === 0xa1 && !out.excluded) out.excluded = trees;
    else throw new DerError("bad nameConstraints");
  }
  return out;
}

function readSmallIntImplicit(t: Tlv): number {
  return readSmallInt({ tag: Tag.integer, bytes: t.bytes, value: t.value });
}

/** authorityInfoAccess: validate the structure. */
export function checkAia(value: Uint8Array): void {
  const kids = children(parseOne(value, Tag.sequence));
  if (kids.length === 0) throw new DerError("empty authorityInfoAccess");
  for (const k of kids) {
    const p = children(k, Tag.sequence);
    if (p.length !== 2) throw new DerError("bad AccessDescription");
    readOid(p[0]);
    parseGeneralName(p[1]);
  }
}

/** Decode a DER structure that must be well-formed at every level (used on opaque extensions). */
export function checkWellFormed(value: Uint8Array): void {
  parseOne(value);
}
