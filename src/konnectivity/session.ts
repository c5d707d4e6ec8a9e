/**
 * A Konnectivity session: many tunneled connections multiplexed over one
 * message pipe, with per-connection flow control, half-close, race-free dial
 * cancel and keepalive. Transport-independent. See SPEC.md.
 *
 * @module
 */

import {
  AbortedError,
  abortedError,
  ChannelClosedError,
  ChannelResetError,
  DialError,
  ProtocolError,
  SpokewireError,
  TimeoutError,
} from "../channel/errors.ts";
import type { Channel, Dialer, DialOptions, PeerIdentity } from "../channel/types.ts";
import { decodePacket, encodePacket } from "./codec.ts";
import { type SessionConfig, verifySessionConfig } from "./config.ts";
import {
  type DialRequestPacket,
  type DialResponsePacket,
  GoAwayCode,
  goAwayCodeName,
  KONNECTIVITY_DEFAULT_WINDOW,
  KONNECTIVITY_MAX_WINDOW,
  type Packet,
  PacketType,
} from "./packet.ts";
import type { MessagePipe } from "./pipe.ts";
import { type SessionTimerHandle, type SessionTimers, SYSTEM_TIMERS } from "./timers.ts";
import { TunnelChannel, type TunnelPort } from "./tunnel_channel.ts";

/** Which end of the session this is; decides the parity of the connection ids it assigns. */
export type SessionRole = "server" | "agent";

/** Session lifecycle: `open` until it ends, then `closed` for good. */
export type SessionState = "open" | "closed";

/**
 * A connection's protocol state (SPEC.md section 4). `fin-*` track HALF_CLOSE;
 * `close-sent` means our close packet is out and we wait for the peer's;
 * `released` means the id is forgotten.
 */
export type TunnelState =
  | "open"
  | "fin-sent"
  | "fin-received"
  | "fin-both"
  | "close-sent"
  | "released";

/** What moves a connection between {@link TunnelState}s. */
export type TunnelEvent = "send-fin" | "recv-fin" | "send-close" | "recv-close";

const CONN_TABLE: Readonly<Record<TunnelState, Partial<Record<TunnelEvent, TunnelState>>>> = {
  open: {
    "send-fin": "fin-sent",
    "recv-fin": "fin-received",
    "send-close": "close-sent",
    "recv-close": "released",
  },
  "fin-sent": { "recv-fin": "fin-both", "send-close": "close-sent", "recv-close": "released" },
  "fin-received": { "send-fin": "fin-both", "send-close": "close-sent", "recv-close": "released" },
  "fin-both": { "send-close": "close-sent", "recv-close": "released" },
  "close-sent": { "recv-close": "released" },
  released: {},
};

/** The next connection state; throws on an illegal move (a bug in the session). */
export function tunnelTransition(state: TunnelState, event: TunnelEvent): TunnelState {
  const next = CONN_TABLE[state][event];
  if (next === undefined) throw new Error(`illegal connection transition: ${event} in ${state}`);
  return next;
}

/** A dial the peer asked this side to make. */
export interface IncomingDial {
  readonly protocol: string;
  readonly address: string;
  /** The peer's dial id. */
  readonly random: number;
  /** Whom the server dials for (its DIAL_REQ's `caller`); absent for an anonymous caller. */
  readonly caller?: string;
  /** Fires when the peer cancels (DIAL_CLS), the handler times out, or the session ends. */
  readonly signal: AbortSignal;
  /**
   * Accept: answers DIAL_RSP with a new connection id and returns its Channel.
   * Call at most once; throws `AbortedError` once `signal` fired.
   */
  accept(): Channel;
}

/**
 * Decides an incoming dial. Call `dial.accept()` to accept (an agent dials the
 * target first, then accepts and relays); return without accepting, or throw,
 * to refuse (the error message goes to the peer).
 */
export type DialHandler = (dial: IncomingDial) => void | Promise<void>;

/** What a {@link DialBusyError} suggests waiting before a retry. */
export const DIAL_BUSY_RETRY_AFTER_MS = 1000;

/**
 * A dial refused because this session's dial queue is full (`maxQueuedDials`):
 * `DIAL_FAILED` with `reason` `"busy"` and a suggested `retryAfterMs`. The CONNECT
 * frontend answers it with 503 and `Retry-After`.
 */
export class DialBusyError extends DialError {
  readonly reason = "busy" as const;
  /** Suggested wait before retrying. */
  readonly retryAfterMs: number;
  constructor(message: string, retryAfterMs: number, options?: { cause?: unknown }) {
    super(message, options);
    this.retryAfterMs = retryAfterMs;
  }
  static override [Symbol.hasInstance](value: unknown): boolean {
    return (
      DialError[Symbol.hasInstance](value) && (value as { reason?: unknown }).reason === "busy"
    );
  }
}

/** Options of {@link KonnectivitySession}. */
export interface SessionOptions {
  /** The verified identity of the other end; every tunneled Channel reports it as its peer. */
  readonly peer: PeerIdentity;
  /** `"server"` assigns even connection ids, `"agent"` odd ones. */
  readonly role: SessionRole;
  readonly config?: Partial<SessionConfig>;
  /** Handles the peer's DIAL_REQs. Without it, every incoming dial is refused. */
  readonly onDial?: DialHandler;
  /** Called when the peer sends DRAIN. */
  readonly onDrain?: () => void;
  /** Clock and timers (tests inject fakes). */
  readonly timers?: SessionTimers;
}

/** Options of {@link KonnectivitySession.dial}. */
export interface SessionDialOptions extends DialOptions {
  /** Default `"tcp"`. */
  readonly protocol?: string;
  /** Default `config.dialTimeoutMs`. */
  readonly timeoutMs?: number;
  /**
   * Whom this dial is for (a verified identity, e.g. a CONNECT client's certificate
   * name), sent to the agent for its per-caller allow-list. Default: anonymous.
   */
  readonly caller?: string;
}

/** How a session ended. */
export interface SessionCloseInfo {
  /** Why, typed. `ChannelClosedError` for a local `close()`. */
  readonly error: SpokewireError;
  /** The GO_AWAY code sent or received, if any. */
  readonly goAway?: { readonly code: number; readonly fromPeer: boolean; readonly message: string };
}

/** A snapshot of a session's tables and buffers. */
export interface SessionStats {
  readonly state: SessionState;
  /** Connections in the table (not yet released), in any state. */
  readonly connections: number;
  /** Outgoing dials waiting for DIAL_RSP (cancelled ones included). */
  readonly pendingDials: number;
  /** Outgoing dials waiting for a free slot (see `maxQueuedDials`). */
  readonly queuedDials: number;
  /** Dials that had to wait in the queue, since the session began. */
  readonly dialsQueued: number;
  /** Dials refused because the queue was full ({@link DialBusyError}), since the session began. */
  readonly dialsRefused: number;
  /** Incoming dials not yet answered. */
  readonly incomingDials: number;
  /** Bytes received and queued for readers that have not read them, all connections. */
  readonly bufferedReceiveBytes: number;
  /** Bytes queued in the pipe, not yet sent. */
  readonly bufferedSendBytes: number;
  /**
   * The documented bound on session-held memory:
   * `maxConnections x connectionWindow + windowGrowthBudget + pipe high-water mark +
   * maxMessageSize + maxControlBacklog`. `bufferedReceiveBytes + bufferedSendBytes` never
   * exceeds it.
   */
  readonly memoryBound: number;
  /** Sum of the connections' current receive windows (bounds `bufferedReceiveBytes`). */
  readonly receiveWindows: number;
  /** Smoothed PING round-trip time, once measured. */
  readonly rttMs: number | undefined;
  readonly packetsIn: number;
  readonly packetsOut: number;
}

interface Conn {
  readonly id: number;
  state: TunnelState;
  channel: TunnelChannel;
  sendWindow: number;
  /** This side's receive window: starts at connectionWindow, may grow (auto-tuning). */
  recvWindow: number;
  /** Start of the current auto-tuning epoch, and credit granted since. */
  epochStart: number;
  epochGranted: number;
  /** Credit the peer still holds (granted, not yet used). */
  recvCredit: number;
  windowWaiter: { resolve(): void; reject(e: unknown): void } | undefined;
  /** Small DATA payloads coalesced while the reader is behind (see #deliver). */
  stage: Uint8Array | undefined;
  /** Bytes in `stage` (received, counted against the window, not yet delivered). */
  staged: number;
  /** The peer's dial id, for connections this side accepted. */
  readonly incomingRandom: number | undefined;
}

interface PendingDial {
  readonly random: number;
  readonly address: string;
  state: "waiting" | "cancelled";
  resolve(ch: Channel): void;
  reject(e: unknown): void;
  /** Clears the dial's timers (timeout, answer deadline) and its abort listener. */
  cleanup(): void;
  /** After a cancel: the peer must answer by then (see #cancelDial). */
  answerDeadline: SessionTimerHandle | undefined;
}

interface QueuedDial {
  readonly address: string;
  readonly options: SessionDialOptions;
  /** `timers.now()` by which the dial must have been answered. */
  readonly deadline: number;
  resolve(ch: Channel): void;
  reject(e: unknown): void;
  /** Leave the queue: its timer and abort listener go too. */
  leave(): void;
}

interface Incoming {
  readonly random: number;
  readonly ac: AbortController;
  answered: boolean;
  connId: number;
  timer: SessionTimerHandle | undefined;
}

/** Internal: a violation of the protocol by the peer, with the GO_AWAY code it earns. */
class Violation extends ProtocolError {
  readonly goAwayCode: number;
  constructor(code: number, message: string) {
    super(message);
    this.goAwayCode = code;
  }
}

const MAX_ERROR_TEXT = 256;
/**
 * DATA payloads shorter than this are copied out of their message and, while the reader
 * is behind, coalesced: a peer sending 1-byte packets must not make the receiver hold an
 * object (or a whole pinned message) per byte of window.
 */
const SMALL_DATA = 1024;
/** Capacity of a connection's coalescing buffer. */
const STAGE_BYTES = 4096;
/** How often a session re-checks a pipe that is full but gave no drain promise. */
const DRAIN_POLL_MS = 5;

function errorText(e: unknown): string {
  const s = e instanceof Error ? e.message : String(e);
  return s.length > MAX_ERROR_TEXT ? s.slice(0, MAX_ERROR_TEXT) : s;
}

/**
 * One end of a Konnectivity session over a {@link MessagePipe}.
 *
 * @example
 * ```ts
 * import { KonnectivitySession, memoryPipePair } from "./mod.ts";
 * const none = { scheme: "none", id: "test", fingerprint: "" } as const;
 * const { a, b } = memoryPipePair();
 * const server = new KonnectivitySession(a, { peer: none, role: "server" });
 * const agent = new KonnectivitySession(b, {
 *   peer: none,
 *   role: "agent",
 *   onDial: async (d) => {
 *     const ch = d.accept();
 *     await ch.readable.pipeTo(ch.writable); // echo
 *   },
 * });
 * const ch = await server.dial("echo:7");
 * const w = ch.writable.getWriter();
 * await w.write(new Uint8Array([1, 2, 3]));
 * await w.close();
 * const { value } = await ch.readable.getReader().read();
 * if (value?.length !== 3) throw new Error("no echo");
 * server.close();
 * agent.close();
 * ```
 */
export class KonnectivitySession implements Dialer<string>, AsyncDisposable {
  /** The verified identity of the other end. */
  readonly peer: PeerIdentity;
  readonly role: SessionRole;
  readonly config: SessionConfig;
  /** Resolves once, when the session ends; never rejects. */
  readonly closed: Promise<SessionCloseInfo>;

  readonly #pipe: MessagePipe;
  readonly #timers: SessionTimers;
  readonly #onDial: DialHandler | undefined;
  readonly #onDrain: (() => void) | undefined;
  #state: SessionState = "open";
  #closeInfo: SessionCloseInfo | undefined;
  #resolveClosed!: (i: SessionCloseInfo) => void;

  readonly #conns = new Map<number, Conn>();
  readonly #pending = new Map<number, PendingDial>();
  /** Dials waiting for a slot, oldest first. */
  readonly #queue = new Set<QueuedDial>();
  #dialsQueued = 0;
  #dialsRefused = 0;
  readonly #incoming = new Map<number, Incoming>();
  #incomingUnanswered = 0;
  #nextDialId = 1;
  #nextConnId: number;
  #lastPeerDialId = 0;
  #lastPeerConnId = 0;
  readonly #peerParity: number;

  #drainWaiters: Array<{ resolve(): void; reject(e: unknown): void }> = [];
  #drainHooked = false;
  #pendingPong: number | undefined;
  #pingSeq = 0;
  #pingSentAt: number | undefined;
  /** Smoothed round-trip time from PING/PONG, once measured. */
  #srttMs: number | undefined;
  /** Sum of the receive windows of every connection in the table. */
  #windowSum = 0;
  /** How much auto-tuning added above the initial windows, summed over connections. */
  #windowGrowth = 0;
  #keepaliveTimer: SessionTimerHandle | undefined;
  #pingDeadline: SessionTimerHandle | undefined;
  #peerDraining = false;
  #packetsIn = 0;
  #packetsOut = 0;

  constructor(pipe: MessagePipe, options: SessionOptions) {
    if (options.role !== "server" && options.role !== "agent") {
      throw new TypeError(`role must be "server" or "agent", got ${options.role}`);
    }
    this.config = verifySessionConfig(options.config);
    this.peer = options.peer;
    this.role = options.role;
    this.#pipe = pipe;
    this.#timers = options.timers ?? SYSTEM_TIMERS;
    this.#onDial = options.onDial;
    this.#onDrain = options.onDrain;
    this.#nextConnId = options.role === "agent" ? 1 : 2;
    this.#peerParity = options.role === "agent" ? 0 : 1;
    this.closed = new Promise((r) => {
      this.#resolveClosed = r;
    });
    pipe.limitMessageSize?.(this.config.maxMessageSize);
    pipe.start({
      message: (msg) => this.#onMessage(msg),
      closed: (err) =>
        this.#die(err ?? new ChannelResetError("the pipe closed without a GO_AWAY"), undefined),
    });
    this.#ping(); // an early RTT sample for window auto-tuning
    this.#armKeepalive();
  }

  /** `open` or `closed`. */
  get state(): SessionState {
    return this.#state;
  }

  /** True once the peer sent DRAIN. */
  get peerDraining(): boolean {
    return this.#peerDraining;
  }

  /** A snapshot of tables and buffers; see {@link SessionStats}. */
  stats(): SessionStats {
    let recv = 0;
    for (const c of this.#conns.values()) recv += this.#held(c);
    const c = this.config;
    return {
      state: this.#state,
      connections: this.#conns.size,
      pendingDials: this.#pending.size,
      queuedDials: this.#queue.size,
      dialsQueued: this.#dialsQueued,
      dialsRefused: this.#dialsRefused,
      incomingDials: this.#incomingUnanswered,
      bufferedReceiveBytes: recv,
      bufferedSendBytes: this.#pipe.bufferedAmount,
      memoryBound:
        c.maxConnections * c.connectionWindow +
        c.windowGrowthBudget +
        this.#pipe.highWaterMark +
        c.maxMessageSize +
        c.maxControlBacklog,
      receiveWindows: this.#windowSum,
      rttMs: this.#srttMs,
      packetsIn: this.#packetsIn,
      packetsOut: this.#packetsOut,
    };
  }

  // ---- dialing -----------------------------------------------------------------

  /**
   * Ask the peer to dial `address` and return the tunneled connection. Rejects
   * with `DIAL_FAILED` (refused, limits, session ended), `TIMEOUT` or `ABORTED`;
   * a cancelled dial is cancelled on the peer too (DIAL_CLS).
   */
  dial(address: string, options: SessionDialOptions = {}): Promise<Channel> {
    if (typeof address !== "string" || address === "") {
      return Promise.reject(new TypeError("address must be a non-empty string"));
    }
    const { signal } = options;
    if (signal?.aborted) return Promise.reject(abortedError(signal, `dial ${address}`));
    if (this.#state !== "open") {
      return Promise.reject(
        new DialError(`dial ${address}: the session has ended`, { cause: this.#closeInfo?.error }),
      );
    }
    const timeoutMs = options.timeoutMs ?? this.config.dialTimeoutMs;
    if (this.#queue.size === 0 && this.#hasDialSlot()) {
      return this.#startDial(address, options, timeoutMs);
    }
    if (this.#queue.size >= this.config.maxQueuedDials) {
      this.#dialsRefused++;
      const why =
        this.#pending.size >= this.config.maxPendingDials
          ? `${this.#pending.size} dials already pending`
          : "connection limit reached";
      return Promise.reject(
        new DialBusyError(
          `dial ${address} via ${this.peer.id}: ${why}, ${this.#queue.size} queued`,
          DIAL_BUSY_RETRY_AFTER_MS,
        ),
      );
    }
    return this.#enqueueDial(address, options, timeoutMs);
  }

  /** A dial may start now: under `maxPendingDials` and `maxConnections`. */
  #hasDialSlot(): boolean {
    return (
      this.#pending.size < this.config.maxPendingDials &&
      this.#conns.size + this.#pending.size < this.config.maxConnections
    );
  }

  /** Wait for a slot, until the dial's own timeout; then start it with the time left. */
  #enqueueDial(address: string, options: SessionDialOptions, timeoutMs: number): Promise<Channel> {
    this.#dialsQueued++;
    const { signal } = options;
    return new Promise<Channel>((resolve, reject) => {
      const entry: QueuedDial = {
        address,
        options,
        deadline: this.#timers.now() + timeoutMs,
        resolve,
        reject,
        leave: () => {
          this.#queue.delete(entry);
          this.#timers.clearTimeout(timer);
          signal?.removeEventListener("abort", onAbort);
        },
      };
      const onAbort = (): void => {
        entry.leave();
        reject(abortedError(signal as AbortSignal, `dial ${address}`));
      };
      const timer = this.#timers.setTimeout(() => {
        entry.leave();
        reject(
          new TimeoutError(
            `dial ${address} timed out after ${timeoutMs} ms waiting for a free dial slot`,
            timeoutMs,
          ),
        );
      }, timeoutMs);
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#queue.add(entry);
    });
  }

  /** Start queued dials while there are slots (called whenever a dial or connection ends). */
  #pumpDials(): void {
    while (this.#queue.size > 0 && this.#state === "open" && this.#hasDialSlot()) {
      const entry = this.#queue.values().next().value as QueuedDial;
      entry.leave();
      const left = Math.ceil(entry.deadline - this.#timers.now());
      if (left <= 0) {
        entry.reject(
          new TimeoutError(`dial ${entry.address} timed out waiting for a free dial slot`, 0),
        );
        continue;
      }
      this.#startDial(entry.address, entry.options, left).then(entry.resolve, entry.reject);
    }
  }

  #startDial(address: string, options: SessionDialOptions, timeoutMs: number): Promise<Channel> {
    const { signal } = options;
    const random = this.#nextDialId++;
    return new Promise<Channel>((resolve, reject) => {
      let timer: SessionTimerHandle | undefined;
      const onAbort = (): void => {
        this.#cancelDial(entry, abortedError(signal as AbortSignal, `dial ${address}`));
      };
      const entry: PendingDial = {
        random,
        address,
        state: "waiting",
        resolve,
        reject,
        cleanup: () => {
          if (timer !== undefined) this.#timers.clearTimeout(timer);
          timer = undefined;
          if (entry.answerDeadline !== undefined) this.#timers.clearTimeout(entry.answerDeadline);
          entry.answerDeadline = undefined;
          signal?.removeEventListener("abort", onAbort);
        },
        answerDeadline: undefined,
      };
      this.#pending.set(random, entry);
      timer = this.#timers.setTimeout(() => {
        timer = undefined;
        this.#cancelDial(
          entry,
          new TimeoutError(`dial ${address} timed out after ${timeoutMs} ms`, timeoutMs),
        );
      }, timeoutMs);
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#sendControl({
        type: PacketType.DIAL_REQ,
        protocol: options.protocol ?? "tcp",
        address,
        random,
        window: this.config.connectionWindow,
        ...(options.caller ? { caller: options.caller } : {}),
      });
    });
  }

  #cancelDial(entry: PendingDial, err: SpokewireError): void {
    if (entry.state !== "waiting") return;
    entry.state = "cancelled";
    entry.cleanup();
    entry.reject(err);
    if (this.#state !== "open") return;
    this.#sendControl({ type: PacketType.DIAL_CLS, random: entry.random });
    // The id stays reserved until the DIAL_RSP the peer owes (SPEC 4). A peer that never
    // sends it would pin the pending-dial table (and, at maxPendingDials, refuse every
    // dial) for the life of the session: give it dialTimeoutMs more, then go away.
    const ms = this.config.dialTimeoutMs;
    entry.answerDeadline = this.#timers.setTimeout(
      () => {
        entry.answerDeadline = undefined;
        if (this.#pending.get(entry.random) !== entry) return;
        const msg = `no DIAL_RSP for cancelled dial ${entry.random} within ${ms} ms`;
        this.#die(new ProtocolError(msg), { code: GoAwayCode.PROTOCOL_ERROR, message: msg });
      },
      ms,
      true,
    );
  }

  // ---- session lifecycle ----------------------------------------------------------

  /** Tell the peer this side is shutting down (DRAIN); nothing else changes. */
  drain(): void {
    if (this.#state === "open") this.#sendControl({ type: PacketType.DRAIN });
  }

  /** End the session: GO_AWAY{NO_ERROR}, then every connection and pending dial fails. */
  close(): void {
    this.#die(new ChannelClosedError("the session was closed locally"), {
      code: GoAwayCode.NO_ERROR,
      message: "closing",
    });
  }

  /** End the session now without a GO_AWAY (the peer sees the pipe fail). */
  abort(reason?: unknown): void {
    const err =
      reason instanceof SpokewireError
        ? reason
        : new AbortedError("the session was aborted locally", { cause: reason });
    this.#die(err, undefined);
  }

  [Symbol.asyncDispose](): Promise<void> {
    this.close();
    return this.closed.then(() => {});
  }

  #die(
    err: SpokewireError,
    goAway: { code: number; message: string; fromPeer?: boolean } | undefined,
  ): void {
    if (this.#state !== "open") return;
    this.#state = "closed";
    this.#closeInfo = {
      error: err,
      goAway: goAway && {
        code: goAway.code,
        message: goAway.message,
        fromPeer: goAway.fromPeer ?? false,
      },
    };
    if (this.#keepaliveTimer !== undefined) this.#timers.clearTimeout(this.#keepaliveTimer);
    if (this.#pingDeadline !== undefined) this.#timers.clearTimeout(this.#pingDeadline);
    this.#keepaliveTimer = undefined;
    this.#pingDeadline = undefined;
    if (goAway && !goAway.fromPeer) {
      const message = goAway.message.slice(0, MAX_ERROR_TEXT);
      this.#pipe.send(encodePacket({ type: PacketType.GO_AWAY, code: goAway.code, message }));
    }
    if (goAway) this.#pipe.close();
    else this.#pipe.abort(err);
    const connErr = new ChannelResetError(`konnectivity session ended: ${err.message}`, {
      cause: err,
    });
    const conns = [...this.#conns.values()];
    this.#conns.clear();
    this.#windowSum = 0;
    this.#windowGrowth = 0;
    for (const c of conns) {
      c.state = "released";
      c.windowWaiter?.reject(connErr);
      c.windowWaiter = undefined;
    }
    for (const w of this.#drainWaiters.splice(0)) w.reject(connErr);
    for (const q of [...this.#queue]) {
      q.leave();
      q.reject(
        new DialError(`dial ${q.address}: the konnectivity session ended first`, { cause: err }),
      );
    }
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    for (const p of pending) {
      p.cleanup();
      if (p.state === "waiting") {
        p.reject(
          new DialError(`dial ${p.address}: the konnectivity session ended first`, { cause: err }),
        );
      }
    }
    const incoming = [...this.#incoming.values()];
    this.#incoming.clear();
    this.#incomingUnanswered = 0;
    for (const i of incoming) {
      if (i.timer !== undefined) this.#timers.clearTimeout(i.timer);
      i.answered = true;
      i.ac.abort(connErr);
    }
    for (const c of conns) c.channel.fail(connErr);
    this.#resolveClosed(this.#closeInfo);
  }

  // ---- sending ----------------------------------------------------------------------

  #sendControl(p: Packet): void {
    if (this.#state !== "open") return;
    this.#packetsOut++;
    this.#hookDrain(this.#pipe.send(encodePacket(p)));
    if (this.#pipe.bufferedAmount > this.#pipe.highWaterMark + this.config.maxControlBacklog) {
      this.#die(new ProtocolError("the peer let the control backlog overflow"), {
        code: GoAwayCode.OVERLOAD,
        message: "control backlog overflow",
      });
    }
  }

  #hookDrain(p: Promise<void> | undefined): void {
    if (p === undefined || this.#drainHooked) return;
    this.#drainHooked = true;
    p.then(() => {
      this.#drainHooked = false;
      if (this.#pendingPong !== undefined && this.#state === "open") {
        const opaque = this.#pendingPong;
        this.#pendingPong = undefined;
        this.#sendControl({ type: PacketType.PONG, opaque });
      }
      for (const w of this.#drainWaiters.splice(0)) w.resolve();
    });
  }

  #pipeFull(): boolean {
    return this.#pipe.bufferedAmount >= this.#pipe.highWaterMark;
  }

  #waitDrain(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.#drainWaiters.push({ resolve, reject });
      if (!this.#drainHooked) {
        // The pipe filled without telling us (a pipe that never returns a promise): poll.
        this.#timers.setTimeout(() => {
          if (!this.#drainHooked) for (const w of this.#drainWaiters.splice(0)) w.resolve();
        }, DRAIN_POLL_MS);
      }
    });
  }

  #connError(conn: Conn): SpokewireError {
    if (this.#state !== "open") {
      return new ChannelResetError("konnectivity session ended", {
        cause: this.#closeInfo?.error,
      });
    }
    return new ChannelClosedError(`connection ${conn.id} is closed`);
  }

  #canSend(conn: Conn): boolean {
    return this.#state === "open" && (conn.state === "open" || conn.state === "fin-received");
  }

  #sendDataNow(conn: Conn, chunk: Uint8Array, off: number): number {
    const n = Math.min(conn.sendWindow, chunk.byteLength - off, this.config.maxDataPerPacket);
    conn.sendWindow -= n;
    this.#packetsOut++;
    this.#hookDrain(
      this.#pipe.send(
        encodePacket({
          type: PacketType.DATA,
          connectID: conn.id,
          error: "",
          data: chunk.subarray(off, off + n),
        }),
      ),
    );
    return off + n;
  }

  #connSend(conn: Conn, chunk: Uint8Array): void | Promise<void> {
    let off = 0;
    while (off < chunk.byteLength) {
      if (!this.#canSend(conn)) throw this.#connError(conn);
      if (conn.sendWindow === 0 || this.#pipeFull()) return this.#connSendSlow(conn, chunk, off);
      off = this.#sendDataNow(conn, chunk, off);
    }
  }

  async #connSendSlow(conn: Conn, chunk: Uint8Array, off: number): Promise<void> {
    while (off < chunk.byteLength) {
      if (!this.#canSend(conn)) throw this.#connError(conn);
      if (conn.sendWindow === 0) {
        await new Promise<void>((resolve, reject) => {
          conn.windowWaiter = { resolve, reject };
        });
        continue;
      }
      if (this.#pipeFull()) {
        await this.#waitDrain();
        continue;
      }
      off = this.#sendDataNow(conn, chunk, off);
    }
  }

  #connSendEnd(conn: Conn): void {
    if (!this.#canSend(conn)) throw this.#connError(conn);
    // Move first: sending may end the session (OVERLOAD), which releases every connection.
    conn.state = tunnelTransition(conn.state, "send-fin");
    this.#sendControl({ type: PacketType.HALF_CLOSE, connectID: conn.id });
  }

  #connRelease(conn: Conn): void {
    if (conn.state === "fin-both") this.#sendClose(conn, PacketType.CLOSE_REQ, "");
  }

  #connDestroy(conn: Conn, reset: boolean): void {
    conn.windowWaiter?.reject(this.#connError(conn));
    conn.windowWaiter = undefined;
    if (this.#state !== "open") return;
    if (conn.state === "close-sent" || conn.state === "released") return;
    this.#sendClose(conn, PacketType.CLOSE_REQ, reset ? "aborted" : "failed");
  }

  #sendClose(
    conn: Conn,
    type: typeof PacketType.CLOSE_REQ | typeof PacketType.CLOSE_RSP,
    error: string,
  ): void {
    // Move first: sending may end the session (OVERLOAD), which releases every connection.
    if (type === PacketType.CLOSE_REQ) conn.state = tunnelTransition(conn.state, "send-close");
    this.#sendControl(
      type === PacketType.CLOSE_REQ
        ? { type, connectID: conn.id, error }
        : { type, connectID: conn.id, error },
    );
  }

  /** Bytes received on `conn` that its reader has not taken (queued or coalescing). */
  #held(conn: Conn): number {
    return conn.channel.queuedReadBytes + conn.staged;
  }

  /** The reader pulled: once it has caught up, hand it what was coalesced meanwhile. */
  #onResume(conn: Conn): void {
    if (conn.staged > 0 && conn.channel.queuedReadBytes === 0) {
      this.#flushStage(conn);
      conn.stage = undefined; // an idle connection holds no buffer
    }
    this.#maybeGrant(conn);
  }

  /**
   * Hand a DATA payload to the reader, bounding what it costs beyond its bytes: a view
   * pins its whole message, so a payload that is not most of its message is copied; small
   * payloads that arrive while the reader is behind are coalesced into one chunk, so the
   * number of queued chunks stays near bytes / SMALL_DATA whatever the peer's packet sizes.
   */
  #deliver(conn: Conn, data: Uint8Array): void {
    const n = data.byteLength;
    // An empty payload carries nothing; queued, it would cost an entry and no window.
    if (n === 0) return;
    if (n >= SMALL_DATA) {
      this.#flushStage(conn);
      conn.channel.deliver(data.buffer.byteLength > 2 * n ? data.slice() : data);
      return;
    }
    if (conn.channel.queuedReadBytes === 0) {
      // The reader is waiting or caught up: no coalescing delay.
      this.#flushStage(conn);
      conn.channel.deliver(data.slice());
      return;
    }
    if (conn.staged + n > STAGE_BYTES) this.#flushStage(conn);
    conn.stage ??= new Uint8Array(STAGE_BYTES);
    conn.stage.set(data, conn.staged);
    conn.staged += n;
  }

  #flushStage(conn: Conn): void {
    const stage = conn.stage;
    const n = conn.staged;
    if (stage === undefined || n === 0) return;
    conn.staged = 0; // before delivering: delivery may call back into #onResume
    if (2 * n >= stage.byteLength) {
      conn.stage = undefined;
      conn.channel.deliver(stage.subarray(0, n));
    } else {
      conn.channel.deliver(stage.slice(0, n));
    }
  }

  #maybeGrant(conn: Conn): void {
    if (this.#state !== "open" || (conn.state !== "open" && conn.state !== "fin-sent")) return;
    const free = conn.recvWindow - this.#held(conn) - conn.recvCredit;
    if (free <= 0 || free < conn.recvWindow / 4) return;
    conn.epochGranted += free;
    if (conn.epochGranted > conn.recvWindow / 2) this.#autotune(conn);
    // Growth (if any) is granted right away, together with what the reader freed.
    const credit = conn.recvWindow - this.#held(conn) - conn.recvCredit;
    conn.recvCredit += credit;
    this.#sendControl({ type: PacketType.WINDOW_UPDATE, connectID: conn.id, credit });
  }

  /**
   * Window auto-tuning. Over an epoch, the reader consumed `epochGranted` bytes
   * (more than half a window). Limited by the window alone, a connection moves
   * one window per round trip; if the reader consumed at least half that fast
   * (the window, not the reader, is the bottleneck), double the window, within
   * maxConnectionWindow and the session's windowGrowthBudget.
   * Then start a new epoch. Without an RTT sample, nothing grows.
   */
  #autotune(conn: Conn): void {
    const now = this.#timers.now();
    const rtt = this.#srttMs;
    const c = this.config;
    const fraction = conn.epochGranted / conn.recvWindow;
    if (rtt !== undefined && now - conn.epochStart < 2 * fraction * Math.max(rtt, 1)) {
      const room = c.windowGrowthBudget - this.#windowGrowth;
      const grown = Math.min(2 * conn.recvWindow, c.maxConnectionWindow, conn.recvWindow + room);
      if (grown > conn.recvWindow) {
        this.#windowSum += grown - conn.recvWindow;
        this.#windowGrowth += grown - conn.recvWindow;
        conn.recvWindow = grown;
      }
    }
    conn.epochStart = now;
    conn.epochGranted = 0;
  }

  #newConn(
    id: number,
    address: string,
    sendWindow: number,
    incomingRandom: number | undefined,
  ): Conn {
    const conn: Conn = {
      id,
      state: "open",
      channel: undefined as unknown as TunnelChannel,
      sendWindow,
      recvWindow: this.config.connectionWindow,
      epochStart: this.#timers.now(),
      epochGranted: 0,
      recvCredit: this.config.connectionWindow,
      windowWaiter: undefined,
      stage: undefined,
      staged: 0,
      incomingRandom,
    };
    const port: TunnelPort = {
      send: (chunk) => this.#connSend(conn, chunk),
      sendEnd: () => this.#connSendEnd(conn),
      resume: () => this.#onResume(conn),
      release: () => this.#connRelease(conn),
      destroy: (reset) => this.#connDestroy(conn, reset),
    };
    const peer: PeerIdentity = {
      ...this.peer,
      details: {
        ...this.peer.details,
        konnectivity: { connectID: id, address, direction: incomingRandom ? "in" : "out" },
      },
    };
    conn.channel = new TunnelChannel({
      peer,
      connectID: id,
      address,
      config: { ...this.config.channel, readHighWaterMark: this.config.connectionWindow },
      port,
    });
    this.#conns.set(id, conn);
    this.#windowSum += conn.recvWindow;
    return conn;
  }

  // ---- keepalive --------------------------------------------------------------------

  /** Send a PING (if none is outstanding) and arm its deadline; its PONG gives an RTT sample. */
  #ping(): void {
    if (this.#state !== "open" || this.#pingDeadline !== undefined) return;
    this.#pingSentAt = this.#timers.now();
    this.#sendControl({ type: PacketType.PING, opaque: ++this.#pingSeq });
    const ms = this.config.keepaliveTimeoutMs;
    this.#pingDeadline = this.#timers.setTimeout(
      () => {
        this.#pingDeadline = undefined;
        this.#die(new TimeoutError(`keepalive: nothing received for ${ms} ms after a PING`, ms), {
          code: GoAwayCode.KEEPALIVE_TIMEOUT,
          message: "keepalive timeout",
        });
      },
      ms,
      true,
    );
  }

  #armKeepalive(): void {
    this.#keepaliveTimer = this.#timers.setTimeout(
      () => {
        this.#keepaliveTimer = undefined;
        if (this.#state !== "open") return;
        this.#ping();
        if (this.#state === "open") this.#armKeepalive();
      },
      this.config.keepaliveIntervalMs,
      true,
    );
  }

  #onPong(opaque: number): void {
    if (opaque !== this.#pingSeq || this.#pingSentAt === undefined) return;
    const sample = Math.max(0, this.#timers.now() - this.#pingSentAt);
    this.#pingSentAt = undefined;
    this.#srttMs = this.#srttMs === undefined ? sample : (7 * this.#srttMs + sample) / 8;
  }

  // ---- receiving --------------------------------------------------------------------

  #onMessage(msg: Uint8Array): void {
    if (this.#state !== "open") return;
    this.#packetsIn++;
    if (this.#pingDeadline !== undefined) {
      this.#timers.clearTimeout(this.#pingDeadline);
      this.#pingDeadline = undefined;
    }
    try {
      const p = decodePacket(msg, { maxMessageSize: this.config.maxMessageSize });
      this.#dispatch(p);
    } catch (e) {
      if (e instanceof ProtocolError) {
        // (A Violation carries its GO_AWAY code; `instanceof Violation` would match any
        // ProtocolError because of the error brand, so read the field.)
        const code = (e as Partial<Violation>).goAwayCode ?? GoAwayCode.PROTOCOL_ERROR;
        this.#die(e, { code, message: e.message });
      } else {
        const err = new ProtocolError("internal error handling a packet", { cause: e });
        this.#die(err, { code: GoAwayCode.INTERNAL_ERROR, message: "internal error" });
      }
    }
  }

  #violation(message: string, code: number = GoAwayCode.PROTOCOL_ERROR): never {
    throw new Violation(code, message);
  }

  #conn(id: number, what: string): Conn {
    const conn = this.#conns.get(id);
    if (!conn) this.#violation(`${what} for unknown connection ${id}`);
    return conn;
  }

  #dispatch(p: Packet): void {
    switch (p.type) {
      case PacketType.DATA:
        this.#onData(p.connectID, p.data);
        return;
      case PacketType.WINDOW_UPDATE: {
        const conn = this.#conn(p.connectID, "WINDOW_UPDATE");
        if (conn.state === "close-sent") return;
        if (p.credit === 0) this.#violation("WINDOW_UPDATE with zero credit");
        if (conn.sendWindow + p.credit > KONNECTIVITY_MAX_WINDOW) {
          this.#violation(`window of ${conn.id} overflows`, GoAwayCode.FLOW_CONTROL_ERROR);
        }
        conn.sendWindow += p.credit;
        const w = conn.windowWaiter;
        conn.windowWaiter = undefined;
        w?.resolve();
        return;
      }
      case PacketType.HALF_CLOSE: {
        const conn = this.#conn(p.connectID, "HALF_CLOSE");
        if (conn.state === "close-sent") return;
        if (conn.state === "fin-received" || conn.state === "fin-both") {
          this.#violation(`second HALF_CLOSE on ${conn.id}`);
        }
        conn.state = tunnelTransition(conn.state, "recv-fin");
        this.#flushStage(conn);
        conn.channel.deliverEnd();
        return;
      }
      case PacketType.CLOSE_REQ:
      case PacketType.CLOSE_RSP:
        this.#onClose(p.type, p.connectID, p.error);
        return;
      case PacketType.DIAL_REQ:
        this.#onDialRequest(p);
        return;
      case PacketType.DIAL_RSP:
        this.#onDialResponse(p);
        return;
      case PacketType.DIAL_CLS:
        this.#onDialCancel(p.random);
        return;
      case PacketType.PING:
        if (this.#pipeFull()) this.#pendingPong = p.opaque;
        else this.#sendControl({ type: PacketType.PONG, opaque: p.opaque });
        return;
      case PacketType.PONG:
        this.#onPong(p.opaque); // (any packet already counted as proof of life)
        return;
      case PacketType.DRAIN:
        this.#peerDraining = true;
        this.#onDrain?.();
        return;
      case PacketType.GO_AWAY:
        this.#die(
          new ChannelResetError(
            `the peer went away: ${goAwayCodeName(p.code)}${p.message ? ` (${p.message})` : ""}`,
          ),
          { code: p.code, message: p.message, fromPeer: true },
        );
        return;
    }
  }

  #onData(id: number, data: Uint8Array): void {
    const conn = this.#conn(id, "DATA");
    if (conn.state === "close-sent") return;
    if (conn.state === "fin-received" || conn.state === "fin-both") {
      this.#violation(`DATA after HALF_CLOSE on ${id}`);
    }
    if (data.byteLength > conn.recvCredit) {
      this.#violation(
        `DATA of ${data.byteLength} bytes on ${id} exceeds the window (${conn.recvCredit})`,
        GoAwayCode.FLOW_CONTROL_ERROR,
      );
    }
    conn.recvCredit -= data.byteLength;
    this.#deliver(conn, data);
    this.#maybeGrant(conn);
  }

  #onClose(type: number, id: number, error: string): void {
    const conn = this.#conn(id, type === PacketType.CLOSE_REQ ? "CLOSE_REQ" : "CLOSE_RSP");
    const was = conn.state;
    if (type === PacketType.CLOSE_RSP && was !== "close-sent") {
      this.#violation(`CLOSE_RSP for connection ${id}, which this side did not close`);
    }
    if (was !== "close-sent") this.#sendClose(conn, PacketType.CLOSE_RSP, "");
    conn.state = tunnelTransition(was, "recv-close");
    this.#conns.delete(id);
    if (this.#queue.size > 0) queueMicrotask(() => this.#pumpDials());
    this.#windowSum -= conn.recvWindow;
    this.#windowGrowth -= conn.recvWindow - this.config.connectionWindow;
    if (conn.incomingRandom !== undefined) this.#incoming.delete(conn.incomingRandom);
    if (was !== "fin-both" && was !== "close-sent") {
      conn.channel.fail(
        new ChannelResetError(`the peer reset connection ${id}${error ? `: ${error}` : ""}`),
      );
    }
    conn.windowWaiter?.reject(this.#connError(conn));
    conn.windowWaiter = undefined;
  }

  #onDialRequest(p: DialRequestPacket): void {
    if (p.random <= this.#lastPeerDialId) {
      this.#violation(`DIAL_REQ reuses dial id ${p.random} (last was ${this.#lastPeerDialId})`);
    }
    this.#lastPeerDialId = p.random;
    if (p.window > KONNECTIVITY_MAX_WINDOW)
      this.#violation("DIAL_REQ window too large", GoAwayCode.FLOW_CONTROL_ERROR);
    const window = p.window === 0 ? KONNECTIVITY_DEFAULT_WINDOW : p.window;
    const refuse = (error: string): void =>
      this.#sendControl({
        type: PacketType.DIAL_RSP,
        error,
        connectID: 0,
        random: p.random,
        window: 0,
      });
    const handler = this.#onDial;
    if (!handler) {
      refuse("this side accepts no dials");
      return;
    }
    if (this.#conns.size + this.#incomingUnanswered >= this.config.maxConnections) {
      refuse("connection limit reached");
      return;
    }
    const entry: Incoming = {
      random: p.random,
      ac: new AbortController(),
      answered: false,
      connId: 0,
      timer: undefined,
    };
    this.#incoming.set(p.random, entry);
    this.#incomingUnanswered++;
    const ms = this.config.dialHandlerTimeoutMs;
    entry.timer = this.#timers.setTimeout(() => {
      entry.timer = undefined;
      entry.ac.abort(new TimeoutError(`dial handler took over ${ms} ms`, ms));
      this.#answerFail(entry, "dial timed out");
    }, ms);
    const address = p.address;
    const dial: IncomingDial = {
      protocol: p.protocol,
      address,
      random: p.random,
      ...(p.caller !== undefined ? { caller: p.caller } : {}),
      signal: entry.ac.signal,
      accept: () => this.#accept(entry, address, window),
    };
    Promise.resolve()
      .then(() => handler(dial))
      .then(
        () => this.#answerFail(entry, "dial refused"),
        (e) => this.#answerFail(entry, errorText(e) || "dial failed"),
      );
  }

  #answerFail(entry: Incoming, error: string): void {
    if (entry.answered) return;
    entry.answered = true;
    this.#incomingUnanswered--;
    if (entry.timer !== undefined) this.#timers.clearTimeout(entry.timer);
    entry.timer = undefined;
    this.#incoming.delete(entry.random);
    this.#sendControl({
      type: PacketType.DIAL_RSP,
      error,
      connectID: 0,
      random: entry.random,
      window: 0,
    });
  }

  #accept(entry: Incoming, address: string, window: number): Channel {
    if (entry.answered) {
      if (entry.connId !== 0) throw new TypeError("IncomingDial.accept() called twice");
      throw new AbortedError(`dial ${address} was cancelled before accept()`, {
        cause: entry.ac.signal.reason,
      });
    }
    entry.answered = true;
    this.#incomingUnanswered--;
    if (entry.timer !== undefined) this.#timers.clearTimeout(entry.timer);
    entry.timer = undefined;
    const id = this.#nextConnId;
    this.#nextConnId += 2;
    entry.connId = id;
    const conn = this.#newConn(id, address, window, entry.random);
    this.#sendControl({
      type: PacketType.DIAL_RSP,
      error: "",
      connectID: id,
      random: entry.random,
      window: this.config.connectionWindow,
    });
    return conn.channel;
  }

  #onDialResponse(p: DialResponsePacket): void {
    const entry = this.#pending.get(p.random);
    if (!entry) this.#violation(`DIAL_RSP for unknown dial ${p.random}`);
    const ok = p.error === "" && p.connectID !== 0;
    const id = p.connectID;
    // Check everything before the entry leaves the table, so a violation still fails the dial.
    if (ok && (id % 2 !== this.#peerParity || id <= this.#lastPeerConnId)) {
      this.#violation(`DIAL_RSP assigns connection id ${id} out of order or of the wrong parity`);
    }
    if (ok && p.window > KONNECTIVITY_MAX_WINDOW) {
      this.#violation("DIAL_RSP window too large", GoAwayCode.FLOW_CONTROL_ERROR);
    }
    this.#pending.delete(p.random);
    entry.cleanup();
    queueMicrotask(() => this.#pumpDials());
    if (!ok) {
      if (entry.state === "waiting") {
        entry.reject(
          new DialError(
            `the peer could not dial ${entry.address}: ${p.error || "no connection id"}`,
          ),
        );
      }
      return;
    }
    this.#lastPeerConnId = id;
    const conn = this.#newConn(
      id,
      entry.address,
      p.window === 0 ? KONNECTIVITY_DEFAULT_WINDOW : p.window,
      undefined,
    );
    if (entry.state === "waiting") {
      entry.resolve(conn.channel);
      return;
    }
    // Cancelled while the answer was in flight (#404): close it; nobody ever sees the channel.
    this.#sendClose(conn, PacketType.CLOSE_REQ, "dial cancelled");
    conn.channel.fail(new AbortedError(`dial ${entry.address} was cancelled`));
  }

  #onDialCancel(random: number): void {
    const entry = this.#incoming.get(random);
    if (!entry) {
      if (random > this.#lastPeerDialId) this.#violation(`DIAL_CLS for unknown dial ${random}`);
      return; // already answered and forgotten
    }
    if (!entry.answered) {
      entry.ac.abort(new AbortedError("the peer cancelled the dial"));
      this.#answerFail(entry, "dial cancelled");
      return;
    }
    const conn = this.#conns.get(entry.connId);
    if (!conn || conn.state === "close-sent" || conn.state === "released") return;
    this.#sendClose(conn, PacketType.CLOSE_REQ, "dial cancelled");
    conn.channel.fail(new ChannelResetError(`the peer cancelled dial ${random}`));
  }
}
