/**
 * The HTTP CONNECT frontend: `CONNECT host:port HTTP/1.1` on any spokewire
 * {@link Listener} (TCP with mutual TLS from `listenTls`, or a Unix socket from
 * `listenTcp({ path })`), answered `200` and relayed through the Konnectivity
 * server, the way kube-apiserver's EgressSelectorConfiguration (`HTTPConnect`)
 * expects.
 *
 * @module
 */

import { positiveInt } from "../channel/config.ts";
import {
  ChannelResetError,
  DialError,
  MalformedInputError,
  TimeoutError,
} from "../channel/errors.ts";
import type { Channel, Dialer, Listener, PeerIdentity } from "../channel/types.ts";
import { encodeHttpHead, HeadTooLargeError, readHttpHead } from "./http_head.ts";
import { parseDialAddress, relayTunnel } from "./relay.ts";
import { NoAgentError } from "./server.ts";
import { DialBusyError, type SessionDialOptions } from "./session.ts";
import { refuseHttp } from "./ws_upgrade.ts";

/** Limits and timeouts of the CONNECT frontend. */
export interface ConnectFrontendConfig {
  /** Largest request head accepted (431 beyond). */
  readonly maxHeaderBytes: number;
  /** Guards against a client that sends its request head slowly or never (slowloris); 408 after. */
  readonly headerTimeoutMs: number;
  /** Guards against a dial through the tunnel that never completes; 504 after. */
  readonly dialTimeoutMs: number;
  /** Client connections served at once (request phase and relaying); more are answered 503. */
  readonly maxConnections: number;
  /**
   * Clients being answered `503` with `Retry-After` at once because `maxConnections` are
   * served (each held until it closes, at most the channel's `closeTimeoutMs`); past
   * this a new client is reset and counted in `dropped`.
   */
  readonly maxTurnedAway: number;
}

/**
 * Defaults: 16 KiB head, 10 s header timeout, 30 s dial timeout, 1024 connections,
 * 8192 being turned away.
 */
export const DEFAULT_CONNECT_FRONTEND_CONFIG: ConnectFrontendConfig = Object.freeze({
  maxHeaderBytes: 16 * 1024,
  headerTimeoutMs: 10_000,
  dialTimeoutMs: 30_000,
  maxConnections: 1024,
  maxTurnedAway: 8192,
});

/**
 * Merge `partial` over {@link DEFAULT_CONNECT_FRONTEND_CONFIG}; throws
 * `RangeError` naming the field and its value.
 *
 * @example
 * ```ts
 * import { verifyConnectFrontendConfig } from "./connect_frontend.ts";
 * if (verifyConnectFrontendConfig({ headerTimeoutMs: 500 }).maxConnections !== 1024) throw new Error();
 * ```
 */
export function verifyConnectFrontendConfig(
  partial: Partial<ConnectFrontendConfig> = {},
): ConnectFrontendConfig {
  const c = { ...DEFAULT_CONNECT_FRONTEND_CONFIG, ...partial };
  positiveInt("maxHeaderBytes", c.maxHeaderBytes, 256, 1024 * 1024);
  positiveInt("headerTimeoutMs", c.headerTimeoutMs, 1, 3_600_000);
  positiveInt("dialTimeoutMs", c.dialTimeoutMs, 1, 3_600_000);
  positiveInt("maxConnections", c.maxConnections, 1, 1_000_000);
  positiveInt("maxTurnedAway", c.maxTurnedAway, 0, 1_000_000);
  return c;
}

/** What the frontend dials through: a {@link KonnectivityServer}, or anything with its `dial`. */
export type ConnectDialer = Dialer<string> & {
  dial(address: string, options?: SessionDialOptions): Promise<Channel>;
};

/** Options of {@link serveConnectFrontend}. */
export interface ConnectFrontendOptions {
  readonly config?: Partial<ConnectFrontendConfig>;
  /** Admit a client's request for `address` (403 if false). Default: every client the listener verified. */
  readonly authorize?: (peer: PeerIdentity, address: string) => boolean | Promise<boolean>;
  /** Told about each refused request, with its status (0: reset unanswered, see `dropped`). */
  readonly onRefused?: (status: number, reason: string) => void;
  /**
   * The caller each dial is made for, sent to the agent for its per-caller allow-list.
   * Default {@link defaultConnectCaller}: a client certificate's identity (e.g.
   * `kube-apiserver`), anonymous otherwise (a Unix socket client).
   */
  readonly callerOf?: (peer: PeerIdentity) => string | undefined;
}

/** The default caller of a CONNECT client: its verified certificate's identity, else none. */
export function defaultConnectCaller(peer: PeerIdentity): string | undefined {
  return peer.scheme === "x509" && peer.id !== "" ? peer.id : undefined;
}

/** A running frontend. */
export interface ConnectFrontend extends AsyncDisposable {
  /** The listener's address. */
  readonly addr: string;
  /** Connections being served now. */
  readonly connections: number;
  /** Requests refused since start, by HTTP status (e.g. `{ 503: 12 }`). */
  readonly refusals: Readonly<Record<number, number>>;
  /** Clients reset unanswered since start: `maxConnections + maxTurnedAway` were open. */
  readonly dropped: number;
  /** Stop accepting, close the listener and reset every connection it serves. */
  close(): Promise<void>;
}

/** The status a failed dial answers with (and, for a busy agent, seconds to wait). */
export function connectStatusForError(err: unknown): {
  status: number;
  text: string;
  retryAfterS?: number;
} {
  if (err instanceof DialBusyError) {
    const retryAfterS = Math.max(1, Math.ceil(err.retryAfterMs / 1000));
    return { status: 503, text: "Service Unavailable", retryAfterS };
  }
  if (err instanceof NoAgentError) return { status: 503, text: "Service Unavailable" };
  if (err instanceof TimeoutError) return { status: 504, text: "Gateway Timeout" };
  if (err instanceof DialError) return { status: 502, text: "Bad Gateway" };
  return { status: 502, text: "Bad Gateway" };
}

/**
 * Serve HTTP CONNECT on `listener`, dialing through `dialer`. The frontend owns
 * the listener from then on.
 *
 * @example
 * ```ts ignore
 * import { listenTcp, serveConnectFrontend } from "spokewire";
 * const uds = await listenTcp({ path: "/run/konnectivity/konnectivity-server.socket" });
 * const frontend = serveConnectFrontend(uds, server);
 * ```
 */
export function serveConnectFrontend(
  listener: Listener,
  dialer: ConnectDialer,
  options: ConnectFrontendOptions = {},
): ConnectFrontend {
  const config = verifyConnectFrontendConfig(options.config);
  const live = new Set<Channel>();
  const tunnels = new Set<Channel>();
  const stop = new AbortController();

  const refusals = new Map<number, number>();
  let dropped = 0;
  const refuse = async (
    ch: Channel,
    status: number,
    text: string,
    reason: string,
    retryAfterS?: number,
  ) => {
    refusals.set(status, (refusals.get(status) ?? 0) + 1);
    options.onRefused?.(status, reason);
    await refuseHttp(
      ch,
      status,
      text,
      reason,
      retryAfterS === undefined ? {} : { "Retry-After": String(retryAfterS) },
    );
  };
  /** Clients being told 503 because `maxConnections` are served (up to `maxTurnedAway`). */
  const turningAway = new Set<Channel>();

  /**
   * One abort signal per connection (aborted by `close()`), not one listener per
   * connection on a shared signal: a thousand slow clients would be a thousand
   * listeners on it (and a MaxListenersExceededWarning from the 11th on).
   */
  const aborters = new Set<AbortController>();
  const serve = async (ch: Channel): Promise<void> => {
    const ac = new AbortController();
    if (stop.signal.aborted) ac.abort(stop.signal.reason);
    aborters.add(ac);
    try {
      await serveOne(ch, ac.signal);
    } finally {
      aborters.delete(ac);
    }
  };
  const serveOne = async (ch: Channel, signal: AbortSignal): Promise<void> => {
    const reader = ch.readable.getReader();
    let head: Awaited<ReturnType<typeof readHttpHead>>;
    try {
      head = await readHttpHead(reader, {
        maxBytes: config.maxHeaderBytes,
        timeoutMs: config.headerTimeoutMs,
        signal,
        what: `CONNECT request from ${ch.peer.id}`,
      });
    } catch (err) {
      reader.releaseLock();
      if (err instanceof HeadTooLargeError) {
        return refuse(ch, 431, "Request Header Fields Too Large", err.message);
      }
      if (err instanceof MalformedInputError) return refuse(ch, 400, "Bad Request", err.message);
      if (err instanceof TimeoutError) return refuse(ch, 408, "Request Timeout", err.message);
      ch.abort(err);
      return;
    }
    reader.releaseLock();
    const [method, target, version] = head.startLine;
    if (method !== "CONNECT") {
      return refuse(ch, 405, "Method Not Allowed", `only CONNECT is served, got ${method}`);
    }
    if (version !== "HTTP/1.1" && version !== "HTTP/1.0") {
      return refuse(ch, 400, "Bad Request", `unsupported version ${version}`);
    }
    try {
      parseDialAddress(target ?? "");
    } catch (err) {
      return refuse(ch, 400, "Bad Request", (err as Error).message);
    }
    if (options.authorize && !(await options.authorize(ch.peer, target))) {
      return refuse(ch, 403, "Forbidden", `${ch.peer.id} may not connect to ${target}`);
    }
    let tunnel: Channel;
    try {
      const caller = (options.callerOf ?? defaultConnectCaller)(ch.peer);
      tunnel = await dialer.dial(target, {
        signal,
        timeoutMs: config.dialTimeoutMs,
        ...(caller ? { caller } : {}),
      });
    } catch (err) {
      const { status, text, retryAfterS } = connectStatusForError(err);
      return refuse(ch, status, text, `dial ${target}: ${(err as Error).message}`, retryAfterS);
    }
    tunnels.add(tunnel);
    try {
      const w = ch.writable.getWriter();
      try {
        await w.write(encodeHttpHead("HTTP/1.1 200 Connection Established", {}));
      } finally {
        w.releaseLock();
      }
      if (head.rest.byteLength > 0) {
        const tw = tunnel.writable.getWriter();
        try {
          await tw.write(head.rest);
        } finally {
          tw.releaseLock();
        }
      }
      await relayTunnel(ch, tunnel);
    } catch (err) {
      tunnel.abort(err);
      ch.abort(err);
    } finally {
      tunnels.delete(tunnel);
    }
  };

  void (async () => {
    for await (const ch of listener) {
      if (live.size >= config.maxConnections) {
        // Told to come back (503, Retry-After) without reading its request; past
        // maxTurnedAway more, reset (told, counted).
        if (turningAway.size >= config.maxTurnedAway) {
          dropped++;
          options.onRefused?.(
            0,
            `reset: ${live.size} CONNECT clients served and ${turningAway.size} being refused`,
          );
          ch.abort(new ChannelResetError("too many CONNECT clients"));
          continue;
        }
        turningAway.add(ch);
        const reason = `${live.size} CONNECT clients already served`;
        refuse(ch, 503, "Service Unavailable", reason, 1)
          .catch(() => ch.abort())
          .finally(() => turningAway.delete(ch));
        continue;
      }
      live.add(ch);
      serve(ch)
        .catch((err: unknown) => ch.abort(err))
        .finally(() => live.delete(ch));
    }
  })();

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      stop.abort(new ChannelResetError("CONNECT frontend closed"));
      for (const ac of [...aborters]) ac.abort(stop.signal.reason);
      await listener.close();
      for (const ch of [...live, ...tunnels, ...turningAway]) {
        ch.abort(new ChannelResetError("CONNECT frontend closed"));
      }
      live.clear();
      tunnels.clear();
    })();
    return closing;
  };
  return {
    addr: listener.addr,
    get connections(): number {
      return live.size;
    },
    get refusals(): Readonly<Record<number, number>> {
      return Object.freeze(Object.fromEntries(refusals));
    },
    get dropped(): number {
      return dropped;
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}
