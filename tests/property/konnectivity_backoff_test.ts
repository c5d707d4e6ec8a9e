/**
 * The agent's reconnect delays: bounds for any configuration and draw (fast-check), the
 * full-jitter distribution, the spread of the first reconnect after a drop, Retry-After
 * honoured; and N agents whose server restarts arrive spread out, not in waves.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import {
  agentReconnectDelay,
  DEFAULT_KONNECTIVITY_AGENT_CONFIG,
  KonnectivityAgent,
  type KonnectivityAgentConfig,
  KonnectivityServer,
  verifyKonnectivityAgentConfig,
} from "../../src/konnectivity/mod.ts";
import { makeTestPki } from "../../src/testing/_fixtures/pki.ts";

/** A seeded PRNG (mulberry32), so the distribution checks are the same on every run. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const arbConfig = fc
  .record({
    minBackoffMs: fc.integer({ min: 1, max: 10_000 }),
    extra: fc.integer({ min: 0, max: 100_000 }),
    backoffMultiplier: fc.double({ min: 1, max: 10, noNaN: true }),
    jitter: fc.double({ min: 0, max: 1, noNaN: true }),
    reconnectSpreadMs: fc.integer({ min: 0, max: 60_000 }),
  })
  .map((r) =>
    verifyKonnectivityAgentConfig({
      minBackoffMs: r.minBackoffMs,
      maxBackoffMs: r.minBackoffMs + r.extra,
      backoffMultiplier: r.backoffMultiplier,
      jitter: r.jitter,
      reconnectSpreadMs: r.reconnectSpreadMs,
    }),
  );

const capOf = (c: KonnectivityAgentConfig, attempt: number) =>
  Math.min(c.maxBackoffMs, c.minBackoffMs * c.backoffMultiplier ** attempt);

/** Fraction of `xs` in each of `n` equal buckets over [0, top). */
function deciles(xs: number[], top: number, n = 10): number[] {
  const b = new Array<number>(n).fill(0);
  for (const x of xs) b[Math.min(n - 1, Math.floor((x / top) * n))]++;
  return b.map((k) => k / xs.length);
}

describe("agent reconnect delays", () => {
  it("within [cap x (1 - jitter), cap], never below 1 ms, for any config, attempt and draw", () => {
    fc.assert(
      fc.property(
        arbConfig,
        fc.integer({ min: 0, max: 64 }),
        fc.double({ min: 0, max: 0.999999, noNaN: true }),
        (c, attempt, r) => {
          const d = agentReconnectDelay(c, { attempt, random: () => r });
          const cap = capOf(c, attempt);
          assert.ok(d >= 1, `${d}`);
          assert.ok(d <= Math.max(1, Math.round(cap)), `${d} > cap ${cap}`);
          assert.ok(
            d >= Math.round(cap * (1 - c.jitter)) - 1 || d === 1,
            `${d} < ${cap * (1 - c.jitter)}`,
          );
        },
      ),
      { numRuns: 2000 },
    );
  });

  it("after a drop: at least the spread draw, at most max(cap, spread); Retry-After comes first", () => {
    fc.assert(
      fc.property(
        arbConfig,
        fc.integer({ min: 0, max: 64 }),
        fc.double({ min: 0, max: 0.999999, noNaN: true }),
        fc.integer({ min: 1, max: 7_200_000 }),
        (c, attempt, r, retryAfterMs) => {
          const cap = capOf(c, attempt);
          const d = agentReconnectDelay(c, { attempt, random: () => r, afterDrop: true });
          assert.ok(d <= Math.max(1, Math.round(Math.max(cap, c.reconnectSpreadMs))));
          assert.ok(d >= Math.round(c.reconnectSpreadMs * r) || d === 1);
          const w = agentReconnectDelay(c, { attempt, random: () => r, retryAfterMs });
          const after = Math.min(retryAfterMs, 3_600_000);
          assert.ok(w >= after, `${w} < Retry-After ${after}`);
          assert.ok(w <= after + Math.round(cap) + 1);
        },
      ),
      { numRuns: 2000 },
    );
  });

  it("full jitter by default: uniform over (0, cap] (10,000 seeded draws, each decile 10% +- 2%)", () => {
    const c = DEFAULT_KONNECTIVITY_AGENT_CONFIG;
    assert.equal(c.jitter, 1);
    const random = seeded(42);
    const cap = capOf(c, 8); // 500 x 1.5^8 > 10 s: the cap is maxBackoffMs
    assert.equal(cap, c.maxBackoffMs);
    const xs = Array.from({ length: 10_000 }, () => agentReconnectDelay(c, { attempt: 8, random }));
    for (const [i, f] of deciles(xs, cap).entries()) {
      assert.ok(f > 0.08 && f < 0.12, `decile ${i}: ${f}`);
    }
  });

  it("the first reconnect after a drop is spread evenly over reconnectSpreadMs (no wave at the start)", () => {
    const c = DEFAULT_KONNECTIVITY_AGENT_CONFIG;
    const random = seeded(7);
    const xs = Array.from({ length: 10_000 }, () =>
      agentReconnectDelay(c, { attempt: 0, random, afterDrop: true }),
    );
    for (const [i, f] of deciles(xs, c.reconnectSpreadMs).entries()) {
      assert.ok(f > 0.08 && f < 0.12, `decile ${i}: ${f}`);
    }
    // Without the spread every dropped agent would come back within minBackoffMs.
    const none = verifyKonnectivityAgentConfig({ reconnectSpreadMs: 0 });
    const ys = Array.from({ length: 1000 }, () =>
      agentReconnectDelay(none, { attempt: 0, random, afterDrop: true }),
    );
    assert.ok(ys.every((y) => y <= none.minBackoffMs));
  });

  it("60 agents whose server restarts come back spread over the window, not in a wave", {
    timeout: 60_000,
  }, async () => {
    const pki = makeTestPki();
    const N = 60;
    const SPREAD = 2000;
    const tls = { credentials: { ca: pki.ca.cert, cert: pki.server.cert, key: pki.server.key } };
    // Agents authenticate as node-<i> through this authorizer (one client certificate).
    let n = 0;
    const authorizeCertificate = () => `node-${n++}`;
    const quiet = { info: () => {}, warn: () => {} };
    let server = await KonnectivityServer.listen({ tls, authorizeCertificate, logger: quiet });
    const port = server.port;
    const agents: KonnectivityAgent[] = [];
    try {
      for (let i = 0; i < N; i++) {
        const a = new KonnectivityAgent({
          server: { host: "127.0.0.1", port },
          credentials: { ca: pki.ca.cert, cert: pki.client.cert, key: pki.client.key },
          allow: ["127.0.0.1:1"],
          config: { minBackoffMs: 50, maxBackoffMs: 400, reconnectSpreadMs: SPREAD },
        });
        a.start();
        agents.push(a);
      }
      await Promise.all(agents.map((a) => a.waitConnected({ timeoutMs: 30_000 })));
      // Restart: close, then listen again on the same port at once.
      const arrivals: number[] = [];
      let t0 = 0;
      await server.close();
      server = await KonnectivityServer.listen({
        tls,
        port,
        authorizeCertificate,
        logger: {
          info: (m) => {
            if (/ registered /.test(m)) arrivals.push(performance.now() - t0);
          },
          warn: () => {},
        },
      });
      t0 = performance.now();
      const end = Date.now() + 30_000;
      while (arrivals.length < N && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
      assert.equal(arrivals.length, N, `${arrivals.length} of ${N} came back`);
      const f = deciles(arrivals, SPREAD + 400);
      const busiest = Math.max(...f);
      const used = f.filter((x) => x > 0).length;
      assert.ok(
        busiest <= 0.35,
        `a wave: ${(busiest * 100).toFixed(0)}% in one tenth of the window (${f.map((x) => x.toFixed(2))})`,
      );
      assert.ok(
        used >= 6,
        `arrivals bunched in ${used} of 10 tenths (${f.map((x) => x.toFixed(2))})`,
      );
    } finally {
      await Promise.all(agents.map((a) => a.close()));
      await server.close();
      pki.cleanup();
    }
  });
});
