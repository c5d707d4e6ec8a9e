/**
 * verifyChain over the x509-limbo suite (vendored in tests/fixtures/x509-limbo, see its
 * SOURCE.md; or $X509_LIMBO_JSON). Profile: Web PKI — where the suite's RFC 5280 and Web PKI
 * cases conflict (`conflicts_with`), the RFC 5280 side is not run.
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { PeerVerificationError } from "../../src/channel/errors.ts";
import { type ExpectedName, verifyChain } from "../../src/pki/mod.ts";

const FILE =
  process.env.X509_LIMBO_JSON ??
  fileURLToPath(new URL("../fixtures/x509-limbo/limbo.json", import.meta.url));

interface LimboCase {
  id: string;
  features: string[];
  validation_kind: "SERVER" | "CLIENT";
  trusted_certs: string[];
  untrusted_intermediates: string[];
  peer_certificate: string;
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
const KNOWN_DIVERGENCES: Record<string, string> = {
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

function expectedName(c: LimboCase): ExpectedName | undefined {
  const n = c.expected_peer_name;
  if (!n) return undefined;
  if (n.kind === "DNS") return { dns: n.value };
  if (n.kind === "IP") return { ip: n.value };
  return undefined;
}

test("x509-limbo: verifyChain agrees with every supported case", async () => {
  assert.ok(existsSync(FILE), `x509-limbo data missing at ${FILE}`);
  const data = JSON.parse(readFileSync(FILE, "utf8")) as { testcases: LimboCase[] };
  const ids = new Set(data.testcases.map((c) => c.id));
  const cases = data.testcases.filter(
    (c) =>
      !c.features.some((f) => UNSUPPORTED_FEATURES.has(f)) &&
      // Web PKI profile: skip the non-Web-PKI side of a conflict.
      !(c.id.startsWith("rfc5280::") && c.conflicts_with.some((x) => x.startsWith("webpki::"))),
  );
  for (const id of Object.keys(KNOWN_DIVERGENCES)) assert.ok(ids.has(id), `stale divergence ${id}`);
  let passed = 0;
  let diverged = 0;
  const wrong: string[] = [];
  for (const c of cases) {
    let verdict: "SUCCESS" | "FAILURE" = "SUCCESS";
    let detail = "";
    try {
      await verifyChain(c.peer_certificate, c.untrusted_intermediates, {
        roots: c.trusted_certs,
        usage: c.validation_kind === "SERVER" ? "server" : "client",
        name: expectedName(c),
        at: c.validation_time ? new Date(c.validation_time) : undefined,
        maxDepth: c.max_chain_depth ?? undefined,
      });
    } catch (e) {
      // Only our typed verdict counts as a FAILURE; anything else is a bug.
      assert.ok(e instanceof PeerVerificationError, `${c.id}: untyped error ${e}`);
      verdict = "FAILURE";
      detail = `${e.reason}: ${e.message}`;
    }
    const agrees = verdict === c.expected_result;
    if (c.id in KNOWN_DIVERGENCES) {
      // A listed divergence that starts agreeing must be removed from the list.
      if (agrees) wrong.push(`${c.id}: listed as divergent but now agrees`);
      else diverged++;
    } else if (agrees) passed++;
    else wrong.push(`${c.id}: expected ${c.expected_result}, got ${verdict} ${detail}`);
  }
  console.log(
    `x509-limbo: ${passed}/${cases.length} supported cases agree, ${diverged} known divergences, ` +
      `${data.testcases.length - cases.length} not run (unsupported features / RFC 5280 side of conflicts)`,
  );
  assert.deepEqual(wrong, []);
  assert.equal(passed + diverged, cases.length);
});
