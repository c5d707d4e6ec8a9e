import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { type Channel, memoryPair, PeerVerificationError } from "../../mod.ts";
import { makeTestPki } from "../../src/testing/_fixtures/pki.ts";
import { listenTls, TlsAcceptor, TlsDialer, type TlsListener } from "../../src/tls/mod.ts";

// How the dialer learns that a TLS 1.3 server accepted its certificate: the
// server's first session ticket (Node), its first byte, or, failing both, the
// refusal window. A window this long would blow the test timeout below, so a
// test that passes did not wait for it.
const LONG_WINDOW_MS = 60_000;
// Both runtimes see the listener's ticket (Node reports it; under Deno the dialer
// sees its record arrive below TLS), so neither waits the window out.
const ACCEPT_WINDOW_MS = LONG_WINDOW_MS;
const LIVENESS = { timeout: 20_000 };

const pki = makeTestPki();
const closers: Array<() => Promise<void>> = [];
after(async () => {
  for (const c of closers.reverse()) await c();
  pki.cleanup();
});

const serverCreds = { ca: pki.ca.cert, cert: pki.server.cert, key: pki.server.key };
const clientCreds = { ca: pki.ca.cert, cert: pki.client.cert, key: pki.client.key };
const client2Creds = { ca: pki.ca.cert, cert: pki.client2.cert, key: pki.client2.key };

function portOf(l: { addr: string }): number {
  return Number(l.addr.slice(l.addr.lastIndexOf(":") + 1));
}

function refused(e: unknown): boolean {
  assert.ok(e instanceof PeerVerificationError, `expected PeerVerificationError, got ${e}`);
  assert.equal(e.reason, "client-cert-refused", e.message);
  return true;
}

async function listen(authorize?: (id: string) => boolean): Promise<TlsListener> {
  const l = await listenTls(
    { port: 0 },
    { credentials: serverCreds, authorize: authorize && ((p) => authorize(p.id)) },
  );
  closers.push(() => l.close());
  return l;
}

describe("TLS: the server's verdict on our certificate", () => {
  it(
    "a dial to our listener resolves on its session ticket (Deno: after the refusal window)",
    LIVENESS,
    async () => {
      const l = await listen();
      const dialer = new TlsDialer({ credentials: clientCreds, refusalWindowMs: ACCEPT_WINDOW_MS });
      const [ch, s] = await Promise.all([
        dialer.dial({ host: "127.0.0.1", port: portOf(l), name: "localhost" }),
        l[Symbol.asyncIterator]()
          .next()
          .then((r) => r.value as Channel),
      ]);
      assert.equal(ch.peer.id, "system:node:node-1");
      ch.abort();
      s.abort();
    },
  );

  it(
    "a listener that refuses sends no ticket: a long window still ends in client-cert-refused at once",
    LIVENESS,
    async () => {
      let asked = 0;
      const l = await listen((id) => {
        asked++;
        return id === "system:node:node-1";
      });
      const dialer = new TlsDialer({ credentials: client2Creds, refusalWindowMs: LONG_WINDOW_MS });
      await assert.rejects(
        dialer.dial({ host: "127.0.0.1", port: portOf(l), name: "localhost" }),
        refused,
      );
      assert.equal(asked, 1);
    },
  );

  it(
    "TLS over a channel: the acceptor's ticket resolves the client (Deno: the window)",
    LIVENESS,
    async () => {
      const m = memoryPair();
      const [c, s] = await Promise.all([
        new TlsDialer({ credentials: clientCreds, refusalWindowMs: ACCEPT_WINDOW_MS }).connectOver(
          m.a,
          "localhost",
        ),
        new TlsAcceptor({ credentials: serverCreds }).acceptOver(m.b),
      ]);
      assert.equal(c.peer.id, "system:node:node-1");
      c.abort();
      s.abort();
    },
  );

  it("TLS over a channel: an acceptor that refuses sends no ticket", LIVENESS, async () => {
    const m = memoryPair();
    const server = new TlsAcceptor({ credentials: serverCreds, authorize: () => false })
      .acceptOver(m.b)
      .catch((e: unknown) => e);
    await assert.rejects(
      new TlsDialer({ credentials: clientCreds, refusalWindowMs: LONG_WINDOW_MS }).connectOver(
        m.a,
        "localhost",
      ),
      refused,
    );
    const e = await server;
    assert.ok(e instanceof PeerVerificationError && e.reason === "unauthorized", `got ${e}`);
  });

  it(
    "data written by the client right after the dial arrives intact (no write inside OpenSSL's read)",
    LIVENESS,
    async () => {
      const l = await listen();
      const dialer = new TlsDialer({ credentials: clientCreds });
      const iter = l[Symbol.asyncIterator]();
      for (let i = 0; i < 5; i++) {
        const [ch, s] = await Promise.all([
          dialer.dial({ host: "127.0.0.1", port: portOf(l), name: "localhost" }),
          iter.next().then((r) => r.value as Channel),
        ]);
        const w = ch.writable.getWriter();
        await w.write(new Uint8Array([i, 1, 2, 3]));
        const r = s.readable.getReader();
        const got = await r.read();
        assert.deepEqual(got.value && [...got.value], [i, 1, 2, 3]);
        ch.abort();
        s.abort();
      }
    },
  );
});
