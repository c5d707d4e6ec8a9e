/**
 * Churn against one server (issue 27 step 4): 10,000 agent handshakes (TLS, WebSocket
 * upgrade, registration, then the agent closes) and 10,000 dials through an agent.
 * Afterwards every abort listener they added is gone (counted on every signal that is
 * still alive and not aborted), the heap is back near where it was, and no
 * MaxListenersExceededWarning was emitted.
 */
import assert from "node:assert/strict";
import { getEventListeners } from "node:events";
import process from "node:process";
import { describe, it } from "node:test";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import type { Listener } from "../../src/channel/types.ts";
import { KonnectivityAgent } from "../../src/konnectivity/agent.ts";
import { listenTcp } from "../../src/tcp/mod.ts";
import { makeTestPki } from "../../src/testing/_fixtures/pki.ts";
import { Cluster, FAST_AGENT_CONFIG } from "../_harness/konnectivity_cluster.ts";

const pki = makeTestPki();
const HANDSHAKES = Number(process.env.CHURN_HANDSHAKES ?? 10_000);
const DIALS = Number(process.env.CHURN_DIALS ?? 10_000);
/** Churn agents at once (each its own agent id), and dials in flight at once. */
const WORKERS = 20;
const DIALERS = 50;

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

/** Every AbortSignal given an abort listener from now on (weakly held). */
function trackAbortSignals(): { live(): number; restore(): void } {
  const seen = new WeakSet<AbortSignal>();
  const refs = new Set<WeakRef<AbortSignal>>();
  const proto = EventTarget.prototype;
  const add = proto.addEventListener;
  proto.addEventListener = function (
    this: EventTarget,
    type: string,
    ...rest: [EventListenerOrEventListenerObject | null, (boolean | AddEventListenerOptions)?]
  ): void {
    if (type === "abort" && this instanceof AbortSignal && !seen.has(this)) {
      seen.add(this);
      refs.add(new WeakRef(this));
    }
    add.call(this, type, ...rest);
  };
  return {
    /** Abort listeners on the signals that are still alive and not aborted. */
    live(): number {
      let n = 0;
      for (const r of refs) {
        const s = r.deref();
        if (s === undefined) refs.delete(r);
        else if (!s.aborted) n += getEventListeners(s, "abort").length;
      }
      return n;
    },
    restore(): void {
      proto.addEventListener = add;
    },
  };
}

async function settleHeap(): Promise<number> {
  for (let i = 0; i < 4; i++) {
    gc();
    await new Promise((r) => setTimeout(r, 20));
  }
  return process.memoryUsage().heapUsed;
}

function echo(listener: Listener): void {
  void (async () => {
    for await (const ch of listener) ch.readable.pipeTo(ch.writable).catch(() => ch.abort());
  })();
}

async function waitFor(what: string, ok: () => boolean, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe("Konnectivity: churn leaves no listener and no memory behind", () => {
  it(`${HANDSHAKES} agent handshakes and ${DIALS} dials against one server`, {
    timeout: 600_000,
  }, async () => {
    const warnings: string[] = [];
    const onWarning = (w: Error): void => {
      warnings.push(`${w.name}: ${w.message}`);
    };
    process.on("warning", onWarning);
    const tracked = trackAbortSignals();
    const c = await Cluster.start({ agentToken: (id) => `token-of-${id}` }, pki);
    const target = await listenTcp({ host: "127.0.0.1", port: 0 }, { backlog: 1024 });
    try {
      echo(target);
      const dialer = c.agent({ allow: ["127.0.0.1:*"] });
      await dialer.waitConnected();
      await c.server.waitForAgent("node-1");

      /** One agent: handshake, registration, close; each worker reuses its agent id. */
      const handshake = async (id: string): Promise<void> => {
        const a = new KonnectivityAgent({
          server: { host: "127.0.0.1", port: c.server.port },
          credentials: { ca: pki.ca.cert },
          agentId: id,
          token: () => `token-of-${id}`,
          allow: ["127.0.0.1:*"],
          config: FAST_AGENT_CONFIG,
        });
        a.start();
        try {
          await a.waitConnected({ timeoutMs: 30_000 });
        } finally {
          await a.close();
        }
      };
      const handshakes = async (n: number): Promise<void> => {
        let next = 0;
        await Promise.all(
          Array.from({ length: WORKERS }, async (_, w) => {
            while (next < n) {
              next++;
              await handshake(`churn-${w}`);
            }
          }),
        );
      };
      const payload = new TextEncoder().encode("sixteen bytes..!");
      /** One dial through node-1 to the echo target: 16 bytes there and back, then close. */
      const dial = async (): Promise<void> => {
        const ch = await c.server.dial(target.addr);
        const w = ch.writable.getWriter();
        await w.write(payload);
        w.releaseLock();
        const r = ch.readable.getReader();
        let got = 0;
        while (got < payload.length) {
          const { value, done } = await r.read();
          if (done) throw new Error(`echo ended after ${got} bytes`);
          got += value.byteLength;
        }
        r.releaseLock();
        await ch.close();
      };
      const dials = async (n: number): Promise<void> => {
        let next = 0;
        await Promise.all(
          Array.from({ length: DIALERS }, async () => {
            while (next < n) {
              next++;
              await dial();
            }
          }),
        );
      };
      const quiet = async (): Promise<void> => {
        await waitFor("churn agents gone", () => c.server.agents().length === 1);
        await waitFor("tunnels closed", () => c.server.agents()[0]?.connections === 0);
      };

      // Warm up (JIT, pools, lazily built tables), then take the baseline.
      await handshakes(200);
      await quiet();
      await dials(200);
      await quiet();
      const listenersBefore = tracked.live();
      const heapBefore = await settleHeap();

      const t0 = performance.now();
      await handshakes(HANDSHAKES);
      // (Dials go to node-1 alone once the churn agents are gone.)
      await quiet();
      const t1 = performance.now();
      await dials(DIALS);
      const t2 = performance.now();
      await quiet();
      const listenersAfter = tracked.live();
      const heapAfter = await settleHeap();
      process.stderr.write(
        `# ${HANDSHAKES} handshakes in ${Math.round(t1 - t0)} ms, ${DIALS} dials in ${Math.round(
          t2 - t1,
        )} ms; abort listeners ${listenersBefore} -> ${listenersAfter}; heap ${(
          heapBefore / 2 ** 20
        ).toFixed(1)} -> ${(heapAfter / 2 ** 20).toFixed(1)} MiB\n`,
      );
      assert.ok(
        listenersAfter <= listenersBefore,
        `abort listeners on live signals: ${listenersBefore} before, ${listenersAfter} after`,
      );
      // 20,000 operations: a leak of 500 bytes each would be 10 MiB.
      assert.ok(
        heapAfter - heapBefore < 8 * 2 ** 20,
        `heap grew ${((heapAfter - heapBefore) / 2 ** 20).toFixed(1)} MiB`,
      );
      assert.deepEqual(
        warnings.filter((w) => /MaxListeners/.test(w)),
        [],
      );
    } finally {
      tracked.restore();
      process.off("warning", onWarning);
      await target.close().catch(() => {});
      await c.close().catch(() => {});
    }
  });
});
