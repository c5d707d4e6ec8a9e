/**
 * User keys in OpenSSH's private key format (PROTOCOL.key), unencrypted:
 * Ed25519, ECDSA P-256 and RSA. Signing goes through WebCrypto.
 *
 * @module
 */

import { MalformedInputError, ProtocolError } from "../channel/errors.ts";
import { bufferSource, fromBase64, fromUtf8, SshReader, SshWriter, toBase64Url } from "./wire.ts";

/** A loaded user key that can sign. */
export interface SshPrivateKey {
  /** `ssh-ed25519`, `ecdsa-sha2-nistp256` or `ssh-rsa`. */
  readonly type: string;
  /** The public-key blob. */
  readonly publicBlob: Uint8Array;
  readonly comment: string;
  /** Sign `data`; `alg` picks rsa-sha2-256/512 for RSA. Returns the SSH signature blob. */
  sign(data: Uint8Array, alg: string): Promise<Uint8Array>;
}

const MAGIC = "openssh-key-v1\0";

function bigOf(b: Uint8Array): bigint {
  let v = 0n;
  for (const x of b) v = (v << 8n) | BigInt(x);
  return v;
}

function bytesOf(v: bigint): Uint8Array {
  const hex = v.toString(16);
  const s = hex.length % 2 ? `0${hex}` : hex;
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = Number.parseInt(s.slice(2 * i, 2 * i + 2), 16);
  return out;
}

function bad(msg: string, cause?: unknown): MalformedInputError {
  return new MalformedInputError(`OpenSSH private key: ${msg}`, { cause });
}

/**
 * Parse an unencrypted OpenSSH private key (`-----BEGIN OPENSSH PRIVATE KEY-----`).
 * Throws {@link MalformedInputError} on anything else, including encrypted keys.
 */
export async function parseOpenSshPrivateKey(pem: string): Promise<SshPrivateKey> {
  const m = /-----BEGIN OPENSSH PRIVATE KEY-----([\s\S]*?)-----END OPENSSH PRIVATE KEY-----/.exec(
    pem,
  );
  if (!m) throw bad("no BEGIN/END OPENSSH PRIVATE KEY block");
  const raw = fromBase64(m[1]!.replace(/\s+/g, ""));
  if (!raw) throw bad("invalid base64");
  try {
    return await parseBinary(raw);
  } catch (err) {
    if (err instanceof MalformedInputError) throw err;
    throw bad(err instanceof ProtocolError ? err.message : "unparseable", err);
  }
}

async function parseBinary(raw: Uint8Array): Promise<SshPrivateKey> {
  if (fromUtf8(raw.subarray(0, MAGIC.length)) !== MAGIC) throw bad("bad magic");
  const r = new SshReader(raw, MAGIC.length);
  const cipher = r.string(64);
  const kdf = r.string(64);
  r.bytes(1024);
  if (cipher !== "none" || kdf !== "none") {
    throw bad(`encrypted keys (${cipher}/${kdf}) are not supported; decrypt it with ssh-keygen -p`);
  }
  if (r.uint32() !== 1) throw bad("exactly one key is supported");
  const publicBlob = r.bytes(4096).slice();
  const priv = new SshReader(r.bytes(16384));
  const check1 = priv.uint32();
  const check2 = priv.uint32();
  if (check1 !== check2) throw bad("check integers differ (wrong passphrase or corrupt)");
  const type = priv.string(64);
  if (type === "ssh-ed25519") {
    const pub = priv.bytes(32);
    const secret = priv.bytes(64);
    const comment = priv.string(4096);
    if (pub.byteLength !== 32 || secret.byteLength !== 64) throw bad("bad ed25519 key lengths");
    const key = await crypto.subtle.importKey(
      "jwk",
      {
        kty: "OKP",
        crv: "Ed25519",
        d: toBase64Url(secret.subarray(0, 32)),
        x: toBase64Url(pub),
        ext: true,
      },
      { name: "Ed25519" },
      false,
      ["sign"],
    );
    return {
      type,
      publicBlob,
      comment,
      async sign(data) {
        const sig = new Uint8Array(
          await crypto.subtle.sign({ name: "Ed25519" }, key, bufferSource(data)),
        );
        return new SshWriter(100).string("ssh-ed25519").bytes(sig).finish();
      },
    };
  }
  if (type === "ecdsa-sha2-nistp256") {
    if (priv.string(64) !== "nistp256") throw bad("only the nistp256 curve is supported");
    const q = priv.bytes(65);
    const d = priv.mpint(33);
    const comment = priv.string(4096);
    if (q.byteLength !== 65 || q[0] !== 4) throw bad("bad ecdsa public point");
    const pad = (b: Uint8Array): Uint8Array => {
      const o = new Uint8Array(32);
      o.set(b, 32 - b.byteLength);
      return o;
    };
    const key = await crypto.subtle.importKey(
      "jwk",
      {
        kty: "EC",
        crv: "P-256",
        x: toBase64Url(q.subarray(1, 33)),
        y: toBase64Url(q.subarray(33, 65)),
        d: toBase64Url(pad(d)),
        ext: true,
      },
      { name: "ECDSA", namedCurve: "P-256" },
      false,
      ["sign"],
    );
    return {
      type,
      publicBlob,
      comment,
      async sign(data) {
        const sig = new Uint8Array(
          await crypto.subtle.sign({ name: "ECDSA", hash: "SHA-256" }, key, bufferSource(data)),
        );
        const inner = new SshWriter(80).mpint(sig.subarray(0, 32)).mpint(sig.subarray(32)).finish();
        return new SshWriter(120).string(type).bytes(inner).finish();
      },
    };
  }
  if (type === "ssh-rsa") {
    const n = priv.mpint(1025);
    const e = priv.mpint(16);
    const d = priv.mpint(1025);
    const iqmp = priv.mpint(513);
    const p = priv.mpint(513);
    const q = priv.mpint(513);
    const comment = priv.string(4096);
    const dB = bigOf(d);
    const jwk = {
      kty: "RSA",
      n: toBase64Url(n),
      e: toBase64Url(e),
      d: toBase64Url(d),
      p: toBase64Url(p),
      q: toBase64Url(q),
      dp: toBase64Url(bytesOf(dB % (bigOf(p) - 1n))),
      dq: toBase64Url(bytesOf(dB % (bigOf(q) - 1n))),
      qi: toBase64Url(iqmp),
      ext: true,
    };
    const k256 = await crypto.subtle.importKey(
      "jwk",
      jwk,
      { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" },
      false,
      ["sign"],
    );
    const k512 = await crypto.subtle.importKey(
      "jwk",
      jwk,
      { name: "RSASSA-PKCS1-v1_5", hash: "SHA-512" },
      false,
      ["sign"],
    );
    return {
      type,
      publicBlob,
      comment,
      async sign(data, alg) {
        const k = alg === "rsa-sha2-512" ? k512 : k256;
        const sig = new Uint8Array(
          await crypto.subtle.sign({ name: "RSASSA-PKCS1-v1_5" }, k, bufferSource(data)),
        );
        return new SshWriter(600)
          .string(alg === "rsa-sha2-512" ? "rsa-sha2-512" : "rsa-sha2-256")
          .bytes(sig)
          .finish();
      },
    };
  }
  throw bad(`unsupported key type ${type}`);
}
