/**
 * The Konnectivity agent: dials out to the server over `wss://` (server CA
 * pinned, server name verified; client certificate or bearer token), keeps the
 * connection, serves the server's dials over TCP under an allow-list, and
 * reconnects with jittered exponential backoff.
 *
 * @module
 */

import type WebSocket from "ws";
import { positiveInt } from "../channel/config.ts";
import { ChannelClosedError, DialError, SpokewireError, TimeoutError } from "../channel/errors.ts";
import type { Channel, Dialer, PeerIdentity } from "../channel/types.ts";
import { TcpDialer, type TcpTarget } from "../tcp/tcp.ts";
import type { TlsClientOptions, TlsCredentials } from "../tls/config.ts";
import { TlsDialer } from "../tls/dialer.ts";
import {
  type AgentAllowList,
  type AgentIdentifiers,
  compileCallerAllowList,
  encodeAgentIdentifiers,
  NO_AGENT_IDENTIFIERS,
  verifyAgentIdentifiers,
} from "./agent_routes.ts";
import type { SessionConfig } from "./config.ts";
import { type DialRefusal, relayDialHandler } from "./relay.ts";
import { DialBusyError, KonnectivitySession } from "./session.ts";
import { wsPipe } from "./ws_pipe.ts";
import {
  AGENT_ID_HEADER,
  AGENT_IDENTIFIERS_HEADER,
  KONNECTIVITY_AGENT_PATH,
  upgradeClient,
} from "./ws_upgrade.ts";

/** Timing and limits of a {@link KonnectivityAgent}. */
export interface KonnectivityAgentConfig {
  /** First reconnect delay. */
  readonly minBackoffMs: number;
  /** Largest reconnect delay (the backoff is bounded here). */
  readonly maxBackoffMs: number;
  /** Each failed attempt multiplies the delay by this. */
  readonly backoffMultiplier: number;
  /**
   * Fraction of each delay taken off at random, so agents spread out: 1 = full
   * jitter (each wait drawn from (0, cap]), 0.5 = up to half, 0 = none.
   */
  readonly jitter: number;
  /**
   * After a connection that was up ends (the server went away), the first reconnect
   * waits a time drawn from [0, this], so agents restarted or dropped at once do not
   * arrive at once. 0 = no spread (the backoff alone).
   */
  readonly reconnectSpreadMs: number;
  /** A connection that lived this long resets the backoff to `minBackoffMs`. */
  readonly stableAfterMs: number;
  /** Guards against a server that never answers the TCP connect. */
  readonly connectTimeoutMs: number;
  /** Guards against a server that stalls the TLS handshake or the WebSocket upgrade. */
  readonly handshakeTimeoutMs: number;
  /** Largest upgrade response head accepted. */
  readonly maxHeaderBytes: number;
  /** Largest WebSocket message accepted; also the session's `maxMessageSize`. */
  readonly maxPayload: number;
}

/**
 * Defaults: backoff 500 ms x1.5 up to 10 s with full jitter, reset after 10 s up; the
 * first reconnect after a drop spread over 5 s; 10 s connect and handshake; 16 KiB
 * headers; 1 MiB messages.
 */
export const DEFAULT_KONNECTIVITY_AGENT_CONFIG: KonnectivityAgentConfig = Object.freeze({
  minBackoffMs: 500,
  maxBackoffMs: 10_000,
  backoffMultiplier: 1.5,
  jitter: 1,
  reconnectSpreadMs: 5000,
  stableAfterMs: 10_000,
  connectTimeoutMs: 10_000,
  handshakeTimeoutMs: 10_000,
  maxHeaderBytes: 16 * 1024,
  maxPayload: 1024 * 1024,
});

/**
 * Merge `partial` over {@link DEFAULT_KONNECTIVITY_AGENT_CONFIG}; throws
 * `RangeError` naming the field and its value.
 *
 * @example
 * ```ts
 * import { verifyKonnectivityAgentConfig } from "./agent.ts";
 * if (verifyKonnectivityAgentConfig({ maxBackoffMs: 1000 }).minBackoffMs !== 500) throw new Error();
 * ```
 */
export function verifyKonnectivityAgentConfig(
  partial: Partial<KonnectivityAgentConfig> = {},
): KonnectivityAgentConfig {
  const c = { ...DEFAULT_KONNECTIVITY_AGENT_CONFIG, ...partial };
  positiveInt("minBackoffMs", c.minBackoffMs, 1, 3_600_000);
  positiveInt("maxBackoffMs", c.maxBackoffMs, c.minBackoffMs, 3_600_000);
  if (!(c.backoffMultiplier >= 1 && c.backoffMultiplier <= 10)) {
    throw new RangeError(`backoffMultiplier must be in [1, 10], got ${c.backoffMultiplier}`);
  }
  if (!(c.jitter >= 0 && c.jitter <= 1)) {
    throw new RangeError(`jitter must be in [0, 1], got ${c.jitter}`);
  }
  positiveInt("reconnectSpreadMs", c.reconnectSpreadMs, 0, 3_600_000);
  positiveInt("stableAfterMs", c.stableAfterMs, 1, 24 * 3_600_000);
  positiveInt("connectTimeoutMs", c.connectTimeoutMs, 1, 3_600_000);
  positiveInt("handshakeTimeoutMs", c.handshakeTimeoutMs, 1, 3_600_000);
  positiveInt("maxHeaderBytes", c.maxHeaderBytes, 256, 1024 * 1024);
  positiveInt("maxPayload", c.maxPayload, 256, 64 * 1024 * 1024);
  return c;
}

/**
 * The wait before a reconnect: `attempt` failures in a row so far (0 after the first),
 * `random` in [0, 1). The cap is `minBackoffMs x backoffMultiplier^attempt`, at most
 * `maxBackoffMs`; `jitter` takes up to that fraction off (1: drawn from (0, cap]).
 * After a connection that was up (`afterDrop`), at least a draw from
 * [0, `reconnectSpreadMs`]; after a refusal that named a wait (`Retry-After`), that wait
 * plus the jittered backoff. Never below 1 ms.
 *
 * @example
 * ```ts
 * import { agentReconnectDelay, DEFAULT_KONNECTIVITY_AGENT_CONFIG as c } from "./agent.ts";
 * const d = agentReconnectDelay(c, { attempt: 3, random: () => 0.5 });
 * if (d !== Math.round(500 * 1.5 ** 3 * 0.5)) throw new Error(String(d));
 * ```
 */
export function agentReconnectDelay(
  c: KonnectivityAgentConfig,
  o: { attempt: number; random: () => number; afterDrop?: boolean; retryAfterMs?: number },
): number {
  const cap = Math.min(c.maxBackoffMs, c.minBackoffMs * c.backoffMultiplier ** o.attempt);
  let delay = cap * (1 - c.jitter * o.random());
  if (o.afterDrop && c.reconnectSpreadMs > 0) {
    delay = Math.max(delay, c.reconnectSpreadMs * o.random());
  }
  if (o.retryAfterMs !== undefined && o.retryAfterMs > 0) {
    delay += Math.min(o.retryAfterMs, 3_600_000);
  }
  return Math.max(1, Math.round(delay));
}

/** `connecting` -> `connected` -> `backoff` -> `connecting` ...; `closed` is final. */
export type AgentState = "connecting" | "connected" | "backoff" | "closed";

const TRANSITIONS: Readonly<Record<AgentState, readonly AgentState[]>> = Object.freeze({
  connecting: ["connected", "backoff", "closed"],
  connected: ["backoff", "closed"],
  backoff: ["connecting", "closed"],
  closed: [],
});

/** Distinct callers counted in `refusedDials` before the rest share one count. */
const MAX_REFUSAL_KEYS = 256;

/** The one transition function of the agent's state; throws on an illegal move. */
export function agentTransition(from: AgentState, to: AgentState): AgentState {
  if (!TRANSITIONS[from].includes(to)) throw new Error(`illegal agent transition ${from} -> ${to}`);
  return to;
}

/** Options of {@link KonnectivityAgent}. */
export interface KonnectivityAgentOptions {
  /** The server's agent listener, and the name its certificate must carry (default `host`). */
  readonly server: { readonly host: string; readonly port: number; readonly name?: string };
  /** `ca` verifies the server; `cert`/`key` are the agent's client certificate (optional with a token). */
  readonly credentials: TlsCredentials;
  /** Further TLS client options (minVersion, pinnedFingerprints, ...). */
  readonly tls?: Omit<TlsClientOptions, "credentials">;
  /** Agent id sent to the server; required with a token, checked against the certificate otherwise. */
  readonly agentId?: string;
  /** The bearer token, read at each (re)connect (e.g. from a rotating file). */
  readonly token?: () => string | Promise<string>;
  /** Destinations announced to the server for routing. Default none. */
  readonly identifiers?: AgentIdentifiers;
  /**
   * Destinations this agent dials, as `host[:port]` patterns (`*`, `*.suffix`,
   * CIDR, `port` or `*`): one list for every caller, or a map from the caller the
   * server dials for (e.g. `kube-apiserver`, a CONNECT client's certificate name)
   * to its list, `"*"` for callers not named. Required: `["*"]` allows everything.
   */
  readonly allow: AgentAllowList;
  /** Told about each dial the allow-list refused (also counted in `refusedDials`). */
  readonly onDialRefused?: (refusal: DialRefusal) => void;
  /** Dials the targets. Default a {@link TcpDialer}. */
  readonly dialer?: Dialer<TcpTarget>;
  readonly config?: Partial<KonnectivityAgentConfig>;
  readonly session?: Partial<SessionConfig>;
  /** Random source for jitter, in [0, 1). Default `Math.random`. */
  readonly random?: () => number;
  /** Told about each state change, with the error that caused a `backoff`. */
  readonly onStateChange?: (state: AgentState, error?: SpokewireError) => void;
}

/**
 * The agent. Construct, then {@link KonnectivityAgent.start}; it connects and
 * keeps reconnecting until {@link KonnectivityAgent.close}.
 *
 * @example
 * ```ts ignore
 * import { KonnectivityAgent } from "spokewire";
 * const agent = new KonnectivityAgent({
 *   server: { host: "konnectivity.example", port: 8091 },
 *   credentials: { ca, cert, key },
 *   allow: ["10.0.0.0/8:*"],
 * });
 * agent.start();
 * await agent.waitConnected();
 * ```
 */
export class KonnectivityAgent implements AsyncDisposable {
  readonly config: KonnectivityAgentConfig;
  readonly #opts: KonnectivityAgentOptions;
  readonly #tls: TlsDialer;
  readonly #identifiers: AgentIdentifiers;
  readonly #onDial: ReturnType<typeof relayDialHandler>;
  readonly #random: () => number;
  readonly #stop = new AbortController();
  #state: AgentState = "backoff";
  #started = false;
  #session: KonnectivitySession | undefined;
  #ws: WebSocket | undefined;
  #attempt = 0;
  #lastError: SpokewireError | undefined;
  #loop: Promise<void> | undefined;
  readonly #waiters = new Set<() => void>();
  #sleepWake: (() => void) | undefined;
  readonly #refused = new Map<string, number>();

  constructor(options: KonnectivityAgentOptions) {
    this.config = verifyKonnectivityAgentConfig(options.config);
    if (typeof options.server?.host !== "string" || options.server.host === "") {
      throw new TypeError("server.host must be non-empty");
    }
    positiveInt("server.port", options.server.port, 1, 65535);
    if (typeof options.allow !== "object" || options.allow === null) {
      throw new TypeError("allow must be a list of patterns or a map of caller to patterns");
    }
    if (options.token !== undefined && options.agentId === undefined) {
      throw new RangeError("agentId is required with a token");
    }
    if (options.token === undefined && options.credentials.cert === undefined) {
      throw new RangeError("credentials.cert/key or a token is required to authenticate");
    }
    this.#opts = options;
    this.#identifiers = verifyAgentIdentifiers(options.identifiers ?? NO_AGENT_IDENTIFIERS);
    this.#tls = new TlsDialer({
      ...options.tls,
      credentials: options.credentials,
      connectTimeoutMs: this.config.connectTimeoutMs,
      handshakeTimeoutMs: options.tls?.handshakeTimeoutMs ?? this.config.handshakeTimeoutMs,
    });
    this.#onDial = relayDialHandler(options.dialer ?? new TcpDialer(), {
      allow: compileCallerAllowList(options.allow),
      onRefused: (r) => {
        const key = r.caller ?? "";
        if (this.#refused.has(key) || this.#refused.size < MAX_REFUSAL_KEYS) {
          this.#refused.set(key, (this.#refused.get(key) ?? 0) + 1);
        } else this.#refused.set("*", (this.#refused.get("*") ?? 0) + 1);
        options.onDialRefused?.(r);
      },
    });
    this.#random = options.random ?? Math.random;
  }

  /**
   * Dials refused by the allow-list since start, by caller (`""` for anonymous
   * callers; beyond 256 distinct callers the rest count under `"*"`).
   */
  get refusedDials(): Readonly<Record<string, number>> {
    return Object.freeze(Object.fromEntries(this.#refused));
  }

  /** The current state. */
  get state(): AgentState {
    return this.#state;
  }

  /** Why the last connection attempt or connection failed, if it did. */
  get lastError(): SpokewireError | undefined {
    return this.#lastError;
  }

  /** The server's verified identity while connected. */
  get serverIdentity(): PeerIdentity | undefined {
    return this.#session?.peer;
  }

  /** Start connecting (once). */
  start(): void {
    if (this.#started) return;
    this.#started = true;
    this.#loop = this.#run();
  }

  /**
   * Resolve when the agent is connected. Rejects with `TIMEOUT` after
   * `timeoutMs` (default 10 000), or `CHANNEL_CLOSED` once the agent is closed.
   */
  waitConnected(options: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<void> {
    return this.#waitFor((s) => s === "connected", "connected", options);
  }

  /** Resolve when the agent next leaves `connected` (or is not connected now). */
  waitDisconnected(options: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<void> {
    return this.#waitFor((s) => s !== "connected", "disconnected", options, true);
  }

  #waitFor(
    ok: (s: AgentState) => boolean,
    what: string,
    options: { timeoutMs?: number; signal?: AbortSignal },
    closedOk = false,
  ): Promise<void> {
    const timeoutMs = options.timeoutMs ?? 10_000;
    return new Promise<void>((resolve, reject) => {
      const check = (): boolean => {
        if (ok(this.#state)) {
          finish();
          resolve();
          return true;
        }
        if (this.#state === "closed" && !closedOk) {
          finish();
          reject(new ChannelClosedError(`the agent closed before it was ${what}`));
          return true;
        }
        return false;
      };
      const finish = (): void => {
        clearTimeout(timer);
        this.#waiters.delete(check);
        options.signal?.removeEventListener("abort", onAbort);
      };
      const onAbort = (): void => {
        finish();
        reject(new ChannelClosedError(`waiting for the agent to be ${what} was aborted`));
      };
      const timer = setTimeout(() => {
        finish();
        reject(
          new TimeoutError(`the agent was not ${what} within ${timeoutMs} ms`, timeoutMs, {
            cause: this.#lastError,
          }),
        );
      }, timeoutMs);
      if (check()) return;
      this.#waiters.add(check);
      if (options.signal?.aborted) onAbort();
      else options.signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  #setState(to: AgentState, error?: SpokewireError): void {
    this.#state = agentTransition(this.#state, to);
    if (error) this.#lastError = error;
    this.#opts.onStateChange?.(to, error);
    for (const w of [...this.#waiters]) w();
  }

  /**
   * Kill the current connection abruptly (the server sees it fail); the agent
   * reconnects after its backoff. For tests and operators.
   */
  dropConnection(): void {
    this.#ws?.terminate();
  }

  /** Tell the server this agent is going away (DRAIN): new dials prefer other agents. */
  drain(): void {
    this.#session?.drain();
  }

  async #run(): Promise<void> {
    const stop = this.#stop.signal;
    while (!stop.aborted) {
      this.#setState("connecting");
      const startedAt = performance.now();
      try {
        const session = await this.#connect(stop);
        if (stop.aborted) {
          session.close();
          break;
        }
        this.#session = session;
        this.#setState("connected");
        const info = await session.closed;
        this.#session = undefined;
        this.#ws = undefined;
        if (stop.aborted) break;
        if (performance.now() - startedAt >= this.config.stableAfterMs) this.#attempt = 0;
        this.#setState("backoff", info.error);
        await this.#sleep(this.#nextDelay({ afterDrop: true }), stop);
      } catch (err) {
        if (stop.aborted) break;
        const e =
          err instanceof SpokewireError
            ? err
            : new DialError(`connecting failed: ${(err as Error).message}`, { cause: err });
        this.#setState("backoff", e);
        const retryAfterMs = e instanceof DialBusyError ? e.retryAfterMs : undefined;
        await this.#sleep(this.#nextDelay({ retryAfterMs }), stop);
      }
    }
    if (this.#state !== "closed") this.#setState("closed");
  }

  #nextDelay(o: { afterDrop?: boolean; retryAfterMs?: number }): number {
    const delay = agentReconnectDelay(this.config, {
      attempt: this.#attempt,
      random: this.#random,
      ...o,
    });
    this.#attempt = Math.min(this.#attempt + 1, 64);
    return delay;
  }

  #sleep(ms: number, stop: AbortSignal): Promise<void> {
    return new Promise<void>((resolve) => {
      if (stop.aborted) return resolve();
      const t = setTimeout(() => {
        this.#sleepWake = undefined;
        resolve();
      }, ms);
      this.#sleepWake = () => {
        clearTimeout(t);
        this.#sleepWake = undefined;
        resolve();
      };
    });
  }

  async #connect(stop: AbortSignal): Promise<KonnectivitySession> {
    const o = this.#opts;
    const c = this.config;
    const headers: Record<string, string> = {};
    if (o.agentId !== undefined) headers[AGENT_ID_HEADER] = o.agentId;
    const ids = encodeAgentIdentifiers(this.#identifiers);
    if (ids !== "") headers[AGENT_IDENTIFIERS_HEADER] = ids;
    if (o.token) headers.Authorization = `Bearer ${(await o.token()).trim()}`;
    const ch: Channel = await this.#tls.dial(
      { host: o.server.host, port: o.server.port, name: o.server.name },
      { signal: stop },
    );
    let ws: WebSocket;
    try {
      const host = o.server.host.includes(":") ? `[${o.server.host}]` : o.server.host;
      ws = await upgradeClient(ch, {
        host: `${host}:${o.server.port}`,
        path: KONNECTIVITY_AGENT_PATH,
        headers,
        maxHeaderBytes: c.maxHeaderBytes,
        timeoutMs: c.handshakeTimeoutMs,
        maxPayload: c.maxPayload,
        signal: stop,
        // Zero masking keys if the server grants them (SPEC.md section 1, "Masking"):
        // offered only when this TLS connection verified the server.
        offerZeroMask: o.tls?.dangerouslySkipVerification !== true,
      });
    } catch (err) {
      ch.abort(err);
      throw err;
    }
    this.#ws = ws;
    return new KonnectivitySession(wsPipe(ws), {
      peer: ch.peer,
      role: "agent",
      config: { ...o.session, maxMessageSize: c.maxPayload },
      onDial: this.#onDial,
    });
  }

  /** Stop reconnecting and end the connection (GO_AWAY; tunneled connections fail). */
  async close(): Promise<void> {
    this.#stop.abort(new ChannelClosedError("agent closed"));
    this.#sleepWake?.();
    this.#session?.close();
    if (!this.#started) {
      if (this.#state !== "closed") this.#setState("closed");
      return;
    }
    await this.#loop;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
