/**
 * One row of the benchmark table, the table printer, the JSON writer and the chart.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";

/** A measured case next to its same-run baseline. */
export interface Row {
  name: string;
  baseline: string;
  mbps?: number;
  baselineMbps?: number;
  p50Us?: number;
  p99Us?: number;
  baselineP50Us?: number;
  baselineP99Us?: number;
  opsPerSec?: number;
  baselineOpsPerSec?: number;
  note?: string;
}

/** Ratios of a row: throughput (higher is better), RTT (lower is better), ops (higher is better). */
export function ratios(r: Row): { throughput?: number; p50?: number; p99?: number; ops?: number } {
  const div = (a?: number, b?: number) => (a !== undefined && b ? a / b : undefined);
  return {
    throughput: div(r.mbps, r.baselineMbps),
    p50: div(r.p50Us, r.baselineP50Us),
    p99: div(r.p99Us, r.baselineP99Us),
    ops: div(r.opsPerSec, r.baselineOpsPerSec),
  };
}

const f = (n: number | undefined, d = 0): string => (n === undefined ? "-" : n.toFixed(d));
const x = (n: number | undefined): string => (n === undefined ? "-" : `${n.toFixed(2)}x`);

/** Print the table to stdout. */
export function printTable(rows: readonly Row[]): void {
  const header = [
    "case",
    "baseline",
    "MB/s",
    "base MB/s",
    "thr ratio",
    "p50 us",
    "base p50",
    "p50 ratio",
    "p99 us",
    "base p99",
    "ops/s",
    "base ops/s",
    "ops ratio",
  ];
  const lines = rows.map((r) => {
    const q = ratios(r);
    return [
      r.name,
      r.baseline,
      f(r.mbps),
      f(r.baselineMbps),
      x(q.throughput),
      f(r.p50Us, 1),
      f(r.baselineP50Us, 1),
      x(q.p50),
      f(r.p99Us, 1),
      f(r.baselineP99Us, 1),
      f(r.opsPerSec),
      f(r.baselineOpsPerSec),
      x(q.ops),
    ];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
  const fmt = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join("  ");
  console.log(fmt(header));
  console.log(widths.map((w) => "-".repeat(w)).join("  "));
  for (const l of lines) console.log(fmt(l));
  for (const r of rows) if (r.note) console.log(`  note (${r.name}): ${r.note}`);
}

/** Write the JSON report. */
export function writeJson(path: string, meta: Record<string, unknown>, rows: readonly Row[]): void {
  mkdirSync(dirname(path), { recursive: true });
  const out = { ...meta, rows: rows.map((r) => ({ ...r, ratios: ratios(r) })) };
  writeFileSync(path, `${JSON.stringify(out, null, 2)}\n`);
}

/** Write an SVG bar chart of every ratio, with the 1.0x line. */
export function writeChart(path: string, title: string, rows: readonly Row[]): void {
  const bars: { label: string; value: number; kind: string }[] = [];
  for (const r of rows) {
    const q = ratios(r);
    if (q.throughput !== undefined)
      bars.push({ label: `${r.name} throughput`, value: q.throughput, kind: "thr" });
    if (q.p50 !== undefined) bars.push({ label: `${r.name} p50 RTT`, value: q.p50, kind: "rtt" });
    if (q.ops !== undefined) bars.push({ label: `${r.name} ops`, value: q.ops, kind: "ops" });
  }
  const rowH = 22;
  const left = 420;
  const width = 980;
  // Log scale from 1/4x to the largest ratio (at least 4x), so 0.9x and 240x both read.
  const lo = Math.log2(0.25);
  const hi = Math.log2(Math.max(4, ...bars.map((b) => b.value)));
  const px = (v: number) => ((width - left - 70) * (Math.log2(Math.max(v, 0.25)) - lo)) / (hi - lo);
  const height = 60 + bars.length * rowH + 30;
  const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;");
  const trim = (s: string) => (s.length > 64 ? `${s.slice(0, 61)}...` : s);
  const color: Record<string, string> = { thr: "#2b7bb9", rtt: "#d9822b", ops: "#5a9e4b" };
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="10" y="20" font-size="14" font-weight="bold">${esc(title)}</text>`,
    `<text x="10" y="38" fill="#555">ratio to the same-run baseline, log scale (throughput/ops: higher is better; RTT: lower is better)</text>`,
  ];
  bars.forEach((b, i) => {
    const y = 50 + i * rowH;
    parts.push(
      `<text x="${left - 8}" y="${y + 14}" text-anchor="end">${esc(trim(b.label))}</text>`,
    );
    parts.push(
      `<rect x="${left}" y="${y + 3}" width="${px(b.value).toFixed(1)}" height="${rowH - 6}" fill="${color[b.kind]}"/>`,
    );
    parts.push(`<text x="${left + px(b.value) + 4}" y="${y + 14}">${b.value.toFixed(2)}x</text>`);
  });
  const one = left + px(1);
  parts.push(
    `<line x1="${one}" y1="45" x2="${one}" y2="${height - 25}" stroke="#c00" stroke-dasharray="4 3"/>`,
    `<text x="${one}" y="${height - 10}" text-anchor="middle" fill="#c00">1.0x</text>`,
    "</svg>",
  );
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, `${parts.join("\n")}\n`);
}

/** Percentile of a sorted array. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

/** Median of numbers. */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}
