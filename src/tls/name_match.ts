/**
 * Server identity check against subject alternative names only (RFC 6125 /
 * RFC 9525): no fallback to the subject CN, wildcards only as the whole
 * left-most label, IP addresses only against IP SANs.
 *
 * @module
 */

import type { SubjectAltNames } from "./certificate.ts";

/** Parse a dotted IPv4 address to 4 bytes, or undefined. */
function ipv4(s: string): number[] | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (!m) return undefined;
  const out = m.slice(1).map(Number);
  return out.every((x) => x <= 255) ? out : undefined;
}

/** Parse an IPv6 (or IPv4) address to its bytes, or undefined. */
export function parseIp(input: string): number[] | undefined {
  const s = input.startsWith("[") && input.endsWith("]") ? input.slice(1, -1) : input;
  const v4 = ipv4(s);
  if (v4) return v4;
  if (!s.includes(":") || s.length > 45) return undefined;
  let tail: number[] = [];
  let body = s;
  const lastColon = s.lastIndexOf(":");
  const maybe4 = ipv4(s.slice(lastColon + 1));
  if (maybe4) {
    tail = maybe4;
    body = `${s.slice(0, lastColon + 1)}0:0`;
  }
  const halves = body.split("::");
  if (halves.length > 2) return undefined;
  const words = (h: string): number[] | undefined => {
    if (h === "") return [];
    const out: number[] = [];
    for (const w of h.split(":")) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(w)) return undefined;
      out.push(Number.parseInt(w, 16));
    }
    return out;
  };
  const head = words(halves[0]);
  const rest = halves.length === 2 ? words(halves[1]) : [];
  if (!head || !rest) return undefined;
  const missing = 8 - head.length - rest.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return undefined;
  const all = [...head, ...new Array<number>(halves.length === 2 ? missing : 0).fill(0), ...rest];
  const bytes: number[] = [];
  for (const w of all) bytes.push(w >> 8, w & 0xff);
  if (tail.length) bytes.splice(12, 4, ...tail);
  return bytes;
}

function sameIp(a: number[], b: number[]): boolean {
  if (a.length === 16 && b.length === 4) return sameIp(b, a);
  if (a.length === 4 && b.length === 16) {
    // IPv4-mapped IPv6 (::ffff:a.b.c.d) equals the IPv4 address.
    const mapped = b.slice(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff;
    return mapped && a.every((x, i) => x === b[12 + i]);
  }
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function dnsMatches(pattern: string, host: string): boolean {
  const p = pattern.toLowerCase().replace(/\.$/, "");
  const h = host.toLowerCase().replace(/\.$/, "");
  if (p === "" || h === "") return false;
  if (!p.startsWith("*.")) return p === h;
  // "*.example.com" matches exactly one left-most label, and needs two labels after it.
  const suffix = p.slice(1);
  if (suffix.split(".").length < 3) return false;
  if (!h.endsWith(suffix)) return false;
  const label = h.slice(0, h.length - suffix.length);
  return label.length > 0 && !label.includes(".");
}

/** Does one expected value (DNS name or IP) match the SANs? */
export function sanMatches(expected: string, sans: SubjectAltNames): boolean {
  const ip = parseIp(expected);
  if (ip) {
    return sans.ip.some((s) => {
      const b = parseIp(s);
      return b !== undefined && sameIp(ip, b);
    });
  }
  return sans.dns.some((d) => dnsMatches(d, expected));
}

/**
 * Check a server certificate's SANs against the expected name. `nameMap` may
 * turn the name (e.g. a node name) into the SAN values it stands for.
 */
export function identityMatches(
  name: string,
  sans: SubjectAltNames,
  nameMap?: (name: string) => readonly string[] | undefined,
): boolean {
  const wanted = nameMap?.(name) ?? [name];
  return wanted.some((w) => sanMatches(w, sans));
}
