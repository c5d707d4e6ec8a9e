/**
 * Run one bench case in this process and print its {@link CaseResult} as the last
 * stdout line (`RESULT {...}`). `main.ts` starts one of these per case, so every
 * case has a fresh process: its peak RSS and CPU are its own.
 *
 * Usage: `run_case.ts <case id> <settings JSON>`
 *
 * @module
 */
import process from "node:process";
import { allCases } from "./cases/mod.ts";
import {
  measureDownload,
  measureRtt,
  measureSetup,
  measureUpload,
  median,
  percentile,
} from "./measure.ts";
import { cpuSeconds, peakRss } from "./procs.ts";
import type { CaseResult, RawSamples, Samples } from "./results.ts";
import type { BenchSettings, CaseContext, LoadCase } from "./types.ts";

const runtime: "node" | "deno" = "Deno" in globalThis ? "deno" : "node";

function args(): string[] {
  const d = (globalThis as { Deno?: { args: string[] } }).Deno;
  return d ? d.args : process.argv.slice(2);
}

/**
 * Shortest time one throughput figure is measured over: a fast path moves the
 * configured bytes in well under it (200 MB at 1.5 GB/s is 0.13 s), and so short a
 * window is mostly scheduling noise on a shared machine.
 */
const MIN_TRANSFER_MS = 500;
/** Bound on the transfers one figure may add up. */
const MAX_TRANSFERS = 20;

/** Repeat a transfer of `bytes` until together they took MIN_TRANSFER_MS; MB/s overall. */
async function atLeast(
  transfer: (bytes: number) => Promise<number>,
  bytes: number,
): Promise<{ mbps: number; bytes: number }> {
  let seconds = 0;
  let moved = 0;
  for (let i = 0; i < MAX_TRANSFERS && (i === 0 || seconds * 1000 < MIN_TRANSFER_MS); i++) {
    const mbps = await transfer(bytes);
    seconds += bytes / 1e6 / mbps;
    moved += bytes;
  }
  return { mbps: moved / 1e6 / seconds, bytes: moved };
}

/** Run case `id`; never throws (a failure is a result). */
export async function runCase(id: string, settings: BenchSettings): Promise<CaseResult> {
  const t0 = performance.now();
  const c = allCases.find((x) => x.id === id);
  const seconds = (): number => (performance.now() - t0) / 1000;
  if (!c)
    return { id, group: "?", label: id, status: "failed", reason: "no such case", seconds: 0 };
  const base = {
    id: c.id,
    group: c.group,
    label: c.label,
    peer: c.peer,
    alsoVs: c.alsoVs,
    ...(c.kind === "load" ? { kind: "load" as const } : {}),
  };
  const skip = await c.skipReason?.();
  if (skip) return { ...base, status: "skipped", reason: skip, seconds: seconds() };
  const ctx: CaseContext = {
    settings,
    runtime,
    log: (m) => process.stderr.write(`    ${m}\n`),
  };
  if (c.kind === "load") return runLoad(c, ctx, base, seconds);
  let path: Awaited<ReturnType<typeof c.start>>;
  try {
    path = await c.start(ctx);
  } catch (err) {
    return { ...base, status: "failed", reason: `start: ${String(err)}`, seconds: seconds() };
  }
  const startMs = performance.now() - t0;
  const samples: Samples = {
    uploadMBps: [],
    downloadMBps: [],
    rttP50Us: [],
    rttP99Us: [],
    setupMs: [],
    setupP99Ms: [],
    cpuSPerGB: [],
  };
  const raw: RawSamples = { rttUs: [], setupMs: [] };
  try {
    const procs = path.processes?.() ?? [];
    // Warm-up, not counted: JIT, TLS session caches, window growth.
    const warm = Math.min(settings.bytes, 4_000_000);
    await measureUpload(path, warm);
    await measureDownload(path, warm);
    await measureRtt(path, 20, 10);
    for (let i = 0; i < settings.repeat; i++) {
      const cpu0 = cpuSeconds(procs);
      const up = await atLeast((n) => measureUpload(path, n), settings.bytes);
      const down = await atLeast((n) => measureDownload(path, n), settings.bytes);
      samples.uploadMBps.push(up.mbps);
      samples.downloadMBps.push(down.mbps);
      const cpu1 = cpuSeconds(procs);
      if (cpu0 !== undefined && cpu1 !== undefined) {
        samples.cpuSPerGB.push((cpu1 - cpu0) / ((up.bytes + down.bytes) / 1e9));
      }
      const rtt = await measureRtt(path, settings.rttSamples);
      samples.rttP50Us.push(median(rtt));
      samples.rttP99Us.push(percentile(rtt, 99));
      const setup = await measureSetup(path, settings.setupSamples);
      samples.setupMs.push(median(setup));
      samples.setupP99Ms?.push(percentile(setup, 99));
      raw.rttUs = rtt.map((x) => Math.round(x * 10) / 10);
      raw.setupMs = setup.map((x) => Math.round(x * 1000) / 1000);
      ctx.log(
        `repeat ${i + 1}/${settings.repeat}: up ${samples.uploadMBps[i].toFixed(0)} MB/s, down ${samples.downloadMBps[i].toFixed(0)} MB/s, p50 ${samples.rttP50Us[i].toFixed(0)} us`,
      );
    }
    const extras = path.extras && settings.extras !== false ? await path.extras(ctx) : undefined;
    const peakRssMb = peakRss(procs);
    return { ...base, status: "ok", startMs, samples, raw, peakRssMb, extras, seconds: seconds() };
  } catch (err) {
    const e = err as Error;
    return {
      ...base,
      status: "failed",
      reason: e?.stack ?? String(err),
      startMs,
      samples,
      seconds: seconds(),
    };
  } finally {
    await path.close().catch(() => {});
  }
}

/** A load case: its scenario, once; never throws. */
async function runLoad(
  c: LoadCase,
  ctx: CaseContext,
  base: Pick<CaseResult, "id" | "group" | "label" | "kind">,
  seconds: () => number,
): Promise<CaseResult> {
  try {
    const r = await c.run(ctx);
    return {
      ...base,
      status: "ok",
      load: r.figures,
      peakRssMb: r.peakRssMb,
      seconds: seconds(),
    };
  } catch (err) {
    const e = err as Error;
    return { ...base, status: "failed", reason: e?.stack ?? String(err), seconds: seconds() };
  }
}

if (import.meta.main || process.argv[1]?.endsWith("run_case.ts")) {
  const [id, json] = args();
  const settings = JSON.parse(json ?? "{}") as BenchSettings;
  const result = await runCase(id ?? "", settings);
  process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
  // Anything left open (a timer in a peer library) must not keep the case alive.
  process.exit(0);
}
