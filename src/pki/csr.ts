/**
 * The node side of CSR bootstrap: make a key and a PKCS#10 request.
 *
 * @module
 */

import { x509 } from "./_x509.ts";
import { encodeSubjectName } from "./issue.ts";
import {
  DEFAULT_KEY_ALGORITHM,
  generateKeyPair,
  type KeyAlgorithm,
  signingAlgorithmFor,
} from "./keys.ts";
import { formatIp, parseIp } from "./names.ts";
import { csrToPem, type Pkcs10CertificateRequest } from "./pem.ts";

/** What to put in a CSR. */
export interface CsrOptions {
  readonly commonName?: string;
  readonly organizations?: readonly string[];
  readonly dnsNames?: readonly string[];
  readonly ips?: readonly string[];
  /** Email SANs (bootstrap policy refuses them unless allowed). */
  readonly emails?: readonly string[];
  /** URI SANs (bootstrap policy refuses them unless allowed). */
  readonly uris?: readonly string[];
  /** Sign with this key pair; otherwise a new one of `keyAlgorithm` is made. */
  readonly keys?: CryptoKeyPair;
  readonly keyAlgorithm?: KeyAlgorithm;
}

/** A CSR with the key pair that signed it. */
export interface CsrWithKey {
  readonly csr: Pkcs10CertificateRequest;
  readonly csrPem: string;
  readonly keys: CryptoKeyPair;
}

/**
 * Create a PKCS#10 request signed by its own key (proof of possession).
 *
 * @example
 * ```ts
 * import { createCsr } from "../../mod.ts";
 * const { csrPem } = await createCsr({ commonName: "system:node:n1", organizations: ["system:nodes"] });
 * if (!csrPem.startsWith("-----BEGIN CERTIFICATE REQUEST-----")) throw new Error();
 * ```
 */
export async function createCsr(opts: CsrOptions): Promise<CsrWithKey> {
  const keys = opts.keys ?? (await generateKeyPair(opts.keyAlgorithm ?? DEFAULT_KEY_ALGORITHM));
  const name = new x509.Name(
    encodeSubjectName(opts.commonName, opts.organizations).buffer as ArrayBuffer,
  );
  const san: x509.JsonGeneralNames = [];
  for (const d of opts.dnsNames ?? []) san.push({ type: "dns", value: d });
  for (const ip of opts.ips ?? []) {
    const b = parseIp(ip);
    if (!b) throw new RangeError(`ips: ${JSON.stringify(ip)} is not an IP address`);
    // Canonical text only: the library mis-encodes some spellings (e.g. embedded IPv4 in IPv6).
    san.push({ type: "ip", value: formatIp(b) });
  }
  for (const e of opts.emails ?? []) san.push({ type: "email", value: e });
  for (const u of opts.uris ?? []) san.push({ type: "url", value: u });
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name,
    keys,
    signingAlgorithm: signingAlgorithmFor(keys.privateKey),
    extensions: san.length > 0 ? [new x509.SubjectAlternativeNameExtension(san, false)] : [],
  });
  return { csr, csrPem: csrToPem(csr), keys };
}

/** Options of {@link createNodeCsr}. */
export interface NodeCsrOptions {
  /** The node's name; the CSR asks for CN `system:node:<nodeName>`, O `system:nodes`. */
  readonly nodeName: string;
  /** Serving names (only for a serving certificate). */
  readonly dnsNames?: readonly string[];
  readonly ips?: readonly string[];
  readonly keys?: CryptoKeyPair;
  readonly keyAlgorithm?: KeyAlgorithm;
}

/** The kubelet-style node CSR: CN `system:node:<nodeName>`, O `system:nodes`. */
export async function createNodeCsr(opts: NodeCsrOptions): Promise<CsrWithKey> {
  if (typeof opts.nodeName !== "string" || opts.nodeName.length === 0) {
    throw new RangeError("nodeName: must be a non-empty string");
  }
  return await createCsr({
    commonName: `system:node:${opts.nodeName}`,
    organizations: ["system:nodes"],
    dnsNames: opts.dnsNames,
    ips: opts.ips,
    keys: opts.keys,
    keyAlgorithm: opts.keyAlgorithm,
  });
}
