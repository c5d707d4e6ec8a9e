/**
 * The shape of a bench run's results (what `run_case.ts` prints and `main.ts`
 * collects), and the summaries every output is made from.
 *
 * @module
 */
import type { ExtraFigure } from "./types.ts";

/** The standard figures, one value per measured repeat. */
export interface Samples {
  /** Client -> target, MB/s (1 MB = 1e6 bytes). */
  uploadMBps: number[];
  /** Target -> client, MB/s. */
  downloadMBps: number[];
  /** 64-byte round trip p50, us. */
  rttP50Us: number[];
  /** 64-byte round trip p99, us. */
  rttP99Us: number[];
  /** Dial to first echoed byte, median of the repeat's connections, ms. */
  setupMs: number[];
  /** Dial to first echoed byte, p99 of the repeat's connections, ms (absent in older results). */
  setupP99Ms?: number[];
  /** CPU seconds (all processes of the path) per GB moved by the bulk transfers. */
  cpuSPerGB: number[];
}

/** Every raw sample of the last repeat, for the JSON. */
export interface RawSamples {
  /** Each round trip, us (rounded to 0.1). */
  rttUs: number[];
  /** Each connection setup, ms. */
  setupMs: number[];
}

/**
 * A burst: `clients` HTTP CONNECTs sent at once through one agent, each sending its
 * bytes and checking every one comes back. Every client ends in exactly one of
 * `ok`, `refused` or `lost`.
 */
export interface BurstFigures {
  readonly type: "burst";
  readonly clients: number;
  /** Bytes each client sent (and must get back): smallest, largest. */
  readonly bytesPerClient: readonly [number, number];
  /** 200, and every byte came back. */
  readonly ok: number;
  /** 503 with Retry-After: told to come back later. */
  readonly refused: number;
  /** Everything else: resets, other statuses, bytes missing or wrong, timeouts. */
  readonly lost: number;
  /** `lost` by cause ("reset before response", "status 502", "mismatch", "connect EAGAIN", ...). */
  readonly lostBy: Record<string, number>;
  /** Start of the burst until every client had its response (or failed), ms. */
  readonly openAllMs: number;
  /** Start of the burst until every client was done, ms. */
  readonly finishAllMs: number;
  /** Per-client time to done, p50 and p99 (ok clients only), ms. */
  readonly doneP50Ms?: number;
  readonly doneP99Ms?: number;
  /** Refusals the server's frontend logged (`connect refused (<status>)`), by status. */
  readonly frontendRefusedBy?: Record<string, number>;
  /** Warnings the processes printed (MaxListenersExceededWarning ...), each with its count. */
  readonly warnings?: Record<string, number>;
}

/**
 * A reconnect storm: `agents` authenticated agents registered with one server, the
 * server killed (SIGKILL) and started again on the same port; how long until every
 * agent is registered again, and what an idle agent costs the server.
 */
export interface StormFigures {
  readonly type: "storm";
  readonly agents: number;
  /** All agents started at once against a fresh server: until all registered, ms. */
  readonly coldStartMs: number;
  /** The restarted server listening until all registered again, ms (the row's figure). */
  readonly reregisterMs: number;
  /** The kill until all registered again (includes the server's start-up), ms. */
  readonly reregisterFromKillMs: number;
  /** Server RSS (VmRSS) before any agent, MB. */
  readonly serverRssIdleMb: number;
  /** Server RSS with every agent registered and idle, MB. */
  readonly serverRssAgentsMb: number;
  /** (serverRssAgentsMb - serverRssIdleMb) / agents, KiB. */
  readonly rssPerAgentKiB: number;
  /** Refusals the restarted server logged, by cause (as `server.refusals`: tls, backlog-full, handshake-failed, http-<status>). */
  readonly refusedBy: Record<string, number>;
  /** Total of `refusedBy`. */
  readonly refused: number;
  /** Refusals the first server logged during the cold start, by cause. */
  readonly coldRefusedBy: Record<string, number>;
  /** Agents' failed connection attempts after the restarted server was listening, by error code. */
  readonly agentErrors?: Record<string, number>;
  /** Warnings the processes printed (MaxListenersExceededWarning ...), each with its count. */
  readonly warnings?: Record<string, number>;
}

/** The figures of a load row. */
export type LoadFigures = BurstFigures | StormFigures;

/** One case's outcome. */
export interface CaseResult {
  readonly id: string;
  readonly group: string;
  readonly label: string;
  readonly peer?: string;
  readonly alsoVs?: readonly string[];
  readonly status: "ok" | "skipped" | "failed";
  /** Why it was skipped or how it failed. */
  readonly reason?: string;
  /** Time to start the path (servers, processes, connections), ms. */
  readonly startMs?: number;
  readonly samples?: Samples;
  readonly raw?: RawSamples;
  /** Peak RSS (VmHWM) by process, MB. */
  readonly peakRssMb?: Record<string, number>;
  readonly extras?: Record<string, ExtraFigure>;
  /** "load" for a load row (its figures in `load`, no `samples`); absent for a throughput row. */
  readonly kind?: "load";
  /** A load row's figures. */
  readonly load?: LoadFigures;
  /** Wall time of the whole case, s. */
  readonly seconds: number;
}

/** Median with the spread of the repeats. */
export interface Summary {
  readonly median: number;
  readonly min: number;
  readonly max: number;
  /** (max - min) / median > 0.25 */
  readonly noisy: boolean;
}

/** The figures a table shows, with whether bigger is better. */
export const FIGURES = [
  { key: "uploadMBps", title: "upload MB/s", higherIsBetter: true, digits: 0 },
  { key: "downloadMBps", title: "download MB/s", higherIsBetter: true, digits: 0 },
  { key: "rttP50Us", title: "RTT p50 us", higherIsBetter: false, digits: 0 },
  { key: "rttP99Us", title: "RTT p99 us", higherIsBetter: false, digits: 0 },
  { key: "setupMs", title: "setup ms", higherIsBetter: false, digits: 2 },
  { key: "setupP99Ms", title: "setup p99 ms", higherIsBetter: false, digits: 2 },
  { key: "cpuSPerGB", title: "CPU s/GB", higherIsBetter: false, digits: 1 },
] as const satisfies readonly {
  key: keyof Samples;
  title: string;
  higherIsBetter: boolean;
  digits: number;
}[];

/** A figure's key. */
export type FigureKey = (typeof FIGURES)[number]["key"];

/** Median, min and max of the repeats; undefined when there are none. */
export function summarize(values: readonly number[] | undefined): Summary | undefined {
  const v = (values ?? []).filter((x) => Number.isFinite(x));
  if (v.length === 0) return undefined;
  const s = [...v].sort((a, b) => a - b);
  const median =
    s.length % 2 === 1 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
  const min = s[0];
  const max = s[s.length - 1];
  return { median, min, max, noisy: median > 0 && (max - min) / median > 0.25 };
}

/**
 * The ratio of `row` to `peer` on one figure (row / peer) with its noise band.
 *
 * Rows and peers are measured in rounds (each round runs every case once, so a row
 * and its peer are measured minutes apart at most). When both have one value per
 * round, each round gives one paired ratio; the ratio is their median and the band
 * their min and max. A slow spell of the shared machine then moves both halves of a
 * pair, not one. Otherwise (different counts) it is the ratio of the medians, with
 * no band.
 */
export function ratioBand(
  row: CaseResult,
  peer: CaseResult | undefined,
  key: FigureKey,
): Summary | undefined {
  const a = row.samples?.[key] ?? [];
  const b = peer?.samples?.[key] ?? [];
  if (a.length > 0 && a.length === b.length) {
    return summarize(a.map((v, i) => v / b[i]).filter((v) => Number.isFinite(v)));
  }
  const ma = summarize(a)?.median;
  const mb = summarize(b)?.median;
  if (ma === undefined || mb === undefined || mb === 0) return undefined;
  const r = ma / mb;
  return { median: r, min: r, max: r, noisy: false };
}

/** The ratio of `row` to `peer` on one figure (row / peer): {@link ratioBand}'s median. */
export function ratio(
  row: CaseResult,
  peer: CaseResult | undefined,
  key: FigureKey,
): number | undefined {
  return ratioBand(row, peer, key)?.median;
}

/** Sum of the peak RSS of every process on the path, MB. */
export function totalRssMb(r: CaseResult): number | undefined {
  const v = Object.values(r.peakRssMb ?? {});
  return v.length ? v.reduce((a, b) => a + b, 0) : undefined;
}

/** A whole run, as written to `bench/results/latest-<runtime>.json`. */
export interface RunResult {
  readonly tool: "spokewire-bench";
  readonly version: 1;
  readonly date: string;
  readonly commit: string;
  readonly runtime: "node" | "deno";
  readonly versions: Record<string, string>;
  readonly machine: {
    readonly cpus: string;
    readonly cores: number;
    readonly memoryGiB: number;
    readonly os: string;
  };
  readonly settings: Record<string, unknown>;
  readonly cases: readonly CaseResult[];
}
