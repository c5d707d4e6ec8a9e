/**
 * What an agent may announce. An agent's identifiers (hosts, CIDR blocks, default
 * route) decide which dials the server sends it, so a node must not announce another
 * node's addresses: the server checks every announcement against what the agent's
 * verified identity allows, at registration, and refuses the agent (HTTP 403) for a
 * claim outside it.
 *
 * @module
 */

import type { PeerIdentity } from "../channel/types.ts";
import { parseIp } from "../tls/name_match.ts";
import { type AgentIdentifiers, inCidr, parseCidr } from "./agent_routes.ts";

/** What an agent may announce. Anything not listed is refused. */
export interface AgentClaims {
  /** Host names and IP addresses it may announce as hosts (case-insensitive; IPs by value). */
  readonly hosts?: readonly string[];
  /**
   * CIDR blocks it may announce: a claimed block must lie inside one of these, and an
   * IP address it claims as a host may lie inside one.
   */
  readonly cidrs?: readonly string[];
  /** It may take the default route (dials no other agent's hosts or CIDRs match). Default false. */
  readonly defaultRoute?: boolean;
}

/** The verified agent a claim policy decides for. */
export interface ClaimingAgent {
  /** The agent id (node name) the server derived from its credential. */
  readonly id: string;
  /** Its verified identity: `x509` (with the certificate's SANs in `details.sans`) or `token`. */
  readonly peer: PeerIdentity;
}

/**
 * What a verified agent may announce; `undefined`: nothing (an agent that announces
 * nothing is still admitted and gets the dials of the `default` strategy).
 */
export type AgentClaimPolicy = (
  agent: ClaimingAgent,
) => AgentClaims | undefined | Promise<AgentClaims | undefined>;

/**
 * The default policy: an agent may announce its own node name, and the DNS names and
 * IP addresses in its certificate's subject alternative names; no CIDR block and no
 * default route. A token agent: its node name only.
 *
 * @example
 * ```ts
 * import { certificateClaims } from "../../mod.ts";
 * const c = certificateClaims({
 *   id: "node-1",
 *   peer: { scheme: "x509", id: "system:node:node-1", fingerprint: "",
 *           details: { sans: { dns: ["node-1.example"], ip: ["10.0.0.1"] } } },
 * });
 * if (c.hosts?.join() !== "node-1,node-1.example,10.0.0.1") throw new Error();
 * ```
 */
export function certificateClaims(agent: ClaimingAgent): AgentClaims {
  const sans =
    agent.peer.scheme === "x509"
      ? (agent.peer.details?.sans as
          | { dns?: readonly string[]; ip?: readonly string[] }
          | undefined)
      : undefined;
  return { hosts: [agent.id, ...(sans?.dns ?? []), ...(sans?.ip ?? [])] };
}

/**
 * Claims from several sources together (for example {@link certificateClaims} plus a
 * static map's entry): every host and block any of them allows, the default route if
 * any allows it.
 */
export function combineClaims(...list: readonly (AgentClaims | undefined)[]): AgentClaims {
  return {
    hosts: list.flatMap((c) => c?.hosts ?? []),
    cidrs: list.flatMap((c) => c?.cidrs ?? []),
    defaultRoute: list.some((c) => c?.defaultRoute === true),
  };
}

/**
 * A policy from a static map, node name -> claims, on top of the certificate's own
 * ({@link certificateClaims}). Checked when made: a bad host or block is a RangeError.
 */
export function staticClaims(map: Readonly<Record<string, AgentClaims>>): AgentClaimPolicy {
  for (const [node, c] of Object.entries(map)) verifyAgentClaims(c, `claims for ${node}`);
  return (agent) =>
    combineClaims(
      certificateClaims(agent),
      Object.hasOwn(map, agent.id) ? map[agent.id] : undefined,
    );
}

/** Check claims; throws RangeError naming the field. */
export function verifyAgentClaims(c: AgentClaims, where = "claims"): AgentClaims {
  if (typeof c !== "object" || c === null) throw new RangeError(`${where} must be an object`);
  for (const h of c.hosts ?? []) {
    if (typeof h !== "string" || h === "" || /[\s/]/.test(h)) {
      throw new RangeError(`${where}: hosts: not a host name or address: ${JSON.stringify(h)}`);
    }
  }
  for (const b of c.cidrs ?? []) parseCidr(b, `${where}: cidrs`);
  if (c.defaultRoute !== undefined && typeof c.defaultRoute !== "boolean") {
    throw new RangeError(`${where}: defaultRoute must be a boolean`);
  }
  return c;
}

function sameIp(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/**
 * The first announcement of `ids` that `allowed` does not cover, described for the
 * refusal and the log (`host 10.0.0.2`, `cidr 10.0.0.0/8`, `default-route`), or
 * `undefined` when every announcement is allowed.
 */
export function claimOutside(
  ids: AgentIdentifiers,
  allowed: AgentClaims | undefined,
): string | undefined {
  const hosts = (allowed?.hosts ?? []).map((h) => h.toLowerCase());
  const hostIps = hosts.map((h) => parseIp(h)).filter((b): b is number[] => b !== undefined);
  const blocks = (allowed?.cidrs ?? []).map((b) => parseCidr(b));
  for (const h of ids.hosts) {
    const ip = parseIp(h);
    const ok = ip
      ? hostIps.some((a) => sameIp(a, ip)) || blocks.some((b) => inCidr(ip, b))
      : hosts.includes(h.toLowerCase());
    if (!ok) return `host ${h}`;
  }
  for (const c of ids.cidrs) {
    const claimed = parseCidr(c);
    const ok = blocks.some((b) => b.bits <= claimed.bits && inCidr(claimed.bytes, b));
    if (!ok) return `cidr ${c}`;
  }
  if (ids.defaultRoute && allowed?.defaultRoute !== true) return "default-route";
  return undefined;
}
