/**
 * Head-of-line blocking (upstream #180 / #881): 8 connections share one session,
 * one reader stops reading, and each of the other 7 still moves 64 MiB while the
 * session's buffered bytes stay under the documented bound.
 */
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import type { Channel } from "../../src/channel/types.ts";
import { DEFAULT_SESSION_CONFIG, type KonnectivitySession } from "../../src/konnectivity/mod.ts";
import { memorySessionPair, type SessionPair, WsHarness } from "../_harness/konnectivity_pairs.ts";

const CONNS = 8;
const PER_CONN = 64 * 1024 * 1024;
const CHUNK = 64 * 1024;
const CASE_TIMEOUT_MS = 240_000;

/** Bytes the session may hold for `n` connections: n windows + growth budget + pipe HWM + a message + control backlog. */
function boundFor(s: KonnectivitySession, n: number): number {
  const c = s.config;
  return (
    n * c.connectionWindow +
    c.windowGrowthBudget +
    1024 * 1024 +
    c.maxMessageSize +
    c.maxControlBacklog
  );
}

/** Chunk i is filled with i % 251, so every byte says where it belongs. */
function chunkFor(i: number, pool: Uint8Array[]): Uint8Array {
  return pool[i % 251];
}

async function pump(ch: Channel, total: number, pool: Uint8Array[]): Promise<void> {
  const w = ch.writable.getWriter();
  for (let i = 0; i * CHUNK < total; i++) await w.write(chunkFor(i, pool));
  await w.close();
}

async function drain(ch: Channel, onChunk: () => void): Promise<number> {
  const r = ch.readable.getReader();
  let off = 0;
  for (let i = 0; i < 10_000_000; i++) {
    const { value, done } = await r.read();
    if (done) break;
    // First and last byte of each piece must belong to the chunk at its offset.
    const want = (o: number): number => Math.floor(o / CHUNK) % 251;
    assert.equal(value[0], want(off), `byte at ${off}`);
    assert.equal(value[value.length - 1], want(off + value.length - 1));
    off += value.length;
    if (i % 64 === 0) onChunk();
  }
  return off;
}

async function holCase(p: SessionPair): Promise<string> {
  const t0 = performance.now();
  const pool = Array.from({ length: 251 }, (_, i) => new Uint8Array(CHUNK).fill(i));
  const pairs = await Promise.all(
    Array.from({ length: CONNS }, (_, i) =>
      Promise.all([p.server.dial(`hol-${i}:80`), p.router.take(`hol-${i}:80`)]),
    ),
  );
  const [stalledA, stalledB] = pairs[0];
  // The stalled connection: its writer has 4 MiB to send, its reader does not read (yet).
  const STALLED_TOTAL = 4 * 1024 * 1024;
  const sw = stalledA.writable.getWriter();
  let stalledAccepted = 0;
  const stalledWriting = (async () => {
    for (let i = 0; i * CHUNK < STALLED_TOTAL; i++) {
      await sw.write(pool[0]);
      stalledAccepted += CHUNK;
    }
    await sw.close();
  })();

  let maxRecv = 0;
  let maxSend = 0;
  let samples = 0;
  const sample = (): void => {
    samples++;
    for (const s of [p.server, p.agent]) {
      const st = s.stats();
      maxRecv = Math.max(maxRecv, st.bufferedReceiveBytes);
      maxSend = Math.max(maxSend, st.bufferedSendBytes);
      assert.ok(
        st.bufferedReceiveBytes + st.bufferedSendBytes <= boundFor(s, CONNS),
        `session holds ${st.bufferedReceiveBytes}+${st.bufferedSendBytes} bytes`,
      );
      assert.ok(st.bufferedReceiveBytes + st.bufferedSendBytes <= st.memoryBound);
    }
  };
  const moved = await Promise.all(
    pairs.slice(1).map(async ([a, b]) => {
      const [n] = await Promise.all([drain(b, sample), pump(a, PER_CONN, pool)]);
      return n;
    }),
  );
  for (const n of moved) assert.equal(n, PER_CONN);
  const elapsed = performance.now() - t0;
  const window0 = DEFAULT_SESSION_CONFIG.connectionWindow;
  // Receive buffers stay within the windows: 8 initial ones plus what auto-tuning may add.
  const growth = DEFAULT_SESSION_CONFIG.windowGrowthBudget;
  assert.ok(maxRecv <= CONNS * window0 + growth, `receive buffers peaked at ${maxRecv}`);
  assert.ok(samples > 100, `only ${samples} samples`);

  // The stalled connection never got more than its window (plus one chunk in flight) accepted.
  const window = DEFAULT_SESSION_CONFIG.connectionWindow;
  assert.ok(stalledAccepted <= window + CHUNK, `stalled writer got ${stalledAccepted} accepted`);
  assert.ok(stalledAccepted >= window - CHUNK, `stalled writer only got ${stalledAccepted} out`);
  // Its bytes sit in its own receive buffer, bounded by the window.
  assert.ok(p.agent.stats().bufferedReceiveBytes <= window);
  // And it recovers once its reader comes back: every byte arrives.
  const r = stalledB.readable.getReader();
  let got = 0;
  for (let i = 0; i < 1_000_000; i++) {
    const { value, done } = await r.read();
    if (done) break;
    assert.ok(value.every((x) => x === 0));
    got += value.length;
  }
  await stalledWriting;
  assert.equal(got, STALLED_TOTAL);
  await Promise.all([stalledA.close(), stalledB.close()]);
  for (const [a, b] of pairs.slice(1)) {
    await b.close();
    await a.close();
  }
  return `7 x ${PER_CONN >> 20} MiB in ${Math.round(elapsed)} ms; peak buffered: receive ${maxRecv} B, send ${maxSend} B`;
}

/** Report the numbers in the TAP output where the runner supports it. */
function diag(t: unknown, msg: string): void {
  (t as { diagnostic?: (m: string) => void }).diagnostic?.(msg);
}

describe("konnectivity head-of-line: one stalled reader stalls only itself", {
  timeout: 2 * CASE_TIMEOUT_MS,
}, () => {
  it("in-memory pipe: 7 x 64 MiB move while the 8th reader is stalled", {
    timeout: CASE_TIMEOUT_MS,
  }, async (t) => {
    const p = memorySessionPair();
    try {
      diag(t, await holCase(p));
    } finally {
      await p.close();
    }
  });

  it("ws on 127.0.0.1: 7 x 64 MiB move while the 8th reader is stalled", {
    timeout: CASE_TIMEOUT_MS,
  }, async (t) => {
    const h = await WsHarness.start();
    after(() => h.close());
    const p = await h.pair();
    try {
      diag(t, await holCase(p));
    } finally {
      await p.close();
    }
  });
});
