/**
 * The Konnectivity row's extra figures, all through `open()` of a path and the target
 * protocol (bench/target.ts):
 * - "64 streams": 64 concurrent downloads over one measuring window; aggregate MB/s,
 *   and fairness = min/max of the per-stream byte counts.
 * - "head-of-line": N downloads, one of which never reads; the others' throughput as
 *   a share of the same run without the stalled reader (1.0 = no head-of-line blocking).
 * - "1,000 tunnels": that many concurrent echo connections, each proved with one byte;
 *   time to open all, resident memory of the bench process and of the agent, then
 *   every one closed gracefully.
 *
 * Every wait is bounded in time.
 *
 * @module
 */
import { readExactly } from "../measure.ts";
import { TargetMode, targetHeader } from "../target.ts";
import type { Conn, ExtraFigure } from "../types.ts";
import { rssMb } from "./konnectivity_procs.ts";

/** A download that never ends by itself (the client tears it down). */
const ENDLESS = 2 ** 50;

function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not done within ${ms} ms`)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

const pause = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Per-stream bytes received in one window of `windowMs`, with `stalled` extra streams that never read. */
async function downloadWindow(
  open: () => Promise<Conn>,
  active: number,
  stalled: number,
  windowMs: number,
): Promise<{ bytes: number[]; seconds: number }> {
  const conns = await within(
    Promise.all(Array.from({ length: active + stalled }, () => open())),
    30_000,
    `opening ${active + stalled} streams`,
  );
  const counts = new Array<number>(active).fill(0);
  let measuring = false;
  const firsts: Promise<void>[] = [];
  const loops: Promise<void>[] = [];
  try {
    for (const c of conns) await c.write(targetHeader(TargetMode.download, ENDLESS));
    for (let i = 0; i < active; i++) {
      let first!: () => void;
      firsts.push(new Promise<void>((r) => (first = r)));
      loops.push(
        (async () => {
          for (;;) {
            const chunk = await conns[i].read();
            if (chunk === null) throw new Error(`stream ${i} ended early`);
            first();
            if (measuring) counts[i] += chunk.byteLength;
          }
        })(),
      );
    }
    const failed = Promise.race(loops).then(() => {}); // a loop only settles by failing
    await within(Promise.race([Promise.all(firsts), failed]), 30_000, "first bytes");
    await pause(Math.min(500, windowMs / 4)); // windows open, stalled streams fill theirs
    measuring = true;
    const t0 = performance.now();
    await Promise.race([pause(windowMs), failed]);
    const snapshot = [...counts];
    const seconds = (performance.now() - t0) / 1000;
    return { bytes: snapshot, seconds };
  } finally {
    measuring = false;
    for (const c of conns) c.destroy();
    await Promise.allSettled(loops);
  }
}

/** "64 streams": aggregate MB/s and fairness (min/max share). */
export async function manyStreams(
  open: () => Promise<Conn>,
  streams: number,
  windowMs: number,
): Promise<Record<string, ExtraFigure>> {
  const { bytes, seconds } = await downloadWindow(open, streams, 0, windowMs);
  const perStream = bytes.map((b) => b / 1e6 / seconds);
  const total = perStream.reduce((a, b) => a + b, 0);
  const max = Math.max(...perStream);
  return {
    [`${streams} streams`]: {
      value: total,
      unit: "MB/s",
      higherIsBetter: true,
      detail: { seconds, perStreamMBps: perStream.map((v) => Math.round(v * 100) / 100) },
    },
    [`${streams} streams fairness`]: {
      value: max > 0 ? Math.min(...perStream) / max : 0,
      unit: "share",
      higherIsBetter: true,
      detail: { what: "slowest stream / fastest stream, bytes in the same window" },
    },
  };
}

/**
 * "head-of-line": the readers' MB/s with one stalled reader, as a share of without.
 * `rounds` pairs of windows, in alternating order (without/with, then with/without ...)
 * so drift on a busy machine cancels; the share is of the summed throughputs.
 */
export async function headOfLine(
  open: () => Promise<Conn>,
  streams: number,
  windowMs: number,
  rounds: number,
): Promise<Record<string, ExtraFigure>> {
  const readers = streams - 1;
  const mbps = (r: { bytes: number[]; seconds: number }): number =>
    r.bytes.reduce((a, b) => a + b, 0) / 1e6 / r.seconds;
  const without: number[] = [];
  const withStalled: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const order = i % 2 === 0 ? [0, 1] : [1, 0];
    for (const stalled of order) {
      const v = mbps(await downloadWindow(open, readers, stalled, windowMs));
      (stalled ? withStalled : without).push(Math.round(v * 10) / 10);
    }
  }
  const sum = (a: number[]): number => a.reduce((x, y) => x + y, 0);
  return {
    "head-of-line": {
      value: sum(without) > 0 ? sum(withStalled) / sum(without) : 0,
      unit: "share",
      higherIsBetter: true,
      detail: {
        streams,
        stalled: 1,
        readersMBpsWithout: without,
        readersMBpsWithStalled: withStalled,
      },
    },
  };
}

/**
 * "1,000 tunnels": open `count` echo connections (at most `inFlight` dials at once), each
 * sending and getting back one byte; RSS with all open; then close them all gracefully.
 */
export async function manyTunnels(
  open: () => Promise<Conn>,
  count: number,
  agentPid: number,
  inFlight: number,
): Promise<Record<string, ExtraFigure>> {
  const before = { server: rssMb("self"), agent: rssMb(agentPid) };
  const conns: Conn[] = [];
  const header = targetHeader(TargetMode.echo, 0);
  let next = 0;
  const t0 = performance.now();
  try {
    const worker = async (): Promise<void> => {
      while (next < count) {
        next++;
        const c = await open();
        conns.push(c);
        await c.write(header);
        await c.write(new Uint8Array([0x31]));
        await readExactly(c, 1, "tunnel echo");
      }
    };
    await within(
      Promise.all(Array.from({ length: Math.min(inFlight, count) }, worker)),
      60_000,
      `opening ${count} tunnels`,
    );
    const openMs = performance.now() - t0;
    const after = { server: rssMb("self"), agent: rssMb(agentPid) };
    const t1 = performance.now();
    await within(
      Promise.all(
        conns.map(async (c) => {
          await c.end();
          while ((await c.read()) !== null) {
            // drain to the target's end-of-stream
          }
        }),
      ),
      60_000,
      `closing ${count} tunnels`,
    );
    const closeMs = performance.now() - t1;
    const label = `${count.toLocaleString("en-US")} tunnels`;
    return {
      [`${label}: open all`]: {
        value: openMs,
        unit: "ms",
        higherIsBetter: false,
        detail: { count, dialsInFlight: inFlight, closeAllMs: Math.round(closeMs) },
      },
      [`${label}: server RSS`]: {
        value: after.server,
        unit: "MB",
        higherIsBetter: false,
        detail: {
          what: "VmRSS of the bench process (server, the target and the callers) with all open",
          beforeMB: before.server,
        },
      },
      [`${label}: agent RSS`]: {
        value: after.agent,
        unit: "MB",
        higherIsBetter: false,
        detail: { what: "VmRSS of the agent process with all open", beforeMB: before.agent },
      },
    };
  } finally {
    for (const c of conns) c.destroy();
  }
}
