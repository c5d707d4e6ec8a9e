/**
 * The identity a leaf certificate carries: user (CN), groups (O), SAN names
 * and the SHA-256 fingerprint of its DER.
 *
 * @module
 */

import { sha256 } from "@noble/hashes/sha2.js";
import { MalformedInputError } from "../channel/errors.ts";
import { DerError, toHex } from "./_der.ts";
import { type ParsedCert, parseCertificateDer, parseGeneralNames } from "./_parse.ts";
import { x509 } from "./_x509.ts";
import { formatIp } from "./names.ts";
import { ExtensionOid } from "./oids.ts";
import { type CertificateInput, decodePem, PemLabel } from "./pem.ts";

/** Who a leaf certificate names. Read it only after {@link verifyChain} succeeded. */
export interface LeafIdentity {
  /** Subject common name (the user, e.g. "system:node:node-1"), if any. */
  readonly cn: string | undefined;
  /** Subject organisations (the groups, e.g. ["system:nodes"]). */
  readonly groups: readonly string[];
  /** SAN DNS names, lower case. */
  readonly dnsNames: readonly string[];
  /** SAN IP addresses in canonical text (RFC 5952 for IPv6). */
  readonly ips: readonly string[];
  /** SHA-256 of the certificate DER, lower-case hex. */
  readonly fingerprintSha256Hex: string;
}

/** DER bytes of any certificate input, without full parsing. */
export function certificateDer(input: CertificateInput): Uint8Array {
  if (input instanceof x509.X509Certificate) return new Uint8Array(input.rawData.slice(0));
  if (typeof input === "string") {
    const blocks = decodePem(input, PemLabel.certificate);
    if (blocks.length !== 1) throw new MalformedInputError("expected one CERTIFICATE PEM block");
    return blocks[0];
  }
  if (input instanceof Uint8Array) return input;
  throw new TypeError("certificate must be PEM text, DER bytes or an X509Certificate");
}

/** Identity of an already parsed certificate. */
export function identityOf(cert: ParsedCert): LeafIdentity {
  const dnsNames: string[] = [];
  const ips: string[] = [];
  for (const e of cert.extensions) {
    if (e.oid !== ExtensionOid.subjectAltName) continue;
    for (const n of parseGeneralNames(e.value)) {
      if (n.type === "dns") dnsNames.push(n.value.toLowerCase());
      else if (n.type === "ip") ips.push(formatIp(n.bytes));
    }
  }
  return {
    cn: cert.commonNames[0],
    groups: [...cert.organizations],
    dnsNames,
    ips,
    fingerprintSha256Hex: toHex(sha256(cert.der)),
  };
}

/**
 * Extract the identity from a leaf (PEM, DER or parsed). Synchronous, so a TLS
 * callback can use it. Throws {@link MalformedInputError} on bad input.
 *
 * @example
 * ```ts
 * import { createRootCa, issueCredential, leafIdentity } from "../../mod.ts";
 * const ca = await createRootCa({ commonName: "ca" });
 * const { certificate } = await issueCredential(ca, {
 *   profile: "client", commonName: "system:node:n1", organizations: ["system:nodes"],
 * });
 * const id = leafIdentity(certificate);
 * if (id.cn !== "system:node:n1" || id.groups[0] !== "system:nodes") throw new Error();
 * ```
 */
export function leafIdentity(leaf: CertificateInput): LeafIdentity {
  try {
    return identityOf(parseCertificateDer(certificateDer(leaf)));
  } catch (e) {
    if (e instanceof DerError) {
      throw new MalformedInputError(`cannot read certificate identity: ${e.message}`, { cause: e });
    }
    throw e;
  }
}
