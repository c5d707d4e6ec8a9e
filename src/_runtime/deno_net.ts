/**
 * TCP through Deno's own sockets (`Deno.connect`, `Deno.listen`), used for TCP
 * under Deno in place of `node:net`.
 *
 * Why: Deno 2.9's `node:net` runs on its libuv emulation (`uv_compat`), whose
 * TCP write path (`poll_tcp_handle` in `libs/core/uv_compat/tcp.rs`) fails
 * every queued write with `EPIPE` when the socket is not reading, has never
 * received a byte, and a peek shows end-of-stream: a peer that half-closes
 * without sending anything (a sink, `nc -N`, an early-closing server) is taken
 * for a dead one, and a write that does not fit the socket buffer at once is
 * lost. It depends on nothing but the peer's behaviour: an 8 MiB write to such a
 * peer fails every time. Deno's own sockets have no such path (measured: 0
 * failures where `node:net` failed 100 of 100).
 *
 * What it costs: Deno's socket API cannot send a TCP reset. Closing a `Deno.Conn`
 * always shuts its write side down first, which sends a FIN, and there is no
 * `SO_LINGER`. What can be done is done: each connection keeps a second handle on
 * its socket from Deno's `node:net` layer (`tcp_wrap`'s `openFromRid`, a dup of the
 * descriptor), and `reset()` sets a zero linger through it before closing, so the
 * close ends in a reset. The FIN still goes first when nothing is waiting in the
 * kernel's send queue, so:
 * - bytes still in flight (an abort mid-transfer): the peer gets a reset and an
 *   error, never a truncated stream that ends cleanly;
 * - nothing in flight: a reading peer sees end-of-stream, then the reset fails its
 *   next write.
 * A reading peer of an idle plain-TCP connection under Deno, as of a Unix socket,
 * cannot tell an abort from a close; a protocol with its own end marker on top
 * (Konnectivity's CLOSE) can. Where the `tcp_wrap` binding is missing (another
 * Deno), `reset()` is a plain close.
 *
 * @module
 */

import process from "node:process";
import type { DialSocketOptions, RawConn, RawConnEvents, RawServer } from "./net.ts";

/** The part of `Deno.Conn` used here (the project is type-checked without Deno's types). */
interface DenoConn {
  readonly localAddr: DenoAddr;
  readonly remoteAddr: DenoAddr;
  read(p: Uint8Array): Promise<number | null>;
  write(p: Uint8Array): Promise<number>;
  closeWrite(): Promise<void>;
  close(): void;
  setNoDelay?(noDelay?: boolean): void;
}

interface DenoAddr {
  readonly hostname?: string;
  readonly port?: number;
  readonly path?: string;
}

interface DenoListener extends AsyncIterable<DenoConn> {
  readonly addr: DenoAddr;
  accept(): Promise<DenoConn>;
  close(): void;
}

interface DenoNs {
  connect(o: { hostname: string; port: number; signal?: AbortSignal }): Promise<DenoConn>;
  listen(o: { hostname: string; port: number }): DenoListener;
}

/** A handle of Deno's `tcp_wrap` binding, opened on a dup of a `Deno.Conn`'s descriptor. */
interface LingerHandle {
  openFromRid(rid: number): number;
  /** Set a zero linger and close this handle's descriptor (the socket lives on in the conn). */
  reset(): number;
  close(): void;
  unref(): void;
}

type TcpWrapBinding = { TCP: new (type: number) => LingerHandle; constants: { SOCKET: number } };

let tcpWrap: TcpWrapBinding | null | undefined;

/**
 * A second handle on `conn`'s socket through which a zero linger can be set
 * later, or undefined where Deno offers none. Taken at once: `openFromRid` cannot
 * dup the descriptor while a write is pending, and an abort mid-transfer is when
 * the reset matters most.
 */
function lingerHandle(conn: DenoConn): LingerHandle | undefined {
  try {
    if (tcpWrap === undefined) {
      const binding = (process as unknown as { binding(name: string): unknown }).binding;
      const b = binding?.("tcp_wrap") as Partial<TcpWrapBinding> | undefined;
      tcpWrap =
        typeof b?.TCP === "function" && typeof b.TCP.prototype.openFromRid === "function"
          ? (b as TcpWrapBinding)
          : null;
    }
    if (tcpWrap === null) return undefined;
    const sym = Object.getOwnPropertySymbols(conn).find(
      (x) => x.description === "Deno.internal.rid",
    );
    const rid = sym === undefined ? undefined : (conn as unknown as Record<symbol, unknown>)[sym];
    if (typeof rid !== "number") return undefined;
    const h = new tcpWrap.TCP(tcpWrap.constants.SOCKET);
    if (h.openFromRid(rid) !== 0) {
      h.close();
      return undefined;
    }
    h.unref(); // it must not keep the process alive
    return h;
  } catch {
    return undefined;
  }
}

function deno(): DenoNs {
  return (globalThis as unknown as { Deno: DenoNs }).Deno;
}

/** Bytes read per `read()` into one reused buffer; each chunk handed on is a copy of its size. */
const READ_BUFFER_BYTES = 256 * 1024;
/** Queued bytes above which `write()` asks the caller to wait for `drained()`. */
const WRITE_HIGH_WATER_BYTES = 256 * 1024;
/** Small queued chunks are joined into one `write()` of at most this many bytes. */
const COALESCE_BYTES = 64 * 1024;

function fmt(a: DenoAddr): string {
  const host = a.hostname ?? "unknown";
  return host.includes(":") ? `[${host}]:${a.port}` : `${host}:${a.port}`;
}

function asError(e: unknown): Error & { code?: string } {
  return e instanceof Error ? e : new Error(String(e));
}

interface Waiter {
  resolve(): void;
  reject(e: Error): void;
}

/** Wrap a connected TCP `Deno.Conn`. Nothing is read before `attach()`. */
export function wrapDenoConn(conn: DenoConn): RawConn {
  const linger = lingerHandle(conn);
  let events: RawConnEvents | undefined;
  let closed = false;
  let paused = false;
  let reading = false;
  let readEnded = false;
  let writeEnded = false;
  let endRequested = false;
  let writing = false;
  const queue: Uint8Array[] = [];
  let queued = 0;
  const drainWaiters: Waiter[] = [];
  let endWaiter: (Waiter & { promise: Promise<void> }) | undefined;
  const readBuf = new Uint8Array(READ_BUFFER_BYTES);

  const settleDrain = (err?: Error): void => {
    for (const w of drainWaiters.splice(0)) {
      if (err) w.reject(err);
      else w.resolve();
    }
  };

  /**
   * Close the socket; `err` set: it failed. The events follow on a later turn of the
   * event loop, as `'close'` does in `node:net`: a channel that just finished both
   * directions moves to releasing on the promise jobs of this turn first.
   */
  const shut = (err?: Error & { code?: string }, reset = false): void => {
    if (closed) return;
    closed = true;
    try {
      // The linger must be set before the conn's close, which sends what the
      // socket's last close sends.
      if (reset) linger?.reset();
      linger?.close();
    } catch {
      // best effort: the conn's own close below still ends the connection
    }
    try {
      conn.close();
    } catch {
      // already closed by Deno (a failed op closes nothing, but be safe)
    }
    const gone = err ?? new Error("socket closed");
    settleDrain(gone);
    endWaiter?.reject(new Error("socket closed before end-of-stream was sent"));
    const ev = events;
    if (!ev) return;
    setTimeout(() => {
      if (err) ev.onError(err);
      ev.onClose();
    }, 0);
  };

  const maybeFinished = (): void => {
    if (readEnded && writeEnded) shut();
  };

  const pumpReads = async (): Promise<void> => {
    if (reading || paused || closed || readEnded || !events) return;
    reading = true;
    const ev = events;
    try {
      while (!paused && !closed) {
        const n = await conn.read(readBuf);
        if (closed) return;
        if (n === null) {
          readEnded = true;
          ev.onEnd();
          maybeFinished();
          return;
        }
        if (n === 0) continue;
        if (!ev.onData(readBuf.slice(0, n))) paused = true;
      }
    } catch (e) {
      if (!closed) shut(asError(e));
    } finally {
      reading = false;
    }
  };

  /** The next write: the head of the queue, or several small chunks joined. */
  const takeNext = (): Uint8Array => {
    const head = queue.shift() as Uint8Array;
    if (head.length >= COALESCE_BYTES || queue.length === 0) return head;
    let len = head.length;
    let n = 0;
    while (n < queue.length && len + (queue[n] as Uint8Array).length <= COALESCE_BYTES) {
      len += (queue[n] as Uint8Array).length;
      n++;
    }
    if (n === 0) return head;
    const out = new Uint8Array(len);
    out.set(head, 0);
    let off = head.length;
    for (const c of queue.splice(0, n)) {
      out.set(c, off);
      off += c.length;
    }
    return out;
  };

  const pumpWrites = async (): Promise<void> => {
    if (writing || closed) return;
    writing = true;
    try {
      while (queue.length > 0 && !closed) {
        const chunk = takeNext();
        let off = 0;
        while (off < chunk.length) {
          off += await conn.write(off === 0 ? chunk : chunk.subarray(off));
          if (closed) return;
        }
        queued -= chunk.length;
        if (queued < WRITE_HIGH_WATER_BYTES) settleDrain();
      }
      if (endRequested && !writeEnded && !closed) {
        await conn.closeWrite();
        if (closed) return;
        writeEnded = true;
        endWaiter?.resolve();
        maybeFinished();
      }
    } catch (e) {
      if (!closed) shut(asError(e));
    } finally {
      writing = false;
    }
  };

  return {
    localAddress: fmt(conn.localAddr),
    remoteAddress: fmt(conn.remoteAddr),
    attach(ev: RawConnEvents): void {
      events = ev;
      if (closed) setTimeout(() => ev.onClose(), 0);
      else void pumpReads();
    },
    write(chunk: Uint8Array): boolean {
      if (closed || endRequested) return false;
      if (chunk.length === 0) return queued < WRITE_HIGH_WATER_BYTES;
      queue.push(chunk);
      queued += chunk.length;
      void pumpWrites();
      return queued < WRITE_HIGH_WATER_BYTES;
    },
    drained(): Promise<void> {
      if (closed) return Promise.reject(new Error("socket closed"));
      if (queued < WRITE_HIGH_WATER_BYTES) return Promise.resolve();
      return new Promise((resolve, reject) => drainWaiters.push({ resolve, reject }));
    },
    end(): Promise<void> {
      if (endWaiter) return endWaiter.promise;
      if (closed) return Promise.reject(new Error("socket closed"));
      endRequested = true;
      let resolve!: () => void;
      let reject!: (e: Error) => void;
      const promise = new Promise<void>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      endWaiter = { promise, resolve, reject };
      void pumpWrites();
      return promise;
    },
    resume(): void {
      if (!paused) return;
      paused = false;
      void pumpReads();
    },
    // A zero linger through the second handle, then close (see the module comment).
    reset: () => shut(undefined, true),
    destroy: () => shut(),
  };
}

/** Connect over TCP with `Deno.connect`. Rejects with Deno's error (it has `.code`). */
export async function dialDenoTcp(
  addr: { host: string; port: number },
  opts: DialSocketOptions = {},
): Promise<RawConn> {
  const ac = new AbortController();
  opts.onPending?.(() => ac.abort());
  const conn = await deno().connect({ hostname: addr.host, port: addr.port, signal: ac.signal });
  if (ac.signal.aborted) {
    conn.close();
    throw new Error("connect cancelled");
  }
  if (opts.noDelay !== false) conn.setNoDelay?.(true);
  return wrapDenoConn(conn);
}

/** Listen on TCP with `Deno.listen`; every accepted connection goes to `onConn`. */
export function listenDenoTcp(
  addr: { host: string; port: number },
  onConn: (conn: RawConn) => void,
  opts: { noDelay?: boolean } = {},
): RawServer {
  const listener = deno().listen({ hostname: addr.host, port: addr.port });
  let open = true;
  void (async () => {
    while (open) {
      let conn: DenoConn;
      try {
        conn = await listener.accept();
      } catch {
        if (!open) return;
        // A transient accept failure (EMFILE ...): back off a little, then go on.
        await new Promise((r) => setTimeout(r, 20));
        continue;
      }
      if (!open) {
        conn.close();
        return;
      }
      if (opts.noDelay !== false) conn.setNoDelay?.(true);
      onConn(wrapDenoConn(conn));
    }
  })();
  const port = listener.addr.port ?? 0;
  return {
    addr: fmt({ hostname: addr.host, port }),
    port,
    close: async () => {
      if (!open) return;
      open = false;
      listener.close();
    },
  };
}
