/**
 * The chart: throughput (higher is better) and latency (lower is better) in two
 * separate panels, one bar pair per row, absolute values on the bars, a legend per
 * panel, rows grouped as in the table. Every width is computed from the longest
 * label, so nothing is clipped; each label appears once per panel.
 *
 * @module
 */
import { type CaseResult, type RunResult, summarize } from "./results.ts";

const FONT = 12;
/** Width of one character at {@link FONT} (generous for proportional fonts). */
const CHAR = 7.4;
const BAR = 11;
const ROW = 2 * BAR + 10;
const GROUP = 22;

const esc = (s: string): string =>
  s
    .replaceAll("&", "&amp;")
    .replaceAll("<", "&lt;")
    .replaceAll(">", "&gt;")
    .replaceAll('"', "&quot;");

interface Series {
  readonly name: string;
  readonly color: string;
  readonly value: (r: CaseResult) => number | undefined;
}

interface Panel {
  readonly title: string;
  readonly unit: string;
  readonly series: readonly [Series, Series];
}

const med = (k: keyof NonNullable<CaseResult["samples"]>) => (r: CaseResult) =>
  summarize(r.samples?.[k])?.median;

const PANELS: readonly Panel[] = [
  {
    title: "Throughput, one stream (MB/s, higher is better)",
    unit: "MB/s",
    series: [
      { name: "upload", color: "#2b6cb0", value: med("uploadMBps") },
      { name: "download", color: "#90cdf4", value: med("downloadMBps") },
    ],
  },
  {
    title: "64-byte round trip (us, lower is better)",
    unit: "us",
    series: [
      { name: "p50", color: "#c05621", value: med("rttP50Us") },
      { name: "p99", color: "#fbd38d", value: med("rttP99Us") },
    ],
  },
];

const num = (v: number): string =>
  v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2);

/** The SVG document of a run. */
export function chartSvg(run: RunResult): string {
  const rows = run.cases.filter((c) => c.status === "ok" && c.samples);
  const groups: { name: string; rows: CaseResult[] }[] = [];
  for (const r of rows) {
    const g = groups.find((x) => x.name === r.group);
    if (g) g.rows.push(r);
    else groups.push({ name: r.group, rows: [r] });
  }
  const labelW = Math.ceil(Math.max(10, ...rows.map((r) => r.label.length)) * CHAR) + 24;
  const barMax = 420;
  const valueW = 12 * CHAR;
  const panelW = labelW + barMax + valueW + 20;
  const width = Math.ceil(panelW * PANELS.length + 20);
  const bodyH = groups.reduce((h, g) => h + GROUP + g.rows.length * ROW, 0);
  const title = `spokewire bench: ${run.runtime} ${run.versions[run.runtime] ?? ""}, ${run.machine.cores} cores, ${run.date.slice(0, 10)}, commit ${run.commit.slice(0, 10)}`;
  const top = 40;
  const legendH = 26;
  const height = Math.ceil(top + 24 + legendH + bodyH + 20);
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="${FONT}">`,
    `<rect x="0" y="0" width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="10" y="24" font-size="15" font-weight="bold">${esc(title)}</text>`,
  ];
  PANELS.forEach((panel, pi) => {
    const x0 = 10 + pi * panelW;
    let y = top;
    out.push(
      `<text x="${x0}" y="${y + 14}" font-size="13" font-weight="bold">${esc(panel.title)}</text>`,
    );
    y += 24;
    panel.series.forEach((s, si) => {
      const lx = x0 + labelW + si * 110;
      out.push(`<rect x="${lx}" y="${y}" width="14" height="${BAR}" fill="${s.color}"/>`);
      out.push(`<text x="${lx + 20}" y="${y + BAR - 1}">${esc(s.name)}</text>`);
    });
    y += legendH;
    const values = rows.flatMap((r) => panel.series.map((s) => s.value(r) ?? 0));
    const maxV = Math.max(1e-9, ...values);
    for (const g of groups) {
      out.push(
        `<text x="${x0}" y="${y + 15}" font-weight="bold" fill="#444">${esc(g.name)}</text>`,
      );
      y += GROUP;
      for (const r of g.rows) {
        out.push(
          `<text x="${x0 + labelW - 8}" y="${y + BAR + 4}" text-anchor="end">${esc(r.label)}</text>`,
        );
        panel.series.forEach((s, si) => {
          const v = s.value(r);
          const by = y + si * (BAR + 2);
          const w = v === undefined ? 0 : Math.max(1, (v / maxV) * barMax);
          out.push(
            `<rect x="${x0 + labelW}" y="${by}" width="${w.toFixed(1)}" height="${BAR}" fill="${s.color}"/>`,
          );
          const text = v === undefined ? "-" : `${num(v)} ${panel.unit}`;
          out.push(
            `<text x="${(x0 + labelW + w + 4).toFixed(1)}" y="${by + BAR - 1}" font-size="10">${esc(text)}</text>`,
          );
        });
        y += ROW;
      }
    }
  });
  out.push("</svg>");
  return `${out.join("\n")}\n`;
}
