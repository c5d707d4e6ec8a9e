/**
 * Plain TCP and Unix-socket channels: the unverified baseline and the "Direct"
 * egress. Their peer identity has scheme `"none"`: nothing is verified, so use
 * them only on loopback, inside an already trusted tunnel, or as a benchmark
 * baseline.
 *
 * @module
 */

import { dialSocket, listenSocket, type RawConn, type SocketAddress } from "../_runtime/net.ts";
import { bounded } from "../_util/deadline.ts";
import { AcceptQueue, DEFAULT_ACCEPT_BACKLOG } from "../channel/accept_queue.ts";
import { type ChannelConfig, positiveInt } from "../channel/config.ts";
import { ChannelResetError, ListenError, SpokewireError } from "../channel/errors.ts";
import type { Channel, Dialer, DialOptions, Listener, PeerIdentity } from "../channel/types.ts";
import { mapSocketError, SocketChannel } from "./socket_channel.ts";

/** A TCP endpoint (`host`, `port`) or a Unix socket (`path`). */
export type TcpTarget = SocketAddress;

/** Options of {@link TcpDialer}. */
export interface TcpDialerOptions {
  /** Guards against a target that never answers the SYN. Default 10 000 ms. */
  readonly connectTimeoutMs?: number;
  /** Disable Nagle's algorithm (default true). */
  readonly noDelay?: boolean;
  readonly config?: Partial<ChannelConfig>;
}

/** Default connect timeout for TCP dials. */
export const DEFAULT_TCP_CONNECT_TIMEOUT_MS = 10_000;

function describe(t: TcpTarget): string {
  if ("path" in t) return t.path;
  return t.host.includes(":") ? `[${t.host}]:${t.port}` : `${t.host}:${t.port}`;
}

function checkTarget(t: TcpTarget): void {
  if (typeof t !== "object" || t === null) throw new TypeError("TCP target must be an object");
  if ("path" in t) {
    if (typeof t.path !== "string" || t.path === "") throw new TypeError("path must be non-empty");
    return;
  }
  if (typeof t.host !== "string" || t.host === "") throw new TypeError("host must be non-empty");
  positiveInt("port", t.port, 0, 65535);
}

function nonePeer(conn: RawConn): PeerIdentity {
  return { scheme: "none", id: conn.remoteAddress, fingerprint: "" };
}

/**
 * Connect a raw stream socket, bounded by a timeout and an AbortSignal.
 * Shared by every transport that rides on TCP.
 */
export async function connectRaw(
  target: TcpTarget,
  opts: { timeoutMs: number; signal?: AbortSignal; noDelay?: boolean },
): Promise<RawConn> {
  checkTarget(target);
  let cancel: (() => void) | undefined;
  const p = dialSocket(target, { noDelay: opts.noDelay, onPending: (c) => (cancel = c) });
  try {
    return await bounded(p, {
      timeoutMs: opts.timeoutMs,
      what: `dial ${describe(target)}`,
      signal: opts.signal,
      onCancel: () => {
        cancel?.();
        p.then(
          (c) => c.destroy(),
          () => {},
        );
      },
    });
  } catch (err) {
    if (err instanceof SpokewireError) throw err;
    throw mapSocketError(err as Error, true);
  }
}

/**
 * Dials plain TCP or Unix sockets. Unverified: the peer identity is `"none"`.
 *
 * @example
 * ```ts
 * import { listenTcp, TcpDialer } from "../../mod.ts";
 * const listener = await listenTcp({ host: "127.0.0.1", port: 0 });
 * const [host, port] = [listener.addr.split(":")[0], Number(listener.addr.split(":")[1])];
 * const ch = await new TcpDialer().dial({ host, port });
 * ch.abort();
 * await listener.close();
 * ```
 */
export class TcpDialer implements Dialer<TcpTarget> {
  readonly #opts: TcpDialerOptions;

  constructor(options: TcpDialerOptions = {}) {
    if (options.connectTimeoutMs !== undefined) {
      positiveInt("connectTimeoutMs", options.connectTimeoutMs, 1, 3_600_000);
    }
    this.#opts = options;
  }

  async dial(target: TcpTarget, options: DialOptions = {}): Promise<Channel> {
    const conn = await connectRaw(target, {
      timeoutMs: this.#opts.connectTimeoutMs ?? DEFAULT_TCP_CONNECT_TIMEOUT_MS,
      signal: options.signal,
      noDelay: this.#opts.noDelay,
    });
    return new SocketChannel(conn, nonePeer(conn), this.#opts.config);
  }
}

/** Options of {@link listenTcp}. */
export interface TcpListenOptions {
  /** Accepted channels waiting for the caller before new ones are reset. Default 128. */
  readonly backlog?: number;
  /**
   * Connections the kernel holds before they are accepted (listen(2) backlog, capped
   * by `net.core.somaxconn`): a burst beyond it is refused (`EAGAIN` on a Unix
   * socket). Default 511. Not settable for TCP under Deno (its listener keeps its own).
   */
  readonly listenBacklog?: number;
  readonly noDelay?: boolean;
  readonly config?: Partial<ChannelConfig>;
}

/** A listening TCP or Unix socket that yields channels. */
class TcpListener implements Listener {
  readonly addr: string;
  readonly #queue: AcceptQueue;
  readonly #close: () => Promise<void>;
  #closing: Promise<void> | undefined;

  constructor(addr: string, queue: AcceptQueue, close: () => Promise<void>) {
    this.addr = addr;
    this.#queue = queue;
    this.#close = close;
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#queue.end();
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
 * Listen on TCP (default host 127.0.0.1) or a Unix socket.
 *
 * @example
 * ```ts
 * import { listenTcp } from "../../mod.ts";
 * const l = await listenTcp({ host: "127.0.0.1", port: 0 });
 * await l.close();
 * ```
 */
export async function listenTcp(
  addr: { host?: string; port: number } | { path: string },
  options: TcpListenOptions = {},
): Promise<Listener> {
  const target: TcpTarget =
    "path" in addr ? { path: addr.path } : { host: addr.host ?? "127.0.0.1", port: addr.port };
  checkTarget(target);
  if (options.listenBacklog !== undefined) {
    positiveInt("listenBacklog", options.listenBacklog, 1, 1_000_000);
  }
  const queue = new AcceptQueue(options.backlog ?? DEFAULT_ACCEPT_BACKLOG);
  try {
    const server = await listenSocket(
      target,
      (conn) => {
        const ch = new SocketChannel(conn, nonePeer(conn), options.config);
        if (!queue.push(ch)) ch.abort(new ChannelResetError("listener backlog full or closed"));
      },
      { noDelay: options.noDelay, listenBacklog: options.listenBacklog },
    );
    return new TcpListener(server.addr, queue, () => server.close());
  } catch (err) {
    throw new ListenError(`cannot listen on ${describe(target)}: ${(err as Error).message}`, {
      cause: err,
    });
  }
}
