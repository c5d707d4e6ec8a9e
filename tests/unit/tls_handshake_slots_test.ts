/**
 * A TLS listener runs at most `maxConcurrentHandshakes` handshakes at once: further
 * connections wait (bytes they already sent kept) and are handshaken in order as slots
 * free; past `maxWaitingHandshakes` a connection is reset, and one that waited longer
 * than `handshakeTimeoutMs` is reset when its turn comes; both are told to `onRefused`.
 */
import assert from "node:assert/strict";
import { connect, type Socket } from "node:net";
import { afterEach, describe, it } from "node:test";
import {
  ChannelResetError,
  listenTls,
  type SpokewireError,
  TimeoutError,
  TlsDialer,
  type TlsListener,
  type TlsListenOptions,
} from "../../mod.ts";
import { makeTestPki } from "../../src/testing/_fixtures/pki.ts";

const pki = makeTestPki();
const serverCreds = { ca: pki.ca.cert, cert: pki.server.cert, key: pki.server.key };
const clientCreds = { ca: pki.ca.cert, cert: pki.client.cert, key: pki.client.key };

const sockets: Socket[] = [];
const listeners: TlsListener[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  for (const l of listeners.splice(0)) await l.close();
});

async function listen(opts: Partial<TlsListenOptions>): Promise<TlsListener> {
  const l = await listenTls({ port: 0 }, { credentials: serverCreds, ...opts });
  listeners.push(l);
  // Echo every verified channel.
  void (async () => {
    for await (const ch of l) ch.readable.pipeTo(ch.writable).catch(() => ch.abort());
  })();
  return l;
}

const portOf = (l: TlsListener): number => Number(l.addr.slice(l.addr.lastIndexOf(":") + 1));

/** A TCP client that connects and says nothing: it holds a handshake slot (or waits for one). */
function silent(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: "127.0.0.1", port });
    sockets.push(s);
    s.once("connect", () => resolve(s));
    s.once("error", reject);
  });
}

/** A silent client whose connection the listener ends (reset or end): how it ended. */
function ended(port: number): Promise<string> {
  return new Promise((resolve) => {
    const s = connect({ host: "127.0.0.1", port });
    sockets.push(s);
    s.once("error", (e) => resolve(`error ${(e as NodeJS.ErrnoException).code}`));
    s.once("end", () => resolve("end"));
    s.once("close", () => resolve("close"));
    s.resume();
  });
}

const settle = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("TLS listener: handshake slots", () => {
  it("a connection beyond maxConcurrentHandshakes waits, then is handshaken with the bytes it sent", async () => {
    const l = await listen({ maxConcurrentHandshakes: 2 });
    const a = await silent(portOf(l));
    await silent(portOf(l));
    const dialer = new TlsDialer({ credentials: clientCreds });
    let done = false;
    const dialing = dialer.dial({ host: "127.0.0.1", port: portOf(l), name: "localhost" });
    dialing.then(
      () => {
        done = true;
      },
      () => {},
    );
    // Its ClientHello arrives while both slots are taken: no handshake yet.
    await settle(400);
    assert.equal(done, false, "the dial completed while both handshake slots were held");
    a.destroy();
    const ch = await dialing;
    const w = ch.writable.getWriter();
    await w.write(new TextEncoder().encode("ping"));
    const r = ch.readable.getReader();
    const { value } = await r.read();
    assert.equal(new TextDecoder().decode(value), "ping");
    ch.abort();
  });

  it("past maxWaitingHandshakes a connection is reset and told to onRefused", async () => {
    const refused: SpokewireError[] = [];
    const l = await listen({
      maxConcurrentHandshakes: 1,
      maxWaitingHandshakes: 1,
      onRefused: (e) => refused.push(e),
    });
    await silent(portOf(l));
    await silent(portOf(l));
    assert.match(await ended(portOf(l)), /^(error ECONNRESET|end|close)$/);
    assert.equal(refused.length, 1);
    assert.ok(refused[0] instanceof ChannelResetError);
    assert.match(refused[0].message, /1 TLS handshakes running and 1 waiting/);
  });

  it("a connection that waited longer than handshakeTimeoutMs is reset when its turn comes", async () => {
    const refused: SpokewireError[] = [];
    const l = await listen({
      maxConcurrentHandshakes: 1,
      handshakeTimeoutMs: 300,
      onRefused: (e) => refused.push(e),
    });
    // a holds the slot until its handshake times out (300 ms); b then gets it (after
    // waiting ~290 ms) until 600 ms; c, waiting since ~20 ms, has waited too long by then.
    await silent(portOf(l));
    await settle(10);
    await silent(portOf(l));
    await settle(10);
    assert.match(await ended(portOf(l)), /^(error ECONNRESET|end|close)$/);
    await settle(50);
    const said = refused.map((e) => `${e.code} ${e.message}`);
    assert.equal(refused.length, 3, JSON.stringify(said));
    // a and b: handshake timeouts; c: the wait for a slot. All three TimeoutErrors.
    assert.ok(refused.every((e) => e instanceof TimeoutError));
    assert.equal(
      said.filter((m) => /^TIMEOUT TLS handshake .* timed out after 300 ms$/.test(m)).length,
      2,
    );
    assert.equal(
      said.filter((m) => /^TIMEOUT .*: waited \d+ ms for a TLS handshake slot \(1 busy\)$/.test(m))
        .length,
      1,
      JSON.stringify(said),
    );
  });
});
