/**
 * @chainsafe/libp2p-yamux outside libp2p, for the "libp2p-yamux over TLS" row: a
 * libp2p `MessageStream` over one node socket (a mutual-TLS `tls.TLSSocket`), and a
 * yamux stream as a bench {@link Conn}.
 *
 * Backpressure both ways: the socket's `write() === false` pauses the muxer until
 * `'drain'`; a reader that falls behind pauses its yamux stream, which stops sending
 * window updates, so the remote writer stalls at the stream window.
 *
 * @module
 */
import type { Socket } from "node:net";
import { yamux } from "@chainsafe/libp2p-yamux";
import { AbstractMessageStream, type SendResult } from "@libp2p/utils";
import type { Conn } from "../types.ts";

/**
 * libp2p calls `Promise.withResolvers` (Node 22+, Deno); Node 20 lacks it. Install the
 * standard behaviour when missing, before the first muxer is made.
 */
function ensureWithResolvers(): void {
  const P = Promise as unknown as { withResolvers?: unknown };
  if (typeof P.withResolvers === "function") return;
  P.withResolvers = <T>() => {
    let resolve!: (v: T | PromiseLike<T>) => void;
    let reject!: (e?: unknown) => void;
    const promise = new Promise<T>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    return { promise, resolve, reject };
  };
}

type YamuxMuxer = ReturnType<ReturnType<ReturnType<typeof yamux>>["createStreamMuxer"]>;
/** One yamux stream. */
export type YamuxStream = Awaited<ReturnType<YamuxMuxer["createStream"]>>;
type ByteList = Parameters<AbstractMessageStream["sendData"]>[0];
type Logger = AbstractMessageStream["log"];

function silentLogger(): Logger {
  const log = (() => {}) as unknown as Logger;
  Object.assign(log, {
    error: () => {},
    trace: () => {},
    enabled: false,
    newScope: () => log,
  });
  return log;
}

/** A node socket as a libp2p MessageStream (what a yamux muxer runs on). */
class SocketMessageStream extends AbstractMessageStream {
  readonly #socket: Socket;

  constructor(socket: Socket, direction: "inbound" | "outbound") {
    super({ log: silentLogger(), direction });
    this.#socket = socket;
    socket.setNoDelay(true);
    socket.on("data", (chunk: Uint8Array) => this.onData(chunk));
    socket.on("drain", () => this.safeDispatchEvent("drain"));
    socket.on("error", () => {});
    socket.on("close", () => this.onTransportClosed());
  }

  sendData(data: ByteList): SendResult {
    let more = true;
    for (const buf of data) more = this.#socket.write(buf);
    return { sentBytes: data.byteLength, canSendMore: more };
  }

  sendReset(): void {
    this.#socket.destroy();
  }

  sendPause(): void {
    this.#socket.pause();
  }

  sendResume(): void {
    this.#socket.resume();
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      if (this.#socket.destroyed) return resolve();
      this.#socket.once("close", () => resolve());
      this.#socket.end();
      // Bounded: a peer that never closes its side is cut after a second.
      setTimeout(() => this.#socket.destroy(), 1000).unref?.();
    });
  }
}

/** A yamux muxer on `socket`; the client side opens streams, the server side accepts them. */
export function yamuxOver(
  socket: Socket,
  role: "client" | "server",
  onStream?: (s: YamuxStream) => void,
): YamuxMuxer {
  ensureWithResolvers();
  const maConn = new SocketMessageStream(socket, role === "client" ? "outbound" : "inbound");
  const muxer = yamux({
    enableKeepAlive: false,
    maxInboundStreams: 4096,
    maxOutboundStreams: 4096,
  })().createStreamMuxer(maConn);
  if (onStream) muxer.addEventListener("stream", (evt) => onStream(evt.detail));
  return muxer;
}

/** A yamux stream as a Conn (reads pause the stream beyond 1 MiB unread). */
export function yamuxConn(s: YamuxStream): Conn {
  const queue: Uint8Array[] = [];
  let queued = 0;
  let ended = false;
  let failure: unknown;
  let wake: (() => void) | undefined;
  const notify = (): void => {
    const f = wake;
    wake = undefined;
    f?.();
  };
  s.addEventListener("message", (evt) => {
    const c = evt.data instanceof Uint8Array ? evt.data : evt.data.subarray();
    queue.push(c);
    queued += c.byteLength;
    if (queued > 1024 * 1024 && s.readStatus === "readable") s.pause();
    notify();
  });
  s.addEventListener("remoteCloseWrite", () => {
    ended = true;
    notify();
  });
  s.addEventListener("close", (evt) => {
    if (evt.error) failure = evt.error;
    ended = true;
    notify();
  });
  return {
    async write(chunk) {
      if (failure) throw failure;
      if (!s.send(chunk)) await s.onDrain();
    },
    async read() {
      for (;;) {
        const c = queue.shift();
        if (c) {
          queued -= c.byteLength;
          if (queued < 256 * 1024 && s.readStatus === "paused") s.resume();
          return c;
        }
        if (failure) throw failure;
        if (ended) return null;
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
      }
    },
    end() {
      return s.close();
    },
    destroy() {
      s.abort(new Error("bench: done"));
    },
  };
}
