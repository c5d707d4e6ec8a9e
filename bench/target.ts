/**
 * The target protocol every path ends in, so every row measures the same work.
 *
 * The client sends a 9-byte header: one mode byte and a big-endian u64 length.
 * - `U` (upload): the target reads `length` bytes, answers one byte `0x01`, then ends.
 * - `D` (download): the target writes `length` bytes, then ends.
 * - `E` (echo): the target echoes everything until end-of-stream, then ends.
 *
 * @module
 */
import type { Channel, Listener } from "../mod.ts";
import { listenTcp } from "../mod.ts";
import { channelConn } from "./conn.ts";
import type { Conn } from "./types.ts";

/** The mode bytes of the target protocol. */
export const TargetMode = {
  /** client -> target bulk; the target acknowledges with one byte. */
  upload: 0x55,
  /** target -> client bulk. */
  download: 0x44,
  /** echo until end-of-stream. */
  echo: 0x45,
} as const;

/** Bytes per write of a bulk transfer. */
export const CHUNK = 64 * 1024;

/** The 9-byte request header. */
export function targetHeader(mode: number, length: number): Uint8Array {
  const h = new Uint8Array(9);
  h[0] = mode;
  new DataView(h.buffer).setBigUint64(1, BigInt(length));
  return h;
}

const fill = new Uint8Array(CHUNK).fill(0x61);

/** Serve one connection of the target protocol; never throws (a broken client just ends it). */
export async function serveTarget(conn: Conn): Promise<void> {
  try {
    // Read the header (it may arrive split, or with payload behind it).
    let head = new Uint8Array(0);
    while (head.byteLength < 9) {
      const c = await conn.read();
      if (c === null) return;
      const next = new Uint8Array(head.byteLength + c.byteLength);
      next.set(head);
      next.set(c, head.byteLength);
      head = next;
    }
    const mode = head[0];
    const length = Number(new DataView(head.buffer).getBigUint64(1));
    const rest = head.subarray(9);
    if (mode === TargetMode.upload) {
      let got = rest.byteLength;
      while (got < length) {
        const c = await conn.read();
        if (c === null) throw new Error(`target: upload ended at ${got} of ${length}`);
        got += c.byteLength;
      }
      await conn.write(new Uint8Array([1]));
      await conn.end();
    } else if (mode === TargetMode.download) {
      for (let sent = 0; sent < length; sent += CHUNK) {
        const n = Math.min(CHUNK, length - sent);
        await conn.write(n === CHUNK ? fill : fill.subarray(0, n));
      }
      await conn.end();
    } else if (mode === TargetMode.echo) {
      if (rest.byteLength > 0) await conn.write(rest.slice());
      for (;;) {
        const c = await conn.read();
        if (c === null) break;
        await conn.write(c.slice());
      }
      await conn.end();
    } else {
      conn.destroy();
    }
  } catch {
    conn.destroy();
  }
}

/** Serve the target protocol on every Channel a listener yields. */
export function serveTargetOn(listener: Listener): void {
  void (async () => {
    try {
      for await (const ch of listener) void serveTarget(channelConn(ch as Channel));
    } catch {
      // listener closed
    }
  })();
}

/** A plain TCP target on 127.0.0.1 (spokewire's TCP, fast in both runtimes). */
export async function startTcpTarget(): Promise<{ port: number; close(): Promise<void> }> {
  const l = await listenTcp({ host: "127.0.0.1", port: 0 });
  serveTargetOn(l);
  const port = Number(l.addr.slice(l.addr.lastIndexOf(":") + 1));
  return { port, close: () => l.close() };
}
