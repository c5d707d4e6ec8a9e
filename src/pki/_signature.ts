/**
 * Signature verification over exact signed bytes with WebCrypto, and the key
 * strength policy (what counts as a weak key or a weak algorithm).
 *
 * @module
 */

import { PeerVerificationError } from "../channel/errors.ts";
import { children, DerError, integerBytes, parseOne, Tag, toHex } from "./_der.ts";
import type { AlgId, ParsedSpki } from "./_parse.ts";
import { KeyOid, SignatureOid } from "./oids.ts";

/** Smallest RSA modulus we accept anywhere, in bits. */
export const MIN_RSA_BITS = 2048;

const CURVES: Record<string, { name: string; size: number }> = {
  [KeyOid.p256]: { name: "P-256", size: 32 },
  [KeyOid.p384]: { name: "P-384", size: 48 },
  [KeyOid.p521]: { name: "P-521", size: 66 },
};

/** Throw PeerVerificationError("weak-key" | "unsupported" | "malformed") unless the key is acceptable. */
export function checkKeyStrength(spki: ParsedSpki, what: string): void {
  switch (spki.kind) {
    case "ec":
      if (spki.curve === undefined) {
        throw new PeerVerificationError("malformed", `${what}: EC key without a named curve`);
      }
      if (spki.curve === KeyOid.p192) {
        throw new PeerVerificationError("weak-key", `${what}: P-192 keys are too weak`);
      }
      if (!CURVES[spki.curve]) {
        throw new PeerVerificationError("unsupported", `${what}: unsupported curve ${spki.curve}`);
      }
      if (spki.key[0] !== 4 || spki.key.length !== 1 + 2 * CURVES[spki.curve].size) {
        throw new PeerVerificationError("malformed", `${what}: EC point is not uncompressed`);
      }
      return;
    case "rsa": {
      const bits = spki.rsaBits ?? 0;
      if (bits < MIN_RSA_BITS || bits % 8 !== 0) {
        throw new PeerVerificationError(
          "weak-key",
          `${what}: RSA modulus of ${bits} bits (need at least ${MIN_RSA_BITS}, a multiple of 8)`,
        );
      }
      return;
    }
    case "ed25519":
      return;
    case "dsa":
      throw new PeerVerificationError("weak-key", `${what}: DSA keys are not accepted`);
    default:
      throw new PeerVerificationError(
        "unsupported",
        `${what}: unsupported key algorithm ${spki.alg.oid}`,
      );
  }
}

type SigScheme =
  | { kind: "ecdsa"; hash: string }
  | { kind: "rsa"; hash: string }
  | { kind: "ed25519" };

/** Classify a signature algorithm, refusing weak and unknown ones. */
export function signatureScheme(alg: AlgId, what: string): SigScheme {
  const noParams = (): void => {
    if (alg.params !== undefined) {
      throw new PeerVerificationError("malformed", `${what}: unexpected signature parameters`);
    }
  };
  const nullParams = (): void => {
    if (
      alg.params !== undefined &&
      !(alg.params.tag === Tag.null && alg.params.value.length === 0)
    ) {
      throw new PeerVerificationError(
        "malformed",
        `${what}: RSA signature parameters must be NULL`,
      );
    }
  };
  switch (alg.oid) {
    case SignatureOid.ecdsaSha256:
      noParams();
      return { kind: "ecdsa", hash: "SHA-256" };
    case SignatureOid.ecdsaSha384:
      noParams();
      return { kind: "ecdsa", hash: "SHA-384" };
    case SignatureOid.ecdsaSha512:
      noParams();
      return { kind: "ecdsa", hash: "SHA-512" };
    case SignatureOid.rsaSha256:
      nullParams();
      return { kind: "rsa", hash: "SHA-256" };
    case SignatureOid.rsaSha384:
      nullParams();
      return { kind: "rsa", hash: "SHA-384" };
    case SignatureOid.rsaSha512:
      nullParams();
      return { kind: "rsa", hash: "SHA-512" };
    case SignatureOid.ed25519:
      noParams();
      return { kind: "ed25519" };
    case SignatureOid.ecdsaSha1:
    case SignatureOid.rsaSha1:
    case SignatureOid.rsaMd5:
    case SignatureOid.dsaSha1:
      throw new PeerVerificationError("weak-algorithm", `${what}: signed with a weak algorithm`);
    default:
      throw new PeerVerificationError(
        "unsupported",
        `${what}: unsupported signature algorithm ${alg.oid}`,
      );
  }
}

function ecdsaDerToRaw(sig: Uint8Array, size: number): Uint8Array {
  const parts = children(parseOne(sig, Tag.sequence));
  if (parts.length !== 2) throw new DerError("bad ECDSA signature");
  const out = new Uint8Array(size * 2);
  for (let i = 0; i < 2; i++) {
    let v = integerBytes(parts[i]);
    if (v[0] & 0x80) throw new DerError("negative ECDSA signature component");
    while (v.length > 1 && v[0] === 0) v = v.subarray(1);
    if (v.length > size) throw new DerError("ECDSA signature component too long");
    out.set(v, i * size + (size - v.length));
  }
  return out;
}

/**
 * Imported verification keys by SPKI and algorithm: a CA's key verifies every peer
 * certificate it issued, so it is imported once (bounded, oldest dropped first).
 */
const keyCache = new Map<string, Promise<CryptoKey>>();
const KEY_CACHE_LIMIT = 256;

function importVerifyKey(
  spkiDer: Uint8Array,
  alg: RsaHashedImportParams | EcKeyImportParams | { name: "Ed25519" },
): Promise<CryptoKey> {
  const id = `${JSON.stringify(alg)}|${toHex(spkiDer)}`;
  let key = keyCache.get(id);
  if (!key) {
    key = crypto.subtle.importKey("spki", ab(spkiDer), alg, false, ["verify"]);
    key.catch(() => keyCache.delete(id));
    if (keyCache.size >= KEY_CACHE_LIMIT) keyCache.delete(keyCache.keys().next().value as string);
    keyCache.set(id, key);
  }
  return key;
}

function ab(u: Uint8Array): ArrayBuffer {
  return u.slice().buffer as ArrayBuffer;
}

/**
 * Verify `signature` over `data` with the key in `spki`. Returns false on a
 * bad signature; throws PeerVerificationError for weak/unsupported/malformed input.
 */
export async function verifySignature(
  spki: ParsedSpki,
  alg: AlgId,
  data: Uint8Array,
  signature: Uint8Array,
  what: string,
): Promise<boolean> {
  const scheme = signatureScheme(alg, what);
  try {
    if (scheme.kind === "ecdsa") {
      if (spki.kind !== "ec" || !spki.curve || !CURVES[spki.curve]) return false;
      const curve = CURVES[spki.curve];
      let raw: Uint8Array;
      try {
        raw = ecdsaDerToRaw(signature, curve.size);
      } catch {
        return false;
      }
      const key = await importVerifyKey(spki.der, { name: "ECDSA", namedCurve: curve.name });
      return await crypto.subtle.verify(
        { name: "ECDSA", hash: scheme.hash },
        key,
        ab(raw),
        ab(data),
      );
    }
    if (scheme.kind === "rsa") {
      if (spki.kind !== "rsa") return false;
      const key = await importVerifyKey(spki.der, {
        name: "RSASSA-PKCS1-v1_5",
        hash: scheme.hash,
      });
      return await crypto.subtle.verify("RSASSA-PKCS1-v1_5", key, ab(signature), ab(data));
    }
    if (spki.kind !== "ed25519") return false;
    const key = await importVerifyKey(spki.der, { name: "Ed25519" });
    return await crypto.subtle.verify({ name: "Ed25519" }, key, ab(signature), ab(data));
  } catch (e) {
    if (e instanceof PeerVerificationError) throw e;
    throw new PeerVerificationError("malformed", `${what}: the issuer key cannot be used`, {
      cause: e,
    });
  }
}
