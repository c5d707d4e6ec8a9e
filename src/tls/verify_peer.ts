/**
 * Judge a completed handshake, with one verdict: `verifyChain` (validity, path,
 * key usage, EKU, and for a server the expected name, SANs only, never the CN),
 * then pins and the authorizer. The identity comes from `verifyChain`'s result;
 * each presented certificate is parsed once (its full details only when read).
 * Produces the verified {@link PeerIdentity} or a {@link PeerVerificationError}.
 * Only with the runtime's root store (`useSystemRoots`) does the runtime's chain
 * verdict count, with our name check.
 *
 * @module
 */

import type { TlsSession } from "../_runtime/tls.ts";
import { bounded } from "../_util/deadline.ts";
import { PeerVerificationError, SpokewireError } from "../channel/errors.ts";
import type { PeerIdentity } from "../channel/types.ts";
import { parseCertificateDer } from "../pki/_parse.ts";
import { x509 } from "../pki/_x509.ts";
import { identityOf, type LeafIdentity } from "../pki/identity.ts";
import {
  dnsPatternMatches,
  formatIp,
  normalizeDnsName,
  normalizeDnsPattern,
  parseIp,
} from "../pki/names.ts";
import { type ExpectedName, verifyChain } from "../pki/verify_chain.ts";
import { type CertSummary, summaryOf } from "./certificate.ts";
import type { TlsAuthorizer, TlsLogger } from "./config.ts";
import { reasonForVerifyCode } from "./verify_error.ts";

/** What a side checks about its peer. */
export interface PeerPolicy {
  readonly role: "client" | "server";
  /** Client: the name the server must prove (DNS name, IP, or a name `nameMap` knows). */
  readonly expectedName?: string;
  readonly nameMap?: (name: string) => readonly string[] | undefined;
  /** Server: a client without a certificate is refused. */
  readonly requireClientCert: boolean;
  /**
   * The CA bundle (PEM) for a second, independent path validation by
   * `src/pki` (key usage, EKU, CA flags, path length); undefined: runtime only.
   */
  readonly roots?: readonly string[];
  /** Normalized SHA-256 pins; empty: no pinning. */
  readonly pins: ReadonlySet<string>;
  readonly skipVerification: boolean;
  readonly logger: TlsLogger;
  readonly now: () => Date;
  readonly authorize?: TlsAuthorizer;
  readonly authorizeTimeoutMs: number;
  /** For messages: who we talk to. */
  readonly describe: string;
}

/** Build the x509 identity of a verified chain. */
export function x509Identity(
  leaf: CertSummary,
  chain: readonly CertSummary[],
  session?: { readonly protocol: string; readonly cipher: string },
): PeerIdentity {
  return Object.freeze({
    scheme: "x509",
    id: leaf.commonName ?? leaf.subject,
    fingerprint: leaf.fingerprint,
    groups: Object.freeze([...leaf.organizations]),
    details: Object.freeze({
      subject: leaf.subject,
      issuer: leaf.issuer,
      serialNumber: leaf.serialNumber,
      notBefore: leaf.notBefore.toISOString(),
      notAfter: leaf.notAfter.toISOString(),
      sans: leaf.sans,
      chain: chain.map((c) => ({
        subject: c.subject,
        issuer: c.issuer,
        fingerprint: c.fingerprint,
        notAfter: c.notAfter.toISOString(),
      })),
      certificates: chain.map((c) => c.der),
      protocol: session?.protocol,
      cipher: session?.cipher,
    }),
  } satisfies PeerIdentity);
}

/** The certificate as spokewire's PKI parses it, or `malformed`. */
function leafIdentity(der: Uint8Array, who: string): LeafIdentity {
  try {
    return identityOf(parseCertificateDer(der));
  } catch (err) {
    throw new PeerVerificationError(
      "malformed",
      `Cannot verify peer ${who}: certificate does not parse`,
      { cause: err },
    );
  }
}

/** Whether a leaf's SANs hold `name` (the rules of `verifyChain`, through `pki/names.ts`). */
function leafHasName(id: LeafIdentity, name: ExpectedName): boolean {
  if ("ip" in name) {
    const ip = parseIp(name.ip);
    return ip !== undefined && id.ips.includes(formatIp(ip));
  }
  const host = normalizeDnsName(name.dns);
  if (host === undefined) return false;
  return id.dnsNames.some((d) => {
    const pattern = normalizeDnsPattern(d);
    return pattern !== undefined && dnsPatternMatches(pattern, host);
  });
}

/**
 * The names a server must prove: `expectedName`, or what `nameMap` maps it to (DNS
 * names and IP addresses), read with spokewire's one name parser (`pki/names.ts`).
 */
function expectedNames(policy: PeerPolicy): ExpectedName[] {
  const name = policy.expectedName ?? "";
  const values = policy.nameMap?.(name) ?? [name];
  return values.map((v) => {
    const bare = v.startsWith("[") && v.endsWith("]") ? v.slice(1, -1) : v;
    return parseIp(bare) ? { ip: bare } : { dns: v };
  });
}

/**
 * The details of a verified chain (`der`: leaf first), parsed only when read: the
 * handshake needs none of them, and a full parse costs more than the verification.
 */
function lazyDetails(
  der: readonly Uint8Array[],
  session: { readonly protocol: string; readonly cipher: string },
): Readonly<Record<string, unknown>> {
  let parsed: x509.X509Certificate[] | undefined;
  const certs = (): x509.X509Certificate[] => {
    parsed ??= der.map((d) => new x509.X509Certificate(d.slice()));
    return parsed;
  };
  let summary: CertSummary[] | undefined;
  const summaries = (): CertSummary[] => {
    summary ??= certs().map((c, i) => summaryOf(c, der[i]));
    return summary;
  };
  const leaf = (): CertSummary => summaries()[0];
  return Object.freeze({
    get subject() {
      return leaf().subject;
    },
    get issuer() {
      return leaf().issuer;
    },
    get serialNumber() {
      return leaf().serialNumber;
    },
    get notBefore() {
      return leaf().notBefore.toISOString();
    },
    get notAfter() {
      return leaf().notAfter.toISOString();
    },
    get sans() {
      return leaf().sans;
    },
    get chain() {
      return summaries().map((c) => ({
        subject: c.subject,
        issuer: c.issuer,
        fingerprint: c.fingerprint,
        notAfter: c.notAfter.toISOString(),
      }));
    },
    certificates: der,
    protocol: session.protocol,
    cipher: session.cipher,
  });
}

/** Verify the peer of `session` under `policy`. Throws {@link PeerVerificationError} (or TIMEOUT from the authorizer). */
export async function verifyPeer(
  session: TlsSession,
  policy: PeerPolicy,
  signal?: AbortSignal,
): Promise<PeerIdentity> {
  const who = policy.describe;
  if (policy.role === "server" && session.resumed) {
    // An abbreviated handshake presents no certificate: the identity would rest on
    // one from an earlier connection (and under Deno, from another listener in this
    // process). spokewire listeners do a full handshake every time.
    throw new PeerVerificationError(
      "session-resumed",
      `Refused peer ${who}: it resumed an earlier TLS session; every connection must present its certificate`,
    );
  }
  if (policy.skipVerification) {
    policy.logger.warn(
      `spokewire TLS: peer verification is OFF (dangerouslySkipVerification) for ${who}; anyone can impersonate this peer`,
    );
    let leaf: LeafIdentity | undefined;
    try {
      leaf = session.peerChain[0] ? leafIdentity(session.peerChain[0], who) : undefined;
    } catch {
      leaf = undefined;
    }
    return Object.freeze({
      scheme: "none",
      id: leaf?.cn ?? session.conn.remoteAddress,
      fingerprint: leaf?.fingerprintSha256Hex ?? "",
      details: Object.freeze({ unverified: true }),
    });
  }
  if (session.peerChain.length === 0) {
    if (policy.role === "server") {
      if (!policy.requireClientCert) {
        return Object.freeze({ scheme: "none", id: session.conn.remoteAddress, fingerprint: "" });
      }
      throw new PeerVerificationError(
        "client-cert-missing",
        `Cannot verify peer ${who}: the client sent no certificate`,
      );
    }
    throw new PeerVerificationError("untrusted-root", `Cannot verify peer ${who}: no certificate`);
  }
  const names = policy.role === "client" ? expectedNames(policy) : undefined;
  const usage = policy.role === "client" ? "server" : "client";
  let identity: LeafIdentity;
  let der: readonly Uint8Array[];
  if (policy.roots) {
    // One verdict: spokewire's path validation (validity, key usage, EKU, CA flags,
    // path length, names), whatever the runtime's TLS layer thought of the chain.
    const v = await verifyChain(session.peerChain[0], session.peerChain.slice(1), {
      roots: policy.roots,
      usage,
      name: names,
      at: policy.now(),
      signal,
    }).catch((err: unknown) => {
      if (err instanceof PeerVerificationError) {
        throw new PeerVerificationError(err.reason, `Cannot verify peer ${who}: ${err.message}`, {
          cause: err,
        });
      }
      throw err;
    });
    identity = v.identity;
    der = v.der;
  } else {
    // The runtime's root store is in use (useSystemRoots): its chain verdict, and
    // our name check.
    identity = leafIdentity(session.peerChain[0], who);
    der = session.peerChain;
    if (session.verifyError !== undefined) {
      throw new PeerVerificationError(
        reasonForVerifyCode(session.verifyError),
        `Cannot verify peer ${who}: ${session.verifyError}`,
      );
    }
    if (names && !names.some((n) => leafHasName(identity, n))) {
      const have = [...identity.dnsNames, ...identity.ips].join(", ") || "none";
      throw new PeerVerificationError(
        "name-mismatch",
        `Cannot verify peer ${who}: certificate is not for "${policy.expectedName ?? ""}" (SANs: ${have})`,
      );
    }
  }
  if (policy.pins.size > 0 && !policy.pins.has(identity.fingerprintSha256Hex)) {
    throw new PeerVerificationError(
      "fingerprint-mismatch",
      `Cannot verify peer ${who}: fingerprint ${identity.fingerprintSha256Hex} is not pinned`,
    );
  }
  const details = lazyDetails(der, session);
  const fields = {
    scheme: "x509",
    fingerprint: identity.fingerprintSha256Hex,
    groups: Object.freeze([...identity.groups]),
    details,
  };
  const cn = identity.cn;
  // Without a CN the id is the subject, read (and parsed) only when asked for.
  const peer: PeerIdentity = Object.freeze(
    cn !== undefined
      ? { ...fields, id: cn }
      : Object.defineProperty(fields, "id", {
          enumerable: true,
          get: () => String(details.subject),
        }),
  ) as PeerIdentity;
  if (policy.authorize) await authorizePeer(peer, policy, signal);
  return peer;
}

async function authorizePeer(
  identity: PeerIdentity,
  policy: PeerPolicy,
  signal: AbortSignal | undefined,
): Promise<void> {
  const authorize = policy.authorize;
  if (!authorize) return;
  let ok: boolean;
  try {
    ok = await bounded(
      Promise.resolve().then(() => authorize(identity)),
      {
        timeoutMs: policy.authorizeTimeoutMs,
        what: `authorizing ${identity.id}`,
        signal,
      },
    );
  } catch (err) {
    if (err instanceof SpokewireError) throw err;
    throw new PeerVerificationError(
      "unauthorized",
      `Peer ${identity.id} refused: authorizer failed`,
      {
        cause: err,
      },
    );
  }
  if (ok !== true) {
    throw new PeerVerificationError(
      "unauthorized",
      `Peer "${identity.id}" (groups ${identity.groups?.join(",") || "none"}) is not authorized`,
    );
  }
}
