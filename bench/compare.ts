/**
 * Do two bench runs agree? For every ratio both runs have (each row against its
 * peer and its further comparisons; up, down, p50, setup), the two runs agree
 * within noise when their bands overlap: each band is the range of that ratio over
 * the run's rounds (see `ratioBand`). A ratio present in one run only is listed
 * and not counted.
 *
 * Usage: `npm run bench:compare -- A.json B.json` (files written by `--json`, or
 * `bench/results/latest-<runtime>.json`). Exit status 1 when some ratio differs.
 *
 * @module
 */
import { readFileSync } from "node:fs";
import process from "node:process";
import { RATIO_FIGURES } from "./report.ts";
import { type CaseResult, type RunResult, ratioBand, type Summary } from "./results.ts";

/** One ratio in both runs. */
export interface RatioAgreement {
  readonly row: string;
  readonly vs: string;
  readonly figure: string;
  readonly a?: Summary;
  readonly b?: Summary;
  /** Both present and their bands overlap. */
  readonly agree: boolean;
}

function bandsOf(run: RunResult): Map<string, Summary> {
  const byId = new Map(run.cases.map((c) => [c.id, c]));
  const out = new Map<string, Summary>();
  for (const r of run.cases) {
    if (r.status !== "ok") continue;
    for (const id of [r.peer, ...(r.alsoVs ?? [])]) {
      const p: CaseResult | undefined = id === undefined ? undefined : byId.get(id);
      if (p?.status !== "ok") continue;
      for (const [name, key] of RATIO_FIGURES) {
        const band = ratioBand(r, p, key);
        if (band) out.set(`${r.label}\t${p.label}\t${name}`, band);
      }
    }
  }
  return out;
}

/** Every ratio of either run, with whether the two agree within noise. */
export function compareRuns(a: RunResult, b: RunResult): RatioAgreement[] {
  const ba = bandsOf(a);
  const bb = bandsOf(b);
  const keys = [...ba.keys(), ...[...bb.keys()].filter((k) => !ba.has(k))];
  return keys.map((k) => {
    const [row, vs, figure] = k.split("\t");
    const x = ba.get(k);
    const y = bb.get(k);
    const agree =
      x !== undefined && y !== undefined && Math.max(x.min, y.min) <= Math.min(x.max, y.max);
    return { row, vs, figure, a: x, b: y, agree };
  });
}

const band = (s: Summary | undefined): string =>
  s === undefined
    ? "-"
    : s.max > s.min
      ? `${s.median.toFixed(2)}x [${s.min.toFixed(2)}-${s.max.toFixed(2)}]`
      : `${s.median.toFixed(2)}x`;

/** The comparison as text: one line per ratio, then a count. */
export function comparisonText(list: readonly RatioAgreement[]): string {
  const rows = list.map((c) => [
    c.row,
    c.vs,
    c.figure,
    band(c.a),
    band(c.b),
    c.a && c.b ? (c.agree ? "agree" : "DIFFER") : "one run only",
  ]);
  const header = ["row", "vs", "ratio", "run A", "run B", ""];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r: string[]): string =>
    r
      .map((c, i) => c.padEnd(widths[i]))
      .join("  ")
      .trimEnd();
  const both = list.filter((c) => c.a && c.b);
  const differ = both.filter((c) => !c.agree);
  return `${[line(header), ...rows.map(line)].join("\n")}\n${both.length - differ.length} of ${both.length} ratios agree within noise (their ranges over the rounds overlap)${differ.length ? `; ${differ.length} differ` : ""}\n`;
}

function args(): string[] {
  const d = (globalThis as { Deno?: { args: string[] } }).Deno;
  return d ? d.args : process.argv.slice(2);
}

if (import.meta.main || process.argv[1]?.endsWith("compare.ts")) {
  const files = args();
  if (files.length !== 2) {
    process.stderr.write("usage: bench/compare.ts A.json B.json\n");
    process.exit(2);
  }
  const [a, b] = files.map((f) => JSON.parse(readFileSync(f, "utf8")) as RunResult);
  const list = compareRuns(a, b);
  process.stdout.write(comparisonText(list));
  process.exitCode = list.some((c) => c.a && c.b && !c.agree) ? 1 : 0;
}
