/**
 * The run as a person reads it: a compact terminal table, a markdown file (the
 * README's tables are this), with each row's ratio to its peer.
 *
 * How to read a ratio: `row / peer` for every figure, so above 1.00x is better for
 * throughput and below 1.00x is better for RTT, setup and CPU.
 *
 * Load rows (bursts, reconnect storms) have figures of their own kind and a table of
 * their own ("Load"), after the main table; they have no ratios.
 *
 * @module
 */
import {
  type BurstFigures,
  type CaseResult,
  FIGURES,
  type LoadFigures,
  type RunResult,
  ratioBand,
  type StormFigures,
  summarize,
  totalRssMb,
} from "./results.ts";

const fmt = (n: number | undefined, digits: number): string =>
  n === undefined || !Number.isFinite(n) ? "-" : n.toFixed(digits);
const x = (n: number | undefined): string => (n === undefined ? "-" : `${n.toFixed(2)}x`);

/** The peer of `r` and its further comparisons, resolved to results that ran. */
function comparisons(r: CaseResult, byId: Map<string, CaseResult>): CaseResult[] {
  return [r.peer, ...(r.alsoVs ?? [])]
    .filter((id): id is string => id !== undefined)
    .map((id) => byId.get(id))
    .filter((p): p is CaseResult => p !== undefined && p.status === "ok");
}

/** The figures a ratio is given for, with their short names. */
export const RATIO_FIGURES = [
  ["up", "uploadMBps"],
  ["down", "downloadMBps"],
  ["p50", "rttP50Us"],
  ["setup", "setupMs"],
] as const;

/**
 * `up 0.98x, down 1.02x, p50 1.10x, setup 1.3x` of `r` against `peer`; with `bands`,
 * each ratio is followed by the range of its per-round ratios (`0.98x [0.91-1.05]`).
 */
export function ratioText(r: CaseResult, peer: CaseResult, bands = false): string {
  return RATIO_FIGURES.map(([name, key]) => {
    const b = ratioBand(r, peer, key);
    const band = bands && b && b.max > b.min ? ` [${b.min.toFixed(2)}-${b.max.toFixed(2)}]` : "";
    return `${name} ${x(b?.median)}${band}`;
  }).join(", ");
}

function cell(r: CaseResult, key: (typeof FIGURES)[number]["key"], digits: number): string {
  const s = summarize(r.samples?.[key]);
  if (!s) return "-";
  return `${fmt(s.median, digits)}${s.noisy ? "~" : ""}`;
}

/** Rows of the main table (header first), one per throughput case (load rows have their own). */
export function tableRows(run: RunResult, bands = false): string[][] {
  const byId = new Map(run.cases.map((c) => [c.id, c]));
  const header = ["group", "row", ...FIGURES.map((f) => f.title), "peak RSS MB", "vs peer"];
  const rows = [header];
  for (const r of run.cases) {
    if (r.kind === "load") continue;
    if (r.status !== "ok") {
      rows.push([r.group, r.label, `${r.status}: ${firstLine(r.reason)}`]);
      continue;
    }
    const vs = comparisons(r, byId)[0];
    rows.push([
      r.group,
      r.label,
      ...FIGURES.map((f) => cell(r, f.key, f.digits)),
      fmt(totalRssMb(r), 0),
      vs ? `${vs.label}: ${ratioText(r, vs, bands)}` : "",
    ]);
  }
  return rows;
}

function firstLine(s: string | undefined): string {
  return (s ?? "").split("\n")[0].slice(0, 100);
}

const int = (n: number): string => Math.round(n).toLocaleString("en-US");
const secs = (ms: number): string => `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
const byCause = (r: Record<string, number> | undefined): string =>
  Object.entries(r ?? {})
    .sort((a, b) => b[1] - a[1])
    .map(([k, v]) => `${k} ${int(v)}`)
    .join(", ");

/** What a load row's processes printed as warnings, or "". */
function warningText(f: LoadFigures): string {
  const w = byCause(f.warnings);
  return w ? `warnings: ${w}` : "";
}

/** Peak RSS of each process of a load row: `server 95 MB, agent 80 MB`. */
function peakText(r: CaseResult): string {
  return Object.entries(r.peakRssMb ?? {})
    .map(([k, v]) => `${k.replace(/^konnectivity /, "")} ${v.toFixed(0)} MB`)
    .join(", ");
}

function burstCells(f: BurstFigures, r: CaseResult): string[] {
  const notes = [
    f.lost > 0 ? `lost: ${byCause(f.lostBy)}` : "",
    Object.keys(f.frontendRefusedBy ?? {}).length
      ? `frontend refused: ${byCause(f.frontendRefusedBy)}`
      : "",
    warningText(f),
  ];
  return [
    `${int(f.clients)} CONNECTs x ${(f.bytesPerClient[0] / 1024).toFixed(0)}-${(f.bytesPerClient[1] / 1024).toFixed(0)} KiB`,
    int(f.ok),
    int(f.refused),
    int(f.lost),
    `all open ${secs(f.openAllMs)}, all done ${secs(f.finishAllMs)}`,
    peakText(r) ? `peak ${peakText(r)}` : "",
    notes.filter((n) => n).join("; "),
  ];
}

function stormCells(f: StormFigures): string[] {
  const notes = [
    `cold start (1,000 a second) ${secs(f.coldStartMs)}`,
    Object.keys(f.coldRefusedBy).length ? `cold start refused: ${byCause(f.coldRefusedBy)}` : "",
    f.refused > 0 ? `refused: ${byCause(f.refusedBy)}` : "",
    Object.keys(f.agentErrors ?? {}).length
      ? `agents' failed attempts once it listened: ${byCause(f.agentErrors)}`
      : "",
    warningText(f),
  ];
  return [
    `${int(f.agents)} agents`,
    `${int(f.agents)} back`,
    int(f.refused),
    "-",
    `all back ${secs(f.reregisterMs)} (${secs(f.reregisterFromKillMs)} after the kill)`,
    `server ${f.rssPerAgentKiB.toFixed(0)} KiB/agent (${f.serverRssIdleMb.toFixed(0)} -> ${f.serverRssAgentsMb.toFixed(0)} MB)`,
    notes.filter((n) => n).join("; "),
  ];
}

/** A load row's figures in one line (progress output). */
export function loadText(f: LoadFigures): string {
  if (f.type === "burst") {
    return `${int(f.ok)} ok, ${int(f.refused)} refused (503), ${int(f.lost)} lost; all open ${secs(f.openAllMs)}, all done ${secs(f.finishAllMs)}`;
  }
  return `${int(f.agents)} agents back ${secs(f.reregisterMs)} after the restart (${secs(f.reregisterFromKillMs)} after the kill), ${int(f.refused)} refused; ${f.rssPerAgentKiB.toFixed(0)} KiB server RSS per agent`;
}

/** Rows of the load table (header first), one per load case; none when no load row ran. */
export function loadRows(run: RunResult): string[][] {
  const loads = run.cases.filter((r) => r.kind === "load");
  if (loads.length === 0) return [];
  const header = ["row", "load", "succeeded", "refused", "lost", "time", "memory", "notes"];
  const rows = [header];
  for (const r of loads) {
    if (r.status !== "ok" || !r.load) {
      rows.push([r.label, `${r.status}: ${firstLine(r.reason)}`]);
      continue;
    }
    rows.push([r.label, ...(r.load.type === "burst" ? burstCells(r.load, r) : stormCells(r.load))]);
  }
  return rows;
}

function loadLegend(): string {
  return (
    "bursts: refused = 503 with Retry-After, lost = anything else (resets, other statuses, bytes missing or wrong); " +
    "storm: the server killed (SIGKILL) under its agents and started again on the same port, time from its listening until every agent is registered again"
  );
}

/** The load table as terminal text, or "" without load rows. */
function loadTerminal(run: RunResult): string {
  const rows = loadRows(run);
  if (rows.length === 0) return "";
  const full = rows.filter((r) => r.length === rows[0].length);
  const widths = rows[0].map((_, i) => Math.max(...full.map((r) => r[i].length)));
  const numeric = new Set([2, 3, 4]);
  const lines = rows.map((r) => {
    if (r.length !== rows[0].length) return `${r[0].padEnd(widths[0])}  ${r[1]}`;
    return r
      .map((c, i) => (numeric.has(i) ? c.padStart(widths[i]) : c.padEnd(widths[i])))
      .join("  ")
      .trimEnd();
  });
  lines.splice(1, 0, widths.map((w) => "-".repeat(w)).join("  "));
  return `\nLoad\n${lines.join("\n")}\n${loadLegend()}\n`;
}

/** The terminal table (and the load table, when load rows ran). */
export function terminalTable(run: RunResult): string {
  if (!run.cases.some((r) => r.kind !== "load")) return loadTerminal(run).trimStart();
  const rows = tableRows(run);
  const full = rows.filter((r) => r.length === rows[0].length);
  const widths = rows[0].map((_, i) => Math.max(...full.map((r) => r[i].length)));
  const last = rows[0].length - 1;
  const lines = rows.map((r) => {
    if (r.length !== rows[0].length)
      return `${r[0].padEnd(widths[0])}  ${r[1].padEnd(widths[1])}  ${r[2]}`;
    return r
      .map((c, i) => (i < 2 || i === last ? c.padEnd(widths[i]) : c.padStart(widths[i])))
      .join("  ");
  });
  lines.splice(1, 0, widths.map((w) => "-".repeat(w)).join("  "));
  return `${lines.join("\n")}\n${legend()}\n${extrasText(run)}${loadTerminal(run)}`;
}

function legend(): string {
  return (
    "ratios are row / peer in this run (the median of the rounds' ratios, row and peer measured in the same round): " +
    "above 1.00x is better for up/down, below 1.00x for p50/setup; " +
    "~ marks a figure whose repeats differ by more than 25%"
  );
}

function extrasText(run: RunResult): string {
  const out: string[] = [];
  for (const r of run.cases) {
    for (const [k, v] of Object.entries(r.extras ?? {})) {
      out.push(`  ${r.label}: ${k} = ${fmt(v.value, v.unit === "share" ? 2 : 1)} ${v.unit}`);
    }
  }
  return out.length ? `extra figures:\n${out.join("\n")}\n` : "";
}

const mdEscape = (s: string): string => s.replaceAll("|", "\\|");

/** The markdown report: settings, main table, further comparisons, extra figures, noise warnings. */
export function markdown(run: RunResult): string {
  const byId = new Map(run.cases.map((c) => [c.id, c]));
  const rows = tableRows(run, true);
  const lines: string[] = [];
  lines.push(
    `${run.runtime === "node" ? "Node" : "Deno"} ${run.versions[run.runtime] ?? ""}, ${run.machine.cores} cores (${run.machine.cpus}), commit ${run.commit.slice(0, 10)}, ${run.date.slice(0, 10)}; ` +
      `${Number(run.settings.bytes) / 1e6} MB per bulk transfer, ${run.settings.rttSamples} round trips, ${run.settings.repeat} repeats (median shown)${run.settings.quick ? ", --quick" : ""}. ` +
      "A ratio is row / peer, the median of the rounds' ratios (row and peer measured in the same round), with their range in brackets.",
  );
  if (rows.length > 1) {
    lines.push("");
    lines.push(`| ${rows[0].map(mdEscape).join(" | ")} |`);
    lines.push(
      `| ${rows[0].map((_, i) => (i < 2 || i === rows[0].length - 1 ? "---" : "---:")).join(" | ")} |`,
    );
    for (const r of rows.slice(1)) {
      const cells =
        r.length === rows[0].length ? r : [...r, ...Array(rows[0].length - r.length).fill("")];
      lines.push(`| ${cells.map(mdEscape).join(" | ")} |`);
    }
  }
  const further: string[] = [];
  for (const r of run.cases) {
    if (r.status !== "ok") continue;
    for (const p of comparisons(r, byId).slice(1)) {
      further.push(`| ${mdEscape(r.label)} | ${mdEscape(p.label)} | ${ratioText(r, p, true)} |`);
    }
  }
  if (further.length) {
    lines.push(
      "",
      "Further comparisons:",
      "",
      "| row | vs | ratios |",
      "| --- | --- | --- |",
      ...further,
    );
  }
  const extras: string[] = [];
  for (const r of run.cases) {
    for (const [k, v] of Object.entries(r.extras ?? {})) {
      extras.push(
        `| ${mdEscape(r.label)} | ${mdEscape(k)} | ${fmt(v.value, v.unit === "share" ? 2 : 1)} ${v.unit} | ${v.higherIsBetter ? "higher" : "lower"} |`,
      );
    }
  }
  if (extras.length) {
    lines.push(
      "",
      "| row | extra figure | value | better |",
      "| --- | --- | ---: | --- |",
      ...extras,
    );
  }
  const noisy: string[] = [];
  for (const r of run.cases) {
    for (const f of FIGURES) {
      const s = summarize(r.samples?.[f.key]);
      if (s?.noisy)
        noisy.push(`${r.label} ${f.title} (${fmt(s.min, f.digits)}-${fmt(s.max, f.digits)})`);
    }
  }
  if (noisy.length)
    lines.push("", `Noisy (repeats differ by more than 25%, marked ~): ${noisy.join("; ")}.`);
  const load = loadRows(run);
  if (load.length > 0) {
    lines.push("", `Load (run once; ${loadLegend()}):`, "");
    lines.push(`| ${load[0].join(" | ")} |`);
    lines.push(`| ${load[0].map((_, i) => (i >= 2 && i <= 4 ? "---:" : "---")).join(" | ")} |`);
    for (const r of load.slice(1)) {
      const cells =
        r.length === load[0].length ? r : [...r, ...Array(load[0].length - r.length).fill("")];
      lines.push(`| ${cells.map(mdEscape).join(" | ")} |`);
    }
  }
  return `${lines.join("\n")}\n`;
}

/** Warnings for figures whose min and max differ by more than 25% of the median. */
export function noiseWarnings(r: CaseResult): string[] {
  const out: string[] = [];
  for (const f of FIGURES) {
    const s = summarize(r.samples?.[f.key]);
    if (s?.noisy) {
      out.push(
        `warning: ${r.id} ${f.title}: repeats range ${fmt(s.min, f.digits)}-${fmt(s.max, f.digits)} around ${fmt(s.median, f.digits)} (more than 25%)`,
      );
    }
  }
  return out;
}
