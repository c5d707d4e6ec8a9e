/**
 * The standard figures of a path, all through the target protocol: one-stream bulk
 * upload and download (MB/s, 1 MB = 1e6 bytes), 64-byte round trips (us), and
 * connection setup (dial to first echoed byte, ms).
 *
 * @module
 */
import { CHUNK, TargetMode, targetHeader } from "./target.ts";
import type { Conn, Path } from "./types.ts";

const payload = new Uint8Array(CHUNK).fill(0x62);

/** Read until `n` bytes have arrived; throws if the stream ends first. */
export async function readExactly(conn: Conn, n: number, what: string): Promise<void> {
  let got = 0;
  while (got < n) {
    const c = await conn.read();
    if (c === null) throw new Error(`${what}: stream ended after ${got} of ${n} bytes`);
    got += c.byteLength;
  }
}

/** Read to end-of-stream; resolves with the byte count. */
export async function readToEnd(conn: Conn): Promise<number> {
  let got = 0;
  for (;;) {
    const c = await conn.read();
    if (c === null) return got;
    got += c.byteLength;
  }
}

/** Write `bytes` of payload on `conn` (after whatever was written before). */
export async function writeBulk(conn: Conn, bytes: number): Promise<void> {
  for (let sent = 0; sent < bytes; sent += CHUNK) {
    const n = Math.min(CHUNK, bytes - sent);
    await conn.write(n === CHUNK ? payload : payload.subarray(0, n));
  }
}

/** Client -> target: MB/s until the target acknowledged the last byte. */
export async function measureUpload(path: Path, bytes: number): Promise<number> {
  const conn = await path.open();
  try {
    const t0 = performance.now();
    await conn.write(targetHeader(TargetMode.upload, bytes));
    await writeBulk(conn, bytes);
    await readExactly(conn, 1, "upload ack");
    const s = (performance.now() - t0) / 1000;
    await conn.end();
    return bytes / 1e6 / s;
  } finally {
    conn.destroy();
  }
}

/** Target -> client: MB/s until the last byte and end-of-stream arrived. */
export async function measureDownload(path: Path, bytes: number): Promise<number> {
  const conn = await path.open();
  try {
    const t0 = performance.now();
    await conn.write(targetHeader(TargetMode.download, bytes));
    const got = await readToEnd(conn);
    const s = (performance.now() - t0) / 1000;
    if (got !== bytes) throw new Error(`download: received ${got} of ${bytes} bytes`);
    return bytes / 1e6 / s;
  } finally {
    conn.destroy();
  }
}

/** 64-byte ping-pong on one connection; every round trip in microseconds. */
export async function measureRtt(
  path: Path,
  samples: number,
  warmup = Math.min(100, samples),
): Promise<number[]> {
  const conn = await path.open();
  const msg = new Uint8Array(64).fill(0x63);
  try {
    await conn.write(targetHeader(TargetMode.echo, 0));
    const times: number[] = [];
    for (let i = 0; i < samples + warmup; i++) {
      const t0 = performance.now();
      await conn.write(msg);
      await readExactly(conn, 64, "rtt");
      if (i >= warmup) times.push((performance.now() - t0) * 1000);
    }
    await conn.end();
    return times;
  } finally {
    conn.destroy();
  }
}

/** Connection setup: dial through the path until the first echoed byte; each in ms. */
export async function measureSetup(path: Path, samples: number): Promise<number[]> {
  const times: number[] = [];
  const header = targetHeader(TargetMode.echo, 0);
  for (let i = 0; i < samples; i++) {
    const t0 = performance.now();
    const conn = await path.open();
    try {
      await conn.write(header);
      await conn.write(new Uint8Array([0x64]));
      await readExactly(conn, 1, "setup");
      times.push(performance.now() - t0);
      await conn.end();
    } finally {
      conn.destroy();
    }
  }
  return times;
}

/** The p-th percentile (0-100) of unsorted numbers (nearest rank). */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const s = [...values].sort((a, b) => a - b);
  const i = Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1));
  return s[i];
}

/** The median of unsorted numbers. */
export function median(values: readonly number[]): number {
  return percentile(values, 50);
}
