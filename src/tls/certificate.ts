/**
 * What spokewire reads from a verified peer certificate: subject names, SANs,
 * validity and the SHA-256 fingerprint of the DER.
 *
 * @module
 */

import "reflect-metadata";
import { sha256 } from "@noble/hashes/sha2.js";
import * as x509 from "@peculiar/x509";
import { MalformedInputError } from "../channel/errors.ts";
import { toHex } from "../pki/_der.ts";

/** Subject alternative names by type. */
export interface SubjectAltNames {
  readonly dns: readonly string[];
  readonly ip: readonly string[];
  readonly uri: readonly string[];
  readonly email: readonly string[];
}

/** One certificate of a peer's chain, summarized. */
export interface CertSummary {
  readonly subject: string;
  readonly issuer: string;
  readonly serialNumber: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** SHA-256 of the DER, lower-case hex. */
  readonly fingerprint: string;
  readonly commonName: string | undefined;
  readonly organizations: readonly string[];
  readonly sans: SubjectAltNames;
  readonly der: Uint8Array;
}

/** The summary of a parsed certificate (`der`: its DER). */
export function summaryOf(c: x509.X509Certificate, der: Uint8Array): CertSummary {
  const dns: string[] = [];
  const ip: string[] = [];
  const uri: string[] = [];
  const email: string[] = [];
  const san = c.getExtension(x509.SubjectAlternativeNameExtension);
  for (const n of san?.names.items ?? []) {
    if (n.type === "dns") dns.push(n.value);
    else if (n.type === "ip") ip.push(n.value);
    else if (n.type === "url") uri.push(n.value);
    else if (n.type === "email") email.push(n.value);
  }
  return {
    subject: c.subject,
    issuer: c.issuer,
    serialNumber: c.serialNumber,
    notBefore: c.notBefore,
    notAfter: c.notAfter,
    fingerprint: toHex(sha256(der)),
    commonName: c.subjectName.getField("CN")[0],
    organizations: c.subjectName.getField("O"),
    sans: { dns, ip, uri, email },
    der,
  };
}

/** Parse and summarize a DER certificate; MalformedInputError when it does not parse. */
export async function summarizeCertificate(der: Uint8Array): Promise<CertSummary> {
  let c: x509.X509Certificate;
  try {
    c = new x509.X509Certificate(der.slice());
  } catch (err) {
    throw new MalformedInputError("peer certificate does not parse", { cause: err });
  }
  return summaryOf(c, der);
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/**
 * Check that `pem` holds at least one parseable certificate (some runtimes
 * accept garbage silently). Throws {@link MalformedInputError} naming `field`.
 */
export function checkPemCertificates(pem: string, field: string): void {
  const blocks = typeof pem === "string" ? (pem.match(PEM_CERT) ?? []) : [];
  if (blocks.length === 0) throw new MalformedInputError(`${field}: no PEM certificate found`);
  for (const b of blocks) {
    try {
      new x509.X509Certificate(b);
    } catch (err) {
      throw new MalformedInputError(`${field}: a certificate does not parse`, { cause: err });
    }
  }
}

/** Check that `pem` looks like a PEM private key. Throws {@link MalformedInputError}. */
export function checkPemKey(pem: string, field: string): void {
  if (
    typeof pem !== "string" ||
    !/-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]+-----END [A-Z ]*PRIVATE KEY-----/.test(pem)
  ) {
    throw new MalformedInputError(`${field}: no PEM private key found`);
  }
}
