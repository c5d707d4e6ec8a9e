/**
 * Incoming tunneled connections as a {@link Listener}: the in-process way to
 * accept what the peer dials (tests, an agent that serves locally).
 *
 * @module
 */

import { AcceptQueue, DEFAULT_ACCEPT_BACKLOG } from "../channel/accept_queue.ts";
import type { Channel, Listener } from "../channel/types.ts";
import type { DialHandler } from "./session.ts";

/** Options of {@link tunnelListener}. */
export interface TunnelListenerOptions {
  /** Accepted channels waiting for the caller before further dials are refused. */
  readonly backlog?: number;
  /** What `listener.addr` reports (default `"konnectivity"`). */
  readonly addr?: string;
}

/** A listener plus the dial handler to give the session. */
export interface TunnelListener {
  /** Pass as `SessionOptions.onDial`. */
  readonly onDial: DialHandler;
  readonly listener: Listener;
}

/**
 * Accept every incoming dial while the listener is open and hand the tunneled
 * channels out through `listener`. Once it is closed, dials are refused (the
 * dialer gets `DIAL_FAILED`); while its backlog is full, new connections are
 * reset at once. Channels already handed out keep working.
 *
 * @example
 * ```ts
 * import { KonnectivitySession, memoryPipePair, tunnelListener } from "./mod.ts";
 * const none = { scheme: "none", id: "test", fingerprint: "" } as const;
 * const { a, b } = memoryPipePair();
 * const { onDial, listener } = tunnelListener();
 * const server = new KonnectivitySession(a, { peer: none, role: "server" });
 * const agent = new KonnectivitySession(b, { peer: none, role: "agent", onDial });
 * const [dialed, accepted] = await Promise.all([
 *   server.dial("svc:80"),
 *   listener[Symbol.asyncIterator]().next(),
 * ]);
 * if (accepted.done) throw new Error("no channel");
 * await listener.close();
 * server.close();
 * agent.close();
 * ```
 */
export function tunnelListener(options: TunnelListenerOptions = {}): TunnelListener {
  const queue = new AcceptQueue(options.backlog ?? DEFAULT_ACCEPT_BACKLOG);
  const onDial: DialHandler = (d) => {
    if (queue.ended) throw new Error("the listener is closed");
    const ch: Channel = d.accept();
    if (!queue.push(ch)) {
      ch.abort(new Error("listener backlog full"));
    }
  };
  const listener: Listener = {
    addr: options.addr ?? "konnectivity",
    close: async (): Promise<void> => {
      queue.end();
    },
    [Symbol.asyncIterator]: () => queue[Symbol.asyncIterator](),
    [Symbol.asyncDispose]: async (): Promise<void> => {
      queue.end();
    },
  };
  return { onDial, listener };
}
