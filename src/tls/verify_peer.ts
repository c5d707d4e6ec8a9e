/**
 * Judge a completed handshake: the runtime's chain verdict, our own validity
 * and name checks (SANs only, never the CN), pins, and the authorizer. Produces
 * the verified {@link PeerIdentity} or a {@link PeerVerificationError}.
 *
 * @module
 */

import type { TlsSession } from "../_runtime/tls.ts";
import { bounded } from "../_util/deadline.ts";
import { PeerVerificationError, SpokewireError } from "../channel/errors.ts";
import type { PeerIdentity } from "../channel/types.ts";
import { verifyChain } from "../pki/verify_chain.ts";
import { type CertSummary, summarizeCertificate } from "./certificate.ts";
import type { TlsAuthorizer, TlsLogger } from "./config.ts";
import { identityMatches } from "./name_match.ts";
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

async function summarizeAll(chain: readonly Uint8Array[], who: string): Promise<CertSummary[]> {
  try {
    return await Promise.all(chain.map((d) => summarizeCertificate(d)));
  } catch (err) {
    throw new PeerVerificationError(
      "malformed",
      `Cannot verify peer ${who}: certificate does not parse`,
      {
        cause: err,
      },
    );
  }
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
    const chain = await summarizeAll(session.peerChain, who).catch(() => []);
    const leaf = chain[0];
    return Object.freeze({
      scheme: "none",
      id: leaf?.commonName ?? session.conn.remoteAddress,
      fingerprint: leaf?.fingerprint ?? "",
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
  const chain = await summarizeAll(session.peerChain, who);
  const leaf = chain[0];
  const now = policy.now();
  if (now.getTime() > leaf.notAfter.getTime()) {
    throw new PeerVerificationError(
      "expired",
      `Cannot verify peer ${who}: certificate expired at ${leaf.notAfter.toISOString()}`,
    );
  }
  if (now.getTime() < leaf.notBefore.getTime()) {
    throw new PeerVerificationError(
      "not-yet-valid",
      `Cannot verify peer ${who}: certificate not valid before ${leaf.notBefore.toISOString()}`,
    );
  }
  // The independent path validation runs first: where the runtime only says "no"
  // (Deno reports most failures as UNABLE_TO_VERIFY_LEAF_SIGNATURE), it says why.
  if (policy.roots) {
    await verifyChain(session.peerChain[0], session.peerChain.slice(1), {
      roots: policy.roots,
      usage: policy.role === "client" ? "server" : "client",
      at: now,
      signal,
    });
  }
  if (session.verifyError !== undefined) {
    const reason = reasonForVerifyCode(session.verifyError);
    throw new PeerVerificationError(
      reason,
      `Cannot verify peer ${who}: ${session.verifyError} (subject "${leaf.subject}", issuer "${leaf.issuer}")`,
    );
  }
  if (policy.role === "client") {
    const name = policy.expectedName ?? "";
    if (!identityMatches(name, leaf.sans, policy.nameMap)) {
      const have = [...leaf.sans.dns, ...leaf.sans.ip].join(", ") || "none";
      throw new PeerVerificationError(
        "name-mismatch",
        `Cannot verify peer ${who}: certificate is not for "${name}" (SANs: ${have})`,
      );
    }
  }
  if (policy.pins.size > 0 && !policy.pins.has(leaf.fingerprint)) {
    throw new PeerVerificationError(
      "fingerprint-mismatch",
      `Cannot verify peer ${who}: fingerprint ${leaf.fingerprint} is not pinned`,
    );
  }
  const identity = x509Identity(leaf, chain, session);
  if (policy.authorize) {
    const authorize = policy.authorize;
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
  return identity;
}
