/**
 * One transfer to a peer that half-closes at once without sending a byte: the
 * shape that Deno 2.9's `node:net` broke (a queued write died with EPIPE). Used
 * by the TCP, TLS and Konnectivity suites.
 */
import assert from "node:assert/strict";
import type { Channel } from "../../mod.ts";
import { concat, readAll, writeAll } from "../../src/testing/mod.ts";
import { seededBytes, within } from "./bounded.ts";

/** What one run does. */
export interface SilentPeerRun {
  /** The channel that writes nothing and half-closes at once. */
  readonly silent: Channel;
  /** The channel that writes `data` and then half-closes. */
  readonly writer: Channel;
  /** The bytes the writer sends, in these chunks. */
  readonly chunks: readonly Uint8Array[];
  /** Whether the writer reads its own readable while it writes (else only afterwards). */
  readonly writerReads: boolean;
  /**
   * The writer first reads the silent peer's end, then writes (a reply to a request
   * that half-closed); implies reading. Default false.
   */
  readonly writerWaitsForEnd?: boolean;
  /** Timer turns the silent peer waits before its half-close (default 0: at once). */
  readonly silentDelayTurns?: number;
  /** Bound on each step. */
  readonly stepTimeoutMs: number;
  /** Names the run in failures. */
  readonly label: string;
}

function firstDifference(x: Uint8Array, y: Uint8Array): number {
  const n = Math.min(x.length, y.length);
  for (let i = 0; i < n; i++) if (x[i] !== y[i]) return i;
  return x.length === y.length ? -1 : n;
}

/**
 * Run one transfer and assert: every byte arrives in order, the silent peer's end
 * reaches the writer as a clean end with no bytes, and both channels end "closed".
 */
export async function silentPeerTransfer(run: SilentPeerRun): Promise<void> {
  const { silent, writer, label, stepTimeoutMs: ms } = run;
  const want = concat(run.chunks);
  const turns = Math.min(run.silentDelayTurns ?? 0, 10);
  const fin = (async () => {
    for (let i = 0; i < turns; i++) await new Promise((r) => setTimeout(r, 0));
    await silent.closeWrite();
  })();
  const received = readAll(silent);
  const writerSees = run.writerReads || run.writerWaitsForEnd ? readAll(writer) : undefined;
  if (run.writerWaitsForEnd) await within(writerSees as Promise<Uint8Array>, ms, `${label}: end`);
  else if (turns === 0) await within(fin, ms, `${label}: silent closeWrite`);
  await within(writeAll(writer, run.chunks), ms, `${label}: write ${want.length} bytes`);
  await within(fin, ms, `${label}: silent closeWrite`);
  const got = await within(received, ms, `${label}: the silent peer reads`);
  assert.equal(got.length, want.length, `${label}: bytes received`);
  assert.equal(firstDifference(got, want), -1, `${label}: bytes differ`);
  const back = await within(
    writerSees ?? readAll(writer),
    ms,
    `${label}: the writer reads the end`,
  );
  assert.equal(back.length, 0, `${label}: the silent peer sent nothing`);
  const [iw, is] = await within(
    Promise.all([writer.closed, silent.closed]),
    ms,
    `${label}: closed`,
  );
  assert.equal(iw.kind, "closed", `${label}: writer ${iw.kind}: ${iw.error?.message}`);
  assert.equal(is.kind, "closed", `${label}: silent ${is.kind}: ${is.error?.message}`);
}

/** A small deterministic generator for run shapes (sizes, chunking). */
export function shapes(seed: number): { int(lo: number, hi: number): number } {
  let x = seed >>> 0 || 1;
  return {
    int(lo: number, hi: number): number {
      x = (Math.imul(x, 1_103_515_245) + 12_345) >>> 0;
      return lo + (x % (hi - lo + 1));
    },
  };
}

/**
 * The shape of randomized run `run` (size up to `maxBytes`, chunking, how the
 * writer reads, when the silent peer half-closes), drawn from `rnd`.
 */
export function randomShape(
  rnd: { int(lo: number, hi: number): number },
  run: number,
  maxBytes: number,
): Omit<SilentPeerRun, "silent" | "writer" | "stepTimeoutMs"> {
  const size = rnd.int(1, maxBytes);
  const pieces = rnd.int(1, 8);
  const data = seededBytes(size, run + 1);
  const chunks: Uint8Array[] = [];
  for (let i = 0, off = 0; i < pieces; i++) {
    const end = i === pieces - 1 ? size : Math.min(size, off + rnd.int(0, size));
    chunks.push(data.subarray(off, end));
    off = end;
  }
  return {
    chunks,
    writerReads: rnd.int(0, 1) === 1,
    writerWaitsForEnd: rnd.int(0, 2) === 0,
    silentDelayTurns: rnd.int(0, 2),
    label: `run ${run} (${size} bytes in ${pieces} writes)`,
  };
}
