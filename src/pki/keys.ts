/**
 * Key generation and the signing parameters for each supported key type.
 *
 * @module
 */

/** Key types spokewire generates. ECDSA P-256 is the default everywhere. */
export type KeyAlgorithm = "ecdsa-p256" | "ecdsa-p384" | "ed25519" | "rsa-3072";

/** The key type used when none is given. */
export const DEFAULT_KEY_ALGORITHM: KeyAlgorithm = "ecdsa-p256";

/** Hashes we sign with (SHA-1 is refused). */
export type SignatureHash = "SHA-256" | "SHA-384" | "SHA-512";

function genParams(alg: KeyAlgorithm): EcKeyGenParams | RsaHashedKeyGenParams | Algorithm {
  switch (alg) {
    case "ecdsa-p256":
      return { name: "ECDSA", namedCurve: "P-256" } as EcKeyGenParams;
    case "ecdsa-p384":
      return { name: "ECDSA", namedCurve: "P-384" } as EcKeyGenParams;
    case "ed25519":
      return { name: "Ed25519" };
    case "rsa-3072":
      return {
        name: "RSASSA-PKCS1-v1_5",
        modulusLength: 3072,
        publicExponent: new Uint8Array([1, 0, 1]),
        hash: "SHA-256",
      } as RsaHashedKeyGenParams;
    default:
      throw new RangeError(`keyAlgorithm: unsupported value ${JSON.stringify(alg)}`);
  }
}

/**
 * Generate a signing key pair. Keys are extractable so they can be written as PKCS#8.
 *
 * @example
 * ```ts
 * import { generateKeyPair } from "../../mod.ts";
 * const keys = await generateKeyPair("ecdsa-p256");
 * if (keys.privateKey.type !== "private") throw new Error();
 * ```
 */
export async function generateKeyPair(
  alg: KeyAlgorithm = DEFAULT_KEY_ALGORITHM,
): Promise<CryptoKeyPair> {
  return (await crypto.subtle.generateKey(genParams(alg), true, [
    "sign",
    "verify",
  ])) as CryptoKeyPair;
}

/**
 * The WebCrypto signing algorithm for a private key (ECDSA with a hash, RSA
 * PKCS#1 v1.5 with a hash, or Ed25519). SHA-1 is never used.
 */
export function signingAlgorithmFor(
  key: CryptoKey,
  hash?: SignatureHash,
): Algorithm & { hash?: string } {
  const a = key.algorithm as Algorithm & { namedCurve?: string; hash?: { name: string } };
  if (hash !== undefined && !["SHA-256", "SHA-384", "SHA-512"].includes(hash)) {
    throw new RangeError(`hash: ${JSON.stringify(hash)} is not allowed (SHA-256/384/512 only)`);
  }
  switch (a.name) {
    case "ECDSA":
      return { name: "ECDSA", hash: hash ?? (a.namedCurve === "P-256" ? "SHA-256" : "SHA-384") };
    case "RSASSA-PKCS1-v1_5":
      // WebCrypto binds the hash to an RSA key at import time.
      if (a.hash && !["SHA-256", "SHA-384", "SHA-512"].includes(a.hash.name)) {
        throw new RangeError(`key: RSA key bound to ${a.hash.name}; SHA-1 is refused`);
      }
      return { name: "RSASSA-PKCS1-v1_5", hash: a.hash?.name ?? "SHA-256" };
    case "Ed25519":
      return { name: "Ed25519" };
    default:
      throw new RangeError(`key: unsupported signing key algorithm ${a.name}`);
  }
}
