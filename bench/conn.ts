/**
 * Adapters from what each peer hands out (a spokewire Channel, a node stream, a
 * Deno.Conn) to the bench's {@link Conn}, so one measurement loop serves every row.
 *
 * @module
 */
import type { Duplex } from "node:stream";
import type { Channel } from "../mod.ts";
import type { Conn } from "./types.ts";

/** A spokewire Channel as a Conn. */
export function channelConn(ch: Channel): Conn {
  const r = ch.readable.getReader();
  const w = ch.writable.getWriter();
  return {
    async write(chunk) {
      await w.ready;
      // Like a raw socket.write(): queue, and wait only when backpressure says so.
      w.write(chunk).catch(() => {});
    },
    async read() {
      const { value, done } = await r.read();
      return done ? null : value;
    },
    async end() {
      await w.ready;
      await w.close();
    },
    destroy() {
      ch.abort(new Error("bench: done"));
    },
  };
}

/** A node Duplex (net.Socket, tls.TLSSocket, an ssh2 channel, a ws stream) as a Conn. */
export function duplexConn(s: Duplex): Conn {
  const queue: Uint8Array[] = [];
  let ended = false;
  let failure: unknown;
  let wake: (() => void) | undefined;
  const notify = (): void => {
    const f = wake;
    wake = undefined;
    f?.();
  };
  s.on("data", (c: Uint8Array) => {
    queue.push(c);
    if (queue.length > 64) s.pause();
    notify();
  });
  s.on("end", () => {
    ended = true;
    notify();
  });
  s.on("error", (e) => {
    failure = e;
    notify();
  });
  s.on("close", () => {
    ended = true;
    notify();
  });
  return {
    write(chunk) {
      if (failure) return Promise.reject(failure);
      if (s.write(chunk)) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const done = (): void => {
          s.off("drain", done);
          s.off("close", done);
          failure ? reject(failure) : resolve();
        };
        s.on("drain", done);
        s.on("close", done);
      });
    },
    async read() {
      for (;;) {
        const c = queue.shift();
        if (c) {
          if (queue.length < 16 && s.isPaused()) s.resume();
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
      return new Promise((resolve) => s.end(resolve));
    },
    destroy() {
      s.destroy();
    },
  };
}

/** The subset of Deno.Conn the bench uses (no Deno types needed under Node). */
export interface DenoConnLike {
  read(p: Uint8Array): Promise<number | null>;
  write(p: Uint8Array): Promise<number>;
  closeWrite(): Promise<void>;
  close(): void;
}

/** A Deno.Conn (Deno.connect / Deno.listen) as a Conn, reading into one reused buffer. */
export function denoConn(c: DenoConnLike): Conn {
  const buf = new Uint8Array(256 * 1024);
  return {
    async write(chunk) {
      let off = 0;
      while (off < chunk.byteLength) off += await c.write(chunk.subarray(off));
    },
    async read() {
      const n = await c.read(buf);
      return n === null ? null : buf.subarray(0, n);
    },
    end() {
      return c.closeWrite();
    },
    destroy() {
      try {
        c.close();
      } catch {
        // already closed
      }
    },
  };
}
