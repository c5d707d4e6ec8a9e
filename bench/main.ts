/**
 * `npm run bench` (Node) / `npm run bench:deno` (Deno): every path users deploy,
 * each beside the peer a user would pick instead, in the same run.
 *
 * Each case runs in its own child process (`run_case.ts`), so its CPU and peak RSS
 * are its own and a crash stays a failed row. The run goes in rounds: each round
 * runs every case once for one measured repeat (after its own warm-up), so a row
 * and its peer are measured close together in time; the figures are the medians
 * over the rounds, and the extra figures come from the first round. Progress goes to
 * stderr as each case starts and ends; the table goes to stdout; results are written
 * to `bench/results/latest-<runtime>.{json,md,svg}`. The load rows (bursts of CONNECTs,
 * the agents' reconnect storm) run once, in the first round, and have a table of their
 * own.
 *
 * Flags:
 * - `--quick`: a short run (first impressions, CI): 48 MB transfers, fewer round trips
 *   and setups, 5 rounds (as the full run: fewer rounds make ranges too narrow to compare).
 * - `--filter PATTERN`: only cases whose id or label contains PATTERN (or matches it as a regular expression).
 * - `--repeat N`: measured repeats per figure (default 5), after one warm-up.
 * - `--agents N`: agents in the reconnect-storm row (default 2,000).
 * - `--json PATH`: also write the JSON results to PATH.
 * - `--readme`: replace this runtime's table in README.md (between `<!-- bench:<runtime>:start -->` and `:end -->`).
 * - `--list`: print the case ids and exit.
 *
 * @module
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { cpus, platform, release, totalmem } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { allCases } from "./cases/mod.ts";
import { loadText, markdown, noiseWarnings, ratioText, terminalTable } from "./report.ts";
import { type CaseResult, type RunResult, summarize } from "./results.ts";
import { chartSvg } from "./svg.ts";
import { type BenchSettings, DEFAULT_STORM_AGENTS } from "./types.ts";

const HERE = fileURLToPath(new URL(".", import.meta.url));
const ROOT = join(HERE, "..");
const runtime: "node" | "deno" = "Deno" in globalThis ? "deno" : "node";
interface DenoLike {
  args: string[];
  execPath(): string;
  version: { deno: string; v8: string };
}
const deno = (globalThis as { Deno?: DenoLike }).Deno;

/** Parsed command line. */
interface Options {
  quick: boolean;
  filter?: string;
  repeat?: number;
  agents?: number;
  json?: string;
  readme: boolean;
  list: boolean;
}

function usage(msg: string): never {
  process.stderr.write(
    `${msg}\nusage: bench/main.ts [--quick] [--filter PATTERN] [--repeat N] [--agents N] [--json PATH] [--readme] [--list]\n`,
  );
  process.exit(2);
}

function parse(argv: readonly string[]): Options {
  const o: Options = { quick: false, readme: false, list: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) usage(`${a} needs a value`);
      return v;
    };
    if (a === "--quick") o.quick = true;
    else if (a === "--readme") o.readme = true;
    else if (a === "--list") o.list = true;
    else if (a === "--filter") o.filter = value();
    else if (a === "--json") o.json = value();
    else if (a === "--repeat") {
      const n = Number(value());
      if (!Number.isInteger(n) || n < 1 || n > 100) usage("--repeat takes a whole number 1-100");
      o.repeat = n;
    } else if (a === "--agents") {
      const n = Number(value());
      if (!Number.isInteger(n) || n < 1 || n > 100_000)
        usage("--agents takes a whole number 1-100000");
      o.agents = n;
    } else if (a === "--help" || a === "-h") usage("spokewire bench");
    else usage(`unknown argument ${a}`);
  }
  return o;
}

function matches(filter: string | undefined, id: string, label: string): boolean {
  if (!filter) return true;
  if (id.includes(filter) || label.includes(filter)) return true;
  try {
    const re = new RegExp(filter);
    return re.test(id) || re.test(label);
  } catch {
    return false;
  }
}

function settingsFor(o: Options): BenchSettings {
  const agents = o.agents ?? DEFAULT_STORM_AGENTS;
  return o.quick
    ? {
        quick: true,
        bytes: 48_000_000,
        rttSamples: 1_000,
        repeat: o.repeat ?? 5,
        setupSamples: 30,
        agents,
      }
    : {
        quick: false,
        bytes: 200_000_000,
        rttSamples: 3_000,
        repeat: o.repeat ?? 5,
        setupSamples: 100,
        agents,
      };
}

function firstLine(cmd: string, args: string[]): string | undefined {
  try {
    const r = spawnSync(cmd, args, { encoding: "utf8", timeout: 5_000 });
    if (r.error || r.status === null) return undefined;
    return `${r.stdout}${r.stderr}`.split("\n")[0].trim() || undefined;
  } catch {
    return undefined;
  }
}

function packageVersion(name: string): string | undefined {
  const p = join(ROOT, "node_modules", name, "package.json");
  return existsSync(p)
    ? (JSON.parse(readFileSync(p, "utf8")) as { version: string }).version
    : undefined;
}

function versions(): Record<string, string> {
  const v: Record<string, string | undefined> = {
    [runtime]: deno ? deno.version.deno : process.version,
    openssl: firstLine("openssl", ["version"]),
    "openssh (ssh -V)": firstLine("ssh", ["-V"]),
    socat: firstLine("socat", ["-V"])?.replace(/^socat by.*/, "") || firstLine("socat", ["-V"]),
    ws: packageVersion("ws"),
    ssh2: packageVersion("ssh2"),
    "@chainsafe/libp2p-yamux": packageVersion("@chainsafe/libp2p-yamux"),
    spokewire: (JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string })
      .version,
  };
  return Object.fromEntries(
    Object.entries(v).filter((e): e is [string, string] => e[1] !== undefined),
  );
}

function commit(): string {
  const r = spawnSync("git", ["rev-parse", "HEAD"], {
    cwd: ROOT,
    encoding: "utf8",
    timeout: 5_000,
  });
  const dirty = spawnSync("git", ["status", "--porcelain", "--untracked-files=no"], {
    cwd: ROOT,
    encoding: "utf8",
    timeout: 5_000,
  });
  if (r.status !== 0) return "unknown";
  return `${r.stdout.trim()}${dirty.stdout?.trim() ? "+dirty" : ""}`;
}

/** Run one case in a child process of this runtime; resolves with its result. */
function runChild(id: string, settings: BenchSettings, timeoutMs: number): Promise<CaseResult> {
  const script = join(HERE, "run_case.ts");
  const [cmd, args] = deno
    ? [deno.execPath(), ["run", "-A", "--no-check", script, id, JSON.stringify(settings)]]
    : [process.execPath, ["--import", "tsx", script, id, JSON.stringify(settings)]];
  return new Promise((resolve) => {
    const t0 = performance.now();
    const child = spawn(cmd, args, { cwd: ROOT, stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout?.setEncoding("utf8");
    child.stdout?.on("data", (d: string) => {
      out += d;
    });
    const timer = setTimeout(() => {
      if (child.pid) process.kill(child.pid, "SIGKILL");
    }, timeoutMs);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      const line = out.split("\n").find((l) => l.startsWith("RESULT "));
      if (line) return resolve(JSON.parse(line.slice(7)) as CaseResult);
      const c = allCases.find((x) => x.id === id);
      resolve({
        id,
        group: c?.group ?? "?",
        label: c?.label ?? id,
        peer: c?.peer,
        alsoVs: c?.alsoVs,
        ...(c?.kind === "load" ? { kind: "load" as const } : {}),
        status: "failed",
        reason:
          signal === "SIGKILL"
            ? `timed out after ${timeoutMs / 1000} s`
            : `the case process exited (${code ?? signal}) without a result`,
        seconds: (performance.now() - t0) / 1000,
      });
    });
  });
}

/** One more round's result folded into a case's result so far. */
function mergeRound(prev: CaseResult | undefined, one: CaseResult): CaseResult {
  if (!prev) return one;
  if (one.status !== "ok") return { ...one, seconds: prev.seconds + one.seconds };
  const a = prev.samples;
  const b = one.samples;
  const samples =
    a && b
      ? {
          uploadMBps: [...a.uploadMBps, ...b.uploadMBps],
          downloadMBps: [...a.downloadMBps, ...b.downloadMBps],
          rttP50Us: [...a.rttP50Us, ...b.rttP50Us],
          rttP99Us: [...a.rttP99Us, ...b.rttP99Us],
          setupMs: [...a.setupMs, ...b.setupMs],
          setupP99Ms: [...(a.setupP99Ms ?? []), ...(b.setupP99Ms ?? [])],
          cpuSPerGB: [...a.cpuSPerGB, ...b.cpuSPerGB],
        }
      : (a ?? b);
  // Peak RSS per process: the largest over the rounds.
  const rss: Record<string, number> = { ...(prev.peakRssMb ?? {}) };
  for (const [k, v] of Object.entries(one.peakRssMb ?? {})) rss[k] = Math.max(rss[k] ?? 0, v);
  return {
    ...prev,
    samples,
    raw: one.raw ?? prev.raw,
    peakRssMb: prev.peakRssMb || one.peakRssMb ? rss : undefined,
    extras: prev.extras ?? one.extras,
    startMs: prev.startMs,
    seconds: prev.seconds + one.seconds,
  };
}

function endLine(r: CaseResult): string {
  if (r.status !== "ok") return `${r.status}: ${(r.reason ?? "").split("\n")[0]}`;
  if (r.load) return loadText(r.load);
  const m = (k: keyof NonNullable<CaseResult["samples"]>, d: number): string =>
    summarize(r.samples?.[k])?.median.toFixed(d) ?? "-";
  return `up ${m("uploadMBps", 0)} MB/s, down ${m("downloadMBps", 0)} MB/s, p50 ${m("rttP50Us", 0)} us, setup ${m("setupMs", 2)} ms`;
}

function replaceReadme(md: string): void {
  const file = join(ROOT, "README.md");
  const text = readFileSync(file, "utf8");
  const start = `<!-- bench:${runtime}:start -->`;
  const end = `<!-- bench:${runtime}:end -->`;
  const a = text.indexOf(start);
  const b = text.indexOf(end);
  if (a < 0 || b < a) {
    process.stderr.write(`README.md has no ${start} ... ${end} markers; not updated\n`);
    return;
  }
  writeFileSync(file, `${text.slice(0, a + start.length)}\n${md}${text.slice(b)}`);
  process.stderr.write(`README.md: ${runtime} table updated\n`);
}

/** Results in case order, each group's rows together where the group first appears. */
function groupedInOrder(results: readonly CaseResult[]): CaseResult[] {
  const order = [...new Set(results.map((r) => r.group))];
  return [...results].sort((a, b) => order.indexOf(a.group) - order.indexOf(b.group));
}

async function main(): Promise<void> {
  const o = parse(deno ? deno.args : process.argv.slice(2));
  const cases = allCases.filter(
    (c) => (c.runtimes ?? ["node", "deno"]).includes(runtime) && matches(o.filter, c.id, c.label),
  );
  if (o.list) {
    for (const c of cases) process.stdout.write(`${c.id}\t${c.group}\t${c.label}\n`);
    return;
  }
  if (cases.length === 0) usage(`no case matches --filter ${o.filter}`);
  const settings = settingsFor(o);
  const timeoutMs = o.quick ? 300_000 : 900_000;
  // A load row's scenario has its own bounds (a storm of many agents registers twice).
  const loadTimeoutMs = 900_000;
  process.stderr.write(
    `spokewire bench (${runtime}): ${cases.length} cases, ${settings.bytes / 1e6} MB per transfer, ${settings.rttSamples} round trips, ${settings.repeat} repeats after a warm-up\n`,
  );
  // Rounds, not case after case: each round runs every case once (one measured
  // repeat in a fresh process), so a row and its peer are measured minutes apart at
  // most and a slow spell of the shared machine hits both, not one.
  const byId = new Map<string, CaseResult>();
  const t0 = performance.now();
  for (let round = 0; round < settings.repeat; round++) {
    for (const [i, c] of cases.entries()) {
      const prev = byId.get(c.id);
      if (prev && prev.status !== "ok") continue; // skipped or failed: once is enough
      if (prev && c.kind === "load") continue; // a load row runs once, in the first round
      const tag = `[round ${round + 1}/${settings.repeat}, ${i + 1}/${cases.length}] ${c.id}`;
      process.stderr.write(`${tag}: start (${c.label})\n`);
      const one = await runChild(
        c.id,
        { ...settings, repeat: 1, extras: round === 0 },
        c.kind === "load" ? loadTimeoutMs : timeoutMs,
      );
      const r = mergeRound(prev, one);
      byId.set(c.id, r);
      process.stderr.write(`${tag}: ${endLine(one)} (${one.seconds.toFixed(1)} s)\n`);
      if (round < settings.repeat - 1 || r.status !== "ok") continue;
      const peer = byId.get(r.peer ?? "");
      if (peer?.status === "ok")
        process.stderr.write(`${tag}: vs ${peer.label}: ${ratioText(r, peer)}\n`);
      for (const w of noiseWarnings(r)) process.stderr.write(`${tag}: ${w}\n`);
    }
  }
  const results = cases.map((c) => byId.get(c.id) as CaseResult);
  const run: RunResult = {
    tool: "spokewire-bench",
    version: 1,
    date: new Date().toISOString(),
    commit: commit(),
    runtime,
    versions: versions(),
    machine: {
      cpus: cpus()[0]?.model ?? "unknown",
      cores: cpus().length,
      memoryGiB: Math.round(totalmem() / 2 ** 30),
      os: `${platform()} ${release()}`,
    },
    settings: {
      ...settings,
      filter: o.filter ?? null,
      seconds: Math.round((performance.now() - t0) / 1000),
    },
    // Grouped as the table reads (the TLS-to-a-kubelet rows run with their tunnels).
    cases: groupedInOrder(results),
  };
  process.stdout.write(`\n${terminalTable(run)}`);
  const dir = join(HERE, "results");
  mkdirSync(dir, { recursive: true });
  const json = `${JSON.stringify(run, null, 1)}\n`;
  const md = markdown(run);
  writeFileSync(join(dir, `latest-${runtime}.json`), json);
  writeFileSync(join(dir, `latest-${runtime}.md`), md);
  writeFileSync(join(dir, `latest-${runtime}.svg`), chartSvg(run));
  if (o.json) writeFileSync(o.json, json);
  process.stderr.write(
    `wrote bench/results/latest-${runtime}.{json,md,svg}${o.json ? ` and ${o.json}` : ""}\n`,
  );
  if (o.readme) replaceReadme(md);
  const failed = results.filter((r) => r.status === "failed");
  if (failed.length) {
    process.stderr.write(
      `${failed.length} case(s) failed: ${failed.map((r) => r.id).join(", ")}\n`,
    );
    process.exitCode = 1;
  }
}

await main();
