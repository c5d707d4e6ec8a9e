/**
 * The public conformance suite for any Channel implementation. Register a
 * transport with {@link describeChannelConformance}; it runs every case twice,
 * with roles normal (a dials, b accepts) and swapped.
 *
 * Uses `node:test` (which `deno test` runs too) and fast-check.
 *
 * @module
 */

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { AbortedError, ChannelClosedError, SpokewireError } from "../channel/errors.ts";
import type { Channel, Listener } from "../channel/types.ts";

/** A connected pair from a factory. `a` is the dialing side, `b` the accepting side. */
export interface ConformancePair {
  readonly a: Channel;
  readonly b: Channel;
  /** Destroy the transport under both channels abruptly, as a crash or a cut cable would. */
  kill(): void;
}

/** What a transport gives the suite. Optional members enable the cases that need them. */
export interface ConformanceFactory {
  readonly name: string;
  /** Make a fresh connected pair. */
  pair(): Promise<ConformancePair>;
  /**
   * The documented bound on bytes a writer can get accepted while its peer never
   * reads (both ends' buffers, kernel included). The backpressure case writes
   * well past it and checks the writer stalls within it.
   */
  readonly bufferBound: number;
  /** Start a dial that `signal` aborts. Must reject with `ABORTED` and leak nothing. */
  dialWithSignal?(signal: AbortSignal): Promise<Channel>;
  /** Resources the transport holds now (sockets, streams); must return to its start after an aborted dial. */
  liveResources?(): number;
  /** A listener and a dial function that reaches it. */
  listener?(): Promise<{ listener: Listener; dial(): Promise<Channel> }>;
  /** Connect to a peer that must not be trusted; must reject with `PEER_VERIFICATION_FAILED`. */
  untrustedPeer?(): Promise<unknown>;
  /**
   * Whether `abort()` on one end reaches the other end as an error (default
   * true). False only where the wire has no reset: a Unix socket (AF_UNIX has
   * no RST), TCP under Deno (its socket API cannot send one), or a relayed transport whose relay closes cleanly (sshd turns an
   * SSH channel close into a FIN to the target). The case then checks that the
   * aborting side ends "aborted" and the peer's stream ends; the README must
   * say so.
   */
  readonly abortReachesPeer?: boolean;
  /**
   * Whether `kill()` can make both ends see an error (default true). False only
   * for a transport with no reset and no way to cut the wire (a Unix socket).
   */
  readonly killReachesBoth?: boolean;
  /** Number of runs for the property cases (default 20). */
  readonly numRuns?: number;
  /** Free what the factory holds, after the suite. */
  teardown?(): Promise<void>;
}

/** Longest any single case waits before it fails instead of hanging. */
const CASE_TIMEOUT_MS = 60_000;

/** Read everything until the peer's end-of-stream, bounded in bytes. */
export async function readAll(ch: Channel, limit = 512 * 1024 * 1024): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  let n = 0;
  const reader = ch.readable.getReader();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      parts.push(value);
      n += value.byteLength;
      if (n > limit) throw new RangeError(`readAll: more than ${limit} bytes`);
    }
  } finally {
    reader.releaseLock();
  }
  return concat(parts, n);
}

/** Concatenate chunks. */
export function concat(parts: readonly Uint8Array[], total?: number): Uint8Array {
  const out = new Uint8Array(total ?? parts.reduce((s, p) => s + p.byteLength, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.byteLength;
  }
  return out;
}

/** Write chunks, then half-close. */
export async function writeAll(ch: Channel, chunks: readonly Uint8Array[]): Promise<void> {
  const w = ch.writable.getWriter();
  try {
    for (const c of chunks) await w.write(c);
  } finally {
    w.releaseLock();
  }
  await ch.closeWrite();
}

function filled(len: number, seed: number): Uint8Array {
  const b = new Uint8Array(len);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < len; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

/** Wait for `p`, or fail the case after `ms` with a message naming `what`. */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: ReturnType<typeof setTimeout> | undefined;
  const timer = new Promise<never>((_, rej) => {
    t = setTimeout(() => rej(new Error(`${what}: still waiting after ${ms} ms`)), ms);
  });
  return Promise.race([p, timer]).finally(() => clearTimeout(t));
}

/** Resolves with "stalled" when `p` has not settled after `ms` (a stall detector, not a speed check). */
function stalls(p: Promise<unknown>, ms: number): Promise<"stalled" | "settled"> {
  let t: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    p.then(
      () => "settled" as const,
      () => "settled" as const,
    ),
    new Promise<"stalled">((r) => {
      t = setTimeout(() => r("stalled"), ms);
    }),
  ]).finally(() => clearTimeout(t));
}

function isCode(err: unknown, code: string): boolean {
  return err instanceof SpokewireError && err.code === code;
}

async function expectReadError(ch: Channel, what: string): Promise<SpokewireError> {
  const reader = ch.readable.getReader();
  try {
    for (let i = 0; i < 1_000_000; i++) {
      const r = await reader.read();
      if (r.done) assert.fail(`${what}: clean end-of-stream where an error was due`);
    }
    assert.fail(`${what}: no error after a million reads`);
  } catch (err) {
    if (!(err instanceof SpokewireError)) throw err;
    return err;
  } finally {
    reader.releaseLock();
  }
}

function roles(f: ConformanceFactory, swapped: boolean): () => Promise<ConformancePair> {
  if (!swapped) return () => f.pair();
  return async () => {
    const p = await f.pair();
    return { a: p.b, b: p.a, kill: () => p.kill() };
  };
}

/**
 * Register the conformance cases for a transport, in both roles.
 *
 * @example
 * ```ts ignore
 * import { describeChannelConformance } from "spokewire/testing";
 * import { memoryPair } from "spokewire";
 * describeChannelConformance({ name: "memory", bufferBound: 4 << 20, pair: async () => memoryPair() });
 * ```
 */
export function describeChannelConformance(factory: ConformanceFactory): void {
  describe(`Channel conformance: ${factory.name}`, { timeout: 10 * CASE_TIMEOUT_MS }, () => {
    for (const swapped of [false, true]) {
      describeRole(factory, swapped);
    }
    describeDialing(factory);
    if (factory.teardown) {
      it("teardown", async () => {
        await factory.teardown?.();
      });
    }
  });
}

function describeRole(factory: ConformanceFactory, swapped: boolean): void {
  const pair = roles(factory, swapped);
  const runs = factory.numRuns ?? 20;
  describe(swapped ? "roles swapped" : "roles normal", () => {
    it("arbitrary chunk lists round-trip exactly in both directions at once", async () => {
      const chunk = fc.uint8Array({ minLength: 0, maxLength: 70_000 });
      await fc.assert(
        fc.asyncProperty(
          fc.array(chunk, { maxLength: 12 }),
          fc.array(chunk, { maxLength: 12 }),
          async (ab, ba) => {
            const { a, b } = await pair();
            const [gotB, gotA] = await within(
              Promise.all([readAll(b), readAll(a), writeAll(a, ab), writeAll(b, ba)]),
              CASE_TIMEOUT_MS,
              "round trip",
            );
            assert.deepEqual(gotB, concat(ab));
            assert.deepEqual(gotA, concat(ba));
            const [ia, ib] = await within(Promise.all([a.closed, b.closed]), 10_000, "closed");
            assert.equal(ia.kind, "closed");
            assert.equal(ib.kind, "closed");
          },
        ),
        { numRuns: runs },
      );
    });

    it("a large transfer (8 MiB) arrives intact while the reader is slower than the writer", async () => {
      const { a, b } = await pair();
      const data = filled(8 * 1024 * 1024, 7);
      const chunks: Uint8Array[] = [];
      for (let o = 0; o < data.length; o += 100_003) chunks.push(data.subarray(o, o + 100_003));
      const reading = (async () => {
        const parts: Uint8Array[] = [];
        const r = b.readable.getReader();
        for (let i = 0; i < 1_000_000; i++) {
          const x = await r.read();
          if (x.done) break;
          parts.push(x.value);
          if (i % 16 === 0) await new Promise((res) => setImmediate(res));
        }
        return concat(parts);
      })();
      await within(writeAll(a, chunks), CASE_TIMEOUT_MS, "write 8 MiB");
      const got = await within(reading, CASE_TIMEOUT_MS, "read 8 MiB");
      assert.equal(got.length, data.length);
      assert.deepEqual(got, data);
      await b.close();
      await a.close();
    });

    it("closeWrite() ends the peer's readable while the other direction still works", async () => {
      const { a, b } = await pair();
      await a.closeWrite();
      const r = b.readable.getReader();
      const first = await within(r.read(), 10_000, "peer sees end-of-stream");
      assert.equal(first.done, true);
      const msg = new TextEncoder().encode("still open the other way");
      const w = b.writable.getWriter();
      await w.write(msg);
      await w.close();
      assert.deepEqual(await within(readAll(a), 10_000, "reverse direction"), msg);
      const [ia, ib] = await within(Promise.all([a.closed, b.closed]), 10_000, "closed");
      assert.equal(ia.kind, "closed");
      assert.equal(ib.kind, "closed");
    });

    it("a write after closeWrite() rejects with CHANNEL_CLOSED", async () => {
      const { a, b } = await pair();
      await a.closeWrite();
      const w = a.writable.getWriter();
      await assert.rejects(w.write(new Uint8Array([1])), (e) => {
        assert.ok(e instanceof ChannelClosedError, `got ${e}`);
        return true;
      });
      a.abort();
      b.abort();
    });

    it("backpressure: a writer whose peer does not read stalls within the documented bound", async () => {
      const { a, b } = await pair();
      const chunk = new Uint8Array(64 * 1024).fill(0x5a);
      const limit = factory.bufferBound + 8 * 1024 * 1024;
      const w = a.writable.getWriter();
      let accepted = 0;
      let stalled = false;
      for (let i = 0; accepted < limit && i < 100_000; i++) {
        const p = w.write(chunk);
        if ((await stalls(p, 500)) === "stalled") {
          stalled = true;
          p.catch(() => {});
          break;
        }
        accepted += chunk.byteLength;
      }
      assert.ok(stalled, `writer never stalled after ${accepted} bytes`);
      assert.ok(
        accepted <= factory.bufferBound,
        `writer got ${accepted} bytes accepted, bound is ${factory.bufferBound}`,
      );
      // Now read: everything accepted arrives, and the stalled writer moves on.
      w.releaseLock();
      const reading = readAll(b);
      await within(a.closeWrite(), CASE_TIMEOUT_MS, "flush after reader starts");
      const got = await within(reading, CASE_TIMEOUT_MS, "read the backlog");
      assert.equal(got.byteLength, accepted + chunk.byteLength);
      assert.ok(got.every((x) => x === 0x5a));
      await b.close();
      await a.close();
    });

    it("close() is idempotent; closed resolves once and never rejects", async () => {
      const { a, b } = await pair();
      const peer = (async () => {
        await readAll(b);
        await b.close();
      })();
      await within(Promise.all([a.close(), a.close(), peer]), 20_000, "graceful close");
      await a.close();
      const info = await a.closed;
      assert.equal(info.kind, "closed");
      assert.strictEqual(await a.closed, info);
      a.abort(); // after close: a no-op
      assert.strictEqual(await a.closed, info);
      assert.equal((await b.closed).kind, "closed");
    });

    it("close() of a peer that never half-closes is bounded in time", async () => {
      const { a, b } = await pair();
      const ac = new AbortController();
      const t = setTimeout(() => ac.abort(), 300);
      await within(a.close({ signal: ac.signal }), 10_000, "bounded close");
      clearTimeout(t);
      const info = await a.closed;
      assert.equal(info.kind, "aborted");
      b.abort();
    });

    if (factory.abortReachesPeer === false) {
      it("abort() without a wire reset: this side ends aborted, the peer's stream ends", async () => {
        const { a, b } = await pair();
        a.abort(new Error("test abort"));
        assert.equal((await a.closed).kind, "aborted");
        await within(readAll(b), 10_000, "peer sees the end");
        b.abort();
      });
    } else {
      it("abort() makes the peer's pending read reject with CHANNEL_RESET", async () => {
        const { a, b } = await pair();
        const reader = b.readable.getReader();
        const pending = reader.read();
        a.abort(new Error("test abort"));
        await assert.rejects(within(pending, 10_000, "peer read after abort"), (e) => {
          assert.ok(isCode(e, "CHANNEL_RESET"), `got ${e}`);
          return true;
        });
        const ia = await a.closed;
        assert.equal(ia.kind, "aborted");
        const ib = await within(b.closed, 10_000, "peer closed");
        assert.equal(ib.kind, "reset");
        assert.ok(isCode(ib.error, "CHANNEL_RESET"));
      });
    }

    it("abort() fails this side's own pending read and write", async () => {
      const { a, b } = await pair();
      const reader = a.readable.getReader();
      const pending = reader.read();
      a.abort();
      await assert.rejects(pending, (e) => e instanceof SpokewireError);
      await assert.rejects(a.writable.getWriter().write(new Uint8Array(1)));
      b.abort();
    });

    if (factory.killReachesBoth !== false) {
      it("the transport killed mid-transfer makes both ends see an error, never a clean end", async () => {
        const { a, b, ...rest } = await pair();
        const w = a.writable.getWriter();
        const chunk = new Uint8Array(16 * 1024).fill(1);
        await w.write(chunk);
        const r = b.readable.getReader();
        const first = await within(r.read(), 10_000, "first bytes");
        assert.equal(first.done, false);
        r.releaseLock();
        rest.kill();
        const eb = await within(expectReadError(b, "receiver"), 10_000, "receiver error");
        assert.ok(isCode(eb, "CHANNEL_RESET") || isCode(eb, "PROTOCOL_ERROR"), `receiver: ${eb}`);
        // The sender finds out too: its closed promise reports a reset, and writes fail.
        const ia = await within(a.closed, 10_000, "sender closed");
        assert.notEqual(ia.kind, "closed");
        await assert.rejects(w.write(chunk));
        const ib = await b.closed;
        assert.notEqual(ib.kind, "closed");
      });
    }

    it("100 concurrent pairs show no cross-talk", async () => {
      const pairs = await within(
        Promise.all(Array.from({ length: 100 }, () => pair())),
        CASE_TIMEOUT_MS,
        "100 pairs",
      );
      await within(
        Promise.all(
          pairs.map(async ({ a, b }, i) => {
            const da = filled(1000 + i * 37, i + 1);
            const db = filled(500 + i * 11, i + 1001);
            const [gb, ga] = await Promise.all([
              readAll(b),
              readAll(a),
              writeAll(a, [da]),
              writeAll(b, [db]),
            ]);
            assert.deepEqual(gb, da, `pair ${i} a->b`);
            assert.deepEqual(ga, db, `pair ${i} b->a`);
          }),
        ),
        CASE_TIMEOUT_MS,
        "100 transfers",
      );
      for (const { a, b } of pairs) {
        assert.equal((await a.closed).kind, "closed");
        assert.equal((await b.closed).kind, "closed");
      }
    });
  });
}

function describeDialing(factory: ConformanceFactory): void {
  const { dialWithSignal, listener, untrustedPeer } = factory;
  if (dialWithSignal) {
    it("an AbortSignal cancels a dial and leaks nothing", async () => {
      const before = factory.liveResources?.();
      const pre = AbortSignal.abort(new Error("pre-aborted"));
      await assert.rejects(dialWithSignal(pre), (e) => e instanceof AbortedError);
      const ac = new AbortController();
      const p = dialWithSignal(ac.signal);
      ac.abort(new Error("changed my mind"));
      const outcome = await within(
        p.then(
          (ch) => ch,
          (e) => e,
        ),
        10_000,
        "aborted dial",
      );
      // The dial may have won the race; then the channel must still be usable and closable.
      if (outcome instanceof Error) assert.ok(outcome instanceof AbortedError, `got ${outcome}`);
      else (outcome as Channel).abort();
      if (before !== undefined) {
        for (let i = 0; i < 200 && factory.liveResources?.() !== before; i++) {
          await new Promise((r) => setTimeout(r, 10));
        }
        assert.equal(factory.liveResources?.(), before, "resources leaked by an aborted dial");
      }
    });
  }
  if (listener) {
    it("closing a listener ends its iteration while live channels keep working", async () => {
      const { listener: l, dial } = await listener();
      const iter = l[Symbol.asyncIterator]();
      const [client, accepted] = await within(Promise.all([dial(), iter.next()]), 10_000, "accept");
      assert.equal(accepted.done, false);
      const server = accepted.value as Channel;
      const nextAfterClose = iter.next();
      await l.close();
      const end = await within(nextAfterClose, 10_000, "iteration ends");
      assert.equal(end.done, true);
      const msg = new TextEncoder().encode("after listener close");
      const [got] = await Promise.all([readAll(server), writeAll(client, [msg])]);
      assert.deepEqual(got, msg);
      await Promise.all([server.close(), client.close()]);
    });
  }
  if (untrustedPeer) {
    it("an untrusted peer is refused before a channel exists", async () => {
      await assert.rejects(within(untrustedPeer(), 20_000, "untrusted dial"), (e) => {
        assert.ok(isCode(e, "PEER_VERIFICATION_FAILED"), `got ${e}`);
        return true;
      });
    });
  }
}
