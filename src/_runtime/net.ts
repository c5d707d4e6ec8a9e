/**
 * Stream sockets: `node:net` in Node (and for Unix sockets in Deno), Deno's own
 * sockets for TCP in Deno (see `deno_net.ts`). The rest of spokewire sees only
 * {@link RawConn}.
 *
 * `node:net` sends a TCP reset on `reset()`; Deno's own sockets cannot, so under
 * Deno a TCP `reset()` closes (the peer reads end-of-stream; see `deno_net.ts`).
 *
 * Deno 2.9's `node:net` (its libuv emulation, `uv_compat`) fails every queued
 * write with `EPIPE` once it sees a FIN from a peer that never sent a byte, and
 * drops the bytes not yet sent. Plain TCP avoids it by running on Deno's own
 * sockets; a `node:net` socket that still meets it (TLS in Deno) must not look
 * like a clean end to the peer: the failed write resets the connection (see
 * `write` in {@link wrapSocket}).
 *
 * @module
 */

import * as net from "node:net";
import { dialDenoTcp, listenDenoTcp } from "./deno_net.ts";

/** Callbacks a channel gives a {@link RawConn}. */
export interface RawConnEvents {
  /** Bytes arrived; return false to pause until `resume()`. */
  onData(chunk: Uint8Array): boolean;
  /** The peer half-closed. */
  onEnd(): void;
  /** The socket failed; `code` is the runtime's errno name (ECONNRESET ...). */
  onError(err: Error & { code?: string }): void;
  /** The socket is gone (after onEnd+finish, onError, or destroy). */
  onClose(): void;
}

/** One connected stream socket, runtime-neutral. */
export interface RawConn {
  readonly localAddress: string;
  readonly remoteAddress: string;
  /** Start delivering events (data does not flow before this). */
  attach(events: RawConnEvents): void;
  /** Queue bytes; false when the caller should wait for {@link RawConn.drained}. */
  write(chunk: Uint8Array): boolean;
  /** Resolves when the write buffer drained, rejects if the socket closes first. */
  drained(): Promise<void>;
  /** Half-close after everything written; resolves once flushed to the kernel. */
  end(): Promise<void>;
  resume(): void;
  /** Close now, sending a TCP reset where the socket type allows. */
  reset(): void;
  /** Close now, quietly. */
  destroy(): void;
  /**
   * Stop delivering events and hand the socket itself to a new owner (see
   * `socket_handoff.ts`): paused, with none of this conn's listeners left. Absent,
   * or undefined, where there is no such socket to hand over.
   */
  detach?(): HandedSocket | undefined;
}

/**
 * A socket taken out of its {@link RawConn}: a `node:net` or `node:tls` socket,
 * opaque outside `src/_runtime/`.
 */
export interface HandedSocket {
  readonly kind: "handed-socket";
}

/** Where to dial or listen. */
export type SocketAddress = { host: string; port: number } | { path: string };

const IS_DENO = typeof (globalThis as { Deno?: unknown }).Deno === "object";

function fmt(host: string | undefined, port: number | undefined): string {
  if (host === undefined) return "unknown";
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

/** Wrap a connected `node:net` (or `node:tls`) socket. The socket must be paused. */
export function wrapSocket(socket: net.Socket, path?: string): RawConn {
  socket.pause();
  let closed = false;
  let events: RawConnEvents | undefined;
  // A failed write lost bytes the peer will never see. Its callback runs before
  // the stream destroys the socket, which would send a FIN, and a FIN after lost
  // bytes reads as a clean, complete end: reset instead, so the peer sees an
  // error too. The reset is possible even after end(): the stream shuts the
  // socket down only once every write succeeded, so no shutdown was issued yet.
  const onWritten = (err?: Error | null): void => {
    if (!err || socket.destroyed) return;
    try {
      if (path === undefined && !socket.connecting) socket.resetAndDestroy();
      else socket.destroy();
    } catch {
      socket.destroy(); // not a TCP handle (TLS over a stream): no reset to send
    }
    // The stream drops its 'error' once destroyed: report it here.
    events?.onError(err);
  };
  // Errors reach the channel through attach(); never let one go unhandled before that.
  // One that comes before (a TLS alert read while the caller still verifies the
  // peer: Node emits it, and 'end', without destroying the socket) is kept and
  // handed on at attach, or the channel would wait for an event that already fired.
  let earlyError: Error | undefined;
  let earlyEnd = false;
  const onEarlyError = (e: Error): void => {
    earlyError ??= e;
  };
  const onEarlyEnd = (): void => {
    earlyEnd = true;
  };
  socket.on("error", onEarlyError);
  socket.on("end", onEarlyEnd);
  socket.on("close", () => {
    closed = true;
  });
  let detachListeners: (() => void) | undefined;
  return {
    localAddress: path ?? fmt(socket.localAddress, socket.localPort),
    remoteAddress: path ?? fmt(socket.remoteAddress, socket.remotePort),
    attach(ev: RawConnEvents): void {
      events = ev;
      // The socket's own chunk is handed on (a Buffer is a Uint8Array): no copy, no view.
      const onData = (buf: Uint8Array): void => {
        if (!ev.onData(buf)) socket.pause();
      };
      const onEnd = (): void => ev.onEnd();
      const onError = (e: Error): void => ev.onError(e);
      const onClose = (): void => ev.onClose();
      socket.on("data", onData);
      socket.on("end", onEnd);
      socket.on("error", onError);
      socket.on("close", onClose);
      detachListeners = () => {
        socket.off("data", onData);
        socket.off("end", onEnd);
        socket.off("error", onError);
        socket.off("close", onClose);
        events = undefined;
      };
      socket.off("end", onEarlyEnd);
      socket.off("error", onEarlyError);
      socket.on("error", () => {}); // ev.onError has it; keep one no-op for after destroy
      const missed = earlyError;
      if (missed !== undefined) queueMicrotask(() => ev.onError(missed));
      else if (earlyEnd) queueMicrotask(() => ev.onEnd());
      if (closed) queueMicrotask(() => ev.onClose());
      else socket.resume();
    },
    // Node reports a failed write as 'error' on a connection that is already
    // broken; only Deno's half-close bug needs the per-write callback (see top).
    write: IS_DENO ? (chunk) => socket.write(chunk, onWritten) : (chunk) => socket.write(chunk),
    drained: () =>
      new Promise<void>((resolve, reject) => {
        if (closed) return reject(new Error("socket closed"));
        const onDrain = (): void => {
          socket.off("close", onClose);
          resolve();
        };
        const onClose = (): void => {
          socket.off("drain", onDrain);
          reject(new Error("socket closed"));
        };
        socket.once("drain", onDrain);
        socket.once("close", onClose);
      }),
    end: () =>
      new Promise<void>((resolve, reject) => {
        if (closed || socket.destroyed) return reject(new Error("socket closed"));
        const onFinish = (): void => {
          socket.off("close", onClose);
          resolve();
        };
        const onClose = (): void => {
          socket.off("finish", onFinish);
          reject(new Error("socket closed before end-of-stream was sent"));
        };
        socket.once("finish", onFinish);
        socket.once("close", onClose);
        socket.end();
      }),
    resume: () => {
      if (!closed) socket.resume();
    },
    reset: () => {
      if (socket.destroyed) return;
      // Only TCP handles can send a reset; Unix sockets have none. After our FIN
      // libuv refuses the reset (EINVAL) and would leave the handle open: destroy.
      if (path === undefined && !socket.connecting && !socket.writableEnded) {
        socket.resetAndDestroy();
      } else socket.destroy();
    },
    destroy: () => {
      socket.destroy();
    },
    detach: () => {
      if (closed || socket.destroyed || socket.readableEnded || detachListeners === undefined) {
        return undefined;
      }
      socket.pause();
      detachListeners();
      detachListeners = undefined;
      return socket as unknown as HandedSocket;
    },
  };
}

/** Options of {@link dialSocket}. */
export interface DialSocketOptions {
  noDelay?: boolean;
  /** Called with the cancel function while connecting (for timeouts and signals). */
  onPending?: (cancel: () => void) => void;
}

/** Connect a TCP or Unix socket. Rejects with the runtime's error (with `.code`). */
export function dialSocket(addr: SocketAddress, opts: DialSocketOptions = {}): Promise<RawConn> {
  if (IS_DENO && "host" in addr) return dialDenoTcp(addr, opts);
  return new Promise((resolve, reject) => {
    const socket =
      "path" in addr
        ? net.connect({ path: addr.path, allowHalfOpen: true })
        : net.connect({ host: addr.host, port: addr.port, allowHalfOpen: true });
    socket.pause();
    const onError = (e: Error): void => reject(e);
    socket.once("error", onError);
    opts.onPending?.(() => socket.destroy());
    socket.once("connect", () => {
      socket.off("error", onError);
      if ("host" in addr && opts.noDelay !== false) socket.setNoDelay(true);
      resolve(wrapSocket(socket, "path" in addr ? addr.path : undefined));
    });
  });
}

/** A listening socket server. */
export interface RawServer {
  readonly addr: string;
  /** Port (TCP) or 0 (Unix socket). */
  readonly port: number;
  close(): Promise<void>;
}

/** The kernel's accept backlog when none is given (Node's own default). */
export const DEFAULT_LISTEN_BACKLOG = 511;

/**
 * Listen on TCP or a Unix socket; every accepted socket goes to `onConn`, paused.
 * `listenBacklog` is listen(2)'s backlog (capped by the kernel's somaxconn); Deno's
 * own TCP listener has no such setting and keeps its default.
 */
export function listenSocket(
  addr: SocketAddress,
  onConn: (conn: RawConn) => void,
  opts: { noDelay?: boolean; listenBacklog?: number } = {},
): Promise<RawServer> {
  if (IS_DENO && "host" in addr) {
    try {
      return Promise.resolve(listenDenoTcp(addr, onConn, opts));
    } catch (err) {
      return Promise.reject(err);
    }
  }
  return new Promise((resolve, reject) => {
    const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (socket) => {
      socket.on("error", () => {});
      if (!("path" in addr) && opts.noDelay !== false) socket.setNoDelay(true);
      onConn(wrapSocket(socket, "path" in addr ? addr.path : undefined));
    });
    server.once("error", reject);
    const onListening = (): void => {
      server.off("error", reject);
      const a = server.address();
      const port = typeof a === "object" && a ? a.port : 0;
      const shown = "path" in addr ? addr.path : fmt(addr.host, port);
      resolve({
        addr: shown,
        port,
        // Stop accepting now. server.close()'s callback waits for every live
        // connection to end, and live channels outlive their listener.
        close: () =>
          new Promise<void>((res) => {
            server.close();
            setImmediate(res);
          }),
      });
    };
    const backlog = opts.listenBacklog ?? DEFAULT_LISTEN_BACKLOG;
    if ("path" in addr) server.listen(addr.path, backlog, onListening);
    else server.listen(addr.port, addr.host, backlog, onListening);
  });
}
