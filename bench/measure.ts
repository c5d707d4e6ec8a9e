/**
 * Measurements shared by every transport's benchmark: bulk throughput and
 * 64-byte ping-pong latency over a connected Channel pair.
 */
import type { Channel } from "../mod.ts";
import { percentile } from "./report.ts";

export const CHUNK = 64 * 1024;

/** Send `bytes` from a to b; resolve with MB/s (1 MB = 1e6 bytes) measured until b has them all. */
export async function channelBulk(a: Channel, b: Channel, bytes: number): Promise<number> {
  const chunk = new Uint8Array(CHUNK).fill(0x61);
  const t0 = performance.now();
  const reading = (async () => {
    const r = b.readable.getReader();
    let n = 0;
    for (;;) {
      const { value, done } = await r.read();
      if (done) break;
      n += value.byteLength;
    }
    return n;
  })();
  const w = a.writable.getWriter();
  for (let sent = 0; sent < bytes; sent += CHUNK) {
    await w.ready;
    w.write(chunk).catch(() => {});
  }
  await w.ready;
  w.releaseLock();
  await a.closeWrite();
  const n = await reading;
  const ms = performance.now() - t0;
  if (n !== bytes) throw new Error(`bulk: received ${n} of ${bytes} bytes`);
  return bytes / 1e6 / (ms / 1000);
}

/** Echo everything b reads back to a, until end-of-stream. */
export async function channelEcho(b: Channel): Promise<void> {
  const r = b.readable.getReader();
  const w = b.writable.getWriter();
  for (;;) {
    const { value, done } = await r.read();
    if (done) break;
    // Like the raw baseline's socket.write(): queue, and wait only when backpressure says so.
    await w.ready;
    w.write(value).catch(() => {});
  }
  await w.close();
}

/** 64-byte ping-pong through an echoing peer; resolves with every round trip in microseconds. */
export async function channelRttTimes(a: Channel, samples: number, warmup = 0): Promise<number[]> {
  const msg = new Uint8Array(64).fill(0x62);
  const r = a.readable.getReader();
  const w = a.writable.getWriter();
  const times: number[] = [];
  for (let i = 0; i < samples + warmup; i++) {
    const t0 = performance.now();
    await w.ready;
    w.write(msg).catch(() => {});
    let got = 0;
    while (got < 64) {
      const { value, done } = await r.read();
      if (done) throw new Error("rtt: peer ended");
      got += value.byteLength;
    }
    if (i >= warmup) times.push((performance.now() - t0) * 1000);
  }
  r.releaseLock();
  w.releaseLock();
  return times;
}

/** 64-byte ping-pong through an echoing peer; resolves with p50 and p99 in microseconds. */
export async function channelRtt(
  a: Channel,
  samples: number,
  warmup = 200,
): Promise<{ p50: number; p99: number }> {
  const times = await channelRttTimes(a, samples, warmup);
  times.sort((x, y) => x - y);
  return { p50: percentile(times, 50), p99: percentile(times, 99) };
}
