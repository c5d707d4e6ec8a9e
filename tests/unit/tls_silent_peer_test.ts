/**
 * Mutual TLS through the public API: one side writes nothing and half-closes
 * (at once or a timer turn or two later) while the other writes a few MiB, with
 * or without reading, or only after it has read the silent side's end (a reply
 * to a request that half-closed). Every byte must arrive and both ends must
 * close cleanly. The shapes come from a fixed seed, so every run is the same.
 */
import { after, describe, it } from "node:test";
import type { Channel } from "../../mod.ts";
import { makeTestPki } from "../../src/testing/_fixtures/pki.ts";
import { listenTls, TlsDialer } from "../../src/tls/mod.ts";
import { within } from "../_harness/bounded.ts";
import { randomShape, shapes, silentPeerTransfer } from "../_harness/silent_peer.ts";

const RUNS = 20;
const STEP_TIMEOUT_MS = 30_000;

const pki = makeTestPki();
const listener = await listenTls(
  { port: 0 },
  { credentials: { ca: pki.ca.cert, cert: pki.server.cert, key: pki.server.key } },
);
const accepted = listener[Symbol.asyncIterator]();
const port = Number(listener.addr.slice(listener.addr.lastIndexOf(":") + 1));
const dialer = new TlsDialer({
  credentials: { ca: pki.ca.cert, cert: pki.client.cert, key: pki.client.key },
});
after(async () => {
  await listener.close();
  pki.cleanup();
});

async function pair(): Promise<{ dialed: Channel; acceptedCh: Channel }> {
  const [dialed, next] = await within(
    Promise.all([dialer.dial({ host: "127.0.0.1", port, name: "localhost" }), accepted.next()]),
    STEP_TIMEOUT_MS,
    "pair",
  );
  return { dialed, acceptedCh: next.value as Channel };
}

describe("TLS: a few MiB to a peer that half-closes at once without sending", () => {
  for (const silentRole of ["dialer", "acceptor"] as const) {
    it(`silent ${silentRole}: every byte arrives, both ends close cleanly (${RUNS} runs)`, async () => {
      const rnd = shapes(silentRole === "dialer" ? 11 : 12);
      for (let run = 0; run < RUNS; run++) {
        const shape = randomShape(rnd, run, 4 * 1024 * 1024);
        const { dialed, acceptedCh } = await pair();
        try {
          await silentPeerTransfer({
            ...shape,
            silent: silentRole === "dialer" ? dialed : acceptedCh,
            writer: silentRole === "dialer" ? acceptedCh : dialed,
            stepTimeoutMs: STEP_TIMEOUT_MS,
          });
        } finally {
          dialed.abort();
          acceptedCh.abort();
        }
      }
    });
  }
});
