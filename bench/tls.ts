/**
 * TLS Channel vs raw `node:tls`, same cipher (TLS 1.3 AES-128-GCM), same run:
 * bulk throughput one way, and 64-byte ping-pong RTT.
 *
 * @module
 */

import type * as net from "node:net";
import * as tls from "node:tls";
import type { Channel } from "../src/channel/types.ts";
import { listenTls, TlsDialer } from "../src/tls/mod.ts";
import { makeTestPki } from "../tests/_harness/tls_certs.ts";
import { channelRttTimes } from "./measure.ts";

/** One bench row. */
export interface Row {
  name: string;
  baseline: string;
  mbps?: number;
  baselineMbps?: number;
  p50Us?: number;
  p99Us?: number;
  baselineP50Us?: number;
  baselineP99Us?: number;
}

const CIPHER = "TLS_AES_128_GCM_SHA256";
const CHUNK = 64 * 1024;

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}

async function channelPair(
  pki: ReturnType<typeof makeTestPki>,
): Promise<{ a: Channel; b: Channel; close(): Promise<void> }> {
  const l = await listenTls(
    { port: 0 },
    {
      credentials: { ca: pki.ca.cert, cert: pki.server.cert, key: pki.server.key },
      ciphers: CIPHER,
    },
  );
  const port = Number(l.addr.slice(l.addr.lastIndexOf(":") + 1));
  const d = new TlsDialer({
    credentials: { ca: pki.ca.cert, cert: pki.client.cert, key: pki.client.key },
    ciphers: CIPHER,
  });
  const [a, r] = await Promise.all([
    d.dial({ host: "127.0.0.1", port, name: "localhost" }),
    l[Symbol.asyncIterator]().next(),
  ]);
  return { a, b: r.value as Channel, close: () => l.close() };
}

async function rawPair(
  pki: ReturnType<typeof makeTestPki>,
): Promise<{ a: tls.TLSSocket; b: tls.TLSSocket; close(): void }> {
  let accept!: (s: tls.TLSSocket) => void;
  const got = new Promise<tls.TLSSocket>((r) => {
    accept = r;
  });
  const server = tls.createServer(
    {
      cert: pki.server.cert,
      key: pki.server.key,
      ca: pki.ca.cert,
      requestCert: true,
      rejectUnauthorized: true,
      minVersion: "TLSv1.3",
      ciphers: CIPHER,
    },
    (s) => {
      s.setNoDelay(true);
      accept(s);
    },
  );
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as net.AddressInfo).port;
  const a = tls.connect({
    host: "127.0.0.1",
    port,
    ca: pki.ca.cert,
    cert: pki.client.cert,
    key: pki.client.key,
    servername: "localhost",
    minVersion: "TLSv1.3",
    ciphers: CIPHER,
  });
  await new Promise<void>((r, j) => {
    a.once("secureConnect", () => r());
    a.once("error", j);
  });
  a.setNoDelay(true);
  const b = await got;
  return { a, b, close: () => server.close() };
}

async function channelBulk(pki: ReturnType<typeof makeTestPki>, bytes: number): Promise<number> {
  const { a, b, close } = await channelPair(pki);
  const chunk = new Uint8Array(CHUNK).fill(7);
  const t0 = performance.now();
  const reading = (async () => {
    const r = b.readable.getReader();
    let n = 0;
    for (;;) {
      const x = await r.read();
      if (x.done) return n;
      n += x.value.byteLength;
    }
  })();
  const w = a.writable.getWriter();
  for (let sent = 0; sent < bytes; sent += CHUNK) {
    await w.ready;
    void w.write(chunk);
  }
  await w.close();
  const n = await reading;
  const secs = (performance.now() - t0) / 1000;
  b.abort();
  a.abort();
  await close();
  return n / secs / 1e6;
}

async function rawBulk(pki: ReturnType<typeof makeTestPki>, bytes: number): Promise<number> {
  const { a, b, close } = await rawPair(pki);
  const chunk = new Uint8Array(CHUNK).fill(7);
  const t0 = performance.now();
  const reading = new Promise<number>((resolve) => {
    let n = 0;
    b.on("data", (d: Uint8Array) => {
      n += d.byteLength;
    });
    b.on("end", () => resolve(n));
  });
  for (let sent = 0; sent < bytes; sent += CHUNK) {
    if (!a.write(chunk)) await new Promise((r) => a.once("drain", r));
  }
  a.end();
  const n = await reading;
  const secs = (performance.now() - t0) / 1000;
  a.destroy();
  b.destroy();
  close();
  return n / secs / 1e6;
}

async function channelRtt(pki: ReturnType<typeof makeTestPki>, samples: number): Promise<number[]> {
  const { a, b, close } = await channelPair(pki);
  const echo = (async () => {
    const r = b.readable.getReader();
    const w = b.writable.getWriter();
    for (;;) {
      const x = await r.read().catch(() => ({ done: true as const, value: undefined }));
      if (x.done) return;
      await w.write(x.value).catch(() => {});
    }
  })();
  const out = await channelRttTimes(a, samples);
  a.abort();
  b.abort();
  await echo;
  await close();
  return out.sort((x, y) => x - y);
}

async function rawRtt(pki: ReturnType<typeof makeTestPki>, samples: number): Promise<number[]> {
  const { a, b, close } = await rawPair(pki);
  b.on("data", (d: Uint8Array) => b.write(d));
  b.on("error", () => {});
  a.on("error", () => {});
  const msg = new Uint8Array(64).fill(1);
  const out: number[] = [];
  let got = 0;
  let wake: (() => void) | undefined;
  a.on("data", (d: Uint8Array) => {
    got += d.byteLength;
    if (got >= 64) wake?.();
  });
  for (let i = 0; i < samples; i++) {
    got = 0;
    const t0 = performance.now();
    const done = new Promise<void>((r) => {
      wake = r;
    });
    a.write(msg);
    await done;
    out.push((performance.now() - t0) * 1000);
  }
  a.destroy();
  b.destroy();
  close();
  return out.sort((x, y) => x - y);
}

/** Rounds each measurement is split into, alternating raw and Channel, so load changes on a shared machine hit both alike. */
const ROUNDS = 4;

/** Run the TLS rows: throughput of `bytes` one way, and `rttSamples` 64-byte round trips. */
export async function benchTls(opts: { bytes: number; rttSamples: number }): Promise<Row[]> {
  const pki = makeTestPki();
  try {
    // Warm up both paths once (JIT, first handshake).
    await rawBulk(pki, 4 * CHUNK);
    await channelBulk(pki, 4 * CHUNK);
    const per = Math.max(CHUNK, Math.ceil(opts.bytes / ROUNDS / CHUNK) * CHUNK);
    const perRtt = Math.max(1, Math.ceil(opts.rttSamples / ROUNDS));
    let rawSecs = 0;
    let chSecs = 0;
    const rawR: number[] = [];
    const chR: number[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      rawSecs += per / 1e6 / (await rawBulk(pki, per));
      chSecs += per / 1e6 / (await channelBulk(pki, per));
      rawR.push(...(await rawRtt(pki, perRtt)));
      chR.push(...(await channelRtt(pki, perRtt)));
    }
    rawR.sort((x, y) => x - y);
    chR.sort((x, y) => x - y);
    const total = per * ROUNDS;
    return [
      {
        name: `tls channel bulk ${total} B one way (${CIPHER})`,
        baseline: "raw node:tls",
        mbps: total / chSecs / 1e6,
        baselineMbps: total / rawSecs / 1e6,
      },
      {
        name: "tls channel 64 B ping-pong RTT",
        baseline: "raw node:tls",
        p50Us: pct(chR, 0.5),
        p99Us: pct(chR, 0.99),
        baselineP50Us: pct(rawR, 0.5),
        baselineP99Us: pct(rawR, 0.99),
      },
    ];
  } finally {
    pki.cleanup();
  }
}
