import assert from "node:assert/strict";
import type * as net from "node:net";
import { after, describe, it } from "node:test";
import { type Channel, memoryPair } from "../../mod.ts";
import { takeSocket } from "../../src/_runtime/socket_handoff.ts";
import { makeTestPki } from "../../src/testing/_fixtures/pki.ts";
import { listenTls, TlsDialer } from "../../src/tls/mod.ts";

const IS_DENO = typeof (globalThis as { Deno?: unknown }).Deno !== "undefined";
const pki = makeTestPki();
const closers: Array<() => Promise<void>> = [];
after(async () => {
  for (const c of closers.reverse()) await c();
  pki.cleanup();
});

async function tlsPair(): Promise<{ client: Channel; server: Channel }> {
  const l = await listenTls(
    { host: "127.0.0.1", port: 0 },
    { credentials: { ca: pki.ca.cert, cert: pki.server.cert, key: pki.server.key } },
  );
  closers.push(() => l.close());
  const accepted = l[Symbol.asyncIterator]().next();
  const port = Number(l.addr.slice(l.addr.lastIndexOf(":") + 1));
  const dialer = new TlsDialer({
    credentials: { ca: pki.ca.cert, cert: pki.client.cert, key: pki.client.key },
  });
  const client = await dialer.dial({ host: "127.0.0.1", port });
  const server = (await accepted).value as Channel;
  return { client, server };
}

/** Everything `socket` delivers until its end, after `first`. */
function readSocketToEnd(socket: net.Socket, first: readonly Uint8Array[]): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const parts = [...first];
    socket.on("data", (c: Uint8Array) => parts.push(c));
    socket.once("end", () => {
      const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
      let at = 0;
      for (const p of parts) {
        out.set(p, at);
        at += p.byteLength;
      }
      resolve(out);
    });
    socket.once("error", reject);
    socket.resume();
  });
}

describe("socket handoff (a TLS channel's socket taken by a new owner)", () => {
  it("hands over the socket with the bytes the channel had queued: nothing lost, in order", async () => {
    const { client, server } = await tlsPair();
    const sent = new Uint8Array(256 * 1024).map((_, i) => (i * 7) & 0xff);
    const w = server.writable.getWriter();
    const writing = (async () => {
      for (let at = 0; at < sent.byteLength; at += 16 * 1024) {
        await w.write(sent.subarray(at, at + 16 * 1024));
      }
    })();
    // Read one chunk through the channel; the rest is queued in it, in flight, or not sent yet.
    const reader = client.readable.getReader();
    const first = await reader.read();
    reader.releaseLock();
    assert.ok(!first.done && first.value.byteLength > 0);
    const handoff = await takeSocket(client);
    if (IS_DENO) {
      // TLS runs over a forwarding Duplex there: the channel keeps its socket.
      assert.equal(handoff, undefined);
      client.abort();
      server.abort();
      await writing.catch(() => {});
      return;
    }
    assert.ok(handoff !== undefined, "a Node TLS channel over TCP hands over its socket");
    const socket = handoff.socket as unknown as net.Socket;
    const received = readSocketToEnd(socket, [first.value, ...handoff.unread]);
    await writing;
    await w.close();
    assert.deepEqual(await received, sent);
    // The new owner writes and ends on the socket; the peer's channel reads it and its end.
    socket.end(new TextEncoder().encode("pong"));
    const back = server.readable.getReader();
    const got = await back.read();
    assert.equal(new TextDecoder().decode(got.value), "pong");
    assert.equal((await back.read()).done, true);
    back.releaseLock();
    await new Promise<void>((resolve) =>
      socket.destroyed ? resolve() : socket.once("close", () => resolve()),
    );
    handoff.finish();
    assert.equal((await client.closed).kind, "closed");
    assert.equal((await server.closed).kind, "closed");
  });

  it("finish(error) aborts the channel, and the peer sees the connection fail", async () => {
    const { client, server } = await tlsPair();
    const handoff = await takeSocket(client);
    if (IS_DENO) {
      assert.equal(handoff, undefined);
      client.abort();
      server.abort();
      return;
    }
    assert.ok(handoff !== undefined);
    handoff.finish(new Error("the new owner failed"));
    assert.equal((await client.closed).kind, "aborted");
    const peer = await server.closed;
    assert.equal(peer.kind, "reset", `${peer.error}`);
  });

  it("a channel with a locked stream, or without a socket, keeps what it has", async () => {
    const { client, server } = await tlsPair();
    const reader = client.readable.getReader();
    assert.equal(await takeSocket(client), undefined, "readable locked");
    reader.releaseLock();
    const w = client.writable.getWriter();
    assert.equal(await takeSocket(client), undefined, "writable locked");
    w.releaseLock();
    // The channel still works as a channel afterwards.
    const w2 = client.writable.getWriter();
    await w2.write(new TextEncoder().encode("still here"));
    w2.releaseLock();
    const r = server.readable.getReader();
    assert.equal(new TextDecoder().decode((await r.read()).value), "still here");
    r.releaseLock();
    client.abort();
    server.abort();
    const { a, b } = memoryPair();
    assert.equal(await takeSocket(a), undefined, "a memory channel has no socket");
    a.abort();
    b.abort();
  });
});
