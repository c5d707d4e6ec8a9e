/**
 * Bursts through one agent: 1,000 HTTP CONNECTs at once on the Unix socket frontend, every
 * byte checked. At the defaults none is refused (the agent session's 256 dial slots are
 * followed by its dial queue); file descriptors and the session's tables come back to where
 * they were. And past the queue's limit the refusal is explicit: 503 with Retry-After,
 * counted by the frontend and the session.
 */
import assert from "node:assert/strict";
import type { Buffer } from "node:buffer";
import { readdirSync, rmSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { describe, it } from "node:test";
import type { Listener } from "../../src/channel/types.ts";
import { serveConnectFrontend } from "../../src/konnectivity/connect_frontend.ts";
import { listenTcp } from "../../src/tcp/mod.ts";
import { makeTestPki } from "../../src/testing/_fixtures/pki.ts";
import { connectClient as client, payload } from "../_harness/connect_burst.ts";
import { Cluster } from "../_harness/konnectivity_cluster.ts";

const pki = makeTestPki();
const IS_LINUX = (() => {
  try {
    readdirSync("/proc/self/fd");
    return true;
  } catch {
    return false;
  }
})();

function openFds(): number {
  return IS_LINUX ? readdirSync("/proc/self/fd").length : 0;
}

/** Echo every connection on `listener`. */
function echo(listener: Listener): void {
  void (async () => {
    for await (const ch of listener) ch.readable.pipeTo(ch.writable).catch(() => ch.abort());
  })();
}

async function waitFor(what: string, ok: () => boolean, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe("Konnectivity: bursts of CONNECTs through one agent", () => {
  it("1,000 at once at the defaults: every one succeeds, every byte back, nothing left over", {
    timeout: 180_000,
  }, async () => {
    const sock = join(tmpdir(), `spokewire-burst-${process.pid}-${Date.now()}.sock`);
    const c = await Cluster.start({}, pki);
    const closing: Array<{ close(): Promise<void> }> = [];
    try {
      const target = await listenTcp(
        { host: "127.0.0.1", port: 0 },
        { listenBacklog: 2048, backlog: 2048 },
      );
      closing.push(target);
      echo(target);
      const agent = c.agent({ allow: ["127.0.0.1:*"] });
      await agent.waitConnected();
      await c.server.waitForAgent("node-1");
      const frontend = serveConnectFrontend(
        await listenTcp({ path: sock }, { listenBacklog: 2048, backlog: 2048 }),
        c.server,
      );
      closing.push(frontend);
      const fdsBefore = openFds();
      const N = Number(process.env.BURST_N ?? 1000);
      const outcomes = await Promise.all(
        Array.from({ length: N }, (_, i) =>
          client(sock, target.addr, payload(i, 4096 + (i % 7) * 1000)),
        ),
      );
      const ok = outcomes.filter((o) => o.status === 200 && o.echoed).length;
      assert.equal(
        ok,
        N,
        JSON.stringify(outcomes.filter((o) => !(o.status === 200 && o.echoed)).slice(0, 5)),
      );
      assert.deepEqual(frontend.refusals, {});
      await waitFor("frontend connections released", () => frontend.connections === 0);
      await waitFor("tunnels released", () => c.server.agents()[0]?.connections === 0);
      if (IS_LINUX) {
        await waitFor(`file descriptors back to ${fdsBefore}`, () => openFds() <= fdsBefore + 4);
      }
    } finally {
      for (const x of closing) await x.close().catch(() => {});
      await c.close().catch(() => {});
      rmSync(sock, { force: true });
    }
  });

  it("past maxConnections: 503 with Retry-After up to maxTurnedAway, then reset and counted", {
    timeout: 60_000,
  }, async () => {
    const c = await Cluster.start({}, pki);
    const held: Socket[] = [];
    try {
      const refused: string[] = [];
      const frontend = serveConnectFrontend(
        await listenTcp({ host: "127.0.0.1", port: 0 }),
        c.server,
        {
          config: { maxConnections: 2, maxTurnedAway: 3 },
          onRefused: (status, reason) => refused.push(`${status} ${reason}`),
        },
      );
      const [host, port] = [frontend.addr.split(":")[0], Number(frontend.addr.split(":")[1])];
      /** A client that connects, sends nothing and keeps its socket open (even after the
       * frontend ends its side); what it is told. */
      const open = (): Promise<string> =>
        new Promise((resolve) => {
          const s = connect({ host, port, allowHalfOpen: true });
          held.push(s);
          let got = "";
          s.on("data", (b: Buffer) => {
            got += b.toString("latin1");
          });
          s.on("error", (e) => resolve(`error ${(e as NodeJS.ErrnoException).code}`));
          s.on("end", () => resolve(got));
          s.on("close", () => resolve(got === "" ? "closed" : got));
        });
      // Two served (waiting for their request heads), in that order.
      void open();
      void open();
      await waitFor("2 served", () => frontend.connections === 2);
      // Three told to come back; they do not close, so the frontend keeps them for now.
      const told = [open(), open(), open()];
      await waitFor("3 refused", () => (frontend.refusals[503] ?? 0) === 3);
      for (const t of await Promise.all(told)) {
        assert.match(t, /^HTTP\/1\.1 503 Service Unavailable\r\n/);
        assert.match(t, /\r\nRetry-After: 1\r\n/);
      }
      // The sixth: reset unanswered (a reset, or under Deno's listener an empty end),
      // counted and told.
      assert.match(await open(), /^(error ECONNRESET|closed|)$/);
      await waitFor("dropped", () => frontend.dropped === 1);
      assert.deepEqual(frontend.refusals, { 503: 3 });
      assert.equal(refused.length, 4);
      assert.match(refused[3], /^0 reset: 2 CONNECT clients served and 3 being refused$/);
      await frontend.close();
    } finally {
      for (const s of held) s.destroy();
      await c.close().catch(() => {});
    }
  });

  it("past the dial queue: 503 with Retry-After, counted; the queued ones go through", {
    timeout: 120_000,
  }, async () => {
    const sock = join(tmpdir(), `spokewire-burst2-${process.pid}-${Date.now()}.sock`);
    // A tiny agent session: 6 connections at once and 8 dials queued behind them.
    const c = await Cluster.start({ session: { maxConnections: 6, maxQueuedDials: 8 } }, pki);
    const closing: Array<{ close(): Promise<void> }> = [];
    let release!: () => void;
    try {
      // The target holds every connection silent until released: the 6 slots stay taken
      // until all 100 requests have arrived, so exactly 6 + 8 can succeed.
      const target = await listenTcp({ host: "127.0.0.1", port: 0 });
      closing.push(target);
      const released = new Promise<void>((r) => {
        release = r;
      });
      void (async () => {
        for await (const ch of target) {
          void released.then(() => ch.readable.pipeTo(ch.writable).catch(() => ch.abort()));
        }
      })();
      const agent = c.agent({ allow: ["127.0.0.1:*"] });
      await agent.waitConnected();
      await c.server.waitForAgent("node-1");
      const refused: string[] = [];
      const frontend = serveConnectFrontend(await listenTcp({ path: sock }), c.server, {
        onRefused: (status, reason) => refused.push(`${status} ${reason}`),
      });
      closing.push(frontend);
      const N = 100;
      const all = Promise.all(
        Array.from({ length: N }, (_, i) => client(sock, target.addr, payload(i, 1000))),
      );
      await waitFor("86 refusals", () => (frontend.refusals[503] ?? 0) >= N - 14);
      release();
      const outcomes = await all;
      const ok = outcomes.filter((o) => o.status === 200 && o.echoed).length;
      const busy = outcomes.filter((o) => o.status === 503);
      assert.equal(ok, 14);
      assert.equal(busy.length, N - 14);
      for (const b of busy) assert.equal(b.retryAfter, "1");
      assert.deepEqual(frontend.refusals, { 503: N - 14 });
      assert.equal(refused.length, N - 14);
      assert.match(
        refused[0],
        /^503 dial 127\.0\.0\.1:\d+: dial 127\.0\.0\.1:\d+ via system:node:node-1: connection limit reached, 8 queued/,
      );
    } finally {
      release?.();
      for (const x of closing) await x.close().catch(() => {});
      await c.close().catch(() => {});
      rmSync(sock, { force: true });
    }
  });
});
