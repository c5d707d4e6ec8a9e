import { after } from "node:test";
import type { Channel } from "../../src/channel/types.ts";
import {
  DEFAULT_SESSION_CONFIG,
  KonnectivitySession,
  memoryPipePair,
  tunnelListener,
} from "../../src/konnectivity/mod.ts";
import { describeChannelConformance } from "../../src/testing/mod.ts";
import {
  AGENT_ID,
  memorySessionPair,
  SERVER_ID,
  type SessionPair,
  WsHarness,
} from "../_harness/konnectivity_pairs.ts";

// A writer whose peer never reads gets at most the peer's window onto the wire,
// plus one chunk in flight; the rest waits in its own writable.
const bound = 2 * DEFAULT_SESSION_CONFIG.connectionWindow + 128 * 1024;

function factory(name: string, newPair: () => Promise<SessionPair>) {
  // One session pair carries every connection until a case kills it (kill() drops it).
  let current: Promise<SessionPair> | undefined;
  const all: SessionPair[] = [];
  const listeners: KonnectivitySession[] = [];
  let n = 0;
  const session = (): Promise<SessionPair> => {
    current ??= newPair().then((p) => {
      all.push(p);
      return p;
    });
    return current;
  };
  describeChannelConformance({
    name,
    bufferBound: bound,
    numRuns: 15,
    async pair() {
      const s = await session();
      const address = `conn-${++n}:80`;
      const [a, b] = await Promise.all([s.server.dial(address), s.router.take(address)]);
      return {
        a,
        b,
        kill: () => {
          s.kill();
          current = undefined;
        },
      };
    },
    async dialWithSignal(signal: AbortSignal): Promise<Channel> {
      const s = await session();
      const address = `hang-${++n}:80`;
      s.router.hang.add(address);
      return s.server.dial(address, { signal });
    },
    async listener() {
      const { a, b } = memoryPipePair();
      const { onDial, listener } = tunnelListener();
      const server = new KonnectivitySession(a, { peer: AGENT_ID, role: "server" });
      const agent = new KonnectivitySession(b, { peer: SERVER_ID, role: "agent", onDial });
      listeners.push(server, agent);
      return { listener, dial: () => server.dial(`listener-${++n}:80`) };
    },
    liveResources(): number {
      let total = 0;
      for (const p of all) {
        for (const x of [p.server.stats(), p.agent.stats()]) {
          total += x.connections + x.pendingDials + x.incomingDials;
        }
      }
      return total;
    },
    async teardown() {
      for (const s of listeners) s.close();
      await Promise.all(all.map((p) => p.close()));
    },
  });
}

factory("konnectivity session over an in-memory pipe", async () => memorySessionPair());

const ws = await WsHarness.start();
after(() => ws.close());
factory("konnectivity session over ws on 127.0.0.1", () => ws.pair());
