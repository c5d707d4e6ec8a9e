/**
 * PEM and DER import and export for certificates, PKCS#8 private keys and
 * CSRs. Every parser throws {@link MalformedInputError} on bad input.
 *
 * @module
 */

import { MalformedInputError } from "../channel/errors.ts";
import { children, DerError, parseOne, readOid, readSmallInt, Tag } from "./_der.ts";
import { parseAlgId, parseCertificateDer, parseCsrDer } from "./_parse.ts";
import { x509 } from "./_x509.ts";
import { KeyOid } from "./oids.ts";

/** A parsed X.509 certificate (the `@peculiar/x509` class). */
export type X509Certificate = x509.X509Certificate;
/** A parsed PKCS#10 certification request (the `@peculiar/x509` class). */
export type Pkcs10CertificateRequest = x509.Pkcs10CertificateRequest;

/** A certificate as PEM text, DER bytes or an already parsed object. */
export type CertificateInput = string | Uint8Array | X509Certificate;
/** A CSR as PEM text, DER bytes or an already parsed object. */
export type CsrInput = string | Uint8Array | Pkcs10CertificateRequest;

/** PEM labels we read and write. */
export const PemLabel = {
  /** X.509 certificate */
  certificate: "CERTIFICATE",
  /** PKCS#10 request */
  csr: "CERTIFICATE REQUEST",
  /** PKCS#8 private key */
  privateKey: "PRIVATE KEY",
} as const;

/** Largest PEM text or DER object we parse, in bytes (bounds work on hostile input). */
export const MAX_ENCODED_BYTES = 1024 * 1024;

const B64 = /^[A-Za-z0-9+/]*={0,2}$/;

function base64Decode(s: string): Uint8Array {
  if (s.length % 4 !== 0 || !B64.test(s)) throw new MalformedInputError("PEM body is not base64");
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

function base64Encode(b: Uint8Array): string {
  let s = "";
  for (let i = 0; i < b.length; i += 0x8000) {
    s += String.fromCharCode(...b.subarray(i, i + 0x8000));
  }
  return btoa(s);
}

/**
 * Every PEM block labelled `label` in `text`, decoded. Text outside blocks is
 * ignored; a block with a bad body or a missing END line is an error.
 *
 * @example
 * ```ts
 * import { decodePem, encodePem } from "../../mod.ts";
 * const pem = encodePem(new Uint8Array([1, 2, 3]), "CERTIFICATE");
 * if (decodePem(pem, "CERTIFICATE")[0].length !== 3) throw new Error();
 * ```
 */
export function decodePem(text: string, label: string): Uint8Array[] {
  if (typeof text !== "string") throw new TypeError("PEM input must be a string");
  if (text.length > MAX_ENCODED_BYTES) throw new MalformedInputError("PEM input too large");
  const lines = text.split(/\r?\n/);
  const out: Uint8Array[] = [];
  let body: string[] | undefined;
  let current = "";
  for (const raw of lines) {
    const line = raw.trim();
    const begin = /^-----BEGIN ([A-Z0-9 ]+)-----$/.exec(line);
    const end = /^-----END ([A-Z0-9 ]+)-----$/.exec(line);
    if (begin) {
      if (body !== undefined) throw new MalformedInputError("nested PEM BEGIN line");
      body = [];
      current = begin[1];
    } else if (end) {
      if (body === undefined || end[1] !== current) {
        throw new MalformedInputError("PEM END line without a matching BEGIN");
      }
      if (current === label) out.push(base64Decode(body.join("")));
      body = undefined;
    } else if (body !== undefined && line !== "") {
      if (line.includes(":"))
        throw new MalformedInputError("encrypted or annotated PEM is not supported");
      body.push(line);
    }
  }
  if (body !== undefined) throw new MalformedInputError("PEM block without an END line");
  return out;
}

/** Encode DER as one PEM block, 64 characters a line. */
export function encodePem(der: Uint8Array, label: string): string {
  const b64 = base64Encode(der);
  const lines: string[] = [];
  for (let i = 0; i < b64.length; i += 64) lines.push(b64.slice(i, i + 64));
  return `-----BEGIN ${label}-----\n${lines.join("\n")}\n-----END ${label}-----\n`;
}

function single(text: string, label: string): Uint8Array {
  const blocks = decodePem(text, label);
  if (blocks.length !== 1) {
    throw new MalformedInputError(`expected one ${label} PEM block, found ${blocks.length}`);
  }
  return blocks[0];
}

function toDer(input: string | Uint8Array, label: string): Uint8Array {
  if (typeof input === "string") return single(input, label);
  if (!(input instanceof Uint8Array)) throw new TypeError(`${label} must be PEM text or DER bytes`);
  if (input.length > MAX_ENCODED_BYTES) throw new MalformedInputError(`${label} too large`);
  return input;
}

/**
 * Parse one certificate (PEM text or DER bytes). The DER is checked strictly
 * before the object is built.
 *
 * @example
 * ```ts
 * import { parseCertificate, MalformedInputError } from "../../mod.ts";
 * try { parseCertificate(new Uint8Array([0x30, 0x00])); } catch (e) {
 *   if (!(e instanceof MalformedInputError)) throw e;
 * }
 * ```
 */
export function parseCertificate(input: CertificateInput): X509Certificate {
  if (input instanceof x509.X509Certificate) return input;
  const der = toDer(input, PemLabel.certificate);
  try {
    parseCertificateDer(der);
    return new x509.X509Certificate(der.slice());
  } catch (e) {
    throw new MalformedInputError(`cannot parse certificate: ${(e as Error).message}`, {
      cause: e,
    });
  }
}

/** Parse every certificate in a PEM bundle, in order. */
export function parseCertificates(pem: string): X509Certificate[] {
  return decodePem(pem, PemLabel.certificate).map((d) => parseCertificate(d));
}

/** DER bytes of a certificate. */
export function certificateToDer(cert: X509Certificate): Uint8Array {
  return new Uint8Array(cert.rawData.slice(0));
}

/** PEM text of one certificate, or of a chain in order. */
export function certificateToPem(cert: X509Certificate | readonly X509Certificate[]): string {
  const list = Array.isArray(cert) ? cert : [cert as X509Certificate];
  return list.map((c) => encodePem(certificateToDer(c), PemLabel.certificate)).join("");
}

/** Parse one PKCS#10 CSR (PEM text or DER bytes). */
export function parseCsr(input: CsrInput): Pkcs10CertificateRequest {
  if (input instanceof x509.Pkcs10CertificateRequest) return input;
  const der = toDer(input, PemLabel.csr);
  try {
    parseCsrDer(der);
    return new x509.Pkcs10CertificateRequest(der.slice());
  } catch (e) {
    throw new MalformedInputError(`cannot parse CSR: ${(e as Error).message}`, { cause: e });
  }
}

/** DER bytes of a CSR. */
export function csrToDer(csr: Pkcs10CertificateRequest): Uint8Array {
  return new Uint8Array(csr.rawData.slice(0));
}

/** PEM text of a CSR. */
export function csrToPem(csr: Pkcs10CertificateRequest): string {
  return encodePem(csrToDer(csr), PemLabel.csr);
}

type ImportAlg = { alg: EcKeyImportParams | RsaHashedImportParams | Algorithm; usages: KeyUsage[] };

function pkcs8Algorithm(der: Uint8Array): ImportAlg {
  try {
    const kids = children(parseOne(der, Tag.sequence));
    if (kids.length < 3) throw new DerError("bad PrivateKeyInfo");
    const version = readSmallInt(kids[0], "version");
    if (version > 1) throw new DerError("unknown PrivateKeyInfo version");
    const alg = parseAlgId(kids[1]);
    if (kids[2].tag !== Tag.octetString) throw new DerError("bad privateKey");
    switch (alg.oid) {
      case KeyOid.ecPublicKey: {
        const curve = alg.params?.tag === Tag.oid ? readOid(alg.params) : "";
        const name =
          curve === KeyOid.p256
            ? "P-256"
            : curve === KeyOid.p384
              ? "P-384"
              : curve === KeyOid.p521
                ? "P-521"
                : undefined;
        if (!name) throw new DerError(`unsupported curve ${curve}`);
        return { alg: { name: "ECDSA", namedCurve: name }, usages: ["sign"] };
      }
      case KeyOid.rsaEncryption:
        return { alg: { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" }, usages: ["sign"] };
      case KeyOid.ed25519:
        return { alg: { name: "Ed25519" }, usages: ["sign"] };
      default:
        throw new DerError(`unsupported private key algorithm ${alg.oid}`);
    }
  } catch (e) {
    throw new MalformedInputError(`cannot parse PKCS#8 key: ${(e as Error).message}`, { cause: e });
  }
}

/**
 * Import a PKCS#8 private key (PEM "PRIVATE KEY" or DER) and derive its public
 * key. ECDSA (P-256/384/521), RSA (PKCS#1 v1.5 with SHA-256) and Ed25519.
 */
export async function importPrivateKey(input: string | Uint8Array): Promise<CryptoKeyPair> {
  const der = toDer(input, PemLabel.privateKey);
  const { alg, usages } = pkcs8Algorithm(der);
  let privateKey: CryptoKey;
  let jwk: JsonWebKey;
  try {
    privateKey = await crypto.subtle.importKey("pkcs8", der.slice(), alg, true, usages);
    jwk = await crypto.subtle.exportKey("jwk", privateKey);
  } catch (e) {
    throw new MalformedInputError("cannot import PKCS#8 key", { cause: e });
  }
  const pub: JsonWebKey = { kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y, n: jwk.n, e: jwk.e };
  for (const k of Object.keys(pub) as (keyof JsonWebKey)[]) if (pub[k] === undefined) delete pub[k];
  const publicKey = await crypto.subtle.importKey("jwk", pub, alg, true, ["verify"]);
  return { privateKey, publicKey };
}

/** PKCS#8 DER of an extractable private key. */
export async function exportPrivateKeyDer(key: CryptoKey): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.exportKey("pkcs8", key));
}

/** PKCS#8 PEM ("PRIVATE KEY") of an extractable private key. */
export async function exportPrivateKeyPem(key: CryptoKey): Promise<string> {
  return encodePem(await exportPrivateKeyDer(key), PemLabel.privateKey);
}
