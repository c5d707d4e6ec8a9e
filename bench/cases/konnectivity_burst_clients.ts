/**
 * The clients of a CONNECT burst, in a process of their own (10,000 client sockets
 * and the server's or the target's would not fit under one process's file limit):
 * `N` HTTP CONNECTs sent at once on a Unix socket, each to the echo target (the target
 * protocol's echo mode, bench/target.ts), each sending its bytes and checking every
 * one comes back. Prints one line `burst {json}` ({@link BurstOutcome}) and exits.
 *
 * Usage: `konnectivity_burst_clients.ts <socket path> <host:port> <N>`
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { connect } from "node:net";
import process from "node:process";
import { peakRssMb } from "../procs.ts";
import { TargetMode, targetHeader } from "../target.ts";

/** A client with no outcome by then counts as lost ("timeout"). */
const CLIENT_TIMEOUT_MS = 120_000;
/** Clients of the warm-up burst (not counted). */
const WARM_UP_CLIENTS = 50;

/** How one client ended. */
export interface ClientOutcome {
  /** "ok", "refused" (503 with Retry-After) or what was lost ("status 502", "mismatch", ...). */
  readonly kind: string;
  /** Since the burst started: response head (or failure), ms. */
  readonly headMs: number;
  /** Since the burst started: done, ms. */
  readonly doneMs: number;
}

/** The whole burst as the parent reads it. */
export interface BurstOutcome {
  readonly clients: number;
  readonly bytesPerClient: [number, number];
  readonly byKind: Record<string, number>;
  readonly openAllMs: number;
  readonly finishAllMs: number;
  readonly doneP50Ms?: number;
  readonly doneP99Ms?: number;
  /** Time to issue every connect(), ms. */
  readonly issueMs: number;
  /** This process's peak RSS (VmHWM), MB. */
  readonly peakRssMb?: number;
}

/** Client `i`'s bytes (after the 9-byte echo header). */
export function payloadSize(i: number): number {
  return 4096 + (i % 4) * 1024;
}

function payload(i: number): Buffer {
  const b = Buffer.allocUnsafe(payloadSize(i));
  let x = (i * 2654435761) >>> 0;
  for (let k = 0; k < b.length; k++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[k] = x >>> 24;
  }
  return b;
}

/** One CONNECT client on `sock` to `target`; never rejects. */
function client(sock: string, target: string, i: number, t0: number): Promise<ClientOutcome> {
  const data = payload(i);
  return new Promise((resolve) => {
    const s = connect(sock);
    let connected = false;
    let head: string | undefined;
    let headMs = 0;
    let buf: Buffer = Buffer.alloc(0);
    const got: Buffer[] = [];
    let n = 0;
    let settled = false;
    const finish = (kind: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      const now = performance.now() - t0;
      s.destroy();
      resolve({ kind, headMs: head === undefined ? now : headMs, doneMs: now });
    };
    const timer = setTimeout(() => finish("timeout"), CLIENT_TIMEOUT_MS);
    s.on("connect", () => {
      connected = true;
      s.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`);
    });
    s.on("data", (b: Buffer) => {
      if (head === undefined) {
        buf = buf.length === 0 ? b : Buffer.concat([buf, b]);
        const end = buf.indexOf("\r\n\r\n");
        if (end < 0) return;
        head = buf.subarray(0, end).toString("latin1");
        headMs = performance.now() - t0;
        const status = Number(head.split(" ")[1]);
        if (status !== 200) {
          const retry = /\r\nRetry-After: *\d+/i.test(head);
          finish(status === 503 && retry ? "refused" : `status ${status}`);
          return;
        }
        s.write(Buffer.concat([targetHeader(TargetMode.echo, data.length), data]));
        b = buf.subarray(end + 4);
      }
      if (b.length > 0) {
        got.push(b);
        n += b.length;
      }
      if (n > data.length) finish("too many bytes");
      else if (n === data.length) finish(Buffer.concat(got).equals(data) ? "ok" : "mismatch");
    });
    s.on("error", (e: NodeJS.ErrnoException) => {
      if (!connected) finish(`connect ${e.code ?? e.message}`);
      else finish(head === undefined ? "reset before response" : "reset after 200");
    });
    s.on("close", () => {
      finish(
        head === undefined ? "closed before response" : `closed after ${n} of ${data.length} bytes`,
      );
    });
  });
}

function percentile(sorted: readonly number[], p: number): number | undefined {
  if (sorted.length === 0) return undefined;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

/** `n` clients at once; their outcome. */
export async function burst(sock: string, target: string, n: number): Promise<BurstOutcome> {
  const t0 = performance.now();
  const all: Promise<ClientOutcome>[] = [];
  for (let i = 0; i < n; i++) all.push(client(sock, target, i, t0));
  const issueMs = performance.now() - t0;
  const outcomes = await Promise.all(all);
  const byKind: Record<string, number> = {};
  for (const o of outcomes) byKind[o.kind] = (byKind[o.kind] ?? 0) + 1;
  const done = outcomes
    .filter((o) => o.kind === "ok")
    .map((o) => o.doneMs)
    .sort((a, b) => a - b);
  const sizes = Array.from({ length: Math.min(n, 4) }, (_, i) => payloadSize(i));
  return {
    clients: n,
    bytesPerClient: [Math.min(...sizes), Math.max(...sizes)],
    byKind,
    openAllMs: Math.max(0, ...outcomes.map((o) => o.headMs)),
    finishAllMs: Math.max(0, ...outcomes.map((o) => o.doneMs)),
    doneP50Ms: percentile(done, 50),
    doneP99Ms: percentile(done, 99),
    issueMs,
    peakRssMb: peakRssMb("self"),
  };
}

function args(): string[] {
  const d = (globalThis as { Deno?: { args: string[] } }).Deno;
  return d ? d.args : process.argv.slice(2);
}

if (import.meta.main || process.argv[1]?.endsWith("konnectivity_burst_clients.ts")) {
  const [sock, target, count] = args();
  const n = Number(count);
  if (!sock || !target || !Number.isInteger(n) || n < 1) {
    process.stderr.write("usage: konnectivity_burst_clients.ts <socket> <host:port> <N>\n");
    process.exit(2);
  }
  // Warm-up (JIT on both ends), not counted.
  const warm = await burst(sock, target, Math.min(WARM_UP_CLIENTS, n));
  process.stderr.write(`warm-up: ${JSON.stringify(warm.byKind)}\n`);
  await new Promise((r) => setTimeout(r, 300));
  process.stdout.write(`burst ${JSON.stringify(await burst(sock, target, n))}\n`);
  process.exit(0);
}
