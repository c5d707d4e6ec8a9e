/**
 * Konnectivity benchmarks: codec speed against the naive twin, and session
 * throughput / round trips against the same transport without the session.
 *
 * @module
 */

import { Bench } from "tinybench";
import WebSocket, { WebSocketServer } from "ws";
import { memoryPair } from "../src/channel/memory.ts";
import type { Channel } from "../src/channel/types.ts";
import { decodePacket, encodePacket, type Packet, PacketType } from "../src/konnectivity/mod.ts";
import { naiveDecode, naiveEncode } from "../tests/_harness/konnectivity_naive.ts";
import {
  memorySessionPair,
  type SessionPair,
  WsHarness,
} from "../tests/_harness/konnectivity_pairs.ts";

/** One result row. `mbps` is MB/s (10^6 bytes per second). */
export interface Row {
  name: string;
  baseline: string;
  mbps?: number;
  baselineMbps?: number;
  p50Us?: number;
  p99Us?: number;
  baselineP50Us?: number;
  baselineP99Us?: number;
  opsPerSec?: number;
  baselineOpsPerSec?: number;
}

const CHUNK = 64 * 1024;
const TASK_TIME_MS = 400;
const RTT_ROUNDS = 2000;

function round(x: number): number {
  return Math.round(x * 10) / 10;
}

async function opsPerSec(fast: () => unknown, naive: () => unknown): Promise<[number, number]> {
  const bench = new Bench({ time: TASK_TIME_MS, warmup: true });
  bench.add("fast", fast, { async: false }).add("naive", naive, { async: false });
  await bench.run();
  const ops = bench.tasks.map((t) => {
    const r = t.result as { throughput?: { mean: number }; period?: number };
    return r.period ? 1000 / r.period : (r.throughput?.mean ?? 0);
  });
  return [ops[0], ops[1]];
}

async function codecRows(): Promise<Row[]> {
  const payload = new Uint8Array(16 * 1024).fill(0x61);
  const data: Packet = { type: PacketType.DATA, connectID: 12345, error: "", data: payload };
  const dataMsg = encodePacket(data);
  const wu: Packet = { type: PacketType.WINDOW_UPDATE, connectID: 12345, credit: 262144 };
  const mb = dataMsg.byteLength / 1e6;
  const [encF, encN] = await opsPerSec(
    () => encodePacket(data),
    () => naiveEncode(data),
  );
  const [decF, decN] = await opsPerSec(
    () => decodePacket(dataMsg),
    () => naiveDecode(dataMsg),
  );
  const [ctlF, ctlN] = await opsPerSec(
    () => decodePacket(encodePacket(wu)),
    () => naiveDecode(naiveEncode(wu)),
  );
  return [
    {
      name: "konnectivity codec: encode DATA 16 KiB (MB/s)",
      baseline: "naive twin encoder (tests/_harness/konnectivity_naive.ts)",
      mbps: round(encF * mb),
      baselineMbps: round(encN * mb),
      opsPerSec: Math.round(encF),
      baselineOpsPerSec: Math.round(encN),
    },
    {
      name: "konnectivity codec: decode DATA 16 KiB, payload as a view (MB/s)",
      baseline: "naive twin decoder (copies)",
      mbps: round(decF * mb),
      baselineMbps: round(decN * mb),
      opsPerSec: Math.round(decF),
      baselineOpsPerSec: Math.round(decN),
    },
    {
      name: "konnectivity codec: encode+decode WINDOW_UPDATE (ops/s)",
      baseline: "naive twin",
      opsPerSec: Math.round(ctlF),
      baselineOpsPerSec: Math.round(ctlN),
    },
  ];
}

/** Move `bytes` from a to b (b reads and discards); returns MB/s. */
async function transfer(a: Channel, b: Channel, bytes: number): Promise<number> {
  const chunk = new Uint8Array(CHUNK).fill(7);
  const t0 = performance.now();
  const reading = (async () => {
    const r = b.readable.getReader();
    let n = 0;
    for (let i = 0; i < 100_000_000; i++) {
      const { value, done } = await r.read();
      if (done) break;
      n += value.byteLength;
    }
    return n;
  })();
  const w = a.writable.getWriter();
  for (let sent = 0; sent < bytes; sent += CHUNK) await w.write(chunk);
  await w.close();
  const n = await reading;
  const s = (performance.now() - t0) / 1000;
  await Promise.all([a.close(), b.close()]);
  return n / 1e6 / s;
}

/** 64-byte ping-pong round trips a -> b -> a; returns [p50, p99] in microseconds. */
async function rtt(a: Channel, b: Channel): Promise<[number, number]> {
  const msg = new Uint8Array(64);
  const echo = (async () => {
    const r = b.readable.getReader();
    const w = b.writable.getWriter();
    for (let i = 0; i < RTT_ROUNDS * 2; i++) {
      const { value, done } = await r.read();
      if (done) break;
      await w.write(value);
    }
    await w.close();
  })();
  const r = a.readable.getReader();
  const w = a.writable.getWriter();
  const samples: number[] = [];
  for (let i = 0; i < RTT_ROUNDS; i++) {
    const t0 = performance.now();
    await w.write(msg);
    let got = 0;
    while (got < msg.byteLength) {
      const { value, done } = await r.read();
      if (done) throw new Error("echo ended early");
      got += value.byteLength;
    }
    samples.push((performance.now() - t0) * 1000);
  }
  await w.close();
  r.releaseLock();
  await echo;
  await Promise.all([a.close(), b.close()]);
  samples.sort((x, y) => x - y);
  return [
    round(samples[Math.floor(samples.length * 0.5)]),
    round(samples[Math.floor(samples.length * 0.99)]),
  ];
}

async function tunnel(p: SessionPair, address: string): Promise<[Channel, Channel]> {
  return Promise.all([p.server.dial(address), p.router.take(address)]);
}

/** Raw ws: send `bytes` in 64 KiB binary messages with send-callback backpressure; MB/s. */
async function rawWsThroughput(bytes: number): Promise<[number, [number, number]]> {
  const wss = new WebSocketServer({ host: "127.0.0.1", port: 0 });
  await new Promise<void>((r) => wss.once("listening", () => r()));
  const port = (wss.address() as { port: number }).port;
  const accepted = new Promise<WebSocket>((r) => wss.once("connection", (ws) => r(ws)));
  const client = new WebSocket(`ws://127.0.0.1:${port}/`);
  await new Promise<void>((r) => client.once("open", () => r()));
  const server = await accepted;
  const chunk = new Uint8Array(CHUNK).fill(7);
  let received = 0;
  const done = new Promise<void>((resolve) => {
    server.on("message", (d: Uint8Array) => {
      received += d.byteLength;
      if (received >= bytes) resolve();
    });
  });
  const t0 = performance.now();
  let inflight = 0;
  let wake: (() => void) | undefined;
  for (let sent = 0; sent < bytes; sent += CHUNK) {
    inflight += CHUNK;
    client.send(chunk, { binary: true }, () => {
      inflight -= CHUNK;
      if (inflight < 1024 * 1024) wake?.();
    });
    if (inflight >= 1024 * 1024) await new Promise<void>((r) => (wake = r));
  }
  await done;
  const mbps = received / 1e6 / ((performance.now() - t0) / 1000);
  server.removeAllListeners("message");
  // Raw ws round trips, 64 bytes.
  server.on("message", (d: Uint8Array) => server.send(d, { binary: true }));
  const samples: number[] = [];
  const msg = new Uint8Array(64);
  for (let i = 0; i < RTT_ROUNDS; i++) {
    const t = performance.now();
    const back = new Promise<void>((r) => client.once("message", () => r()));
    client.send(msg, { binary: true });
    await back;
    samples.push((performance.now() - t) * 1000);
  }
  samples.sort((x, y) => x - y);
  client.terminate();
  server.terminate();
  await new Promise<void>((r) => wss.close(() => r()));
  return [
    round(mbps),
    [
      round(samples[Math.floor(samples.length * 0.5)]),
      round(samples[Math.floor(samples.length * 0.99)]),
    ],
  ];
}

/**
 * Run the Konnectivity benchmarks. `bytes` is the size of each bulk transfer.
 *
 * @example
 * ```ts ignore
 * import { benchKonnectivity } from "./konnectivity.ts";
 * console.table(await benchKonnectivity({ bytes: 64 * 1024 * 1024 }));
 * ```
 */
export async function benchKonnectivity(opts: { bytes: number }): Promise<Row[]> {
  const bytes = opts.bytes;
  const rows = await codecRows();

  // In-memory: one tunneled connection vs the plain memory channel pair.
  const mp = memorySessionPair();
  const [ma, mb] = await tunnel(mp, "bench:1");
  const sessionMem = await transfer(ma, mb, bytes);
  const plain = memoryPair();
  const plainMem = await transfer(plain.a, plain.b, bytes);
  const [ra, rb] = await tunnel(mp, "bench:2");
  const [sp50, sp99] = await rtt(ra, rb);
  const plain2 = memoryPair();
  const [pp50, pp99] = await rtt(plain2.a, plain2.b);
  await mp.close();
  rows.push({
    name: "konnectivity session over in-memory pipe: one connection, 64 KiB writes (MB/s); 64 B RTT",
    baseline: "memoryPair() channel (no session)",
    mbps: round(sessionMem),
    baselineMbps: round(plainMem),
    p50Us: sp50,
    p99Us: sp99,
    baselineP50Us: pp50,
    baselineP99Us: pp99,
  });

  // ws on 127.0.0.1: tunneled connection vs raw ws messages.
  const h = await WsHarness.start();
  try {
    const wp = await h.pair();
    const [wa, wb] = await tunnel(wp, "bench:3");
    const sessionWs = await transfer(wa, wb, bytes);
    const [xa, xb] = await tunnel(wp, "bench:4");
    const [wp50, wp99] = await rtt(xa, xb);
    await wp.close();
    const [rawMbps, [rp50, rp99]] = await rawWsThroughput(bytes);
    rows.push({
      name: "konnectivity session over ws on 127.0.0.1: one connection (MB/s); 64 B RTT",
      baseline: "raw ws binary messages, 64 KiB, send-callback backpressure",
      mbps: round(sessionWs),
      baselineMbps: rawMbps,
      p50Us: wp50,
      p99Us: wp99,
      baselineP50Us: rp50,
      baselineP99Us: rp99,
    });
  } finally {
    await h.close();
  }
  return rows;
}
