import { after } from "node:test";
import { type Channel, DEFAULT_CHANNEL_CONFIG, memoryPair } from "../../mod.ts";
import type { SocketChannel } from "../../src/tcp/mod.ts";
import { makeTestPki } from "../../src/testing/_fixtures/pki.ts";
import { describeChannelConformance } from "../../src/testing/mod.ts";
import { listenTls, TlsAcceptor, TlsDialer, type TlsListener } from "../../src/tls/mod.ts";
import { kernelTcpBufferMax } from "../_harness/kernel.ts";
import { startRelay } from "../_harness/tls_proxy.ts";

const pki = makeTestPki();
const serverCreds = { ca: pki.ca.cert, cert: pki.server.cert, key: pki.server.key };
const clientCreds = { ca: pki.ca.cert, cert: pki.client.cert, key: pki.client.key };

function portOf(l: TlsListener): number {
  return Number(l.addr.slice(l.addr.lastIndexOf(":") + 1));
}

const listener = await listenTls({ port: 0 }, { credentials: serverCreds });
const iter = listener[Symbol.asyncIterator]();
const dialer = new TlsDialer({ credentials: clientCreds });
const foreign = await listenTls(
  { port: 0 },
  { credentials: { ca: pki.ca.cert, cert: pki.foreignServer.cert, key: pki.foreignServer.key } },
);
// Drain the foreign listener (it never yields: the client refuses it first).
void (async () => {
  for await (const ch of foreign) ch.abort();
})();
let turn: Promise<void> = Promise.resolve();
// Pairs run through a relay so a test can cut the TCP connection under both channels.
const relay = await startRelay({ host: "127.0.0.1", port: portOf(listener) });
// Aborted dials use a dialer of their own, so its socket count (liveResources)
// is not disturbed by the pairs of other cases closing in the background.
const abortDialer = new TlsDialer({ credentials: clientCreds });
after(async () => {
  await relay.close();
  await listener.close();
  await foreign.close();
  pki.cleanup();
});

// TLS socket buffers on top of the kernel's and the channel's.
const slack = 2 * 1024 * 1024;
const cfg = DEFAULT_CHANNEL_CONFIG;

describeChannelConformance({
  name: "tls over tcp",
  bufferBound: kernelTcpBufferMax() + cfg.readHighWaterMark + 2 * cfg.writeHighWaterMark + slack,
  numRuns: 10,
  async pair() {
    // One handshake at a time, so the accepted channel is this dial's (the refusal
    // window after it runs concurrently).
    const prev = turn;
    let release!: () => void;
    turn = new Promise<void>((r) => {
      release = r;
    });
    await prev;
    const dialing = dialer.dial({ host: "127.0.0.1", port: relay.port, name: "localhost" });
    const accepted = await iter.next().finally(release);
    const a = await dialing;
    const local = (a as SocketChannel).localAddress;
    const clientPort = Number(local.slice(local.lastIndexOf(":") + 1));
    return { a, b: accepted.value as Channel, kill: () => relay.kill(clientPort) };
  },
  dialWithSignal: (signal) =>
    abortDialer.dial({ host: "127.0.0.1", port: portOf(listener), name: "localhost" }, { signal }),
  liveResources: () => abortDialer.liveSockets,
  listener: async () => {
    const l = await listenTls({ port: 0 }, { credentials: serverCreds });
    return {
      listener: l,
      dial: () => dialer.dial({ host: "127.0.0.1", port: portOf(l), name: "node-1.example" }),
    };
  },
  untrustedPeer: () => dialer.dial({ host: "127.0.0.1", port: portOf(foreign), name: "localhost" }),
});

const acceptor = new TlsAcceptor({ credentials: serverCreds });
const foreignAcceptor = new TlsAcceptor({
  credentials: { ca: pki.ca.cert, cert: pki.foreignServer.cert, key: pki.foreignServer.key },
});

describeChannelConformance({
  name: "tls over memory",
  bufferBound: 2 * (cfg.readHighWaterMark + 2 * cfg.writeHighWaterMark) + slack,
  numRuns: 10,
  async pair() {
    const m = memoryPair();
    const [a, b] = await Promise.all([
      dialer.connectOver(m.a, "localhost"),
      acceptor.acceptOver(m.b),
    ]);
    return { a, b, kill: () => m.kill() };
  },
  dialWithSignal: async (signal) => {
    const m = memoryPair();
    const server = acceptor.acceptOver(m.b).catch(() => undefined);
    try {
      return await dialer.connectOver(m.a, "localhost", { signal });
    } finally {
      void server.then((ch) => ch?.abort());
    }
  },
  untrustedPeer: async () => {
    const m = memoryPair();
    const server = foreignAcceptor.acceptOver(m.b).catch(() => undefined);
    try {
      return await dialer.connectOver(m.a, "localhost");
    } finally {
      void server.then((ch) => ch?.abort());
    }
  },
});
