/**
 * The Konnectivity server: agents dial in over `wss://` (mutual TLS or a bearer
 * token bound to the agent id), one {@link KonnectivitySession} per agent, and
 * `server.dial("host:port")` picks an agent and tunnels through it.
 *
 * @module
 */

import { positiveInt } from "../channel/config.ts";
import {
  AbortedError,
  AuthError,
  ChannelResetError,
  DialError,
  MalformedInputError,
  SpokewireError,
  TimeoutError,
} from "../channel/errors.ts";
import type { Channel, Dialer, PeerIdentity } from "../channel/types.ts";
import type { ServiceTokenVerifier } from "../pki/service_token.ts";
import type { TlsServerOptions } from "../tls/config.ts";
import { listenTls, type TlsListener } from "../tls/listener.ts";
import { type AgentClaimPolicy, certificateClaims, claimOutside } from "./agent_claims.ts";
import {
  type AgentIdentifiers,
  AgentRouteTable,
  NO_AGENT_IDENTIFIERS,
  parseAgentIdentifiers,
} from "./agent_routes.ts";
import type { SessionConfig } from "./config.ts";
import { HeadTooLargeError, readHttpHead } from "./http_head.ts";
import { parseDialAddress } from "./relay.ts";
import { KonnectivitySession, type SessionDialOptions } from "./session.ts";
import { wsPipe } from "./ws_pipe.ts";
import {
  AGENT_ID_HEADER,
  AGENT_IDENTIFIERS_HEADER,
  acceptUpgrade,
  KONNECTIVITY_AGENT_PATH,
  offersZeroMask,
  refuseHttp,
} from "./ws_upgrade.ts";

/** Limits and timeouts of a {@link KonnectivityServer}. */
export interface KonnectivityServerConfig {
  /**
   * Agents registered at once; a new agent id beyond this is refused (HTTP 503). Each
   * idle agent costs the server about 90-120 KiB (measured: 10,000 agents, 962 MB RSS).
   */
  readonly maxAgents: number;
  /**
   * Agents past TLS whose WebSocket upgrade is being handled at once; more wait
   * (see `maxWaitingAgents`) until one finishes.
   */
  readonly maxPendingHandshakes: number;
  /**
   * Verified agents waiting for an upgrade slot; beyond this a new one is reset,
   * logged and counted (`refusals["backlog-full"]`). A restart's reconnect storm
   * waits here instead of being reset into back-off.
   */
  readonly maxWaitingAgents: number;
  /** Guards against a client that stalls the WebSocket upgrade request (after TLS). */
  readonly handshakeTimeoutMs: number;
  /** Largest upgrade request head accepted (HTTP 431 beyond). */
  readonly maxHeaderBytes: number;
  /** Largest WebSocket message accepted from an agent; also the session's `maxMessageSize`. */
  readonly maxPayload: number;
  /** Guards against an authorizer or token lookup that never answers. */
  readonly authorizeTimeoutMs: number;
  /** Guards against agents that do not answer GO_AWAY when the server closes. */
  readonly closeTimeoutMs: number;
}

/** Defaults: 10,000 agents, 64 pending handshakes and 1024 waiting, 10 s upgrade timeout, 16 KiB headers, 1 MiB messages, 5 s authorize, 5 s close. */
export const DEFAULT_KONNECTIVITY_SERVER_CONFIG: KonnectivityServerConfig = Object.freeze({
  maxAgents: 10_000,
  maxPendingHandshakes: 64,
  maxWaitingAgents: 1024,
  handshakeTimeoutMs: 10_000,
  maxHeaderBytes: 16 * 1024,
  maxPayload: 1024 * 1024,
  authorizeTimeoutMs: 5_000,
  closeTimeoutMs: 5_000,
});

/**
 * Merge `partial` over {@link DEFAULT_KONNECTIVITY_SERVER_CONFIG}; throws
 * `RangeError` naming the field and its value.
 *
 * @example
 * ```ts
 * import { verifyKonnectivityServerConfig } from "./server.ts";
 * if (verifyKonnectivityServerConfig({ maxAgents: 5 }).maxPayload !== 1048576) throw new Error();
 * ```
 */
export function verifyKonnectivityServerConfig(
  partial: Partial<KonnectivityServerConfig> = {},
): KonnectivityServerConfig {
  const c = { ...DEFAULT_KONNECTIVITY_SERVER_CONFIG, ...partial };
  positiveInt("maxAgents", c.maxAgents, 1, 1_000_000);
  positiveInt("maxPendingHandshakes", c.maxPendingHandshakes, 1, 1_000_000);
  positiveInt("maxWaitingAgents", c.maxWaitingAgents, 1, 1_000_000);
  positiveInt("handshakeTimeoutMs", c.handshakeTimeoutMs, 1, 3_600_000);
  positiveInt("maxHeaderBytes", c.maxHeaderBytes, 256, 1024 * 1024);
  positiveInt("maxPayload", c.maxPayload, 256, 64 * 1024 * 1024);
  positiveInt("authorizeTimeoutMs", c.authorizeTimeoutMs, 1, 3_600_000);
  positiveInt("closeTimeoutMs", c.closeTimeoutMs, 1, 3_600_000);
  return c;
}

/**
 * Maps a verified client certificate to an agent id, or `undefined` to refuse.
 * May be async (bounded by `authorizeTimeoutMs`).
 */
export type AgentCertificateAuthorizer = (
  peer: PeerIdentity,
) => string | undefined | Promise<string | undefined>;

/** The token an agent id must present, or `undefined` if that id has none (refused). */
export type AgentTokenLookup = (
  agentId: string,
) => string | undefined | Promise<string | undefined>;

/** The agent a verified bearer token authenticates. */
export interface AgentTokenIdentity {
  /** The agent id (a node name). */
  readonly agentId: string;
  /** Groups the token carries, if any (`PeerIdentity.groups`). */
  readonly groups?: readonly string[];
  /** What the verifier found (claims, key id ...), kept in `PeerIdentity.details`. */
  readonly details?: Readonly<Record<string, unknown>>;
}

/**
 * Verifies an agent's bearer token: the agent it authenticates, or a thrown
 * {@link TokenRefusedError} (HTTP 401, logged with its reason). `agentId` is
 * the id the agent announced (its `X-Konnectivity-Agent-ID` header), if any; a
 * verifier refuses a token issued to another agent (`wrong-node`). Any other
 * error drops the connection unanswered. A hook for tokens from elsewhere,
 * e.g. a Kubernetes TokenReview call; {@link serviceTokenAgents} verifies
 * spokewire's own tokens.
 */
export type AgentTokenVerifier = (
  token: string,
  agentId: string | undefined,
) => AgentTokenIdentity | Promise<AgentTokenIdentity>;

/**
 * An {@link AgentTokenVerifier} for spokewire's service tokens
 * ({@link issueServiceToken}): the token's node is the agent id, and an agent
 * announcing another id is refused (`wrong-node`).
 *
 * @example
 * ```ts
 * import { createServiceTokenVerifier, generateKeyPair, issueServiceToken, serviceTokenAgents } from "../../mod.ts";
 * const keys = await generateKeyPair("ed25519");
 * const verify = serviceTokenAgents(await createServiceTokenVerifier({
 *   keys: [keys.publicKey], issuer: "cluster", audience: "konnectivity",
 * }));
 * const token = await issueServiceToken(keys.privateKey, {
 *   issuer: "cluster", audience: "konnectivity", node: "node-1",
 * });
 * if ((await verify(token, "node-1")).agentId !== "node-1") throw new Error("agent");
 * ```
 */
export function serviceTokenAgents(verifier: ServiceTokenVerifier): AgentTokenVerifier {
  return async (token, agentId) => {
    const claims = await verifier.verify(token, agentId);
    return { agentId: claims.node, details: { claims } };
  };
}

/**
 * The default certificate authorizer, kubelet-style: a leaf with CN
 * `system:node:<name>` and O `system:nodes` is agent `<name>`; anything else is refused.
 *
 * @example
 * ```ts
 * import { nodeCertificateAuthorizer } from "./server.ts";
 * const id = nodeCertificateAuthorizer({
 *   scheme: "x509", id: "system:node:node-1", fingerprint: "", groups: ["system:nodes"],
 * });
 * if (id !== "node-1") throw new Error("authorizer");
 * ```
 */
export function nodeCertificateAuthorizer(peer: PeerIdentity): string | undefined {
  if (peer.scheme !== "x509" || !(peer.groups ?? []).includes("system:nodes")) return undefined;
  const m = /^system:node:([A-Za-z0-9._-]{1,253})$/.exec(peer.id);
  return m ? m[1] : undefined;
}

/** How the server picks an agent for a destination; tried in order, first non-empty wins. */
export type AgentSelectionStrategy = "destHost" | "defaultRoute" | "default";

/** Where the server logs. */
export interface KonnectivityServerLogger {
  info(message: string): void;
  warn(message: string): void;
}

/** Options of {@link KonnectivityServer.listen}. */
export interface KonnectivityServerOptions {
  /** Default `127.0.0.1`. */
  readonly host?: string;
  /** Default 0 (any free port). */
  readonly port?: number;
  /**
   * TLS for the agent listener: server certificate, key, and the CA agent
   * certificates must chain to. `requireClientCert` defaults to true unless
   * `agentToken` is given (then a certificate is optional, but verified if sent).
   */
  readonly tls: TlsServerOptions;
  /** Agent id for a verified client certificate. Default {@link nodeCertificateAuthorizer}. */
  readonly authorizeCertificate?: AgentCertificateAuthorizer;
  /**
   * Enables bearer-token agents with static tokens: the token for an agent id
   * (compared in constant time). Not together with `verifyAgentToken`.
   */
  readonly agentToken?: AgentTokenLookup;
  /**
   * Enables bearer-token agents with verified tokens, e.g.
   * `serviceTokenAgents(await createServiceTokenVerifier(...))`, or a TokenReview
   * call of your own. Default: none (token agents refused unless `agentToken`).
   */
  readonly verifyAgentToken?: AgentTokenVerifier;
  /**
   * What each verified agent may announce (hosts, CIDR blocks, default route); an
   * announcement outside it refuses the agent with HTTP 403, logged with the agent and
   * the claim. Default {@link certificateClaims}: its node name and its certificate's
   * SAN names and addresses, no CIDR, no default route. {@link staticClaims} adds a map.
   */
  readonly claimPolicy?: AgentClaimPolicy;
  /** Default `["destHost", "defaultRoute", "default"]`. */
  readonly strategies?: readonly AgentSelectionStrategy[];
  readonly config?: Partial<KonnectivityServerConfig>;
  /** Per-agent session settings (`maxMessageSize` is `config.maxPayload`). */
  readonly session?: Partial<SessionConfig>;
  /** Random source for agent choice, in [0, 1). Default `Math.random`. */
  readonly random?: () => number;
  /** Default: warnings to `console.warn`, info dropped. */
  readonly logger?: KonnectivityServerLogger;
}

/** A registered agent, as seen by the server. */
export interface AgentInfo {
  readonly id: string;
  /** The verified identity (x509, or token with the agent id). */
  readonly peer: PeerIdentity;
  readonly identifiers: AgentIdentifiers;
  /** The agent sent DRAIN: new dials avoid it while others exist. */
  readonly draining: boolean;
  /** Live tunneled connections. */
  readonly connections: number;
  /** Increases with every registration, so a reconnect is told from the old connection. */
  readonly generation: number;
}

/**
 * No agent could take the dial (HTTP CONNECT answers 503). Code `DIAL_FAILED`
 * with `reason` `"no-agent"`; `instanceof` checks the reason, so another
 * DIAL_FAILED error is never mistaken for it.
 */
export class NoAgentError extends DialError {
  readonly reason = "no-agent" as const;
  static override [Symbol.hasInstance](value: unknown): boolean {
    return (
      DialError[Symbol.hasInstance](value) && (value as { reason?: unknown }).reason === "no-agent"
    );
  }
}

interface AgentEntry {
  readonly id: string;
  readonly peer: PeerIdentity;
  readonly routes: AgentRouteTable;
  readonly session: KonnectivitySession;
  readonly generation: number;
}

const DEFAULT_STRATEGIES: readonly AgentSelectionStrategy[] = Object.freeze([
  "destHost",
  "defaultRoute",
  "default",
]);

const defaultLogger: KonnectivityServerLogger = {
  info: () => {},
  warn: (m) => console.warn(m),
};

class HttpRefusal extends Error {
  readonly status: number;
  readonly statusText: string;
  /** Sent as `Retry-After` (seconds), if set. */
  readonly retryAfterS: number | undefined;
  constructor(status: number, statusText: string, message: string, retryAfterS?: number) {
    super(message);
    this.status = status;
    this.statusText = statusText;
    this.retryAfterS = retryAfterS;
  }
}

/** `Retry-After` when the server is full (agents add their jittered backoff on top). */
const FULL_RETRY_AFTER_S = 10;
/** `Retry-After` while the server shuts down (a restart is usually under way). */
const CLOSING_RETRY_AFTER_S = 2;

/** Compare two secrets in time independent of where they differ (SHA-256 first, so lengths leak nothing). */
async function constantTimeEqual(a: string, b: string): Promise<boolean> {
  const enc = new TextEncoder();
  const [x, y] = await Promise.all([
    crypto.subtle.digest("SHA-256", enc.encode(a)),
    crypto.subtle.digest("SHA-256", enc.encode(b)),
  ]);
  const u = new Uint8Array(x);
  const v = new Uint8Array(y);
  let diff = 0;
  for (let i = 0; i < u.length; i++) diff |= u[i] ^ v[i];
  return diff === 0;
}

function count(m: Map<string, number>, key: string): void {
  m.set(key, (m.get(key) ?? 0) + 1);
}

function withTimeout<T>(p: T | Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(
      () => reject(new TimeoutError(`${what} timed out after ${ms} ms`, ms)),
      ms,
    );
    Promise.resolve(p).then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e) => {
        clearTimeout(t);
        reject(e);
      },
    );
  });
}

/**
 * The Konnectivity server. Create with {@link KonnectivityServer.listen}.
 *
 * @example
 * ```ts ignore
 * import { KonnectivityServer } from "spokewire";
 * const server = await KonnectivityServer.listen({
 *   port: 8091,
 *   tls: { credentials: { cert, key, ca } },
 * });
 * const ch = await server.dial("10.0.0.5:10250");
 * ```
 */
export class KonnectivityServer implements Dialer<string>, AsyncDisposable {
  /** `host:port` the agent listener is bound to. */
  readonly addr: string;
  /** The bound port. */
  readonly port: number;
  readonly config: KonnectivityServerConfig;

  readonly #listener: TlsListener;
  readonly #opts: KonnectivityServerOptions;
  readonly #strategies: readonly AgentSelectionStrategy[];
  readonly #random: () => number;
  readonly #log: KonnectivityServerLogger;
  readonly #agents = new Map<string, AgentEntry>();
  readonly #handshakes = new Set<Channel>();
  readonly #refusals: Map<string, number>;
  #slotFreed: (() => void) | undefined;
  readonly #waiters = new Set<() => void>();
  #closing: Promise<void> | undefined;
  #generation = 0;

  private constructor(
    listener: TlsListener,
    options: KonnectivityServerOptions,
    config: KonnectivityServerConfig,
    refusals: Map<string, number>,
  ) {
    this.#refusals = refusals;
    this.#listener = listener;
    this.#opts = options;
    this.config = config;
    this.addr = listener.addr;
    this.port = Number(listener.addr.slice(listener.addr.lastIndexOf(":") + 1));
    this.#strategies = options.strategies ?? DEFAULT_STRATEGIES;
    this.#random = options.random ?? Math.random;
    this.#log = options.logger ?? defaultLogger;
    void this.#acceptLoop();
  }

  /** Bind the agent listener and start accepting agents. Throws `LISTEN_FAILED`, `RangeError`. */
  static async listen(options: KonnectivityServerOptions): Promise<KonnectivityServer> {
    const config = verifyKonnectivityServerConfig(options.config);
    const refusals = new Map<string, number>();
    if (options.agentToken !== undefined && options.verifyAgentToken !== undefined) {
      throw new RangeError("agentToken and verifyAgentToken: give one of them, not both");
    }
    for (const s of options.strategies ?? []) {
      if (!DEFAULT_STRATEGIES.includes(s)) throw new RangeError(`strategies: unknown ${s}`);
    }
    const listener = await listenTls(
      { host: options.host ?? "127.0.0.1", port: options.port ?? 0 },
      {
        ...options.tls,
        requireClientCert:
          options.tls.requireClientCert ??
          (options.agentToken === undefined && options.verifyAgentToken === undefined),
        backlog: config.maxWaitingAgents,
        onRefused: (err) => {
          count(refusals, "tls");
          (options.logger ?? defaultLogger).info(`agent TLS handshake refused: ${err.message}`);
        },
        onOverflow: (peer) => {
          count(refusals, "backlog-full");
          (options.logger ?? defaultLogger).warn(
            `agent ${peer.id} reset: ${config.maxWaitingAgents} verified agents already waiting (maxWaitingAgents)`,
          );
        },
      },
    );
    return new KonnectivityServer(listener, options, config, refusals);
  }

  /** The registered agents. */
  agents(): AgentInfo[] {
    return [...this.#agents.values()].map((e) => this.#info(e));
  }

  #info(e: AgentEntry): AgentInfo {
    return {
      id: e.id,
      peer: e.peer,
      identifiers: e.routes.identifiers,
      draining: e.session.peerDraining,
      connections: e.session.stats().connections,
      generation: e.generation,
    };
  }

  /**
   * Resolve once an agent with `id` (any agent if omitted) is registered, with
   * a generation above `newerThan` if given (a reconnect). Rejects with
   * `TIMEOUT` after `timeoutMs` (default 10 000) or `ABORTED`.
   */
  waitForAgent(
    id?: string,
    options: { timeoutMs?: number; signal?: AbortSignal; newerThan?: number } = {},
  ): Promise<AgentInfo> {
    const timeoutMs = options.timeoutMs ?? 10_000;
    const newer = options.newerThan ?? -1;
    return new Promise<AgentInfo>((resolve, reject) => {
      const find = (): AgentEntry | undefined =>
        [...this.#agents.values()].find(
          (e) =>
            (id === undefined || e.id === id) && e.generation > newer && e.session.state === "open",
        );
      const now = find();
      if (now) {
        resolve(this.#info(now));
        return;
      }
      const done = (): void => {
        clearTimeout(timer);
        this.#waiters.delete(check);
        options.signal?.removeEventListener("abort", onAbort);
      };
      const check = (): void => {
        const e = find();
        if (!e) return;
        done();
        resolve(this.#info(e));
      };
      const onAbort = (): void => {
        done();
        reject(new AbortedError(`waiting for agent ${id ?? "(any)"} was aborted`));
      };
      const timer = setTimeout(() => {
        done();
        reject(
          new TimeoutError(
            `no agent ${id ?? "(any)"} registered within ${timeoutMs} ms`,
            timeoutMs,
          ),
        );
      }, timeoutMs);
      this.#waiters.add(check);
      if (options.signal?.aborted) onAbort();
      else options.signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  /**
   * Pick an agent for `address` (`host:port`) and dial through it. Rejects with
   * {@link NoAgentError} (`DIAL_FAILED`) when no agent is registered, or with
   * the session's `DIAL_FAILED` / `TIMEOUT` / `ABORTED`.
   */
  dial(address: string, options: SessionDialOptions = {}): Promise<Channel> {
    let host: string;
    try {
      host = parseDialAddress(address).host;
    } catch (err) {
      return Promise.reject(err);
    }
    if (this.#closing) return Promise.reject(new NoAgentError(`dial ${address}: server closed`));
    const agent = this.#select(host);
    if (!agent) return Promise.reject(new NoAgentError(`dial ${address}: no agent available`));
    return agent.session.dial(address, options);
  }

  #select(host: string): AgentEntry | undefined {
    const all = [...this.#agents.values()].filter((a) => a.session.state === "open");
    for (const s of this.#strategies) {
      let set: AgentEntry[];
      if (s === "destHost") set = all.filter((a) => a.routes.serves(host));
      else if (s === "defaultRoute") set = all.filter((a) => a.routes.identifiers.defaultRoute);
      else set = all;
      if (set.length === 0) continue;
      const live = set.filter((a) => !a.session.peerDraining);
      const pool = live.length > 0 ? live : set;
      const i = Math.min(pool.length - 1, Math.floor(this.#random() * pool.length));
      return pool[i];
    }
    return undefined;
  }

  async #acceptLoop(): Promise<void> {
    for await (const ch of this.#listener) {
      this.#handshakes.add(ch);
      this.#handshake(ch)
        .catch((err: unknown) => {
          count(this.#refusals, "handshake-failed");
          this.#log.info(`agent handshake failed: ${(err as Error).message}`);
          ch.abort(err);
        })
        .finally(() => {
          this.#handshakes.delete(ch);
          this.#slotFreed?.();
        });
      // Over the limit, stop taking verified agents from the listener until an upgrade
      // finishes: they wait in its queue (maxWaitingAgents), not reset into back-off.
      while (this.#handshakes.size >= this.config.maxPendingHandshakes && !this.#closing) {
        await new Promise<void>((r) => {
          this.#slotFreed = () => {
            this.#slotFreed = undefined;
            r();
          };
        });
      }
    }
  }

  /**
   * Agents refused since start, by cause: `tls` (handshake or verification),
   * `backlog-full` (over `maxWaitingAgents`), `handshake-failed` (upgrade timed out
   * or broke), and `http-<status>` for each upgrade answered with an error (401, 403, 503 ...).
   */
  get refusals(): Readonly<Record<string, number>> {
    return Object.freeze(Object.fromEntries(this.#refusals));
  }

  async #handshake(ch: Channel): Promise<void> {
    const c = this.config;
    const reader = ch.readable.getReader();
    let head: Awaited<ReturnType<typeof readHttpHead>>;
    try {
      head = await readHttpHead(reader, {
        maxBytes: c.maxHeaderBytes,
        timeoutMs: c.handshakeTimeoutMs,
        what: `agent upgrade from ${ch.peer.id}`,
      });
    } catch (err) {
      reader.releaseLock();
      if (err instanceof MalformedInputError) {
        const big = err instanceof HeadTooLargeError;
        await refuseHttp(
          ch,
          big ? 431 : 400,
          big ? "Request Header Fields Too Large" : "Bad Request",
          err.message,
        );
        return;
      }
      throw err;
    }
    reader.releaseLock();
    let agent: { id: string; peer: PeerIdentity; identifiers: AgentIdentifiers; key: string };
    try {
      agent = await this.#authenticate(ch, head.startLine, head.headers);
    } catch (err) {
      if (err instanceof HttpRefusal) {
        count(this.#refusals, `http-${err.status}`);
        this.#log.warn(`agent refused (${err.status}): ${err.message}`);
        await refuseHttp(
          ch,
          err.status,
          err.statusText,
          err.message,
          err.retryAfterS === undefined ? {} : { "Retry-After": String(err.retryAfterS) },
        );
        return;
      }
      throw err;
    }
    if (this.#closing) {
      count(this.#refusals, "http-503");
      await refuseHttp(ch, 503, "Service Unavailable", "the server is shutting down", {
        "Retry-After": String(CLOSING_RETRY_AFTER_S),
      });
      return;
    }
    // Zero masking keys (SPEC.md section 1, "Masking") only for an agent whose
    // certificate this TLS connection's own handshake verified: then no TLS-terminating
    // intermediary can be reading the frames. A token agent's TLS may end at a front
    // proxy this server cannot see, so it keeps random keys.
    const grantZeroMask =
      agent.peer.scheme === "x509" &&
      ch.peer.scheme === "x509" &&
      offersZeroMask(head.headers.get("sec-websocket-extensions"));
    const ws = await acceptUpgrade(ch, agent.key, head.rest, c.maxPayload, grantZeroMask);
    const session = new KonnectivitySession(wsPipe(ws), {
      peer: agent.peer,
      role: "server",
      config: { ...this.#opts.session, maxMessageSize: c.maxPayload },
    });
    this.#register({
      id: agent.id,
      peer: agent.peer,
      routes: new AgentRouteTable(agent.identifiers),
      session,
      generation: ++this.#generation,
    });
  }

  async #authenticate(
    ch: Channel,
    startLine: readonly string[],
    headers: ReadonlyMap<string, string>,
  ): Promise<{ id: string; peer: PeerIdentity; identifiers: AgentIdentifiers; key: string }> {
    const c = this.config;
    const [method, target, version] = startLine;
    if (method !== "GET" || version !== "HTTP/1.1") {
      throw new HttpRefusal(405, "Method Not Allowed", `expected GET ... HTTP/1.1, got ${method}`);
    }
    if ((target ?? "").split("?")[0] !== KONNECTIVITY_AGENT_PATH) {
      throw new HttpRefusal(404, "Not Found", `unknown path ${target}`);
    }
    const key = headers.get("sec-websocket-key") ?? "";
    if (
      (headers.get("upgrade") ?? "").toLowerCase() !== "websocket" ||
      headers.get("sec-websocket-version") !== "13" ||
      !/^[A-Za-z0-9+/]{22}==$/.test(key)
    ) {
      throw new HttpRefusal(400, "Bad Request", "not a WebSocket version 13 upgrade");
    }
    let identifiers = NO_AGENT_IDENTIFIERS;
    const idText = headers.get(AGENT_IDENTIFIERS_HEADER);
    if (idText !== undefined) {
      try {
        identifiers = parseAgentIdentifiers(idText);
      } catch (err) {
        throw new HttpRefusal(400, "Bad Request", (err as Error).message);
      }
    }
    const claimed = headers.get(AGENT_ID_HEADER);
    let id: string | undefined;
    let peer: PeerIdentity;
    if (ch.peer.scheme === "x509") {
      const authorize = this.#opts.authorizeCertificate ?? nodeCertificateAuthorizer;
      id = await withTimeout(authorize(ch.peer), c.authorizeTimeoutMs, "certificate authorizer");
      if (id === undefined || id === "") {
        throw new HttpRefusal(403, "Forbidden", `certificate ${ch.peer.id} is not an agent`);
      }
      if (claimed !== undefined && claimed !== id) {
        throw new HttpRefusal(
          403,
          "Forbidden",
          `agent id ${JSON.stringify(claimed)} does not match certificate agent ${id}`,
        );
      }
      peer = ch.peer;
    } else {
      const lookup = this.#opts.agentToken;
      const verifyToken = this.#opts.verifyAgentToken;
      const auth = headers.get("authorization") ?? "";
      const m = /^Bearer ([\x21-\x7e]{1,8192})$/.exec(auth);
      const idOk = claimed !== undefined && /^[A-Za-z0-9._:-]{1,253}$/.test(claimed);
      if (verifyToken && m && (claimed === undefined || idOk)) {
        let who: AgentTokenIdentity;
        try {
          who = await withTimeout(
            verifyToken(m[1], claimed),
            c.authorizeTimeoutMs,
            "token verifier",
          );
        } catch (err) {
          if (err instanceof AuthError) {
            const agent = claimed === undefined ? "" : ` for agent ${claimed}`;
            throw new HttpRefusal(401, "Unauthorized", `${err.message}${agent}`);
          }
          throw err;
        }
        if (typeof who?.agentId !== "string" || !/^[A-Za-z0-9._:-]{1,253}$/.test(who.agentId)) {
          throw new HttpRefusal(401, "Unauthorized", "the token verifier named no agent");
        }
        if (claimed !== undefined && claimed !== who.agentId) {
          throw new HttpRefusal(
            401,
            "Unauthorized",
            `token refused (wrong-node): issued to ${who.agentId}, presented as ${claimed}`,
          );
        }
        id = who.agentId;
        peer = Object.freeze({
          scheme: "token",
          id,
          fingerprint: "",
          ...(who.groups ? { groups: Object.freeze([...who.groups]) } : {}),
          ...(who.details ? { details: who.details } : {}),
        });
      } else {
        if (!lookup || !m || !idOk || claimed === undefined) {
          throw new HttpRefusal(
            401,
            "Unauthorized",
            "a client certificate or agent id and bearer token is required",
          );
        }
        const expected = await withTimeout(lookup(claimed), c.authorizeTimeoutMs, "token lookup");
        if (expected === undefined || !(await constantTimeEqual(m[1], expected))) {
          throw new HttpRefusal(401, "Unauthorized", `bad token for agent ${claimed}`);
        }
        id = claimed;
        peer = Object.freeze({ scheme: "token", id, fingerprint: "" });
      }
    }
    const policy = this.#opts.claimPolicy ?? certificateClaims;
    const allowed = await withTimeout(
      Promise.resolve(policy({ id, peer })),
      c.authorizeTimeoutMs,
      "claim policy",
    );
    const outside = claimOutside(identifiers, allowed);
    if (outside !== undefined) {
      throw new HttpRefusal(403, "Forbidden", `agent ${id} may not claim ${outside}`);
    }
    if (!this.#agents.has(id) && this.#agents.size >= c.maxAgents) {
      throw new HttpRefusal(
        503,
        "Service Unavailable",
        `${c.maxAgents} agents already registered`,
        FULL_RETRY_AFTER_S,
      );
    }
    return { id, peer, identifiers, key };
  }

  #register(entry: AgentEntry): void {
    const old = this.#agents.get(entry.id);
    this.#agents.set(entry.id, entry);
    if (old) {
      this.#log.info(`agent ${entry.id} reconnected; dropping its previous connection`);
      old.session.abort(new ChannelResetError(`agent ${entry.id} replaced by a new connection`));
    }
    this.#log.info(`agent ${entry.id} registered (${entry.peer.scheme})`);
    void entry.session.closed.then((info) => {
      if (this.#agents.get(entry.id) === entry) {
        this.#agents.delete(entry.id);
        this.#log.info(`agent ${entry.id} disconnected: ${info.error.message}`);
      }
    });
    for (const w of [...this.#waiters]) w();
  }

  /** Stop accepting agents, end every agent session (their channels fail), and release the port. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      await this.#listener.close();
      for (const ch of this.#handshakes) ch.abort(new ChannelResetError("server closing"));
      const agents = [...this.#agents.values()];
      for (const a of agents) a.session.close();
      await withTimeout(
        Promise.all(agents.map((a) => a.session.closed)),
        this.config.closeTimeoutMs,
        "agent sessions closing",
      ).catch((err: unknown) => {
        if (!(err instanceof SpokewireError)) throw err;
        for (const a of agents) a.session.abort(err);
      });
      this.#agents.clear();
    })();
    return this.#closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
