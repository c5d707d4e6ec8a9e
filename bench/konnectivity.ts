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
import { channelBulk, channelEcho, channelRtt } from "./measure.ts";
import { median, percentile, type Row } from "./report.ts";

export type { Row };

const CHUNK = 64 * 1024;
const TASK_TIME_MS = 400;

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

/** Bulk MB/s over a fresh pair from `pair()`, median of `rounds`. */
async function bulk(
  pair: () => Promise<[Channel, Channel]>,
  bytes: number,
  rounds: number,
): Promise<number> {
  const runs: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const [a, b] = await pair();
    runs.push(await channelBulk(a, b, bytes));
    await Promise.all([a.close(), b.close()]);
  }
  return median(runs);
}

/** 64-byte ping-pong p50/p99 (microseconds) over a fresh pair. */
async function rtt(
  pair: () => Promise<[Channel, Channel]>,
  samples: number,
): Promise<[number, number]> {
  const [a, b] = await pair();
  const echo = channelEcho(b);
  const r = await channelRtt(a, samples);
  await a.closeWrite();
  await echo;
  await Promise.all([a.close(), b.close()]);
  return [round(r.p50), round(r.p99)];
}

async function tunnel(p: SessionPair, address: string): Promise<[Channel, Channel]> {
  return Promise.all([p.server.dial(address), p.router.take(address)]);
}

/** Raw ws: send `bytes` in 64 KiB binary messages with send-callback backpressure; MB/s. */
async function rawWs(bytes: number, samples: number): Promise<[number, [number, number]]> {
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
  const times: number[] = [];
  const msg = new Uint8Array(64);
  for (let i = 0; i < samples + 200; i++) {
    const t = performance.now();
    const back = new Promise<void>((r) => client.once("message", () => r()));
    client.send(msg, { binary: true });
    await back;
    if (i >= 200) times.push((performance.now() - t) * 1000);
  }
  times.sort((x, y) => x - y);
  client.terminate();
  server.terminate();
  await new Promise<void>((r) => wss.close(() => r()));
  return [round(mbps), [round(percentile(times, 50)), round(percentile(times, 99))]];
}

/**
 * Run the Konnectivity benchmarks. `bytes` is the size of each bulk transfer;
 * `rttSamples` (default 2000) and `rounds` (default 1) follow bench/main.ts.
 *
 * @example
 * ```ts ignore
 * import { benchKonnectivity } from "./konnectivity.ts";
 * console.table(await benchKonnectivity({ bytes: 64 * 1024 * 1024 }));
 * ```
 */
export async function benchKonnectivity(opts: {
  bytes: number;
  rttSamples?: number;
  rounds?: number;
}): Promise<Row[]> {
  const { bytes } = opts;
  const samples = opts.rttSamples ?? 2000;
  const rounds = opts.rounds ?? 1;
  const rows = await codecRows();

  // In-memory: one tunneled connection vs the plain memory channel pair.
  const mp = memorySessionPair();
  let n = 0;
  const memTunnel = (): Promise<[Channel, Channel]> => tunnel(mp, `bench-${++n}:1`);
  const plain = async (): Promise<[Channel, Channel]> => {
    const p = memoryPair();
    return [p.a, p.b];
  };
  const sessionMem = await bulk(memTunnel, bytes, rounds);
  const plainMem = await bulk(plain, bytes, rounds);
  const [sp50, sp99] = await rtt(memTunnel, samples);
  const [pp50, pp99] = await rtt(plain, samples);
  await mp.close();
  rows.push({
    name: "konnectivity session over in-memory pipe: one connection, 64 KiB writes; 64 B RTT",
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
    const wsTunnel = (): Promise<[Channel, Channel]> => tunnel(wp, `bench-${++n}:1`);
    const sessionWs = await bulk(wsTunnel, bytes, rounds);
    const [wp50, wp99] = await rtt(wsTunnel, samples);
    await wp.close();
    const [rawMbps, [rp50, rp99]] = await rawWs(bytes, samples);
    rows.push({
      name: "konnectivity session over ws on 127.0.0.1: one connection; 64 B RTT",
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
