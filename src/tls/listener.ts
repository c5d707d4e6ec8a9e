/**
 * The mutual-TLS server: a TCP listener, and TLS as the server over any
 * existing Channel. Client certificates are required and verified by default;
 * an authorizer can admit only some verified identities.
 *
 * @module
 */

import { channelTransport, listenTcpTransports, type TlsTransport } from "../_runtime/tls.ts";
import { AcceptQueue, DEFAULT_ACCEPT_BACKLOG } from "../channel/accept_queue.ts";
import { positiveInt } from "../channel/config.ts";
import { ChannelResetError, ListenError, SpokewireError, TimeoutError } from "../channel/errors.ts";
import type { Channel, DialOptions, Listener, PeerIdentity } from "../channel/types.ts";
import {
  DEFAULT_TLS_AUTHORIZE_TIMEOUT_MS,
  DEFAULT_TLS_HANDSHAKE_TIMEOUT_MS,
  normalizeFingerprint,
  type TlsCredentials,
  type TlsServerOptions,
  verifyTlsServerOptions,
} from "./config.ts";
import { ContextHolder } from "./context_holder.ts";
import { establish } from "./establish.ts";

/**
 * Accepts TLS as the server: over a Channel with {@link TlsAcceptor.acceptOver},
 * and for every connection of a {@link listenTls} listener.
 *
 * @example
 * ```ts ignore
 * const acceptor = new TlsAcceptor({ credentials: { ca, cert, key }, authorize: (p) => p.groups?.includes("system:nodes") ?? false });
 * const verified = await acceptor.acceptOver(sshChannel);
 * ```
 */
export class TlsAcceptor {
  readonly #opts: TlsServerOptions;
  readonly #ctx: ContextHolder;

  constructor(options: TlsServerOptions) {
    verifyTlsServerOptions(options);
    this.#opts = options;
    this.#ctx = new ContextHolder(options, true);
  }

  /** Rotate certificate, key and CA bundle: open channels keep theirs, new handshakes use these. */
  updateCredentials(credentials: TlsCredentials): void {
    this.#ctx.update(credentials);
  }

  /** Run TLS as the server over `channel` and verify the client. The result owns `channel`. */
  acceptOver(channel: Channel, options: DialOptions = {}): Promise<Channel> {
    return this.accept(channelTransport(channel), "a client over a channel", options.signal);
  }

  /** @internal Run the server side over a transport. */
  accept(transport: TlsTransport, who: string, signal?: AbortSignal): Promise<Channel> {
    const o = this.#opts;
    const require = o.requireClientCert !== false;
    return establish(transport, {
      context: this.#ctx.current,
      requestCert: true,
      handshakeTimeoutMs: o.handshakeTimeoutMs ?? DEFAULT_TLS_HANDSHAKE_TIMEOUT_MS,
      refusalWindowMs: 0,
      presentedCert: true,
      config: o.config,
      signal,
      policy: {
        role: "server",
        requireClientCert: require,
        roots: this.#ctx.roots,
        pins: new Set((o.pinnedFingerprints ?? []).map(normalizeFingerprint)),
        skipVerification: o.dangerouslySkipVerification === true,
        logger: o.logger ?? console,
        now: o.now ?? (() => new Date()),
        authorize: o.authorize,
        authorizeTimeoutMs: o.authorizeTimeoutMs ?? DEFAULT_TLS_AUTHORIZE_TIMEOUT_MS,
        describe: who,
      },
    });
  }
}

/** Options of {@link listenTls}. */
export interface TlsListenOptions extends TlsServerOptions {
  /** Verified channels waiting for the caller before new ones are reset. Default 128. */
  readonly backlog?: number;
  /**
   * Connections the kernel holds before they are accepted (listen(2) backlog,
   * capped by `net.core.somaxconn`). Default 511.
   */
  readonly listenBacklog?: number;
  /**
   * Told about every connection refused during the handshake or verification
   * (PEER_VERIFICATION_FAILED with its reason, TIMEOUT, DIAL_FAILED). Such
   * connections are reset and never yielded.
   */
  readonly onRefused?: (error: SpokewireError) => void;
  /** Told about each verified connection reset because `backlog` channels were already waiting. */
  readonly onOverflow?: (peer: PeerIdentity) => void;
  /**
   * TLS handshakes run at once; further connections wait, oldest first, without a
   * handshake begun (a storm of thousands of clients would otherwise share the CPU
   * until every handshake times out). Default 256.
   */
  readonly maxConcurrentHandshakes?: number;
  /**
   * Connections waiting for a handshake slot; beyond this a new one is reset, and one
   * that has waited `handshakeTimeoutMs` is reset when its turn comes (its client has
   * likely given up); both are told to `onRefused`. Default 4096.
   */
  readonly maxWaitingHandshakes?: number;
}

/** Default of {@link TlsListenOptions.maxConcurrentHandshakes}. */
export const DEFAULT_MAX_CONCURRENT_HANDSHAKES = 256;
/** Default of {@link TlsListenOptions.maxWaitingHandshakes}. */
export const DEFAULT_MAX_WAITING_HANDSHAKES = 4096;

/** A TLS listener; {@link TlsListener.updateCredentials} rotates its certificate live. */
export interface TlsListener extends Listener {
  updateCredentials(credentials: TlsCredentials): void;
}

class TlsListenerImpl implements TlsListener {
  readonly addr: string;
  readonly #queue: AcceptQueue;
  readonly #acceptor: TlsAcceptor;
  readonly #close: () => Promise<void>;
  readonly #stop = new AbortController();
  #closing: Promise<void> | undefined;

  constructor(addr: string, queue: AcceptQueue, acceptor: TlsAcceptor, close: () => Promise<void>) {
    this.addr = addr;
    this.#queue = queue;
    this.#acceptor = acceptor;
    this.#close = close;
  }

  get stopSignal(): AbortSignal {
    return this.#stop.signal;
  }

  /** Handshakes in progress, each with its own signal (one shared signal would gather a listener per handshake). */
  readonly #inflight = new Set<AbortController>();

  /** A signal for one handshake, aborted when the listener closes; call `done` when it ends. */
  handshakeSignal(): { signal: AbortSignal; done: () => void } {
    const ac = new AbortController();
    if (this.#stop.signal.aborted) ac.abort(this.#stop.signal.reason);
    else this.#inflight.add(ac);
    return { signal: ac.signal, done: () => this.#inflight.delete(ac) };
  }

  updateCredentials(credentials: TlsCredentials): void {
    this.#acceptor.updateCredentials(credentials);
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#queue.end();
      this.#stop.abort(new Error("listener closed"));
      for (const ac of this.#inflight) ac.abort(this.#stop.signal.reason);
      this.#inflight.clear();
      await this.#close();
    })();
    return this.#closing;
  }

  [Symbol.asyncIterator](): AsyncIterator<Channel> {
    return this.#queue[Symbol.asyncIterator]();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/**
 * Listen for mutual-TLS connections on TCP (default host 127.0.0.1). Yields
 * only verified (and authorized) channels.
 *
 * @example
 * ```ts ignore
 * import { listenTls } from "spokewire";
 * const l = await listenTls({ port: 10250 }, {
 *   credentials: { ca: caPem, cert: serverPem, key: serverKeyPem },
 *   authorize: (peer) => peer.groups?.includes("system:nodes") ?? false,
 * });
 * for await (const ch of l) console.log(ch.peer.id);
 * ```
 */
export async function listenTls(
  addr: { host?: string; port: number },
  options: TlsListenOptions,
): Promise<TlsListener> {
  const host = addr.host ?? "127.0.0.1";
  positiveInt("port", addr.port, 0, 65535);
  const acceptor = new TlsAcceptor(options);
  const backlog = options.backlog ?? DEFAULT_ACCEPT_BACKLOG;
  positiveInt("backlog", backlog, 1, 1_000_000);
  if (options.listenBacklog !== undefined) {
    positiveInt("listenBacklog", options.listenBacklog, 1, 1_000_000);
  }
  const maxActive = options.maxConcurrentHandshakes ?? DEFAULT_MAX_CONCURRENT_HANDSHAKES;
  positiveInt("maxConcurrentHandshakes", maxActive, 1, 1_000_000);
  const maxWaiting = options.maxWaitingHandshakes ?? DEFAULT_MAX_WAITING_HANDSHAKES;
  positiveInt("maxWaitingHandshakes", maxWaiting, 0, 1_000_000);
  const maxWaitMs = options.handshakeTimeoutMs ?? DEFAULT_TLS_HANDSHAKE_TIMEOUT_MS;
  const queue = new AcceptQueue(backlog);
  let listener: TlsListenerImpl | undefined;
  /** Handshakes running, and connections waiting for a slot (a FIFO from `head`). */
  let active = 0;
  let waiting: Array<{ t: TlsTransport; since: number } | undefined> = [];
  let head = 0;
  const handshake = (t: TlsTransport): void => {
    if (!listener || queue.ended) {
      t.abort();
      return;
    }
    active++;
    const hs = listener.handshakeSignal();
    const accepting = acceptor.accept(t, `client of ${listener.addr}`, hs.signal);
    const finished = (): void => {
      hs.done();
      active--;
      next();
    };
    accepting.then(finished, finished);
    accepting.then(
      (ch) => {
        if (!queue.push(ch)) {
          if (!queue.ended) options.onOverflow?.(ch.peer);
          ch.abort(new ChannelResetError("listener backlog full or closed"));
        }
      },
      (err: unknown) => {
        if (err instanceof SpokewireError) options.onRefused?.(err);
      },
    );
  };
  /** Start waiting connections while slots are free; reset those that waited too long. */
  const next = (): void => {
    while (active < maxActive && head < waiting.length) {
      const w = waiting[head];
      waiting[head++] = undefined;
      if (head > 1024 && head * 2 > waiting.length) {
        waiting = waiting.slice(head);
        head = 0;
      }
      if (!w) continue;
      const waited = performance.now() - w.since;
      if (waited > maxWaitMs) {
        w.t.abort();
        options.onRefused?.(
          new TimeoutError(
            `client of ${listener?.addr}: waited ${Math.round(waited)} ms for a TLS handshake slot (${maxActive} busy)`,
            maxWaitMs,
          ),
        );
        continue;
      }
      handshake(w.t);
    }
  };
  const onTransport = (t: TlsTransport): void => {
    if (!listener || queue.ended) {
      t.abort();
      return;
    }
    if (active < maxActive) {
      handshake(t);
      return;
    }
    if (waiting.length - head >= maxWaiting) {
      t.abort();
      options.onRefused?.(
        new ChannelResetError(
          `client of ${listener.addr}: reset, ${maxActive} TLS handshakes running and ${maxWaiting} waiting`,
        ),
      );
      return;
    }
    waiting.push({ t, since: performance.now() });
  };
  const dropWaiting = (): void => {
    for (let i = head; i < waiting.length; i++) waiting[i]?.t.abort();
    waiting = [];
    head = 0;
  };
  try {
    const server = await listenTcpTransports({ host, port: addr.port }, onTransport, {
      listenBacklog: options.listenBacklog,
    });
    listener = new TlsListenerImpl(server.addr, queue, acceptor, async () => {
      dropWaiting();
      await server.close();
    });
    return listener;
  } catch (err) {
    throw new ListenError(`cannot listen on ${host}:${addr.port}: ${(err as Error).message}`, {
      cause: err,
    });
  }
}
