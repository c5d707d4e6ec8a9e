/**
 * Regression test: both ends of a TCP channel write and half-close at the same
 * moment. Every byte must arrive both ways and both channels must end "closed",
 * never "reset" (the race once made Deno report "connection closed before
 * end-of-stream was sent" about 2 times in 300).
 */
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { type Channel, type CloseInfo, listenTcp, TcpDialer } from "../../mod.ts";
import { concat, writeAll } from "../../src/testing/mod.ts";
import { seededBytes, within } from "../_harness/bounded.ts";

const ITERATIONS = 300;
/** Per-iteration bound; a healthy iteration takes a few milliseconds. */
const ITERATION_TIMEOUT_MS = 10_000;

/** Payload shapes cycled through the iterations: empty, tiny, one segment, several chunks. */
function payload(i: number, side: number): Uint8Array[] {
  const seed = i * 2 + side + 1;
  switch ((i + side) % 5) {
    case 0:
      return [];
    case 1:
      return [seededBytes(1, seed)];
    case 2:
      return [seededBytes(1_000, seed)];
    case 3:
      return [seededBytes(16_384, seed), seededBytes(7, seed + 1)];
    default:
      return [
        seededBytes(70_000, seed),
        seededBytes(3_000, seed + 1),
        seededBytes(70_000, seed + 2),
      ];
  }
}

function settle(p: Promise<unknown>): Promise<Error | undefined> {
  return p.then(
    () => undefined,
    (e: unknown) => (e instanceof Error ? e : new Error(String(e))),
  );
}

/** Everything readable, and the error that ended it (undefined: a clean end). */
async function readSettled(ch: Channel): Promise<{ data: Uint8Array; error?: Error }> {
  const parts: Uint8Array[] = [];
  const reader = ch.readable.getReader();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return { data: concat(parts) };
      parts.push(value);
    }
  } catch (e) {
    return { data: concat(parts), error: e instanceof Error ? e : new Error(String(e)) };
  } finally {
    reader.releaseLock();
  }
}

function equalBytes(x: Uint8Array, y: Uint8Array): boolean {
  if (x.length !== y.length) return false;
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}

function describeClose(side: string, info: CloseInfo): string {
  const e = info.error;
  const cause = e?.cause instanceof Error ? ` (cause: ${e.cause.message})` : "";
  return `${side}: ${info.kind}${e ? `: ${e.message}${cause}` : ""}`;
}

const listener = await listenTcp({ host: "127.0.0.1", port: 0 });
const accepted = listener[Symbol.asyncIterator]();
const port = Number(listener.addr.slice(listener.addr.lastIndexOf(":") + 1));
const dialer = new TcpDialer();
after(() => listener.close());

describe("TCP: concurrent half-close from both ends", () => {
  it(`${ITERATIONS} fresh pairs: writes and closeWrite() race on both ends, nothing is lost`, async () => {
    const failures: string[] = [];
    for (let i = 0; i < ITERATIONS; i++) {
      const [a, next] = await within(
        Promise.all([dialer.dial({ host: "127.0.0.1", port }), accepted.next()]),
        ITERATION_TIMEOUT_MS,
        `pair ${i}`,
      );
      const b = next.value as Channel;
      const ab = payload(i, 0);
      const ba = payload(i, 1);
      try {
        // Both writers and both readers start in the same tick: the FINs cross each
        // other and the writes of the other end.
        const [atB, atA, wa, wb] = await within(
          Promise.all([
            readSettled(b),
            readSettled(a),
            settle(writeAll(a, ab)),
            settle(writeAll(b, ba)),
          ]),
          ITERATION_TIMEOUT_MS,
          `round trip ${i}`,
        );
        const [ia, ib] = await within(
          Promise.all([a.closed, b.closed]),
          ITERATION_TIMEOUT_MS,
          `closed ${i}`,
        );
        const problems: string[] = [];
        if (wa) problems.push(`a write/closeWrite failed: ${wa.message}`);
        if (wb) problems.push(`b write/closeWrite failed: ${wb.message}`);
        if (ia.kind !== "closed") problems.push(describeClose("a", ia));
        if (ib.kind !== "closed") problems.push(describeClose("b", ib));
        const sent = [concat(ab), concat(ba)];
        for (const [name, got, want] of [
          ["a->b", atB, sent[0]],
          ["b->a", atA, sent[1]],
        ] as const) {
          const exact = got.error === undefined && equalBytes(got.data, want);
          if (exact) continue;
          // A short read must end in an error: a clean end after lost bytes is the
          // worst outcome ("nothing lost silently").
          const how = got.error ? `error: ${got.error.message}` : "CLEAN END (silent loss)";
          problems.push(`${name}: ${got.data.length}/${want.length} bytes, ${how}`);
        }
        if (problems.length > 0) failures.push(`iteration ${i}: ${problems.join("; ")}`);
      } catch (err) {
        failures.push(`iteration ${i}: ${(err as Error).message}`);
      } finally {
        a.abort();
        b.abort();
      }
    }
    assert.deepEqual(failures, [], `${failures.length} of ${ITERATIONS} iterations failed`);
  });
});
