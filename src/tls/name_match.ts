/**
 * Server identity check against subject alternative names only (RFC 6125 /
 * RFC 9525): no fallback to the subject CN, wildcards only as the whole
 * left-most label, IP addresses only against IP SANs. The rules are those of
 * `src/pki/names.ts`, the one name parser the TLS verifier (`verifyChain`) uses:
 * an IPv4 address with a leading zero (`010.0.0.1`) is no address, and an
 * IPv4-mapped IPv6 address (`::ffff:10.0.0.1`) is not the IPv4 address.
 *
 * @module
 */

import {
  dnsPatternMatches,
  normalizeDnsName,
  normalizeDnsPattern,
  parseIp as parseIpBytes,
} from "../pki/names.ts";
import type { SubjectAltNames } from "./certificate.ts";

/** Parse an IPv4 or IPv6 address (IPv6 optionally in brackets) to its bytes, or undefined. */
export function parseIp(input: string): number[] | undefined {
  const s = input.startsWith("[") && input.endsWith("]") ? input.slice(1, -1) : input;
  const b = parseIpBytes(s);
  return b ? [...b] : undefined;
}

function sameBytes(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** Does one expected value (DNS name or IP) match the SANs? */
export function sanMatches(expected: string, sans: SubjectAltNames): boolean {
  const ip = parseIp(expected);
  if (ip) {
    return sans.ip.some((s) => {
      const b = parseIp(s);
      return b !== undefined && sameBytes(ip, b);
    });
  }
  const host = normalizeDnsName(expected);
  if (host === undefined) return false;
  return sans.dns.some((d) => {
    const pattern = normalizeDnsPattern(d);
    return pattern !== undefined && dnsPatternMatches(pattern, host);
  });
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
