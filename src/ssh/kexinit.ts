/**
 * KEXINIT (RFC 4253 §7.1): encoding, decoding and algorithm negotiation.
 *
 * @module
 */

import { ProtocolError } from "../channel/errors.ts";
import { SSH_MSG } from "./constants.ts";
import { SshReader, SshWriter } from "./wire.ts";

/** The ten algorithm lists of a KEXINIT. */
export interface KexInit {
  readonly cookie: Uint8Array;
  readonly kex: string[];
  readonly hostKey: string[];
  readonly cipherC2S: string[];
  readonly cipherS2C: string[];
  readonly macC2S: string[];
  readonly macS2C: string[];
  readonly compC2S: string[];
  readonly compS2C: string[];
  readonly firstKexFollows: boolean;
}

/** What both sides agreed on. */
export interface Negotiated {
  readonly kex: string;
  readonly hostKey: string;
  readonly cipherC2S: string;
  readonly cipherS2C: string;
  /** Undefined for AEAD ciphers. */
  readonly macC2S: string | undefined;
  readonly macS2C: string | undefined;
}

/** Encode a KEXINIT payload. */
export function encodeKexInit(k: Omit<KexInit, "cookie" | "firstKexFollows">): Uint8Array {
  const w = new SshWriter(512);
  w.byte(SSH_MSG.KEXINIT).raw(crypto.getRandomValues(new Uint8Array(16)));
  for (const list of [
    k.kex,
    k.hostKey,
    k.cipherC2S,
    k.cipherS2C,
    k.macC2S,
    k.macS2C,
    k.compC2S,
    k.compS2C,
    [],
    [],
  ]) {
    w.nameList(list);
  }
  w.bool(false).uint32(0);
  return w.finish();
}

/** Decode a KEXINIT payload (message byte included). Throws ProtocolError. */
export function decodeKexInit(payload: Uint8Array): KexInit {
  const r = new SshReader(payload);
  if (r.byte() !== SSH_MSG.KEXINIT) throw new ProtocolError("not a KEXINIT");
  const cookie = r.raw(16);
  const lists = Array.from({ length: 10 }, () => r.nameList());
  const firstKexFollows = r.bool();
  r.uint32();
  r.end("KEXINIT");
  return {
    cookie,
    kex: lists[0]!,
    hostKey: lists[1]!,
    cipherC2S: lists[2]!,
    cipherS2C: lists[3]!,
    macC2S: lists[4]!,
    macS2C: lists[5]!,
    compC2S: lists[6]!,
    compS2C: lists[7]!,
    firstKexFollows,
  };
}

function pick(what: string, client: readonly string[], server: readonly string[]): string {
  for (const c of client) if (server.includes(c)) return c;
  throw new ProtocolError(
    `no common ${what} algorithm: we offer ${client.join(",")}, the server ${server.join(",")}`,
  );
}

/** RFC 4253 §7.1: the first client algorithm the server also supports, per list. */
export function negotiate(
  client: KexInit | Omit<KexInit, "cookie" | "firstKexFollows">,
  server: KexInit,
  aead: (cipher: string) => boolean,
): Negotiated {
  const kexNames = client.kex.filter(
    (n) => !n.startsWith("ext-info-") && !n.startsWith("kex-strict-"),
  );
  const cipherC2S = pick("cipher (client to server)", client.cipherC2S, server.cipherC2S);
  const cipherS2C = pick("cipher (server to client)", client.cipherS2C, server.cipherS2C);
  pick("compression (client to server)", client.compC2S, server.compC2S);
  pick("compression (server to client)", client.compS2C, server.compS2C);
  return {
    kex: pick("key exchange", kexNames, server.kex),
    hostKey: pick("host key", client.hostKey, server.hostKey),
    cipherC2S,
    cipherS2C,
    macC2S: aead(cipherC2S)
      ? undefined
      : pick("MAC (client to server)", client.macC2S, server.macC2S),
    macS2C: aead(cipherS2C)
      ? undefined
      : pick("MAC (server to client)", client.macS2C, server.macS2C),
  };
}
