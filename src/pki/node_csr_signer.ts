/**
 * The issuer side of kubelet-style TLS bootstrapping: check a node's CSR
 * against policy, its proof of possession and a single-use bootstrap token,
 * ask an approval hook, then sign.
 *
 * @module
 */

import { bounded } from "../_util/deadline.ts";
import { AbortedError, CsrDeniedError, PeerVerificationError } from "../channel/errors.ts";
import { DerError, parseOne } from "./_der.ts";
import {
  type GeneralNameEntry,
  KeyUsageBit,
  type ParsedCsr,
  parseBasicConstraints,
  parseCsrDer,
  parseEku,
  parseGeneralNames,
  parseKeyUsage,
} from "./_parse.ts";
import { checkKeyStrength, verifySignature } from "./_signature.ts";
import { x509 } from "./_x509.ts";
import type { BootstrapTokenStore } from "./bootstrap_token.ts";
import { type CertificateAuthority, type IssuanceConfig, issueCertificate } from "./issue.ts";
import { formatIp, normalizeDnsName, parseIp } from "./names.ts";
import { EkuOid, ExtensionOid } from "./oids.ts";
import { type CsrInput, csrToDer, decodePem, PemLabel, type X509Certificate } from "./pem.ts";

/**
 * Why a node CSR was denied (the `reason` of {@link CsrDeniedError}):
 * - `token-invalid`, `token-expired`, `token-used`, `token-node-mismatch`: the bootstrap token;
 * - `malformed`: the CSR cannot be parsed (or repeats an extension);
 * - `bad-signature`: the CSR's self-signature does not verify (no proof of possession);
 * - `weak-key`, `weak-algorithm`, `unsupported-key`: key or signature algorithm refused;
 * - `bad-common-name`: CN is not exactly `system:node:<requesting node>`;
 * - `bad-organization`: O is not exactly `system:nodes`;
 * - `bad-subject`: other subject attributes (OU, C ...) are present;
 * - `control-plane-san`: a SAN names the control plane (kubernetes, kubernetes.default*, API server IPs);
 * - `san-not-allowed`: a DNS or IP SAN the policy does not allow for this node (or any SAN on a client certificate);
 * - `email-san`, `uri-san`, `other-san`: SAN forms refused unless the policy allows them;
 * - `bad-extension`: the CSR asks for CA rights, for an extension we do not grant, or for
 *   usages other than exactly what the profile gets (keyUsage digitalSignature, plus
 *   keyEncipherment for an RSA key; extKeyUsage serverAuth and/or clientAuth as the profile says);
 * - `hook-denied`, `hook-failed`: the approval hook said no, threw or timed out.
 */
export type CsrDenyReason =
  | "token-invalid"
  | "token-expired"
  | "token-used"
  | "token-node-mismatch"
  | "malformed"
  | "bad-signature"
  | "weak-key"
  | "weak-algorithm"
  | "unsupported-key"
  | "bad-common-name"
  | "bad-organization"
  | "bad-subject"
  | "control-plane-san"
  | "san-not-allowed"
  | "email-san"
  | "uri-san"
  | "other-san"
  | "bad-extension"
  | "hook-denied"
  | "hook-failed";

/** What node certificates may contain. */
export interface NodeCsrPolicy {
  /** DNS SANs a node may ask for; default: its own name (when it is a DNS name). */
  readonly allowedDnsNames: (nodeName: string) => readonly string[];
  /** IP SANs a node may ask for; default: none. */
  readonly allowedIps: (nodeName: string) => readonly string[];
  /** DNS names of the control plane; `*` at the end matches any suffix. Never granted. */
  readonly controlPlaneDnsNames: readonly string[];
  /** IPs of the API servers (and the kubernetes Service IP). Never granted. */
  readonly controlPlaneIps: readonly string[];
  /** Allow email SANs (default false). */
  readonly allowEmailSans: boolean;
  /** Allow URI SANs (default false). */
  readonly allowUriSans: boolean;
  /** How long the approval hook may take. */
  readonly approvalTimeoutMs: number;
}

/** Default policy: node's own name only, no IPs, the usual control-plane names refused. */
export const DEFAULT_NODE_CSR_POLICY: NodeCsrPolicy = {
  allowedDnsNames: (nodeName) => (normalizeDnsName(nodeName) ? [nodeName] : []),
  allowedIps: () => [],
  controlPlaneDnsNames: ["kubernetes", "kubernetes.default*", "localhost"],
  controlPlaneIps: [],
  allowEmailSans: false,
  allowUriSans: false,
  approvalTimeoutMs: 30_000,
};

/** Throw RangeError naming the field if `p` is unusable. */
export function verifyNodeCsrPolicy(p: NodeCsrPolicy): void {
  for (const ip of p.controlPlaneIps) {
    if (!parseIp(ip)) throw new RangeError(`controlPlaneIps: ${JSON.stringify(ip)} is not an IP`);
  }
  if (!Number.isSafeInteger(p.approvalTimeoutMs) || p.approvalTimeoutMs <= 0) {
    throw new RangeError(
      `approvalTimeoutMs: must be a positive integer, got ${p.approvalTimeoutMs}`,
    );
  }
}

/** What the approval hook is shown. */
export interface CsrApprovalContext {
  readonly nodeName: string;
  readonly commonName: string;
  readonly groups: readonly string[];
  readonly dnsNames: readonly string[];
  readonly ips: readonly string[];
  readonly profile: "client" | "server" | "both";
  readonly csrDer: Uint8Array;
}

/** Returns true to approve; false (or throwing) denies. */
export type CsrApprovalHook = (
  ctx: CsrApprovalContext,
  signal: AbortSignal,
) => boolean | Promise<boolean>;

/** Options of {@link NodeCsrSigner}. */
export interface NodeCsrSignerOptions {
  readonly ca: CertificateAuthority;
  readonly tokens: BootstrapTokenStore;
  /** Called after every automatic check passed. */
  readonly approve: CsrApprovalHook;
  readonly policy?: Partial<NodeCsrPolicy>;
  readonly issuance?: IssuanceConfig;
  /** Lifetime of issued node certificates (default: the issuance config's leaf default). */
  readonly validityMs?: number;
  /** The clock; default the current time. */
  readonly now?: () => Date;
}

/** One bootstrap request from a node. */
export interface NodeCsrRequest {
  readonly csr: CsrInput;
  readonly token: string;
  /** The node asking (as authenticated by the token); the CSR's CN must name it. */
  readonly nodeName: string;
  /** "client" (default: kubelet client certificate) or "server"/"both" (serving names needed). */
  readonly profile?: "client" | "server" | "both";
}

/** The signed certificate and the intermediates to present with it. */
export interface NodeCertificate {
  readonly certificate: X509Certificate;
  readonly intermediates: readonly X509Certificate[];
}

/** IPv4-mapped IPv6 (::ffff:a.b.c.d) as the IPv4 address it stands for; others unchanged. */
function unmapped(b: Uint8Array): Uint8Array {
  if (
    b.length === 16 &&
    b.subarray(0, 10).every((x) => x === 0) &&
    b[10] === 0xff &&
    b[11] === 0xff
  ) {
    return b.subarray(12);
  }
  return b;
}

const deny = (reason: CsrDenyReason, msg: string): CsrDeniedError =>
  new CsrDeniedError(reason, msg);

function controlPlaneDns(name: string, patterns: readonly string[]): boolean {
  const n = name.toLowerCase().replace(/\.$/, "");
  return patterns.some((p) => {
    const q = p.toLowerCase();
    return q.endsWith("*") ? n.startsWith(q.slice(0, -1)) : n === q;
  });
}

function csrDer(input: CsrInput): Uint8Array {
  if (input instanceof x509.Pkcs10CertificateRequest) return csrToDer(input);
  try {
    if (typeof input === "string") {
      const blocks = decodePem(input, PemLabel.csr);
      if (blocks.length !== 1) throw new Error(`expected one CSR, found ${blocks.length}`);
      return blocks[0];
    }
  } catch (e) {
    throw new CsrDeniedError("malformed", `CSR is not valid PEM: ${(e as Error).message}`, {
      cause: e,
    });
  }
  if (!(input instanceof Uint8Array))
    throw new TypeError("csr: must be PEM text, DER bytes or a CSR object");
  return input;
}

/**
 * A requested keyUsage must be exactly what node certificates get: digitalSignature,
 * plus keyEncipherment for an RSA key (k8s kubelet CSR rules).
 */
function checkRequestedKeyUsage(mask: number, rsa: boolean): void {
  const allowed = KeyUsageBit.digitalSignature | (rsa ? KeyUsageBit.keyEncipherment : 0);
  if (!(mask & KeyUsageBit.digitalSignature) || mask & ~allowed) {
    throw deny(
      "bad-extension",
      `CSR asks for key usages 0x${mask.toString(16)}; only digitalSignature${rsa ? " (and keyEncipherment)" : ""} is granted`,
    );
  }
}

/** A requested extKeyUsage must name exactly the profile's usages. */
function checkRequestedEku(ekus: readonly string[], profile: "client" | "server" | "both"): void {
  const want = new Set<string>();
  if (profile !== "client") want.add(EkuOid.serverAuth);
  if (profile !== "server") want.add(EkuOid.clientAuth);
  const got = new Set(ekus);
  if (got.size !== want.size || [...got].some((o) => !want.has(o))) {
    throw deny(
      "bad-extension",
      `CSR asks for extended key usages ${[...got].join(", ")}; a ${profile} certificate gets ${[...want].join(", ")}`,
    );
  }
}

/**
 * Signs node certificates after the kubelet TLS bootstrap checks.
 *
 * @example
 * ```ts
 * import { BootstrapTokenStore, createNodeCsr, createRootCa, NodeCsrSigner } from "../../mod.ts";
 * const ca = await createRootCa({ commonName: "cluster-ca" });
 * const tokens = new BootstrapTokenStore();
 * const signer = new NodeCsrSigner({ ca, tokens, approve: () => true });
 * const { csrPem } = await createNodeCsr({ nodeName: "node-1" });
 * const { certificate } = await signer.sign({ csr: csrPem, token: tokens.issue(), nodeName: "node-1" });
 * if (!certificate.subject.includes("system:node:node-1")) throw new Error();
 * ```
 */
export class NodeCsrSigner {
  readonly #opts: NodeCsrSignerOptions;
  readonly #policy: NodeCsrPolicy;

  constructor(opts: NodeCsrSignerOptions) {
    if (typeof opts.approve !== "function")
      throw new TypeError("approve: an approval hook is required");
    this.#opts = opts;
    this.#policy = { ...DEFAULT_NODE_CSR_POLICY, ...opts.policy };
    verifyNodeCsrPolicy(this.#policy);
  }

  /** Check everything, consume the token, ask the hook, sign. Denials are {@link CsrDeniedError}. */
  async sign(
    req: NodeCsrRequest,
    options: { signal?: AbortSignal } = {},
  ): Promise<NodeCertificate> {
    const { signal } = options;
    if (signal?.aborted)
      throw new AbortedError("CSR signing was aborted", { cause: signal.reason });
    const nodeName = req.nodeName;
    if (typeof nodeName !== "string" || nodeName.length === 0 || nodeName.length > 253) {
      throw new RangeError("nodeName: must be 1..253 characters");
    }
    const profile = req.profile ?? "client";
    if (profile !== "client" && profile !== "server" && profile !== "both") {
      throw new RangeError(`profile: must be client, server or both, got ${profile}`);
    }
    this.#opts.tokens.check(req.token, nodeName);
    const der = csrDer(req.csr);
    let csr: ParsedCsr;
    try {
      csr = parseCsrDer(der);
    } catch (e) {
      if (e instanceof DerError)
        throw new CsrDeniedError("malformed", `CSR is malformed: ${e.message}`, { cause: e });
      throw e;
    }
    await this.#checkPossession(csr);
    const ctx = this.#checkPolicy(csr, nodeName, profile, der);
    // Atomic: of two concurrent requests with one token, only one gets past here.
    this.#opts.tokens.consume(req.token, nodeName);
    await this.#askHook(ctx, signal);
    const certificate = await issueCertificate(this.#opts.ca, csr.spki.der, {
      profile,
      commonName: ctx.commonName,
      organizations: ["system:nodes"],
      dnsNames: ctx.dnsNames,
      ips: ctx.ips,
      validityMs: this.#opts.validityMs,
      now: this.#opts.now?.(),
      config: this.#opts.issuance,
    });
    return { certificate, intermediates: this.#opts.ca.chain.slice(0, -1) };
  }

  async #checkPossession(csr: ParsedCsr): Promise<void> {
    try {
      checkKeyStrength(csr.spki, "CSR key");
      const ok = await verifySignature(csr.spki, csr.sigAlg, csr.info, csr.signature, "CSR");
      if (!ok) throw deny("bad-signature", "CSR signature does not verify: no proof of possession");
    } catch (e) {
      if (!(e instanceof PeerVerificationError)) throw e;
      const reason: CsrDenyReason =
        e.reason === "weak-key"
          ? "weak-key"
          : e.reason === "weak-algorithm"
            ? "weak-algorithm"
            : e.reason === "malformed"
              ? "malformed"
              : "unsupported-key";
      throw new CsrDeniedError(reason, e.message, { cause: e });
    }
  }

  #checkPolicy(
    csr: ParsedCsr,
    nodeName: string,
    profile: "client" | "server" | "both",
    der: Uint8Array,
  ): CsrApprovalContext {
    const p = this.#policy;
    if (csr.duplicateExtension)
      throw deny("malformed", `CSR repeats extension ${csr.duplicateExtension}`);
    const wantCn = `system:node:${nodeName}`;
    if (csr.commonNames.length !== 1 || csr.commonNames[0] !== wantCn) {
      throw deny(
        "bad-common-name",
        `CSR CN must be exactly "${wantCn}", got ${JSON.stringify(csr.commonNames)}`,
      );
    }
    if (csr.organizations.length !== 1 || csr.organizations[0] !== "system:nodes") {
      throw deny(
        "bad-organization",
        `CSR O must be exactly "system:nodes", got ${JSON.stringify(csr.organizations)}`,
      );
    }
    if (csr.otherSubjectAttributes.length > 0) {
      throw deny(
        "bad-subject",
        `CSR subject has extra attributes ${csr.otherSubjectAttributes.join(", ")}`,
      );
    }
    let sans: GeneralNameEntry[] = [];
    for (const e of csr.extensions) {
      try {
        if (e.oid === ExtensionOid.subjectAltName) sans = parseGeneralNames(e.value);
        else if (e.oid === ExtensionOid.basicConstraints) {
          if (parseBasicConstraints(e.value).ca)
            throw deny("bad-extension", "CSR asks for a CA certificate");
        } else if (e.oid === ExtensionOid.keyUsage) {
          checkRequestedKeyUsage(parseKeyUsage(e.value), csr.spki.kind === "rsa");
        } else if (e.oid === ExtensionOid.extKeyUsage) {
          checkRequestedEku(parseEku(e.value), profile);
        } else {
          parseOne(e.value);
          throw deny("bad-extension", `CSR asks for extension ${e.oid}, which is not granted`);
        }
      } catch (err) {
        if (err instanceof DerError) throw deny("malformed", `CSR extension ${e.oid} is malformed`);
        throw err;
      }
    }
    const dnsNames: string[] = [];
    const ips: string[] = [];
    const allowedDns = new Set(p.allowedDnsNames(nodeName).map((d) => d.toLowerCase()));
    const allowedIps = new Set(
      p.allowedIps(nodeName).map((ip) => {
        const b = parseIp(ip);
        if (!b) throw new RangeError(`allowedIps: ${JSON.stringify(ip)} is not an IP`);
        return formatIp(b);
      }),
    );
    const cpIps = new Set(p.controlPlaneIps.map((ip) => formatIp(unmapped(parseIp(ip)!))));
    for (const s of sans) {
      switch (s.type) {
        case "dns": {
          if (controlPlaneDns(s.value, p.controlPlaneDnsNames)) {
            throw deny("control-plane-san", `CSR asks for control-plane name "${s.value}"`);
          }
          const n = normalizeDnsName(s.value);
          if (!n || !allowedDns.has(n) || profile === "client") {
            throw deny("san-not-allowed", `node "${nodeName}" may not have DNS name "${s.value}"`);
          }
          dnsNames.push(n);
          break;
        }
        case "ip": {
          if (s.bytes.length !== 4 && s.bytes.length !== 16)
            throw deny("malformed", "CSR IP SAN of bad length");
          const t = formatIp(s.bytes);
          if (cpIps.has(formatIp(unmapped(s.bytes)))) {
            throw deny("control-plane-san", `CSR asks for control-plane IP ${t}`);
          }
          if (!allowedIps.has(t) || profile === "client") {
            throw deny("san-not-allowed", `node "${nodeName}" may not have IP ${t}`);
          }
          ips.push(t);
          break;
        }
        case "email":
          if (!p.allowEmailSans) throw deny("email-san", `CSR asks for email SAN "${s.value}"`);
          throw deny(
            "san-not-allowed",
            "email SANs are allowed by policy but not issued in node certificates",
          );
        case "uri":
          if (!p.allowUriSans) throw deny("uri-san", `CSR asks for URI SAN "${s.value}"`);
          throw deny(
            "san-not-allowed",
            "URI SANs are allowed by policy but not issued in node certificates",
          );
        default:
          throw deny("other-san", `CSR asks for a ${s.type} SAN`);
      }
    }
    if (profile !== "client" && dnsNames.length + ips.length === 0) {
      throw deny(
        "san-not-allowed",
        "a serving certificate needs at least one allowed DNS name or IP",
      );
    }
    return {
      nodeName,
      commonName: wantCn,
      groups: ["system:nodes"],
      dnsNames,
      ips,
      profile,
      csrDer: der,
    };
  }

  async #askHook(ctx: CsrApprovalContext, signal: AbortSignal | undefined): Promise<void> {
    const ac = new AbortController();
    const onAbort = (): void => ac.abort(signal?.reason);
    signal?.addEventListener("abort", onAbort, { once: true });
    let approved: boolean;
    try {
      approved = await bounded(
        Promise.resolve().then(() => this.#opts.approve(ctx, ac.signal)),
        {
          timeoutMs: this.#policy.approvalTimeoutMs,
          what: "CSR approval hook",
          signal,
          onCancel: (err) => ac.abort(err),
        },
      );
    } catch (e) {
      if (e instanceof AbortedError) throw e;
      throw new CsrDeniedError(
        "hook-failed",
        `approval hook failed: ${(e as Error)?.message ?? e}`,
        { cause: e },
      );
    } finally {
      signal?.removeEventListener("abort", onAbort);
    }
    if (approved !== true)
      throw deny("hook-denied", `approval hook denied the CSR of node "${ctx.nodeName}"`);
  }
}
