/**
 * A peer that half-closes at once, without sending a byte, still receives
 * everything written to it. Deno 2.9's `node:net` failed every such transfer
 * that had to queue (an 8 MiB write always does): it took the clean half-close
 * for a broken connection and dropped the queued bytes with EPIPE. The silent
 * peer is the dialer in one case and the acceptor in the other; in the "paused"
 * cases the writer does not touch its own readable until the transfer is done.
 */
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { type Channel, listenTcp, TcpDialer } from "../../mod.ts";
import { readAll, writeAll } from "../../src/testing/mod.ts";
import { seededBytes, within } from "../_harness/bounded.ts";

const SIZE = 8 * 1024 * 1024;
const RUNS = 5;
const STEP_TIMEOUT_MS = 30_000;

function firstDifference(x: Uint8Array, y: Uint8Array): number {
  const n = Math.min(x.length, y.length);
  for (let i = 0; i < n; i++) if (x[i] !== y[i]) return i;
  return x.length === y.length ? -1 : n;
}

const listener = await listenTcp({ host: "127.0.0.1", port: 0 });
const accepted = listener[Symbol.asyncIterator]();
const port = Number(listener.addr.slice(listener.addr.lastIndexOf(":") + 1));
const dialer = new TcpDialer();
after(() => listener.close());

async function pair(): Promise<{ dialed: Channel; acceptedCh: Channel }> {
  const [dialed, next] = await within(
    Promise.all([dialer.dial({ host: "127.0.0.1", port }), accepted.next()]),
    STEP_TIMEOUT_MS,
    "pair",
  );
  return { dialed, acceptedCh: next.value as Channel };
}

describe("TCP: 8 MiB to a peer that half-closes at once without sending", () => {
  const data = seededBytes(SIZE, 7);
  for (const silentRole of ["dialer", "acceptor"] as const) {
    for (const writerReads of [true, false]) {
      const how = writerReads ? "writer reading" : "writer's reader paused";
      it(`silent ${silentRole}, ${how}: every byte arrives, both ends close cleanly (${RUNS} runs)`, async () => {
        for (let run = 0; run < RUNS; run++) {
          const { dialed, acceptedCh } = await pair();
          const silent = silentRole === "dialer" ? dialed : acceptedCh;
          const writer = silentRole === "dialer" ? acceptedCh : dialed;
          try {
            // The silent peer's FIN is on its way before the writer queues anything.
            const fin = silent.closeWrite();
            const received = readAll(silent);
            const writerSees = writerReads ? readAll(writer) : undefined;
            await within(fin, STEP_TIMEOUT_MS, "silent closeWrite");
            await within(writeAll(writer, [data]), STEP_TIMEOUT_MS, `run ${run}: 8 MiB write`);
            const got = await within(received, STEP_TIMEOUT_MS, `run ${run}: silent peer reads`);
            assert.equal(got.length, SIZE, `run ${run}: bytes received`);
            assert.equal(firstDifference(got, data), -1, `run ${run}: bytes differ`);
            const back = await within(
              writerSees ?? readAll(writer),
              STEP_TIMEOUT_MS,
              `run ${run}: writer reads the silent peer's end`,
            );
            assert.equal(back.length, 0, `run ${run}: the silent peer sent nothing`);
            const [iw, is] = await within(
              Promise.all([writer.closed, silent.closed]),
              STEP_TIMEOUT_MS,
              `run ${run}: closed`,
            );
            assert.equal(iw.kind, "closed", `run ${run}: writer ${iw.kind}: ${iw.error?.message}`);
            assert.equal(is.kind, "closed", `run ${run}: silent ${is.kind}: ${is.error?.message}`);
          } finally {
            dialed.abort();
            acceptedCh.abort();
          }
        }
      });
    }
  }
});
