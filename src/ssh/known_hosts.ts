/**
 * OpenSSH `known_hosts` (sshd(8) "SSH_KNOWN_HOSTS FILE FORMAT"): plain and
 * hashed (`|1|salt|hmac`) host patterns, `[host]:port`, wildcards and
 * negation, `@revoked`; `@cert-authority` lines are parsed but never trusted.
 *
 * @module
 */

import { hmac } from "../_runtime/crypto.ts";
import { MalformedInputError } from "../channel/errors.ts";
import { blobKeyType } from "./host_key.ts";
import { equalBytes, fromBase64, toBase64, utf8 } from "./wire.ts";

/** One parsed known_hosts line. */
export interface KnownHostEntry {
  readonly marker: "" | "@revoked" | "@cert-authority";
  /** Host patterns (plain), empty when hashed. */
  readonly patterns: readonly string[];
  /** Hashed host name: salt and HMAC-SHA1. */
  readonly hashed?: { readonly salt: Uint8Array; readonly hash: Uint8Array };
  readonly keyType: string;
  readonly keyBlob: Uint8Array;
  readonly comment: string;
  /** 1-based line number. */
  readonly line: number;
}

/** Longest known_hosts line we parse. */
export const MAX_KNOWN_HOSTS_LINE = 16 * 1024;

const KEY_TYPES = new Set([
  "ssh-ed25519",
  "ecdsa-sha2-nistp256",
  "ecdsa-sha2-nistp384",
  "ecdsa-sha2-nistp521",
  "ssh-rsa",
  "ssh-dss",
  "sk-ssh-ed25519@openssh.com",
  "sk-ecdsa-sha2-nistp256@openssh.com",
]);

/**
 * Parse known_hosts text. Blank lines and `#` comments are skipped; any other
 * malformed line throws {@link MalformedInputError} naming its line number.
 *
 * @example
 * ```ts
 * import { knownHostEntryMatches, parseKnownHosts } from "../../mod.ts";
 * const [e] = parseKnownHosts(
 *   "[10.0.0.7]:2222 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n",
 * );
 * if (!knownHostEntryMatches(e!, "[10.0.0.7]:2222")) throw new Error("unreachable");
 * ```
 */
export function parseKnownHosts(text: string): KnownHostEntry[] {
  if (typeof text !== "string") throw new TypeError("known_hosts must be a string");
  const out: KnownHostEntry[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.replace(/\r$/, "");
    const t = line.trim();
    if (t === "" || t.startsWith("#")) continue;
    const where = `known_hosts line ${i + 1}`;
    if (line.length > MAX_KNOWN_HOSTS_LINE)
      throw new MalformedInputError(`${where}: longer than ${MAX_KNOWN_HOSTS_LINE}`);
    const fields = t.split(/[ \t]+/);
    let marker: KnownHostEntry["marker"] = "";
    if (fields[0]!.startsWith("@")) {
      const m = fields.shift()!;
      if (m !== "@revoked" && m !== "@cert-authority") {
        throw new MalformedInputError(`${where}: unknown marker ${JSON.stringify(m.slice(0, 40))}`);
      }
      marker = m;
    }
    if (fields.length < 3)
      throw new MalformedInputError(`${where}: expected hosts, key type and key`);
    const [hosts, keyType, b64] = fields as [string, string, string];
    if (!KEY_TYPES.has(keyType)) {
      throw new MalformedInputError(
        `${where}: unknown key type ${JSON.stringify(keyType.slice(0, 40))}`,
      );
    }
    const keyBlob = fromBase64(b64);
    if (!keyBlob || keyBlob.byteLength === 0)
      throw new MalformedInputError(`${where}: key is not base64`);
    let inner: string;
    try {
      inner = blobKeyType(keyBlob);
    } catch (err) {
      throw new MalformedInputError(`${where}: key blob is malformed`, { cause: err });
    }
    if (inner !== keyType) {
      throw new MalformedInputError(`${where}: key type ${keyType} but the blob holds ${inner}`);
    }
    const comment = fields.slice(3).join(" ");
    if (hosts.startsWith("|")) {
      const parts = hosts.split("|");
      const salt = parts.length === 4 && parts[1] === "1" ? fromBase64(parts[2]!) : undefined;
      const hash = salt ? fromBase64(parts[3]!) : undefined;
      if (!salt || !hash || salt.byteLength !== 20 || hash.byteLength !== 20) {
        throw new MalformedInputError(`${where}: malformed hashed host |1|salt|hash`);
      }
      out.push({
        marker,
        patterns: [],
        hashed: { salt, hash },
        keyType,
        keyBlob,
        comment,
        line: i + 1,
      });
    } else {
      const patterns = hosts.split(",");
      if (patterns.some((p) => p === "" || p === "!")) {
        throw new MalformedInputError(`${where}: empty host pattern`);
      }
      out.push({ marker, patterns, keyType, keyBlob, comment, line: i + 1 });
    }
  }
  return out;
}

/** How OpenSSH names a host in known_hosts: bare for port 22, `[host]:port` otherwise. */
export function knownHostsName(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

function wildcard(pattern: string, name: string): boolean {
  // Iterative glob match with * and ?; bounded by pattern x name.
  let p = 0;
  let n = 0;
  let star = -1;
  let mark = 0;
  while (n < name.length) {
    if (p < pattern.length && (pattern[p] === "?" || pattern[p] === name[n])) {
      p++;
      n++;
    } else if (p < pattern.length && pattern[p] === "*") {
      star = p++;
      mark = n;
    } else if (star >= 0) {
      p = star + 1;
      n = ++mark;
    } else return false;
  }
  while (p < pattern.length && pattern[p] === "*") p++;
  return p === pattern.length;
}

/** Whether an entry's host field matches `name` (already in known_hosts form). */
export function knownHostEntryMatches(e: KnownHostEntry, name: string): boolean {
  const lower = name.toLowerCase();
  if (e.hashed) {
    return equalBytes(hmac("sha1", e.hashed.salt, utf8(lower)), e.hashed.hash);
  }
  let matched = false;
  for (const raw of e.patterns) {
    const neg = raw.startsWith("!");
    const pat = (neg ? raw.slice(1) : raw).toLowerCase();
    if (wildcard(pat, lower)) {
      if (neg) return false;
      matched = true;
    }
  }
  return matched;
}

/** A hashed host field for `name` (what `ssh-keygen -H` writes). */
export function hashHostName(
  name: string,
  salt: Uint8Array = crypto.getRandomValues(new Uint8Array(20)),
): string {
  return `|1|${toBase64(salt)}|${toBase64(hmac("sha1", salt, utf8(name.toLowerCase())))}`;
}

/** Format one known_hosts line. */
export function formatKnownHostLine(e: Omit<KnownHostEntry, "line">): string {
  const host = e.hashed
    ? `|1|${toBase64(e.hashed.salt)}|${toBase64(e.hashed.hash)}`
    : e.patterns.join(",");
  const parts = [e.marker, host, e.keyType, toBase64(e.keyBlob), e.comment].filter((x) => x !== "");
  return parts.join(" ");
}
