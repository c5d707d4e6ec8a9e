/**
 * The conformance suite over the whole Konnectivity path: a channel dialed with
 * `server.dial()` travels over the agent's wss:// connection (mutual TLS) and
 * the agent's TCP dial to a target listener on 127.0.0.1; `b` is the target's
 * accepted TCP channel. kill() kills the agent's WebSocket.
 */
import { after } from "node:test";
import { DEFAULT_CHANNEL_CONFIG } from "../../src/channel/config.ts";
import type { Channel } from "../../src/channel/types.ts";
import { DEFAULT_SESSION_CONFIG } from "../../src/konnectivity/config.ts";
import { listenTcp } from "../../src/tcp/mod.ts";
import { describeChannelConformance } from "../../src/testing/mod.ts";
import { kernelTcpBufferMax } from "../_harness/kernel.ts";
import { Cluster } from "../_harness/konnectivity_cluster.ts";

// No window auto-tuning, so the bound below holds.
const window = DEFAULT_SESSION_CONFIG.connectionWindow;
const session = { maxConnectionWindow: window };
const cluster = await Cluster.start({ session });
const agent = cluster.agent({ session });
await agent.waitConnected();
let generation = (await cluster.server.waitForAgent("node-1")).generation;
let killed = false;
let turn: Promise<void> = Promise.resolve();
after(() => cluster.close());

const cfg = DEFAULT_CHANNEL_CONFIG;
const IS_DENO = typeof (globalThis as { Deno?: unknown }).Deno === "object";

describeChannelConformance({
  name: "konnectivity end to end (server -> wss agent -> tcp target)",
  bufferBound:
    kernelTcpBufferMax() +
    2 * window +
    cfg.readHighWaterMark +
    2 * cfg.writeHighWaterMark +
    1024 * 1024,
  numRuns: 8,
  // `b` is a plain TCP channel. Under Deno, TCP runs on Deno's own sockets, which
  // cannot send a reset with nothing in flight (src/_runtime/deno_net.ts): the
  // agent's abort of its target connection, on a caller's abort or a killed
  // tunnel, reaches an idle target as end-of-stream there.
  abortReachesPeer: !IS_DENO,
  killReachesBoth: !IS_DENO,
  async pair() {
    // One dial at a time, so the accepted TCP channel is this dial's.
    const prev = turn;
    let release!: () => void;
    turn = new Promise<void>((r) => {
      release = r;
    });
    await prev;
    try {
      if (killed) {
        const info = await cluster.server.waitForAgent("node-1", { newerThan: generation });
        generation = info.generation;
        killed = false;
      }
      // A target listener per pair: its one accepted channel is this dial's, whatever
      // happened to earlier dials.
      const target = await listenTcp({ host: "127.0.0.1", port: 0 });
      const port = Number(target.addr.slice(target.addr.lastIndexOf(":") + 1));
      const accepted = target[Symbol.asyncIterator]().next();
      let a: Channel;
      let b: IteratorResult<Channel>;
      try {
        a = await cluster.server.dial(`127.0.0.1:${port}`);
        b = await accepted;
      } finally {
        void target.close();
      }
      return {
        a,
        b: b.value as Channel,
        kill: () => {
          killed = true;
          agent.dropConnection();
        },
      };
    } finally {
      release();
    }
  },
});
