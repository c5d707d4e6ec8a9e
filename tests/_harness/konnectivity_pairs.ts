/**
 * Session pairs for the Konnectivity tests: a "server" session that dials and an
 * "agent" session that accepts, over an in-memory pipe or a `ws` WebSocket on
 * 127.0.0.1. Accepted channels are handed to the test by address.
 */

import WebSocket, { WebSocketServer } from "ws";
import type { Channel, PeerIdentity } from "../../src/channel/types.ts";
import {
  type IncomingDial,
  KonnectivitySession,
  type MessagePipe,
  memoryPipePair,
  type SessionConfig,
  wsPipe,
} from "../../src/konnectivity/mod.ts";

export const SERVER_ID: PeerIdentity = Object.freeze({
  scheme: "token",
  id: "konnectivity-server",
  fingerprint: "",
});
export const AGENT_ID: PeerIdentity = Object.freeze({
  scheme: "token",
  id: "system:konnectivity-agent:node-1",
  fingerprint: "",
});

/** Routes accepted channels to whoever waits for that address. */
export class AcceptRouter {
  readonly #waiters = new Map<string, (ch: Channel) => void>();
  readonly #ready = new Map<string, Channel>();
  /** Addresses whose dials are held open until cancelled (never accepted). */
  hang = new Set<string>();

  readonly onDial = async (d: IncomingDial): Promise<void> => {
    if (this.hang.has(d.address)) {
      await new Promise<void>((r) => {
        if (d.signal.aborted) r();
        else d.signal.addEventListener("abort", () => r(), { once: true });
      });
      return;
    }
    const ch = d.accept();
    const w = this.#waiters.get(d.address);
    if (w) {
      this.#waiters.delete(d.address);
      w(ch);
    } else this.#ready.set(d.address, ch);
  };

  /** The channel accepted for `address` (now or later). */
  take(address: string): Promise<Channel> {
    const ch = this.#ready.get(address);
    if (ch) {
      this.#ready.delete(address);
      return Promise.resolve(ch);
    }
    return new Promise((r) => this.#waiters.set(address, r));
  }
}

export interface SessionPair {
  readonly server: KonnectivitySession;
  readonly agent: KonnectivitySession;
  readonly router: AcceptRouter;
  /** Kill the link abruptly. */
  kill(): void;
  /** Close both sessions and whatever the pair holds. */
  close(): Promise<void>;
}

export interface PairOptions {
  readonly config?: Partial<SessionConfig>;
  readonly serverConfig?: Partial<SessionConfig>;
  readonly agentConfig?: Partial<SessionConfig>;
}

function sessions(
  sp: MessagePipe,
  ap: MessagePipe,
  o: PairOptions,
): { server: KonnectivitySession; agent: KonnectivitySession; router: AcceptRouter } {
  const router = new AcceptRouter();
  const server = new KonnectivitySession(sp, {
    peer: AGENT_ID,
    role: "server",
    config: { ...o.config, ...o.serverConfig },
  });
  const agent = new KonnectivitySession(ap, {
    peer: SERVER_ID,
    role: "agent",
    config: { ...o.config, ...o.agentConfig },
    onDial: router.onDial,
  });
  return { server, agent, router };
}

/** A session pair over an in-memory pipe. */
export function memorySessionPair(o: PairOptions = {}): SessionPair {
  const pipes = memoryPipePair();
  const s = sessions(pipes.a, pipes.b, o);
  return {
    ...s,
    kill: () => pipes.kill(),
    close: async () => {
      s.server.close();
      s.agent.close();
      await Promise.all([s.server.closed, s.agent.closed]);
    },
  };
}

/** A WebSocket server on 127.0.0.1 that turns each connection into an agent-side pipe. */
export class WsHarness {
  readonly #wss: WebSocketServer;
  readonly #waiters = new Map<string, (ws: WebSocket) => void>();
  #n = 0;
  readonly #pairs = new Set<SessionPair>();
  readonly port: number;

  private constructor(wss: WebSocketServer, port: number) {
    this.#wss = wss;
    this.port = port;
    // Match each server-side socket to its client by the path the client asked for.
    wss.on("connection", (ws, req) => {
      const w = this.#waiters.get(req.url ?? "");
      this.#waiters.delete(req.url ?? "");
      if (w) w(ws);
      else ws.terminate();
    });
  }

  static async start(maxPayload = 1024 * 1024): Promise<WsHarness> {
    const wss = new WebSocketServer({ host: "127.0.0.1", port: 0, maxPayload });
    await new Promise<void>((resolve, reject) => {
      wss.once("listening", () => resolve());
      wss.once("error", reject);
    });
    const addr = wss.address();
    if (typeof addr !== "object" || addr === null) throw new Error("no address");
    return new WsHarness(wss, addr.port);
  }

  /** A session pair over one WebSocket. `kill()` terminates the client socket. */
  async pair(o: PairOptions = {}): Promise<SessionPair> {
    const path = `/pair-${++this.#n}`;
    const accepted = new Promise<WebSocket>((r) => this.#waiters.set(path, r));
    const client = new WebSocket(`ws://127.0.0.1:${this.port}${path}`, { maxPayload: 1024 * 1024 });
    await new Promise<void>((resolve, reject) => {
      client.once("open", () => resolve());
      client.once("error", reject);
    });
    const serverWs = await accepted;
    const s = sessions(wsPipe(client), wsPipe(serverWs), o);
    const pair: SessionPair = {
      ...s,
      kill: () => client.terminate(),
      close: async () => {
        s.server.close();
        s.agent.close();
        await Promise.all([s.server.closed, s.agent.closed]);
        this.#pairs.delete(pair);
      },
    };
    this.#pairs.add(pair);
    return pair;
  }

  async close(): Promise<void> {
    await Promise.all([...this.#pairs].map((p) => p.close()));
    for (const c of this.#wss.clients) c.terminate();
    await new Promise<void>((r) => this.#wss.close(() => r()));
  }
}
