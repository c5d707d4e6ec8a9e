/**
 * A peer that half-closes at once, without sending a byte, still receives
 * everything written to it. Deno 2.9's `node:net` failed every such transfer
 * that had to queue (an 8 MiB write always does): it took the clean half-close
 * for a broken connection and dropped the queued bytes with EPIPE. The silent
 * peer is the dialer in one case and the acceptor in the other; in the "paused"
 * cases the writer does not touch its own readable until the transfer is done.
 */
import { after, describe, it } from "node:test";
import { type Channel, listenTcp, TcpDialer } from "../../mod.ts";
import { seededBytes, within } from "../_harness/bounded.ts";
import { silentPeerTransfer } from "../_harness/silent_peer.ts";

const SIZE = 8 * 1024 * 1024;
const RUNS = 5;
const STEP_TIMEOUT_MS = 30_000;

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
          try {
            await silentPeerTransfer({
              silent: silentRole === "dialer" ? dialed : acceptedCh,
              writer: silentRole === "dialer" ? acceptedCh : dialed,
              chunks: [data],
              writerReads,
              stepTimeoutMs: STEP_TIMEOUT_MS,
              label: `run ${run}`,
            });
          } finally {
            dialed.abort();
            acceptedCh.abort();
          }
        }
      });
    }
  }
});
