/**
 * From PKI material (what `src/pki`'s `issueCredential` and
 * `CertificateRotator` produce: an X509Certificate, a CryptoKey and the
 * intermediates) to {@link TlsCredentials} (PEM text), so that live rotation
 * wires to a TLS listener, acceptor or dialer in one line.
 *
 * @module
 */

import { certificateToPem, exportPrivateKeyPem, type X509Certificate } from "../pki/pem.ts";
import type { CertificateMaterial } from "../pki/rotation.ts";
import type { TlsCredentials } from "./config.ts";

/** Trust anchors as PEM text or parsed certificates, one or several. */
export type TlsTrustAnchors = string | X509Certificate | readonly (string | X509Certificate)[];

/** Anything whose credentials can be swapped live: a TLS listener, acceptor or dialer. */
export interface TlsCredentialsTarget {
  updateCredentials(credentials: TlsCredentials): void;
}

function caPems(ca: TlsTrustAnchors): string[] {
  const list: readonly (string | X509Certificate)[] = Array.isArray(ca)
    ? (ca as readonly (string | X509Certificate)[])
    : [ca as string | X509Certificate];
  return list.map((c) => (typeof c === "string" ? c : certificateToPem(c)));
}

/**
 * The TLS credentials for `material`: its certificate followed by its
 * intermediates (the chain a peer needs), its private key as PKCS#8 PEM (the
 * key must be extractable, as `issueCredential` makes it), and `ca` as the
 * bundle the peer must chain to.
 *
 * @example
 * ```ts
 * import { createRootCa, issueCredential, TlsAcceptor, tlsCredentialsFromMaterial } from "../../mod.ts";
 * const ca = await createRootCa({ commonName: "cluster-ca" });
 * const server = await issueCredential(ca, { profile: "server", dnsNames: ["node-1.example"] });
 * const credentials = await tlsCredentialsFromMaterial(server, ca.certificate);
 * const acceptor = new TlsAcceptor({ credentials });
 * acceptor.updateCredentials(await tlsCredentialsFromMaterial(
 *   await issueCredential(ca, { profile: "server", dnsNames: ["node-1.example"] }),
 *   ca.certificate,
 * ));
 * if (!credentials.cert?.includes("BEGIN CERTIFICATE")) throw new Error("no certificate");
 * ```
 */
export async function tlsCredentialsFromMaterial(
  material: CertificateMaterial,
  ca: TlsTrustAnchors,
): Promise<TlsCredentials> {
  if (typeof material !== "object" || material === null) {
    throw new TypeError("material must be an object");
  }
  const cert = certificateToPem([material.certificate, ...material.intermediates]);
  const key = await exportPrivateKeyPem(material.privateKey);
  return { cert, key, ca: caPems(ca) };
}

/**
 * An `onRotate` callback for a `CertificateRotator` that swaps each new
 * certificate into `target` (a TLS listener, acceptor or dialer): open
 * connections keep the old material, new handshakes use the new one. If the
 * new material does not load, the error propagates and the old credentials
 * stay in force.
 *
 * @example
 * ```ts
 * import {
 *   CertificateRotator, createRootCa, issueCredential, TlsAcceptor,
 *   tlsCredentialsFromMaterial, updateTlsCredentialsOnRotate,
 * } from "../../mod.ts";
 * const ca = await createRootCa({ commonName: "cluster-ca" });
 * const issue = () => issueCredential(ca, { profile: "server", dnsNames: ["node-1.example"] });
 * const initial = await issue();
 * const acceptor = new TlsAcceptor({
 *   credentials: await tlsCredentialsFromMaterial(initial, ca.certificate),
 * });
 * const rotator = new CertificateRotator({
 *   initial,
 *   renew: issue,
 *   onRotate: updateTlsCredentialsOnRotate(acceptor, ca.certificate),
 * });
 * await rotator.rotateNow(); // the acceptor now presents the new certificate
 * await rotator.stop();
 * ```
 */
export function updateTlsCredentialsOnRotate(
  target: TlsCredentialsTarget,
  ca: TlsTrustAnchors,
): (material: CertificateMaterial) => Promise<void> {
  if (typeof target?.updateCredentials !== "function") {
    throw new TypeError("target must have updateCredentials()");
  }
  const anchors = caPems(ca);
  return async (material) => {
    target.updateCredentials(await tlsCredentialsFromMaterial(material, anchors));
  };
}
