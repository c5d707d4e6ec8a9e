/**
 * The benchmark's contract: a case is one path measured (spokewire's or a peer's), a
 * path opens client connections to a target that speaks the target protocol
 * (bench/target.ts), and bench/measure.ts turns those connections into figures.
 * A load case (bursts of CONNECTs, reconnect storms) instead runs its own scenario
 * once and reports figures of its own kind ({@link LoadFigures}).
 *
 * @module
 */
import type { LoadFigures } from "./results.ts";

/** A client-side byte stream, whatever carries it (Channel, node socket, Deno.Conn, ...). */
export interface Conn {
  /** Queue `chunk`; the promise resolves when more may be written (backpressure). */
  write(chunk: Uint8Array): Promise<void>;
  /** The next chunk, or null at end-of-stream. The chunk may be reused after the next read. */
  read(): Promise<Uint8Array | null>;
  /** Half-close: no more writes; reading goes on. */
  end(): Promise<void>;
  /** Tear down now. */
  destroy(): void;
}

/** Settings of one run, from the command line. */
export interface BenchSettings {
  /** A short run (CI, first impressions). */
  readonly quick: boolean;
  /** Bytes moved per bulk measurement. */
  readonly bytes: number;
  /** 64-byte round trips per latency measurement. */
  readonly rttSamples: number;
  /** Measured repetitions of each figure (after one warm-up). */
  readonly repeat: number;
  /** Connections timed for the setup figure. */
  readonly setupSamples: number;
  /**
   * Whether this child also measures the case's extra figures (64 streams, 1,000
   * tunnels ...). The runner asks for them in the first round only. Default true.
   */
  readonly extras?: boolean;
  /** Agents in the reconnect-storm row (`--agents N`). Default {@link DEFAULT_STORM_AGENTS}. */
  readonly agents?: number;
}

/** Agents in the reconnect-storm row when `--agents` is not given. */
export const DEFAULT_STORM_AGENTS = 2000;

/** What a case gets when it starts. */
export interface CaseContext {
  readonly settings: BenchSettings;
  readonly runtime: "node" | "deno";
  /** A progress line for a long step (goes to stderr). */
  log(message: string): void;
}

/** An external process on the measured path: counted in CPU s/GB and peak RSS. */
export interface PathProcess {
  /** e.g. "sshd", "ssh -L", "socat", "konnectivity agent" */
  readonly name: string;
  readonly pid: number;
  /** Also count its descendants (sshd forks a child per connection). Default false. */
  readonly withChildren?: boolean;
}

/** One figure beyond the standard ones (Konnectivity fairness, head-of-line, 1,000 tunnels). */
export interface ExtraFigure {
  readonly value: number;
  /** e.g. "MB/s", "share", "ms", "MB" */
  readonly unit: string;
  /** true when a bigger value is better */
  readonly higherIsBetter: boolean;
  /** Optional detail for the JSON (per-stream shares, samples, ...). */
  readonly detail?: unknown;
}

/** A started path: opens connections to the target through it. */
export interface Path {
  /** A new connection to the target, through the path (dial to usable stream). */
  open(): Promise<Conn>;
  /** External processes on the path, for CPU and RSS. The bench process itself is always counted. */
  processes?(): readonly PathProcess[];
  /** Extra figures, measured after the standard ones. */
  extras?(ctx: CaseContext): Promise<Record<string, ExtraFigure>>;
  /** Stop everything the path started (by PID for processes). */
  close(): Promise<void>;
}

/** A benchmark case: one row of the table. */
export interface BenchCase {
  /** A throughput row (the default): measured through {@link Path.open}. */
  readonly kind?: "throughput";
  /** Unique, dotted: "tls.spokewire", "tls.node-tls". `--filter` matches it. */
  readonly id: string;
  /** The table section: "TCP", "TLS", "SSH", "Konnectivity", "TLS to a kubelet", "relay". */
  readonly group: string;
  /** Row label, short and unique: "spokewire mTLS", "node:tls". */
  readonly label: string;
  /** The id of the case this row's ratios are computed against (the peer a user would pick). */
  readonly peer?: string;
  /** Further case ids this row is also compared with (extra ratio columns in the report). */
  readonly alsoVs?: readonly string[];
  /** Runtimes this case runs in. Default both. */
  readonly runtimes?: readonly ("node" | "deno")[];
  /** Why it cannot run on this machine ("ssh not installed"), or undefined. */
  skipReason?(): Promise<string | undefined>;
  /** Start the path: listeners, processes, connections that persist across opens. */
  start(ctx: CaseContext): Promise<Path>;
}

/** What a load case's run gives back. */
export interface LoadRun {
  readonly figures: LoadFigures;
  /** Peak RSS (VmHWM) by process, MB. */
  readonly peakRssMb?: Record<string, number>;
}

/**
 * A load row: a scenario run once (many CONNECTs at once, many agents reconnecting),
 * with figures of its own kind, shown in the "Load" table. Not compared with a peer.
 */
export interface LoadCase {
  readonly kind: "load";
  /** Unique, dotted: "load.burst-1000". `--filter` matches it. */
  readonly id: string;
  /** The table section ("Load"). */
  readonly group: string;
  /** Row label, short and unique. */
  readonly label: string;
  /** A load row has no peer. */
  readonly peer?: undefined;
  /** A load row has no further comparisons. */
  readonly alsoVs?: undefined;
  /** Runtimes this case runs in. Default both. */
  readonly runtimes?: readonly ("node" | "deno")[];
  /** Why it cannot run on this machine, or undefined. */
  skipReason?(): Promise<string | undefined>;
  /** Run the scenario; stops everything it started (by PID for processes) before resolving. */
  run(ctx: CaseContext): Promise<LoadRun>;
}

/** Any row of the bench. */
export type AnyCase = BenchCase | LoadCase;
