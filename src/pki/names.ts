/**
 * Host names and IP addresses in certificates: validation, normalisation,
 * matching (no CN fallback, one-label leftmost wildcards only).
 *
 * @module
 */

const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/**
 * Lower-case a DNS name and drop one trailing dot. Returns undefined when it is
 * not a valid LDH host name (labels of letters, digits and inner hyphens; at most 253 chars).
 *
 * @example
 * ```ts
 * import { normalizeDnsName } from "../../mod.ts";
 * if (normalizeDnsName("Node-1.Example.") !== "node-1.example") throw new Error();
 * ```
 */
export function normalizeDnsName(name: string): string | undefined {
  let n = name.toLowerCase();
  if (n.endsWith(".")) n = n.slice(0, -1);
  if (n.length === 0 || n.length > 253) return undefined;
  const labels = n.split(".");
  for (const l of labels) if (!LABEL.test(l)) return undefined;
  return n;
}

/** Validate a certificate dNSName pattern: a host name, or `*.` + a name of at least two labels. */
export function normalizeDnsPattern(pattern: string): string | undefined {
  if (pattern.startsWith("*.")) {
    const rest = normalizeDnsName(pattern.slice(2));
    if (rest === undefined || !rest.includes(".")) return undefined;
    return `*.${rest}`;
  }
  return normalizeDnsName(pattern);
}

/** Does a (normalised) certificate pattern match a (normalised) reference host name? */
export function dnsPatternMatches(pattern: string, host: string): boolean {
  if (pattern.startsWith("*.")) {
    const dot = host.indexOf(".");
    if (dot <= 0) return false;
    return host.slice(dot + 1) === pattern.slice(2);
  }
  return pattern === host;
}

/**
 * Parse an IPv4 or IPv6 address text into 4 or 16 bytes; undefined if it is
 * not one. IPv4 must be four decimal octets without leading zeros.
 *
 * @example
 * ```ts
 * import { parseIp } from "../../mod.ts";
 * if (parseIp("::1")?.length !== 16 || parseIp("10.0.0.1")?.length !== 4) throw new Error();
 * ```
 */
export function parseIp(text: string): Uint8Array | undefined {
  if (text.includes(":")) return parseIpv6(text);
  return parseIpv4(text);
}

function parseIpv4(text: string): Uint8Array | undefined {
  const parts = text.split(".");
  if (parts.length !== 4) return undefined;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const p = parts[i];
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p)) return undefined;
    const v = Number(p);
    if (v > 255) return undefined;
    out[i] = v;
  }
  return out;
}

function parseIpv6(input: string): Uint8Array | undefined {
  let text = input;
  if (text.startsWith("[") && text.endsWith("]")) text = text.slice(1, -1);
  if (text.length > 45 || text.includes("%")) return undefined;
  const words: number[] = [];
  const halves = text.split("::");
  if (halves.length > 2) return undefined;
  const parseHalf = (h: string, allowV4: boolean): number[] | undefined => {
    if (h === "") return [];
    const out: number[] = [];
    const groups = h.split(":");
    for (let i = 0; i < groups.length; i++) {
      const g = groups[i];
      if (allowV4 && i === groups.length - 1 && g.includes(".")) {
        const v4 = parseIpv4(g);
        if (!v4) return undefined;
        out.push((v4[0] << 8) | v4[1], (v4[2] << 8) | v4[3]);
      } else {
        if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return undefined;
        out.push(Number.parseInt(g, 16));
      }
    }
    return out;
  };
  if (halves.length === 2) {
    const a = parseHalf(halves[0], false);
    const b = parseHalf(halves[1], true);
    if (!a || !b || a.length + b.length > 7) return undefined;
    words.push(...a, ...new Array(8 - a.length - b.length).fill(0), ...b);
  } else {
    const a = parseHalf(halves[0], true);
    if (a?.length !== 8) return undefined;
    words.push(...a);
  }
  const out = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    out[2 * i] = words[i] >> 8;
    out[2 * i + 1] = words[i] & 0xff;
  }
  return out;
}

/** Canonical text of 4 or 16 address bytes (RFC 5952 for IPv6). */
export function formatIp(bytes: Uint8Array): string {
  if (bytes.length === 4) return Array.from(bytes).join(".");
  if (bytes.length !== 16) return `invalid(${bytes.length})`;
  const w: number[] = [];
  for (let i = 0; i < 8; i++) w.push((bytes[2 * i] << 8) | bytes[2 * i + 1]);
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (w[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && w[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (a: number[]): string => a.map((x) => x.toString(16)).join(":");
  if (bestStart < 0) return hex(w);
  return `${hex(w.slice(0, bestStart))}::${hex(w.slice(bestStart + bestLen))}`;
}
