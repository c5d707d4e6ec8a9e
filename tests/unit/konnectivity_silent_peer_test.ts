/**
 * Konnectivity end to end (caller -> server -> agent over mutual-TLS wss:// ->
 * TCP target), with the shape that Deno 2.9's `node:net` broke: one end writes
 * nothing and half-closes at once while the other writes a few MiB. The silent
 * end is the caller in one case and the target (the agent's TCP connection) in
 * the other. Sizes and chunking come from a fixed seed.
 */
import { after, describe, it } from "node:test";
import type { Channel } from "../../mod.ts";
import { within } from "../_harness/bounded.ts";
import { Cluster } from "../_harness/konnectivity_cluster.ts";
import { randomShape, shapes, silentPeerTransfer } from "../_harness/silent_peer.ts";

const RUNS = 10;
const STEP_TIMEOUT_MS = 30_000;

const cluster = await Cluster.start();
const agent = cluster.agent();
await agent.waitConnected();
after(() => cluster.close());

async function pair(): Promise<{ caller: Channel; target: Channel }> {
  const { listener, port } = await cluster.target();
  const accepted = listener[Symbol.asyncIterator]().next();
  try {
    const caller = await within(
      cluster.server.dial(`127.0.0.1:${port}`),
      STEP_TIMEOUT_MS,
      "dial through the agent",
    );
    const next = await within(accepted, STEP_TIMEOUT_MS, "target accepts");
    return { caller, target: next.value as Channel };
  } finally {
    void listener.close();
  }
}

describe("Konnectivity: a few MiB to an end that half-closes at once without sending", () => {
  for (const silentEnd of ["caller", "target"] as const) {
    it(`silent ${silentEnd}: every byte arrives, both ends close cleanly (${RUNS} runs)`, async () => {
      const rnd = shapes(silentEnd === "caller" ? 21 : 22);
      for (let run = 0; run < RUNS; run++) {
        const shape = randomShape(rnd, run, 4 * 1024 * 1024);
        const { caller, target } = await pair();
        try {
          await silentPeerTransfer({
            ...shape,
            silent: silentEnd === "caller" ? caller : target,
            writer: silentEnd === "caller" ? target : caller,
            stepTimeoutMs: STEP_TIMEOUT_MS,
          });
        } finally {
          caller.abort();
          target.abort();
        }
      }
    });
  }
});
