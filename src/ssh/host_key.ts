/**
 * SSH public keys and signatures: ssh-ed25519 (RFC 8709), ecdsa-sha2-nistp256
 * (RFC 5656), ssh-rsa keys with rsa-sha2-256/512 signatures (RFC 8332).
 * Verification goes through WebCrypto.
 *
 * @module
 */

import { hash } from "../_runtime/crypto.ts";
import { PeerVerificationError, ProtocolError } from "../channel/errors.ts";
import { bufferSource, SshReader, toBase64, toBase64Url } from "./wire.ts";

/** Host key algorithms we accept, in default preference order. */
export const HOST_KEY_ALGORITHMS: readonly string[] = [
  "ssh-ed25519",
  "ecdsa-sha2-nistp256",
  "rsa-sha2-512",
  "rsa-sha2-256",
];

/** Smallest RSA modulus we accept, in bits. */
export const MIN_RSA_BITS = 2048;

/** The key type inside a blob for a signature algorithm (`rsa-sha2-*` keys are `ssh-rsa`). */
export function keyTypeOf(alg: string): string {
  return alg.startsWith("rsa-sha2-") ? "ssh-rsa" : alg;
}

/** The key type named at the start of a public-key blob. Throws ProtocolError. */
export function blobKeyType(blob: Uint8Array): string {
  return new SshReader(blob).string(64);
}

/** OpenSSH's fingerprint: `SHA256:` + unpadded base64 of SHA-256(blob). */
export function fingerprintSha256(blob: Uint8Array): string {
  return `SHA256:${toBase64(hash("sha256", blob)).replace(/=+$/, "")}`;
}

/** Hex SHA-256 of a key blob (the PeerIdentity fingerprint). */
export function fingerprintHex(blob: Uint8Array): string {
  return Array.from(hash("sha256", blob), (b) => b.toString(16).padStart(2, "0")).join("");
}

function fixed(mag: Uint8Array, n: number): Uint8Array | undefined {
  if (mag.byteLength > n) return undefined;
  const out = new Uint8Array(n);
  out.set(mag, n - mag.byteLength);
  return out;
}

/** Import an SSH public-key blob as a WebCrypto verification key for `alg`. */
async function importPublic(alg: string, blob: Uint8Array): Promise<CryptoKey> {
  const r = new SshReader(blob);
  const type = r.string(64);
  if (type !== keyTypeOf(alg)) {
    throw new ProtocolError(`host key type ${type} does not match the algorithm ${alg}`);
  }
  if (type === "ssh-ed25519") {
    const pk = r.bytes(32);
    r.end("ssh-ed25519 key");
    if (pk.byteLength !== 32) throw new ProtocolError("ssh-ed25519 key is not 32 bytes");
    return crypto.subtle.importKey("raw", bufferSource(pk), { name: "Ed25519" }, false, ["verify"]);
  }
  if (type === "ecdsa-sha2-nistp256") {
    if (r.string(64) !== "nistp256") throw new ProtocolError("ecdsa key curve is not nistp256");
    const q = r.bytes(133);
    r.end("ecdsa key");
    try {
      return await crypto.subtle.importKey(
        "raw",
        bufferSource(q),
        { name: "ECDSA", namedCurve: "P-256" },
        false,
        ["verify"],
      );
    } catch (err) {
      throw new ProtocolError("ecdsa-sha2-nistp256 key is not a point on the curve", {
        cause: err,
      });
    }
  }
  if (type === "ssh-rsa") {
    const e = r.mpint(16);
    const n = r.mpint(2049);
    r.end("ssh-rsa key");
    const bits = n.byteLength * 8 - Math.clz32(n[0] ?? 0) + 24;
    if (bits < MIN_RSA_BITS) {
      throw new PeerVerificationError(
        "weak-key",
        `RSA key of ${bits} bits (minimum ${MIN_RSA_BITS})`,
      );
    }
    return crypto.subtle.importKey(
      "jwk",
      { kty: "RSA", n: toBase64Url(n), e: toBase64Url(e), ext: true },
      { name: "RSASSA-PKCS1-v1_5", hash: alg === "rsa-sha2-512" ? "SHA-512" : "SHA-256" },
      false,
      ["verify"],
    );
  }
  throw new ProtocolError(`unsupported key type ${type}`);
}

/**
 * Verify an SSH signature blob (`string alg || string sig`) by `keyBlob` over
 * `data`, requiring the signature algorithm to be exactly `alg`. Resolves to
 * false on a bad signature; throws ProtocolError on malformed input.
 */
export async function verifySshSignature(
  alg: string,
  keyBlob: Uint8Array,
  sigBlob: Uint8Array,
  data: Uint8Array,
): Promise<boolean> {
  const key = await importPublic(alg, keyBlob);
  const r = new SshReader(sigBlob);
  const sigAlg = r.string(64);
  if (sigAlg !== alg) {
    throw new ProtocolError(`signature algorithm ${sigAlg} where ${alg} was negotiated`);
  }
  const sig = r.bytes(1024);
  r.end("signature");
  if (alg === "ssh-ed25519") {
    if (sig.byteLength !== 64) return false;
    return crypto.subtle.verify({ name: "Ed25519" }, key, bufferSource(sig), bufferSource(data));
  }
  if (alg === "ecdsa-sha2-nistp256") {
    const sr = new SshReader(sig);
    const rr = fixed(sr.mpint(33), 32);
    const ss = fixed(sr.mpint(33), 32);
    sr.end("ecdsa signature");
    if (!rr || !ss) return false;
    const p1363 = new Uint8Array(64);
    p1363.set(rr, 0);
    p1363.set(ss, 32);
    return crypto.subtle.verify({ name: "ECDSA", hash: "SHA-256" }, key, p1363, bufferSource(data));
  }
  const modBytes = ((key.algorithm as RsaHashedKeyAlgorithm).modulusLength + 7) >> 3;
  const padded = fixed(sig, modBytes);
  if (!padded) return false;
  return crypto.subtle.verify(
    { name: "RSASSA-PKCS1-v1_5" },
    key,
    bufferSource(padded),
    bufferSource(data),
  );
}
