/**
 * TCP Channel vs raw node:net (and vs Deno.connect under Deno), same process,
 * same run: 256 MiB bulk one way, 64-byte ping-pong p50/p99.
 */
import * as net from "node:net";
import { type Channel, listenTcp, TcpDialer } from "../mod.ts";
import { CHUNK, channelBulk, channelEcho, channelRtt } from "./measure.ts";
import { median, percentile, type Row } from "./report.ts";

async function channelPair(): Promise<{ a: Channel; b: Channel; done: () => Promise<void> }> {
  const l = await listenTcp({ host: "127.0.0.1", port: 0 });
  const port = Number(l.addr.split(":")[1]);
  const it = l[Symbol.asyncIterator]();
  const [a, acc] = await Promise.all([
    new TcpDialer().dial({ host: "127.0.0.1", port }),
    it.next(),
  ]);
  return { a, b: acc.value as Channel, done: () => l.close() };
}

async function rawPair(): Promise<{ a: net.Socket; b: net.Socket; done: () => Promise<void> }> {
  let resolveB!: (s: net.Socket) => void;
  const bP = new Promise<net.Socket>((r) => (resolveB = r));
  const server = net.createServer((s) => resolveB(s));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const port = (server.address() as net.AddressInfo).port;
  const a = net.connect({ host: "127.0.0.1", port });
  await new Promise<void>((r) => a.once("connect", () => r()));
  a.setNoDelay(true);
  const b = await bP;
  b.setNoDelay(true);
  return { a, b, done: () => new Promise<void>((r) => server.close(() => r())) };
}

async function rawBulk(bytes: number): Promise<number> {
  const { a, b, done } = await rawPair();
  const chunk = new Uint8Array(CHUNK).fill(0x61);
  const t0 = performance.now();
  const received = new Promise<void>((resolve) => {
    let n = 0;
    b.on("data", (d: Buffer) => {
      n += d.length;
      if (n >= bytes) resolve();
    });
  });
  let sent = 0;
  const pump = () => {
    while (sent < bytes) {
      sent += CHUNK;
      if (!a.write(chunk)) {
        a.once("drain", pump);
        return;
      }
    }
  };
  pump();
  await received;
  const ms = performance.now() - t0;
  a.destroy();
  b.destroy();
  await done();
  return bytes / 1e6 / (ms / 1000);
}

async function rawRtt(samples: number, warmup = 200): Promise<{ p50: number; p99: number }> {
  const { a, b, done } = await rawPair();
  b.on("data", (d) => b.write(d));
  const msg = new Uint8Array(64).fill(0x62);
  const times: number[] = [];
  let want = 0;
  let wake: (() => void) | undefined;
  a.on("data", (d: Buffer) => {
    want -= d.length;
    if (want <= 0) wake?.();
  });
  for (let i = 0; i < samples + warmup; i++) {
    const t0 = performance.now();
    want = 64;
    const p = new Promise<void>((r) => (wake = r));
    a.write(msg);
    await p;
    if (i >= warmup) times.push((performance.now() - t0) * 1000);
  }
  a.destroy();
  b.destroy();
  await done();
  times.sort((x, y) => x - y);
  return { p50: percentile(times, 50), p99: percentile(times, 99) };
}

async function chanBulk(bytes: number): Promise<number> {
  const { a, b, done } = await channelPair();
  const mbps = await channelBulk(a, b, bytes);
  await b.close();
  await a.close();
  await done();
  return mbps;
}

async function chanRtt(samples: number): Promise<{ p50: number; p99: number }> {
  const { a, b, done } = await channelPair();
  const echo = channelEcho(b);
  const r = await channelRtt(a, samples);
  await a.closeWrite();
  await echo;
  await a.close();
  await done();
  return r;
}

// ---- Deno.connect baseline (only under Deno) ---------------------------------

interface DenoConnLike {
  read(p: Uint8Array): Promise<number | null>;
  write(p: Uint8Array): Promise<number>;
  close(): void;
  setNoDelay(v: boolean): void;
}
interface DenoLike {
  listen(o: { hostname: string; port: number }): {
    addr: { port: number };
    accept(): Promise<DenoConnLike>;
    close(): void;
  };
  connect(o: { hostname: string; port: number }): Promise<DenoConnLike>;
}
const Deno_ = (globalThis as { Deno?: DenoLike }).Deno;

async function denoPair() {
  const D = Deno_ as DenoLike;
  const l = D.listen({ hostname: "127.0.0.1", port: 0 });
  const [a, b] = await Promise.all([
    D.connect({ hostname: "127.0.0.1", port: l.addr.port }),
    l.accept(),
  ]);
  a.setNoDelay(true);
  b.setNoDelay(true);
  return { a, b, done: () => l.close() };
}

async function denoBulk(bytes: number): Promise<number> {
  const { a, b, done } = await denoPair();
  const chunk = new Uint8Array(CHUNK).fill(0x61);
  const t0 = performance.now();
  const reading = (async () => {
    const buf = new Uint8Array(256 * 1024);
    let n = 0;
    while (n < bytes) {
      const r = await b.read(buf);
      if (r === null) break;
      n += r;
    }
  })();
  for (let sent = 0; sent < bytes; sent += CHUNK) {
    let off = 0;
    while (off < CHUNK) off += await a.write(chunk.subarray(off));
  }
  await reading;
  const ms = performance.now() - t0;
  a.close();
  b.close();
  done();
  return bytes / 1e6 / (ms / 1000);
}

async function denoRtt(samples: number, warmup = 200): Promise<{ p50: number; p99: number }> {
  const { a, b, done } = await denoPair();
  const echo = (async () => {
    const buf = new Uint8Array(4096);
    for (;;) {
      const n = await b.read(buf).catch(() => null);
      if (n === null) return;
      await b.write(buf.subarray(0, n));
    }
  })();
  const msg = new Uint8Array(64).fill(0x62);
  const buf = new Uint8Array(4096);
  const times: number[] = [];
  for (let i = 0; i < samples + warmup; i++) {
    const t0 = performance.now();
    await a.write(msg);
    let got = 0;
    while (got < 64) {
      const n = await a.read(buf);
      if (n === null) throw new Error("ended");
      got += n;
    }
    if (i >= warmup) times.push((performance.now() - t0) * 1000);
  }
  a.close();
  await echo;
  b.close();
  done();
  times.sort((x, y) => x - y);
  return { p50: percentile(times, 50), p99: percentile(times, 99) };
}

/** Run the TCP rows. `rounds` alternating runs per side; medians reported. */
export async function benchTcp(opts: {
  bytes: number;
  rttSamples: number;
  rounds: number;
}): Promise<Row[]> {
  const ch: number[] = [];
  const raw: number[] = [];
  const dn: number[] = [];
  // Warm-up (not counted): JIT and socket buffers for both sides.
  await rawBulk(Math.min(opts.bytes, 64 * 1024 * 1024));
  await chanBulk(Math.min(opts.bytes, 64 * 1024 * 1024));
  for (let i = 0; i < opts.rounds; i++) {
    raw.push(await rawBulk(opts.bytes));
    ch.push(await chanBulk(opts.bytes));
    if (Deno_) dn.push(await denoBulk(opts.bytes));
  }
  const rawR = await rawRtt(opts.rttSamples);
  const chR = await chanRtt(opts.rttSamples);
  const rows: Row[] = [
    {
      name: "TCP Channel",
      baseline: "node:net",
      mbps: median(ch),
      baselineMbps: median(raw),
      p50Us: chR.p50,
      p99Us: chR.p99,
      baselineP50Us: rawR.p50,
      baselineP99Us: rawR.p99,
    },
  ];
  if (Deno_) {
    const dR = await denoRtt(opts.rttSamples);
    rows.push({
      name: "TCP Channel",
      baseline: "Deno.connect",
      mbps: median(ch),
      baselineMbps: median(dn),
      p50Us: chR.p50,
      p99Us: chR.p99,
      baselineP50Us: dR.p50,
      baselineP99Us: dR.p99,
    });
  }
  return rows;
}
