/**
 * verifyChain over the x509-limbo suite (vendored in tests/fixtures/x509-limbo, see its
 * SOURCE.md; or $X509_LIMBO_JSON). Profile: Web PKI — where the suite's RFC 5280 and Web PKI
 * cases conflict (`conflicts_with`), the RFC 5280 side is not run.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { PeerVerificationError } from "../../src/channel/errors.ts";
import { verifyChain } from "../../src/pki/mod.ts";
import { expectedName, KNOWN_DIVERGENCES, limboCases } from "../_harness/limbo.ts";

test("x509-limbo: verifyChain agrees with every supported case", async () => {
  const { all, supported: cases } = limboCases();
  const ids = new Set(all.map((c) => c.id));
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
      `${all.length - cases.length} not run (unsupported features / RFC 5280 side of conflicts)`,
  );
  assert.deepEqual(wrong, []);
  assert.equal(passed + diverged, cases.length);
});
