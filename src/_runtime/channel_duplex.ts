/**
 * A `node:stream` Duplex over a spokewire {@link Channel}, so `node:tls` (or
 * anything else that wants a node stream) can run over any transport: a memory
 * pair, an SSH direct-tcpip channel, a Konnectivity stream.
 *
 * - Reads pull one chunk at a time from the channel's readable (backpressure:
 *   no read while the duplex's buffer is full).
 * - Writes resolve when the channel's writable has room (`writer.ready`).
 * - `end()` half-closes the channel; the channel's end-of-stream ends the duplex.
 * - `destroy(err)` aborts the channel; a channel error destroys the duplex.
 * - `destroy()` without an error leaves the channel alone: the owner decides
 *   between `close()` and `abort()`.
 * - A {@link WriteHold} lets the owner keep writes back (queued, unsent) and
 *   later send or drop them.
 *
 * @module
 */

import { Duplex } from "node:stream";
import type { Channel } from "../channel/types.ts";

/**
 * Lets the consumer above a duplex stop it from reading its source, whatever
 * the duplex's own consumer does (Deno's TLS keeps reading a paused stream).
 */
export interface ReadGate {
  held: boolean;
  /** Set by the duplex: call after clearing `held`. */
  release?: () => void;
  /** Set by the consumer: sees each chunk from below before it is pushed. */
  onChunk?: (chunk: Uint8Array) => void;
}

/**
 * Lets the consumer above a duplex keep what it writes from reaching the
 * transport for a while: a TLS server holds back the session tickets it sends
 * right after the handshake until it has verified the client, so a ticket
 * means "accepted" to the client (see `src/tls/establish.ts`).
 *
 * Held writes are acknowledged at once and their bytes kept here, so the TLS
 * layer never waits on a write. Only what the TLS layer writes on its own
 * after the handshake is ever held (two tickets, about 1.5 KiB): the channel
 * that could write more does not exist before release.
 */
export interface WriteHold {
  /** While true, writes are kept here instead of going out. */
  held: boolean;
  /** Bytes kept while held, in order. */
  readonly queue: Uint8Array[];
  /** Where kept bytes go on release. */
  send?: (chunk: Uint8Array, cb: (err?: Error | null) => void) => void;
}

/** A new, open hold. */
export function newWriteHold(): WriteHold {
  return { held: false, queue: [] };
}

/** Keep `chunk` (copied: the writer may reuse its buffer) and acknowledge it. */
export function holdWrite(
  hold: WriteHold,
  chunk: Uint8Array,
  cb: (err?: Error | null) => void,
): void {
  hold.queue.push(chunk.slice());
  cb();
}

/** Stop holding and send what was kept, in order. */
export function releaseWrites(hold: WriteHold): void {
  if (!hold.held) return;
  hold.held = false;
  for (const chunk of hold.queue.splice(0)) hold.send?.(chunk, () => {});
}

/** Forget what was kept (the connection is being reset). */
export function dropWrites(hold: WriteHold): void {
  hold.held = false;
  hold.queue.splice(0);
}

/**
 * Adapt `channel` to a Duplex. The channel's readable and writable stay locked
 * by the duplex for its lifetime.
 */
export function channelToDuplex(channel: Channel, gate?: ReadGate, hold?: WriteHold): Duplex {
  const reader = channel.readable.getReader();
  const writer = channel.writable.getWriter();
  let pumping = false;
  const send = (chunk: Uint8Array, cb: (err?: Error | null) => void): void => {
    const view = new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    writer.write(view).catch((err: Error) => duplex.destroy(err));
    if ((writer.desiredSize ?? 0) > 0) cb();
    else
      writer.ready.then(
        () => cb(),
        (err: Error) => cb(err),
      );
  };
  if (hold) hold.send = send;
  const duplex = new Duplex({
    allowHalfOpen: true,
    read(): void {
      if (pumping || gate?.held) return;
      pumping = true;
      void pump();
    },
    write(chunk: Uint8Array, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
      if (hold?.held) holdWrite(hold, chunk, cb);
      else send(chunk, cb);
    },
    final(cb: (err?: Error | null) => void): void {
      writer.close().then(
        () => cb(),
        (err: Error) => cb(err),
      );
    },
    destroy(err: Error | null, cb: (err?: Error | null) => void): void {
      if (err) channel.abort(err);
      cb(err);
    },
  });

  async function pump(): Promise<void> {
    try {
      // Ends when the channel ends or the duplex's buffer is full (push() returns false).
      for (;;) {
        const r = await reader.read();
        if (r.done) {
          duplex.push(null);
          return;
        }
        gate?.onChunk?.(r.value);
        if (!duplex.push(r.value) || gate?.held) {
          pumping = false;
          return;
        }
      }
    } catch (err) {
      duplex.destroy(err as Error);
    }
  }

  if (gate) {
    gate.release = () => {
      if (pumping) return;
      pumping = true;
      void pump();
    };
  }
  return duplex;
}
