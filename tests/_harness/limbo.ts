/**
 * The x509-limbo suite (vendored in tests/fixtures/x509-limbo, see its SOURCE.md; or
 * $X509_LIMBO_JSON), as the verifyChain and TLS tests read it: the cases our profile
 * (Web PKI) supports, and the few where we disagree on purpose.
 *
 * @module
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import process from "node:process";
import { fileURLToPath } from "node:url";
import type { ExpectedName } from "../../src/pki/mod.ts";

const FILE =
  process.env.X509_LIMBO_JSON ??
  fileURLToPath(new URL("../fixtures/x509-limbo/limbo.json", import.meta.url));

/** One case of the suite. */
export interface LimboCase {
  id: string;
  features: string[];
  validation_kind: "SERVER" | "CLIENT";
  trusted_certs: string[];
  untrusted_intermediates: string[];
  peer_certificate: string;
  /** The peer's private key (PEM), where the suite gives one. */
  peer_certificate_key?: string | null;
  validation_time: string | null;
  expected_peer_name: { kind: string; value: string } | null;
  max_chain_depth: number | null;
  expected_result: "SUCCESS" | "FAILURE";
  conflicts_with: string[];
}

/** Features we do not implement; cases carrying them are not run. */
const UNSUPPORTED_FEATURES = new Set([
  // We do not process CRLs (revocation is out of scope for verifyChain).
  "has-crl",
  // Wildcards over public suffixes need the Public Suffix List, which we do not ship.
  "pedantic-public-suffix-wildcard",
  // RFC 5280 behaviour that the Web PKI profile (ours) rejects.
  "rfc5280-incompatible-with-webpki",
]);

/**
 * Known divergences: we reach the opposite verdict on purpose. Keep this short and honest.
 */
export const KNOWN_DIVERGENCES: Record<string, string> = {
  // A CA certificate is never accepted as the end entity (Web PKI, same as
  // webpki::ee-basicconstraints-ca); this RFC 5280 case expects it to be.
  "pathlen::validation-ignores-pathlen-in-leaf": "CA certificate used as leaf is refused",
  // Pedantic RFC 5280: a cross-signed trust anchor without AKI. Requiring AKI on
  // anchors breaks cve::cve-2024-0567 (SUCCESS), so anchors are not judged on AKI.
  "rfc5280::aki::cross-signed-root-missing-aki": "trust anchors are not required to carry AKI",
  // CABF BR 7.1.4.3 (the CN must copy a SAN entry) is an issuance rule. We never
  // read the CN for names; enforcing the rule would fail suite cases that expect
  // SUCCESS with a CN outside the SAN (e.g. webpki::san::leftmost-wildcard-san).
  "webpki::cn::ipv4-hex-mismatch": "CN not judged",
  "webpki::cn::ipv4-leading-zeros-mismatch": "CN not judged",
  "webpki::cn::ipv6-uppercase-mismatch": "CN not judged",
  "webpki::cn::ipv6-uncompressed-mismatch": "CN not judged",
  "webpki::cn::ipv6-non-rfc5952-mismatch": "CN not judged",
  "webpki::cn::punycode-not-in-san": "CN not judged",
  "webpki::cn::utf8-vs-punycode-mismatch": "CN not judged",
  "webpki::cn::not-in-san": "CN not judged",
  "webpki::cn::case-mismatch": "CN not judged",
};

export function expectedName(c: LimboCase): ExpectedName | undefined {
  const n = c.expected_peer_name;
  if (!n) return undefined;
  if (n.kind === "DNS") return { dns: n.value };
  if (n.kind === "IP") return { ip: n.value };
  return undefined;
}

/** Every case, and the ones our profile runs. */
export function limboCases(): { all: LimboCase[]; supported: LimboCase[] } {
  assert.ok(existsSync(FILE), `x509-limbo data missing at ${FILE}`);
  const data = JSON.parse(readFileSync(FILE, "utf8")) as { testcases: LimboCase[] };
  const supported = data.testcases.filter(
    (c) =>
      !c.features.some((f) => UNSUPPORTED_FEATURES.has(f)) &&
      // Web PKI profile: skip the non-Web-PKI side of a conflict.
      !(c.id.startsWith("rfc5280::") && c.conflicts_with.some((x) => x.startsWith("webpki::"))),
  );
  return { all: data.testcases, supported };
}
