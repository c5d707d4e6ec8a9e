/**
 * TLS through `node:tls`, in Deno and Node, over TCP or over any spokewire
 * {@link Channel}. The rest of spokewire sees only opaque contexts,
 * transports and a {@link TlsSession} whose connection is a {@link RawConn}.
 *
 * Runtime facts this adapter works around (measured, see DESIGN.md):
 * - `Deno.listenTls` cannot request client certificates, so both runtimes use
 *   `node:tls`, client and server.
 * - A server-side `tls.TLSSocket` never sets `.authorized`: the verification
 *   result is read with `ssl.verifyError()` and judged by the caller.
 * - In Deno a `node:tls` socket layered directly on a `node:net` socket reports
 *   a TCP reset as a clean end. Deno therefore runs TLS over a forwarding
 *   Duplex around the TCP socket, where the reset stays visible as an error.
 *   Node layers TLS on the socket itself (the fast path).
 * - A TLS 1.3 server sends its session tickets as soon as it has read the
 *   client's Finished, before any code can judge the client's certificate.
 *   The server therefore holds them from the `'secure'` event until
 *   {@link TlsSession.acceptPeer}: over a Duplex (Deno, any Channel) by holding
 *   the Duplex's writes, on Node's fast path through the `'newSession'`
 *   callback. A ticket then means "accepted" to the client, and a refused
 *   client never gets one.
 *
 * @module
 */

import {
  createPrivateKey,
  constants as cryptoConstants,
  type KeyObject,
  X509Certificate,
} from "node:crypto";
import { EventEmitter } from "node:events";
import * as net from "node:net";
import { Duplex } from "node:stream";
import * as tls from "node:tls";
import type { Channel } from "../channel/types.ts";
import {
  channelToDuplex,
  dropWrites,
  holdWrite,
  newWriteHold,
  type ReadGate,
  releaseWrites,
  type WriteHold,
} from "./channel_duplex.ts";
import { DEFAULT_LISTEN_BACKLOG, type RawConn, wrapSocket } from "./net.ts";

const IS_DENO = typeof (globalThis as { Deno?: unknown }).Deno !== "undefined";

/** What a TLS context is made of (PEM text). */
export interface TlsContextInit {
  /** Our certificate chain (leaf first), PEM. */
  readonly cert?: string;
  /** Our private key, PEM. */
  readonly key?: string;
  /** Trust anchors, PEM. */
  readonly ca: readonly string[];
  /** Add the runtime's bundled public roots to `ca`. */
  readonly useSystemRoots: boolean;
  readonly minVersion: "TLSv1.2" | "TLSv1.3";
  /** OpenSSL cipher list / TLS 1.3 suites, passed through. */
  readonly ciphers?: string;
  /**
   * A server's context: its TLS 1.3 tickets are stateful (a session id, not
   * the session encrypted), and nothing here can look that id up, so no client
   * ever resumes a session: every connection presents and verifies a
   * certificate. (The tickets still go out, after the client was accepted:
   * they are the client's sign of acceptance.)
   */
  readonly server?: boolean;
}

/** An opaque, immutable TLS configuration (credentials + trust + versions). */
export interface TlsContext {
  readonly kind: "tls-context";
}

interface ContextImpl extends TlsContext {
  readonly secure: tls.SecureContext;
}

/** Build a context. Throws the runtime's error when a PEM or key does not parse. */
export function createTlsContext(init: TlsContextInit): TlsContext {
  checkKeyMaterial(init);
  const ca = init.useSystemRoots ? [...tls.rootCertificates, ...init.ca] : [...init.ca];
  const secure = tls.createSecureContext({
    sessionIdContext: SESSION_ID_CONTEXT,
    secureOptions: init.server === true ? cryptoConstants.SSL_OP_NO_TICKET : undefined,
    cert: init.cert,
    key: init.key,
    ca,
    minVersion: init.minVersion,
    maxVersion: "TLSv1.3",
    ciphers: init.ciphers,
  });
  const impl: ContextImpl = { kind: "tls-context", secure };
  return impl;
}

/**
 * Check what `createSecureContext` checks in Node but Deno's does not (measured: Deno
 * accepts a key that does not parse, or one that does not match the certificate, and
 * every handshake fails later): the key parses, matches the leaf, and every CA parses.
 * Throws an Error naming the field.
 */
function checkKeyMaterial(init: TlsContextInit): void {
  let key: KeyObject | undefined;
  if (init.key !== undefined) {
    try {
      key = createPrivateKey(init.key);
    } catch (err) {
      throw new Error(`credentials.key does not parse as a private key`, { cause: err });
    }
  }
  if (init.cert !== undefined) {
    let leaf: X509Certificate;
    try {
      leaf = new X509Certificate(init.cert);
    } catch (err) {
      throw new Error(`credentials.cert does not parse as a certificate`, { cause: err });
    }
    if (key !== undefined && !leaf.checkPrivateKey(key)) {
      throw new Error("credentials.key does not match credentials.cert");
    }
  }
  init.ca.forEach((pem, i) => {
    try {
      new X509Certificate(pem);
    } catch (err) {
      throw new Error(`credentials.ca[${i}] does not parse as a certificate`, { cause: err });
    }
  });
}

/** Where a TLS session runs: a connected TCP socket or a spokewire Channel. Opaque. */
export interface TlsTransport {
  readonly kind: "tcp" | "channel";
  /** Free the transport without TLS (after a failed handshake). */
  abort(): void;
}

interface TcpTransport extends TlsTransport {
  readonly kind: "tcp";
  readonly socket: net.Socket;
}

interface ChannelTransport extends TlsTransport {
  readonly kind: "channel";
  readonly channel: Channel;
}

function resetSocket(s: net.Socket): void {
  if (s.destroyed) return;
  if (typeof s.resetAndDestroy === "function" && !s.connecting) s.resetAndDestroy();
  else s.destroy();
}

function tcpTransport(socket: net.Socket): TcpTransport {
  socket.on("error", () => {});
  return { kind: "tcp", socket, abort: () => resetSocket(socket) };
}

/** Use a spokewire Channel as the transport for TLS. */
export function channelTransport(channel: Channel): TlsTransport {
  const t: ChannelTransport = {
    kind: "channel",
    channel,
    abort: () => channel.abort(new Error("TLS handshake abandoned")),
  };
  return t;
}

/** Connect TCP for TLS. Rejects with the runtime's error (with `.code`). */
export function connectTcpTransport(
  addr: { host: string; port: number },
  opts: {
    onPending?: (cancel: () => void) => void;
    /** Called once when the socket has closed, however it ends (failed connect included). */
    onClosed?: () => void;
  } = {},
): Promise<TlsTransport> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: addr.host, port: addr.port, allowHalfOpen: true });
    if (opts.onClosed) socket.once("close", opts.onClosed);
    const onError = (e: Error): void => reject(e);
    socket.once("error", onError);
    opts.onPending?.(() => socket.destroy());
    socket.once("connect", () => {
      socket.off("error", onError);
      socket.setNoDelay(true);
      resolve(tcpTransport(socket));
    });
  });
}

/** A listening TCP server handing out transports for TLS. */
export interface TransportServer {
  readonly addr: string;
  readonly port: number;
  close(): Promise<void>;
}

/** Listen on TCP; every accepted socket goes to `onTransport`. */
export function listenTcpTransports(
  addr: { host: string; port: number },
  onTransport: (t: TlsTransport) => void,
  opts: { listenBacklog?: number } = {},
): Promise<TransportServer> {
  return new Promise((resolve, reject) => {
    const server = net.createServer({ allowHalfOpen: true }, (socket) => {
      socket.setNoDelay(true);
      onTransport(tcpTransport(socket));
    });
    server.once("error", reject);
    server.listen(addr.port, addr.host, opts.listenBacklog ?? DEFAULT_LISTEN_BACKLOG, () => {
      server.off("error", reject);
      const a = server.address();
      const port = typeof a === "object" && a ? a.port : 0;
      const host = addr.host.includes(":") ? `[${addr.host}]` : addr.host;
      resolve({
        addr: `${host}:${port}`,
        port,
        // Stop accepting now; live connections go on (server.close()'s callback would
        // wait for every one of them to end).
        close: () =>
          new Promise<void>((res) => {
            server.close();
            setImmediate(res);
          }),
      });
    });
  });
}

/** How the first moments after a handshake went (see {@link TlsSession.firstEvent}). */
export type FirstEvent =
  | { readonly kind: "data" }
  | { readonly kind: "ticket" }
  | { readonly kind: "end" }
  | { readonly kind: "error"; readonly code: string | undefined; readonly error: Error };

/** A completed TLS handshake. Verification is the caller's job. */
export interface TlsSession {
  /** The TLS connection as a {@link RawConn} (not attached yet). */
  readonly conn: RawConn;
  /** The peer's certificate chain as sent, DER, leaf first; empty when it sent none. */
  readonly peerChain: readonly Uint8Array[];
  /** The runtime's verification result: an OpenSSL-style code, or undefined when it passed. */
  readonly verifyError: string | undefined;
  /** e.g. `TLSv1.3`. */
  readonly protocol: string;
  /** e.g. `TLS_AES_128_GCM_SHA256`. */
  readonly cipher: string;
  /**
   * The peer resumed an earlier session (abbreviated handshake: no certificate was
   * presented in this one). Deno's `node:tls` server resumes whatever its options say,
   * so a server must refuse such a connection itself.
   */
  readonly resumed: boolean;
  /**
   * Resolves with the first of: a TLS 1.3 session ticket arrived (client; Node
   * reports it, under Deno its record is seen below TLS), data arrived, the peer ended, the
   * connection failed.
   */
  firstEvent(): { promise: Promise<FirstEvent>; cancel(): void };
  /**
   * Server: the client passed verification; send what the TLS layer wrote
   * since the handshake (its session tickets, held back until now so that a
   * ticket tells the client it was accepted). No-op for a client, and where
   * nothing was held.
   */
  acceptPeer(): void;
}

/**
 * Whether a client's `'session'` event marks a session ticket's arrival. Node:
 * yes, as soon as the ticket is read. Deno 2.9's `node:tls` emits `'session'`
 * only when the connection closes (measured), which says nothing about
 * acceptance, so the client there watches the records below TLS instead (TLS
 * runs over a stream we feed there: {@link firstRecordWatch}).
 */
export const TICKET_EVENTS: boolean = !IS_DENO;

/**
 * Node's TLS server announces each new session (a ticket about to go out)
 * through a `'newSession'` event on its `server` and sends nothing more until
 * the event's callback runs (documented for `tls.Server`). OpenSSL only
 * announces sessions that have a session id context, hence this one.
 */
const SESSION_ID_CONTEXT = "spokewire";

/** Holds the server's tickets until the client is accepted (see {@link TlsSession.acceptPeer}). */
class TicketHold {
  readonly writes: WriteHold = newWriteHold();
  readonly #pending: Array<() => void> = [];
  #secured = false;
  #accepted = false;
  #dropped = false;

  /** Node fast path: a per-connection stand-in for the `server` of a TLSSocket. */
  sessionEvents(): EventEmitter {
    const e = new EventEmitter();
    e.on("newSession", (_id: unknown, _data: unknown, done: () => void) => {
      // Before the handshake is done (TLS 1.2 sends its ticket inside the
      // handshake) holding would stall it: let it go.
      if (!this.#secured || this.#accepted) done();
      else if (!this.#dropped) this.#pending.push(done);
    });
    return e;
  }

  /** The handshake is done: from now on, hold. */
  secured(viaStream: boolean): void {
    this.#secured = true;
    if (viaStream) this.writes.held = true;
  }

  release(): void {
    if (this.#dropped) return;
    this.#accepted = true;
    releaseWrites(this.writes);
    for (const done of this.#pending.splice(0)) done();
  }

  /**
   * The connection is being torn down (call before resetting the transport).
   * Node's held callbacks still run, a turn later, when the transport is gone
   * and nothing can reach the peer: a TLS socket left waiting on them would
   * never finish closing.
   */
  drop(): void {
    this.#dropped = true;
    dropWrites(this.writes);
    const pending = this.#pending.splice(0);
    if (pending.length === 0) return;
    setImmediate(() => {
      for (const done of pending) done();
    });
  }
}

/** Options of {@link tlsHandshake}. */
export interface TlsHandshakeOptions {
  readonly role: "client" | "server";
  readonly context: TlsContext;
  /** Client: SNI name (omit for IP addresses). */
  readonly servername?: string;
  /** Server: ask for a client certificate. */
  readonly requestCert?: boolean;
  /** Called with a cancel function while the handshake runs. */
  readonly onPending?: (cancel: () => void) => void;
}

function errorCode(e: unknown): string | undefined {
  const c = (e as { code?: unknown } | null)?.code;
  return typeof c === "string" ? c : undefined;
}

/**
 * The peer's chain as sent, DER, leaf first. Under Node `getPeerX509Certificate()`
 * hands out each certificate's bytes without building the legacy object tree that
 * `getPeerCertificate(true)` builds (measured: ~1.3 ms a handshake).
 */
function peerChainOf(s: tls.TLSSocket): Uint8Array[] {
  const x509 = (s as { getPeerX509Certificate?: () => X509Certificate | undefined })
    .getPeerX509Certificate;
  // Deno's issuerCertificate links are rebuilt, not the chain as sent (measured:
  // intermediates of alternate chains go missing), so Deno reads the legacy form.
  return typeof x509 === "function" && !IS_DENO
    ? walkChain(x509.call(s))
    : walkChain(s.getPeerCertificate(true) as tls.DetailedPeerCertificate | undefined);
}

/** A certificate (either runtime API's form) and the link to its issuer. */
interface ChainLink {
  readonly raw: Uint8Array;
  readonly issuerCertificate?: ChainLink;
}

function walkChain(first: ChainLink | undefined): Uint8Array[] {
  const out: Uint8Array[] = [];
  const seen = new Set<unknown>();
  let c = first;
  for (let i = 0; c?.raw && !seen.has(c) && i < 16; i++) {
    seen.add(c);
    const raw = c.raw;
    const der = new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength).slice();
    // A self-signed root links to itself; some runtimes repeat it as a fresh object.
    if (out.length > 0 && sameBytes(out[out.length - 1], der)) break;
    out.push(der);
    c = c.issuerCertificate;
  }
  return out;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
  return true;
}

function verifyErrorOf(s: tls.TLSSocket, role: "client" | "server"): string | undefined {
  const ssl = (s as unknown as { ssl?: { verifyError?: () => unknown } }).ssl;
  let v: unknown;
  try {
    v = ssl?.verifyError?.();
  } catch {
    v = undefined;
  }
  if (typeof v === "string" && v !== "") return v;
  if (v && typeof v === "object") return errorCode(v) ?? "UNKNOWN_VERIFY_ERROR";
  if (role === "client" && !s.authorized) {
    const a = s.authorizationError as unknown;
    if (typeof a === "string" && a !== "") return a;
    if (a && typeof a === "object") return errorCode(a) ?? "UNKNOWN_VERIFY_ERROR";
  }
  return undefined;
}

/**
 * A Duplex forwarding to a TCP socket (Deno: keeps resets visible to TLS, and
 * lets a server's {@link WriteHold} keep its tickets back).
 */
function forwardingDuplex(raw: net.Socket, gate: ReadGate, hold: WriteHold): Duplex {
  gate.release = () => raw.resume();
  const send = (chunk: Uint8Array, cb: (err?: Error | null) => void): void => {
    if (raw.write(chunk)) cb();
    else raw.once("drain", () => cb());
  };
  hold.send = send;
  const d: Duplex = new Duplex({
    allowHalfOpen: true,
    read(): void {
      if (!gate.held) raw.resume();
    },
    write(chunk: Uint8Array, _e: BufferEncoding, cb: (err?: Error | null) => void): void {
      if (hold.held) holdWrite(hold, chunk, cb);
      else send(chunk, cb);
    },
    final(cb: (err?: Error | null) => void): void {
      raw.end(() => cb());
    },
    destroy(err: Error | null, cb: (err?: Error | null) => void): void {
      if (err) resetSocket(raw);
      else raw.destroy();
      cb(err);
    },
  });
  raw.on("data", (c: Uint8Array) => {
    gate.onChunk?.(c);
    if (!d.push(c) || gate.held) raw.pause();
  });
  raw.on("end", () => d.push(null));
  raw.on("error", (e) => d.destroy(e));
  raw.on("close", () => {
    if (!d.destroyed && !d.readableEnded) d.destroy(new Error("socket closed"));
  });
  return d;
}

/** Run a TLS handshake over `transport`. Rejects with the runtime's error (with `.code`). */
export function tlsHandshake(
  transport: TlsTransport,
  opts: TlsHandshakeOptions,
): Promise<TlsSession> {
  const secureContext = (opts.context as ContextImpl).secure;
  let stream: net.Socket | Duplex;
  const gate: ReadGate = { held: false };
  const hold = new TicketHold();
  if (transport.kind === "tcp") {
    const raw = (transport as TcpTransport).socket;
    stream = IS_DENO ? forwardingDuplex(raw, gate, hold.writes) : raw;
  } else {
    stream = channelToDuplex((transport as ChannelTransport).channel, gate, hold.writes);
  }
  const lower = (s: net.Socket | Duplex): Duplex | undefined =>
    transport.kind === "tcp" && s === (transport as TcpTransport).socket ? undefined : s;
  // rejectUnauthorized:false below does NOT switch verification off: node's
  // built-in check is replaced by ours, which always runs before a Channel
  // exists (src/tls/verify_peer.ts: verifyError(), verifyChain, SAN names,
  // pins, authorizer). Only dangerouslySkipVerification skips it, and warns.
  const socket =
    opts.role === "client"
      ? tls.connect({
          socket: stream as net.Socket,
          secureContext,
          servername: opts.servername,
          rejectUnauthorized: false,
          checkServerIdentity: () => undefined,
        })
      : new tls.TLSSocket(stream as net.Socket, {
          isServer: true,
          secureContext,
          requestCert: opts.requestCert ?? true,
          rejectUnauthorized: false,
          // Over a stream the writes are held below TLS; on Node's fast path
          // (TLS on the socket) the 'newSession' callback holds them.
          server:
            stream === (transport as TcpTransport).socket
              ? (hold.sessionEvents() as unknown as net.Server)
              : undefined,
        });
  const hardReset = (): void => {
    transport.abort();
    setImmediate(() => socket.destroy());
  };
  return new Promise<TlsSession>((resolve, reject) => {
    let settled = false;
    const fail = (e: Error): void => {
      if (settled) return;
      settled = true;
      hardReset();
      reject(e);
    };
    const onError = (e: Error): void => fail(e);
    const onClose = (): void => {
      const e = new Error("connection closed during the TLS handshake") as Error & {
        code: string;
      };
      e.code = "ECONNRESET";
      fail(e);
    };
    socket.on("error", onError);
    socket.on("close", onClose);
    // A peer that hangs up before the handshake is done (a client that sent its last
    // flight and closed at once): under Node the socket ends without ever being
    // secure, and a half-open socket would not close, so the handshake would wait out
    // its timeout holding the socket.
    socket.on("end", onClose);
    opts.onPending?.(() => fail(new Error("TLS handshake cancelled")));
    socket.once(opts.role === "client" ? "secureConnect" : "secure", () => {
      // Server: whatever the TLS layer writes from here on (TLS 1.3 session
      // tickets first) waits for acceptPeer(). 'secure' is emitted before the
      // tickets leave, in both runtimes and both paths (measured).
      if (opts.role === "server") hold.secured(stream !== (transport as TcpTransport).socket);
      if (settled) return;
      settled = true;
      socket.off("error", onError);
      socket.off("close", onClose);
      socket.off("end", onClose);
      resolve(makeSession(socket, transport, opts.role, lower(stream), gate, hold));
    });
  });
}

/**
 * Bytes the stream under TLS may hold before writes report backpressure. Deno's
 * TLS over a JS stream ignores that stream's `write()` result, so the bound is
 * kept here.
 */
const LOWER_WRITE_LIMIT = 64 * 1024;

function waitEvent(
  target: Duplex | net.Socket,
  event: string,
  ready: () => boolean,
  alive: () => boolean,
): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (ready()) return resolve();
    if (!alive()) return reject(new Error("socket closed"));
    const onEvent = (): void => {
      if (!ready()) return;
      cleanup();
      resolve();
    };
    const onClose = (): void => {
      cleanup();
      reject(new Error("socket closed"));
    };
    const cleanup = (): void => {
      target.off(event, onEvent);
      target.off("close", onClose);
    };
    target.on(event, onEvent);
    target.once("close", onClose);
  });
}

function makeSession(
  socket: tls.TLSSocket,
  transport: TlsTransport,
  role: "client" | "server",
  lowerStream: Duplex | undefined,
  gate: ReadGate,
  hold: TicketHold,
): TlsSession {
  const peerChain = peerChainOf(socket);
  const verifyError = verifyErrorOf(socket, role);
  const protocol = socket.getProtocol() ?? "unknown";
  const cipher = socket.getCipher()?.standardName ?? socket.getCipher()?.name ?? "unknown";
  const resumed = socket.isSessionReused();
  let ended = false;
  let finished = false;
  // Tickets count only after a TLS 1.3 handshake (TLS 1.2 sends them inside the
  // handshake, before any server could judge us), and from now on: the ticket
  // may arrive while the caller still verifies the server.
  let ticket = false;
  const onTicketSeen = (): void => {
    ticket = true;
  };
  const watchTickets = TICKET_EVENTS && role === "client" && protocol === "TLSv1.3";
  if (watchTickets) socket.once("session", onTicketSeen);
  // Where the runtime reports no ticket (Deno) but TLS runs over a stream we feed,
  // the server's first record after the handshake is seen below TLS instead.
  let onRecordTicket: (() => void) | undefined;
  if (!TICKET_EVENTS && role === "client" && protocol === "TLSv1.3" && lowerStream) {
    const watch = firstRecordWatch((isTicket) => {
      if (!isTicket) return;
      ticket = true;
      onRecordTicket?.();
    });
    gate.onChunk = (chunk) => {
      if (watch(chunk)) gate.onChunk = undefined;
    };
  }
  let failed: Error | undefined;
  socket.once("error", (e: Error) => {
    failed = e;
  });
  socket.on("end", () => {
    ended = true;
  });
  socket.on("finish", () => {
    finished = true;
  });
  const base = wrapSocket(socket);
  let remote = base.remoteAddress;
  let local = base.localAddress;
  if (transport.kind === "channel") {
    remote = "channel";
    local = "channel";
  } else if (lowerStream !== undefined) {
    const raw = (transport as TcpTransport).socket;
    remote = fmt(raw.remoteAddress, raw.remotePort);
    local = fmt(raw.localAddress, raw.localPort);
  }
  const lowerFull = (): boolean =>
    lowerStream !== undefined && lowerStream.writableLength >= LOWER_WRITE_LIMIT;
  const conn: RawConn = {
    ...base,
    attach(ev): void {
      base.attach({
        ...ev,
        onData: (chunk) => {
          const more = ev.onData(chunk);
          // Stop the transport under TLS too: Deno's TLS reads on while paused.
          if (!more && lowerStream) gate.held = true;
          return more;
        },
      });
    },
    resume(): void {
      if (gate.held) {
        gate.held = false;
        gate.release?.();
      }
      base.resume();
    },
    write(chunk: Uint8Array): boolean {
      const ok = socket.write(chunk);
      return ok && !lowerFull();
    },
    async drained(): Promise<void> {
      const alive = (): boolean => !socket.destroyed;
      await waitEvent(socket, "drain", () => !socket.writableNeedDrain, alive);
      if (lowerStream) {
        const l = lowerStream;
        await waitEvent(
          l,
          "drain",
          () => !lowerFull(),
          () => !l.destroyed && alive(),
        );
      }
    },
    localAddress: local,
    remoteAddress: remote,
    // Only where TLS runs on the TCP socket itself (Node's fast path): TLS over a
    // Duplex (Deno's forwarding Duplex, any Channel) needs that Duplex's gate and
    // write bound, which only this conn applies.
    detach: lowerStream === undefined && transport.kind === "tcp" ? base.detach : undefined,
    reset(): void {
      hold.drop();
      if (transport.kind === "tcp") resetSocket((transport as TcpTransport).socket);
      else (transport as ChannelTransport).channel.abort(new Error("TLS channel reset"));
      // Node: destroying the TLS socket in the same tick as resetting the TCP socket
      // under it can crash the process (TLSWrap reads a freed handle); let it close
      // itself from the reset.
      setImmediate(() => socket.destroy());
    },
    destroy(): void {
      hold.drop();
      socket.destroy();
      if (transport.kind === "tcp") {
        (transport as TcpTransport).socket.destroy();
        return;
      }
      const ch = (transport as ChannelTransport).channel;
      if (ended && finished) ch.close().catch(() => {});
      else ch.abort(new Error("TLS connection torn down"));
    },
  };
  return {
    conn,
    peerChain,
    verifyError,
    protocol,
    cipher,
    resumed,
    acceptPeer(): void {
      hold.release();
    },
    firstEvent() {
      let done: ((e: FirstEvent) => void) | undefined;
      const promise = new Promise<FirstEvent>((resolve) => {
        done = resolve;
      });
      const finish = (e: FirstEvent): void => {
        cleanup();
        done?.(e);
        done = undefined;
      };
      // The socket stays paused until the channel attaches (wrapSocket), and Deno's
      // TLS over a stream decrypts nothing while paused, so an alert would wait for
      // the first read: under Deno let it flow for the wait, and put the first
      // chunk back.
      const onData = (chunk: Uint8Array): void => {
        socket.pause();
        socket.unshift(chunk);
        finish({ kind: "data" });
      };
      // Node emits 'session' from inside OpenSSL's read; whatever the resolved
      // promise sets off (the caller's first write) must run after it returns,
      // or the write re-enters OpenSSL mid-read and corrupts the record stream.
      const onTicket = (): void => {
        setImmediate(() => finish({ kind: "ticket" }));
      };
      socket.off("session", onTicketSeen);
      const onEnd = (): void => finish({ kind: "end" });
      const onError = (e: Error): void => finish({ kind: "error", code: errorCode(e), error: e });
      const onClose = (): void => {
        const e = new Error("connection closed") as Error & { code: string };
        e.code = "ECONNRESET";
        finish({ kind: "error", code: e.code, error: e });
      };
      const cleanup = (): void => {
        // Node only: pausing here, inside OpenSSL's read or its 'session' event, left
        // the socket stalled after the channel resumed it (measured: a 1-byte reply
        // never arrived). Node reports alerts and tickets without flowing anyway.
        if (IS_DENO) socket.pause();
        onRecordTicket = undefined;
        socket.off("data", onData);
        socket.off("session", onTicket);
        socket.off("end", onEnd);
        socket.off("error", onError);
        socket.off("close", onClose);
      };
      socket.on("data", onData);
      if (watchTickets) socket.on("session", onTicket);
      onRecordTicket = onTicket;
      socket.on("end", onEnd);
      socket.on("error", onError);
      socket.on("close", onClose);
      if (ticket) finish({ kind: "ticket" });
      else if (failed) onError(failed);
      else if (ended) finish({ kind: "end" });
      else if (socket.destroyed) onClose();
      else if (IS_DENO) socket.resume();
      return { promise, cancel: cleanup };
    },
  };
}

/**
 * The smallest TLS 1.3 record that can carry a NewSessionTicket: handshake header 4,
 * lifetime 4, age_add 4, nonce 1 + 0, ticket 2 + 1, extensions 2, inner content type
 * 1, AEAD tag 16. An encrypted alert is 19 (2 + 1 + 16).
 */
const MIN_TICKET_RECORD = 35;

/**
 * Watch the first TLS record that arrives after the handshake, chunk by chunk:
 * `decide(true)` when it is large enough to be a session ticket (the server sent
 * it after accepting us), `decide(false)` when it is not (an alert, or a record
 * that is not application data). The watch returns true once it decided.
 */
function firstRecordWatch(decide: (isTicket: boolean) => void): (chunk: Uint8Array) => boolean {
  const head = new Uint8Array(5);
  let have = 0;
  return (chunk) => {
    const n = Math.min(5 - have, chunk.byteLength);
    head.set(chunk.subarray(0, n), have);
    have += n;
    if (have < 5) return false;
    const length = (head[3] << 8) | head[4];
    // 23: application_data, the outer type of every encrypted TLS 1.3 record.
    decide(head[0] === 23 && length >= MIN_TICKET_RECORD);
    return true;
  };
}

function fmt(host: string | undefined, port: number | undefined): string {
  if (host === undefined) return "unknown";
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}
