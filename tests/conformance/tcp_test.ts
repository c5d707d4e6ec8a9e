import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after } from "node:test";
import {
  type Channel,
  DEFAULT_CHANNEL_CONFIG,
  type Listener,
  listenTcp,
  TcpDialer,
  type TcpTarget,
} from "../../mod.ts";
import { describeChannelConformance } from "../../src/testing/mod.ts";
import { kernelTcpBufferMax } from "../_harness/kernel.ts";
import { startTcpProxy } from "../_harness/tcp_proxy.ts";

function target(l: Listener): TcpTarget {
  const i = l.addr.lastIndexOf(":");
  return { host: l.addr.slice(0, i), port: Number(l.addr.slice(i + 1)) };
}

/**
 * A listener whose accepted channels are handed out to pair() in order. TCP
 * pairs run through a fault-injecting proxy, so kill() cuts the wire itself.
 */
async function pairFactory(listen: () => Promise<Listener>, to: (l: Listener) => TcpTarget) {
  const listener = await listen();
  const iter = listener[Symbol.asyncIterator]();
  const dialer = new TcpDialer();
  const direct = to(listener);
  const proxy = "port" in direct ? await startTcpProxy(direct) : undefined;
  return {
    listener,
    proxy,
    async pair() {
      const via: TcpTarget = proxy ? { host: "127.0.0.1", port: proxy.port } : direct;
      const [a, accepted] = await Promise.all([dialer.dial(via), iter.next()]);
      const b = accepted.value as Channel;
      return {
        a,
        b,
        // TCP: the proxy resets both connections. Unix sockets have no proxy:
        // a reset from one end is what a crashed peer looks like there.
        kill: proxy ? () => proxy.killAll() : () => a.abort(new Error("killed")),
      };
    },
  };
}

const IS_DENO = typeof (globalThis as { Deno?: unknown }).Deno === "object";

const bound =
  kernelTcpBufferMax() +
  DEFAULT_CHANNEL_CONFIG.readHighWaterMark +
  2 * DEFAULT_CHANNEL_CONFIG.writeHighWaterMark;

for (const kind of ["tcp", "unix"] as const) {
  const dir = mkdtempSync(join(tmpdir(), "spokewire-"));
  const path = join(dir, "s.sock");
  const listen = () =>
    kind === "tcp" ? listenTcp({ host: "127.0.0.1", port: 0 }) : listenTcp({ path });
  const to = (l: Listener): TcpTarget => (kind === "tcp" ? target(l) : { path });
  const f = await pairFactory(listen, to);
  after(async () => {
    await f.listener.close();
    await f.proxy?.close();
    rmSync(dir, { recursive: true, force: true });
  });
  describeChannelConformance({
    name: kind,
    bufferBound: bound,
    // AF_UNIX has no reset: an abort reaches the peer as end-of-stream, and there
    // is no proxy to cut the wire. Neither can TCP under Deno, which runs on Deno's
    // own sockets (they cannot send a reset; see src/_runtime/deno_net.ts).
    abortReachesPeer: kind === "tcp" && !IS_DENO,
    killReachesBoth: kind === "tcp",
    pair: f.pair,
    dialWithSignal: (signal) => new TcpDialer().dial(to(f.listener), { signal }),
    listener: async () => {
      const l = await listenTcp(kind === "tcp" ? { port: 0 } : { path: join(dir, "l2.sock") });
      const at: TcpTarget = kind === "tcp" ? target(l) : { path: l.addr };
      return { listener: l, dial: () => new TcpDialer().dial(at) };
    },
  });
}
