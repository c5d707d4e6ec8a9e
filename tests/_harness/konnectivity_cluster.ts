/**
 * A Konnectivity cluster on 127.0.0.1 for the tests: PKI from the openssl CLI,
 * a server, agents, and TCP target listeners.
 */

import type { Listener } from "../../src/channel/types.ts";
import { KonnectivityAgent, type KonnectivityAgentOptions } from "../../src/konnectivity/agent.ts";
import {
  KonnectivityServer,
  type KonnectivityServerOptions,
} from "../../src/konnectivity/server.ts";
import { listenTcp } from "../../src/tcp/mod.ts";
import { makeTestPki, type TestPki } from "../../src/testing/_fixtures/pki.ts";

/** Quick reconnects for tests. */
export const FAST_AGENT_CONFIG = Object.freeze({
  minBackoffMs: 10,
  maxBackoffMs: 200,
  reconnectSpreadMs: 50,
  handshakeTimeoutMs: 5_000,
  connectTimeoutMs: 5_000,
});

export class Cluster {
  readonly pki: TestPki;
  readonly server: KonnectivityServer;
  readonly #agents: KonnectivityAgent[] = [];
  readonly #listeners: Listener[] = [];

  private constructor(pki: TestPki, server: KonnectivityServer) {
    this.pki = pki;
    this.server = server;
  }

  static async start(
    options: Partial<KonnectivityServerOptions> = {},
    pki: TestPki = makeTestPki(),
  ): Promise<Cluster> {
    const server = await KonnectivityServer.listen({
      tls: { credentials: { ca: pki.ca.cert, cert: pki.server.cert, key: pki.server.key } },
      logger: { info: () => {}, warn: () => {} },
      ...options,
    });
    return new Cluster(pki, server);
  }

  /** An agent with the node-1 client certificate unless `credentials` says otherwise. */
  agent(options: Partial<KonnectivityAgentOptions> = {}): KonnectivityAgent {
    const p = this.pki;
    const a = new KonnectivityAgent({
      server: { host: "127.0.0.1", port: this.server.port },
      credentials: { ca: p.ca.cert, cert: p.client.cert, key: p.client.key },
      allow: ["127.0.0.1:*"],
      config: FAST_AGENT_CONFIG,
      ...options,
    });
    this.#agents.push(a);
    a.start();
    return a;
  }

  /** A TCP listener on 127.0.0.1 and its port. */
  async target(): Promise<{ listener: Listener; port: number }> {
    const listener = await listenTcp({ host: "127.0.0.1", port: 0 });
    this.#listeners.push(listener);
    return { listener, port: Number(listener.addr.slice(listener.addr.lastIndexOf(":") + 1)) };
  }

  async close(): Promise<void> {
    await Promise.all(this.#agents.map((a) => a.close()));
    await this.server.close();
    await Promise.all(this.#listeners.map((l) => l.close()));
    this.pki.cleanup();
  }
}
