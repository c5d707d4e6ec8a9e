/**
 * The x509-limbo name cases (SAN, CN and name-constraint groups) through the TLS dialer:
 * a TLS server presents each case's certificate and intermediates, and `TlsDialer`,
 * trusting the case's roots and expecting its name, must reach the suite's verdict: the
 * dialer's verdict is `verifyChain`'s, names included, in both runtimes.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { createServer, type Server } from "node:tls";
import { PeerVerificationError } from "../../src/channel/errors.ts";
import { TlsDialer } from "../../src/tls/mod.ts";
import { expectedName, KNOWN_DIVERGENCES, type LimboCase, limboCases } from "../_harness/limbo.ts";

const NAME_GROUP = /^(webpki|rfc5280)::(san|cn|nc)::/;

/**
 * Cases Deno's TLS layer refuses inside the handshake, before spokewire's verifier sees
 * the certificate (DIAL_FAILED, not a verdict; issue 24, open). The suite's verdict is
 * FAILURE for each, so only the kind of error differs.
 */
const DENO_REFUSES_IN_HANDSHAKE: Record<string, string> = {
  "rfc5280::san::malformed": "rustls cannot parse the malformed SAN",
};
const IS_DENO = "Deno" in globalThis;

function nameCases(): LimboCase[] {
  return limboCases().supported.filter(
    (c) =>
      NAME_GROUP.test(c.id) &&
      c.validation_kind === "SERVER" &&
      c.peer_certificate_key !== null &&
      c.peer_certificate_key !== undefined &&
      expectedName(c) !== undefined &&
      c.max_chain_depth === null &&
      !(c.id in KNOWN_DIVERGENCES),
  );
}

/** A TLS server presenting the case's chain; undefined when the runtime cannot load it. */
async function serve(c: LimboCase): Promise<{ server: Server; port: number } | undefined> {
  let server: Server;
  try {
    server = createServer(
      {
        key: c.peer_certificate_key ?? "",
        cert: [c.peer_certificate, ...c.untrusted_intermediates].join("\n"),
      },
      (s) => {
        // Speak first: the dialer takes data as the server's acceptance.
        s.on("error", () => {});
        s.write("ok");
      },
    );
  } catch {
    return undefined;
  }
  server.on("tlsClientError", () => {});
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const addr = server.address();
  return { server, port: typeof addr === "object" && addr ? addr.port : 0 };
}

test("x509-limbo name cases: the TLS dialer reaches the suite's verdict", {
  timeout: 120_000,
}, async () => {
  const cases = nameCases();
  assert.ok(cases.length >= 30, `only ${cases.length} name cases`);
  const wrong: string[] = [];
  let ran = 0;
  let unloadable = 0;
  for (const c of cases) {
    const s = await serve(c);
    if (!s) {
      // The server side (the runtime's TLS) cannot present it; the dialer is not judged.
      unloadable++;
      continue;
    }
    const name = expectedName(c);
    const dialer = new TlsDialer({
      credentials: { ca: c.trusted_certs },
      handshakeTimeoutMs: 5_000,
      now: c.validation_time ? () => new Date(c.validation_time as string) : undefined,
    });
    let verdict: "SUCCESS" | "FAILURE" = "SUCCESS";
    let detail = "";
    try {
      const ch = await dialer.dial({
        host: "127.0.0.1",
        port: s.port,
        name: name && "dns" in name ? name.dns : name?.ip,
      });
      ch.abort();
    } catch (e) {
      verdict = "FAILURE";
      detail = `${(e as { code?: string }).code} ${(e as PeerVerificationError).reason ?? ""}: ${(e as Error).message}`;
      if (!(e instanceof PeerVerificationError)) detail = `untyped or not a verdict: ${detail}`;
    }
    await new Promise<void>((r) => s.server.close(() => r()));
    ran++;
    const denoGap = IS_DENO && c.id in DENO_REFUSES_IN_HANDSHAKE && c.expected_result === "FAILURE";
    if (denoGap && verdict === "FAILURE") continue;
    if (verdict !== c.expected_result || detail.startsWith("untyped")) {
      wrong.push(`${c.id}: expected ${c.expected_result}, got ${verdict} ${detail}`);
    }
  }
  console.log(
    `x509-limbo through TLS: ${ran - wrong.length}/${ran} name cases agree (${unloadable} the TLS server could not present)`,
  );
  assert.deepEqual(wrong, []);
  assert.ok(ran >= 30, `only ${ran} cases ran`);
});
