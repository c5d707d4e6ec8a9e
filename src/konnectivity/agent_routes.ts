/**
 * What an agent serves and may dial: the identifiers it announces to the
 * server (hosts, CIDRs, default route), and the allow-list it dials under.
 *
 * @module
 */

import { parseIp } from "../tls/name_match.ts";

/** Destinations an agent announces; the server routes dials by them. */
export interface AgentIdentifiers {
  /** Host names or IP addresses served (exact match on the dial's host). */
  readonly hosts: readonly string[];
  /** CIDR blocks served (`10.0.0.0/8`, `fd00::/8`). */
  readonly cidrs: readonly string[];
  /** Take dials no other agent's hosts or CIDRs match. */
  readonly defaultRoute: boolean;
}

/** No hosts, no CIDRs, no default route. */
export const NO_AGENT_IDENTIFIERS: AgentIdentifiers = Object.freeze({
  hosts: Object.freeze([]),
  cidrs: Object.freeze([]),
  defaultRoute: false,
});

/** A parsed CIDR block. */
interface Cidr {
  readonly bytes: number[];
  readonly bits: number;
}

/** Parse `addr/bits`; throws RangeError naming `field`. */
export function parseCidr(text: string, field = "cidr"): { bytes: number[]; bits: number } {
  const m = /^([^/]+)\/(\d{1,3})$/.exec(text);
  const bytes = m ? parseIp(m[1]) : undefined;
  const bits = m ? Number(m[2]) : Number.NaN;
  if (!bytes || !(bits >= 0 && bits <= bytes.length * 8)) {
    throw new RangeError(`${field} must be a CIDR block like 10.0.0.0/8, got ${text}`);
  }
  return { bytes, bits };
}

/** Whether the address `ip` (bytes) lies inside the block `c`. */
export function inCidr(ip: readonly number[], c: Cidr): boolean {
  if (ip.length !== c.bytes.length) return false;
  let bits = c.bits;
  for (let i = 0; bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if ((ip[i] & mask) !== (c.bytes[i] & mask)) return false;
  }
  return true;
}

/** Check identifiers; throws RangeError naming the field. */
export function verifyAgentIdentifiers(ids: AgentIdentifiers): AgentIdentifiers {
  for (const h of ids.hosts) {
    if (typeof h !== "string" || h === "" || /[\s&=/]/.test(h)) {
      throw new RangeError(`hosts: not a host name or address: ${JSON.stringify(h)}`);
    }
  }
  for (const c of ids.cidrs) parseCidr(c, "cidrs");
  if (typeof ids.defaultRoute !== "boolean") throw new RangeError("defaultRoute must be a boolean");
  return ids;
}

/**
 * Encode identifiers the way upstream's `agentIdentifiers` header does:
 * `host=a&host=b&cidr=10.0.0.0/8&default-route=true`.
 *
 * @example
 * ```ts
 * import { encodeAgentIdentifiers, parseAgentIdentifiers } from "./agent_routes.ts";
 * const s = encodeAgentIdentifiers({ hosts: ["db"], cidrs: ["10.0.0.0/8"], defaultRoute: true });
 * if (parseAgentIdentifiers(s).hosts[0] !== "db") throw new Error("round trip");
 * ```
 */
export function encodeAgentIdentifiers(ids: AgentIdentifiers): string {
  const p = new URLSearchParams();
  for (const h of ids.hosts) p.append("host", h);
  for (const c of ids.cidrs) p.append("cidr", c);
  if (ids.defaultRoute) p.append("default-route", "true");
  return p.toString();
}

/**
 * Parse an identifiers header; unknown keys are ignored (upstream's
 * version-skew rule), `ipv4=`/`ipv6=` count as hosts. Throws RangeError on a
 * malformed host or CIDR.
 */
export function parseAgentIdentifiers(text: string): AgentIdentifiers {
  const p = new URLSearchParams(text);
  const hosts = [...p.getAll("host"), ...p.getAll("ipv4"), ...p.getAll("ipv6")];
  return verifyAgentIdentifiers({
    hosts,
    cidrs: p.getAll("cidr"),
    defaultRoute: p.get("default-route") === "true",
  });
}

/** Matches dial hosts against an agent's identifiers. */
export class AgentRouteTable {
  readonly identifiers: AgentIdentifiers;
  readonly #hosts: Set<string>;
  readonly #cidrs: Cidr[];

  constructor(ids: AgentIdentifiers) {
    this.identifiers = verifyAgentIdentifiers(ids);
    this.#hosts = new Set(ids.hosts.map((h) => h.toLowerCase()));
    this.#cidrs = ids.cidrs.map((c) => parseCidr(c));
  }

  /** True if `host` is one of the hosts, or an address inside one of the CIDRs. */
  serves(host: string): boolean {
    if (this.#hosts.has(host.toLowerCase())) return true;
    if (this.#cidrs.length === 0) return false;
    const ip = parseIp(host);
    return ip !== undefined && this.#cidrs.some((c) => inCidr(ip, c));
  }
}

/**
 * One allow-list entry: `host:port`, where host is an exact name or address,
 * `*`, `*.suffix`, or a CIDR block, and port is a number or `*` (IPv6 in
 * brackets: `[::1]:443`, `[fd00::/8]:*`). A bare host means any port.
 */
interface AllowEntry {
  readonly host: string;
  readonly cidr: Cidr | undefined;
  readonly port: number | "*";
}

function parseAllowEntry(text: string): AllowEntry {
  const m = /^(?:\[([^\]]+)\]|([^:[\]\s]+))(?::(\d{1,5}|\*))?$/.exec(text);
  if (!m) throw new RangeError(`allow: not host[:port]: ${JSON.stringify(text)}`);
  const host = (m[1] ?? m[2]).toLowerCase();
  const port = m[3] === undefined || m[3] === "*" ? "*" : Number(m[3]);
  if (port !== "*" && (port < 1 || port > 65535)) {
    throw new RangeError(`allow: port out of range in ${JSON.stringify(text)}`);
  }
  const cidr = host.includes("/") ? parseCidr(host, "allow") : undefined;
  return { host, cidr, port };
}

/**
 * Compile an allow-list into a predicate for `relayDialHandler`'s `allow`.
 * Throws RangeError on a malformed entry. An empty list allows nothing.
 *
 * @example
 * ```ts
 * import { compileAllowList } from "./agent_routes.ts";
 * const allow = compileAllowList(["127.0.0.1:8080", "10.0.0.0/8:*", "*.svc:443"]);
 * if (!allow({ host: "10.1.2.3", port: 22 }) || allow({ host: "127.0.0.1", port: 22 })) {
 *   throw new Error("allow-list");
 * }
 * ```
 */
export function compileAllowList(
  entries: readonly string[],
): (target: { host: string; port: number }) => boolean {
  const list = entries.map(parseAllowEntry);
  return ({ host, port }) => {
    const h = host.toLowerCase();
    let ip: number[] | undefined | null = null;
    return list.some((e) => {
      if (e.port !== "*" && e.port !== port) return false;
      if (e.host === "*") return true;
      if (e.cidr) {
        if (ip === null) ip = parseIp(h);
        return ip !== undefined && inCidr(ip, e.cidr);
      }
      if (e.host.startsWith("*."))
        return h.endsWith(e.host.slice(1)) && h.length > e.host.length - 1;
      return e.host === h;
    });
  };
}

/**
 * An agent's allow-list: patterns for every caller, or per caller (the identity
 * the server dials for, e.g. `kube-apiserver`), with `"*"` for any caller not
 * named (anonymous ones included). A caller with no entry and no `"*"` may dial
 * nothing.
 */
export type AgentAllowList = readonly string[] | Readonly<Record<string, readonly string[]>>;

/**
 * Compile an {@link AgentAllowList} into `relayDialHandler`'s `allow`
 * (`(target, caller) => boolean`). Throws RangeError on a malformed entry,
 * TypeError on a value that is neither a list nor a map of lists.
 *
 * @example
 * ```ts
 * import { compileCallerAllowList } from "./agent_routes.ts";
 * const allow = compileCallerAllowList({ "kube-apiserver": ["*:10250"], "*": ["10.0.0.0/8:80"] });
 * if (!allow({ host: "10.0.0.5", port: 10250 }, "kube-apiserver")) throw new Error("kubelet");
 * if (allow({ host: "10.0.0.5", port: 80 }, "kube-apiserver")) throw new Error("own entry only");
 * if (allow({ host: "10.0.0.5", port: 10250 })) throw new Error("anonymous");
 * ```
 */
export function compileCallerAllowList(
  allow: AgentAllowList,
): (target: { host: string; port: number }, caller?: string) => boolean {
  if (Array.isArray(allow)) {
    const all = compileAllowList(allow as readonly string[]);
    return (target) => all(target);
  }
  if (typeof allow !== "object" || allow === null) {
    throw new TypeError("allow must be a list of patterns or a map of caller to patterns");
  }
  const byCaller = new Map<string, ReturnType<typeof compileAllowList>>();
  for (const [caller, list] of Object.entries(allow)) {
    if (!Array.isArray(list))
      throw new TypeError(`allow[${JSON.stringify(caller)}] must be a list`);
    byCaller.set(caller, compileAllowList(list));
  }
  const other = byCaller.get("*");
  return (target, caller) => {
    const own = caller === undefined ? undefined : byCaller.get(caller);
    const list = own ?? other;
    return list?.(target) === true;
  };
}
