/**
 * Reading and writing certificates, CSRs and PKCS#8 keys as PEM files, in
 * both runtimes. Keys are written with mode 0600, atomically.
 *
 * @module
 */

import { readFileText, writeFileAtomic } from "../_runtime/fs.ts";
import {
  certificateToPem,
  exportPrivateKeyPem,
  importPrivateKey,
  parseCertificates,
  type X509Certificate,
} from "./pem.ts";

/** Largest PEM file read, in bytes. */
export const MAX_PEM_FILE_BYTES = 1024 * 1024;

async function readPem(path: string): Promise<string> {
  const text = await readFileText(path);
  if (text.length > MAX_PEM_FILE_BYTES)
    throw new RangeError(`${path}: larger than ${MAX_PEM_FILE_BYTES} bytes`);
  return text;
}

/**
 * Read a credential file as text (a PEM bundle, an OpenSSH private key, a
 * known_hosts file), in either runtime; at most {@link MAX_PEM_FILE_BYTES}.
 */
export function readCredentialFile(path: string): Promise<string> {
  return readPem(path);
}

/** Read every certificate in a PEM file (a chain or a CA bundle), in order. */
export async function readCertificatesFile(path: string): Promise<X509Certificate[]> {
  return parseCertificates(await readPem(path));
}

/** Write certificates (a chain, leaf first) as one PEM file, mode 0644. */
export async function writeCertificatesFile(
  path: string,
  certs: X509Certificate | readonly X509Certificate[],
): Promise<void> {
  await writeFileAtomic(path, certificateToPem(certs), 0o644);
}

/** Read a PKCS#8 PEM private key file and derive its public key. */
export async function readPrivateKeyFile(path: string): Promise<CryptoKeyPair> {
  return await importPrivateKey(await readPem(path));
}

/** Write a private key as PKCS#8 PEM, mode 0600. */
export async function writePrivateKeyFile(path: string, key: CryptoKey): Promise<void> {
  await writeFileAtomic(path, await exportPrivateKeyPem(key), 0o600);
}
