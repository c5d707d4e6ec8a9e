/**
 * Key exchange methods: curve25519-sha256 (RFC 8731, also under its
 * `@libssh.org` name) and ecdh-sha2-nistp256 (RFC 5656), the exchange hash and
 * key derivation (RFC 4253 §7.2, §8).
 *
 * @module
 */

import { hash } from "../_runtime/crypto.ts";
import { ProtocolError } from "../channel/errors.ts";
import { bufferSource, SshWriter } from "./wire.ts";

/** Key exchange methods we implement, in default preference order. */
export const KEX_ALGORITHMS: readonly string[] = [
  "curve25519-sha256",
  "curve25519-sha256@libssh.org",
  "ecdh-sha2-nistp256",
];

/** One ephemeral key pair of a key exchange. */
export interface KexEphemeral {
  /** Q_C as sent in KEX_ECDH_INIT. */
  readonly publicKey: Uint8Array;
  /** The shared secret K (as an unsigned big-endian integer) from the server's Q_S. */
  derive(peer: Uint8Array): Promise<Uint8Array>;
}

/** Generate the client's ephemeral key for `method`. */
export async function startKex(method: string): Promise<KexEphemeral> {
  if (method === "curve25519-sha256" || method === "curve25519-sha256@libssh.org") {
    const kp = (await crypto.subtle.generateKey({ name: "X25519" }, true, [
      "deriveBits",
    ])) as CryptoKeyPair;
    const pub = new Uint8Array(await crypto.subtle.exportKey("raw", kp.publicKey));
    return {
      publicKey: pub,
      async derive(peer) {
        if (peer.byteLength !== 32) throw new ProtocolError("X25519 public key is not 32 bytes");
        const pk = await crypto.subtle.importKey(
          "raw",
          bufferSource(peer),
          { name: "X25519" },
          false,
          [],
        );
        let k: Uint8Array;
        try {
          k = new Uint8Array(
            await crypto.subtle.deriveBits({ name: "X25519", public: pk }, kp.privateKey, 256),
          );
        } catch (err) {
          throw new ProtocolError("X25519 key agreement failed (small-order point?)", {
            cause: err,
          });
        }
        if (k.every((b) => b === 0)) throw new ProtocolError("X25519 shared secret is all zero");
        return k;
      },
    };
  }
  if (method === "ecdh-sha2-nistp256") {
    const kp = (await crypto.subtle.generateKey({ name: "ECDH", namedCurve: "P-256" }, true, [
      "deriveBits",
    ])) as CryptoKeyPair;
    const pub = new Uint8Array(await crypto.subtle.exportKey("raw", kp.publicKey));
    return {
      publicKey: pub,
      async derive(peer) {
        let pk: CryptoKey;
        try {
          pk = await crypto.subtle.importKey(
            "raw",
            bufferSource(peer),
            { name: "ECDH", namedCurve: "P-256" },
            false,
            [],
          );
        } catch (err) {
          throw new ProtocolError("server's P-256 point is invalid", { cause: err });
        }
        return new Uint8Array(
          await crypto.subtle.deriveBits({ name: "ECDH", public: pk }, kp.privateKey, 256),
        );
      },
    };
  }
  throw new ProtocolError(`unsupported key exchange ${method}`);
}

/** Inputs of the exchange hash H. */
export interface ExchangeHashInput {
  readonly clientIdent: string;
  readonly serverIdent: string;
  readonly clientKexInit: Uint8Array;
  readonly serverKexInit: Uint8Array;
  readonly hostKey: Uint8Array;
  readonly clientPublic: Uint8Array;
  readonly serverPublic: Uint8Array;
  readonly sharedSecret: Uint8Array;
}

/** H = SHA-256(V_C || V_S || I_C || I_S || K_S || Q_C || Q_S || K) (all our methods use SHA-256). */
export function exchangeHash(i: ExchangeHashInput): Uint8Array {
  const w = new SshWriter(2048);
  w.string(i.clientIdent)
    .string(i.serverIdent)
    .bytes(i.clientKexInit)
    .bytes(i.serverKexInit)
    .bytes(i.hostKey)
    .bytes(i.clientPublic)
    .bytes(i.serverPublic)
    .mpint(i.sharedSecret);
  return hash("sha256", w.finish());
}

/** RFC 4253 §7.2: HASH(K || H || letter || session_id), extended to `length` bytes. */
export function deriveKey(
  sharedSecret: Uint8Array,
  h: Uint8Array,
  letter: string,
  sessionId: Uint8Array,
  length: number,
): Uint8Array {
  if (length === 0) return new Uint8Array(0);
  const k = new SshWriter(64).mpint(sharedSecret).finish();
  const out = new Uint8Array(Math.ceil(length / 32) * 32);
  let block = hash("sha256", k, h, new Uint8Array([letter.charCodeAt(0)]), sessionId);
  out.set(block, 0);
  let have = block.byteLength;
  while (have < length) {
    block = hash("sha256", k, h, out.subarray(0, have));
    out.set(block, have);
    have += block.byteLength;
  }
  return out.subarray(0, length);
}
