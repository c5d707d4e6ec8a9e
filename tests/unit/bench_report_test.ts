/**
 * The bench's outputs: the SVG chart renders to a picture that is not blank and
 * names every row; the markdown and terminal tables carry every row and the right
 * ratios; a case runs end to end through run_case. Load rows (bursts, reconnect storms)
 * get a table of their own and stay out of the main table, the chart and the comparison.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { inflateSync } from "node:zlib";
import { allCases } from "../../bench/cases/mod.ts";
import { compareRuns, comparisonText } from "../../bench/compare.ts";
import { loadRows, loadText, markdown, terminalTable } from "../../bench/report.ts";
import {
  type BurstFigures,
  type CaseResult,
  type RunResult,
  ratio,
  ratioBand,
  type Samples,
  type StormFigures,
  summarize,
} from "../../bench/results.ts";
import { runCase } from "../../bench/run_case.ts";
import { chartSvg } from "../../bench/svg.ts";
import { findProgram } from "../../src/testing/_fixtures/programs.ts";
import { peerSkip } from "../_harness/peers.ts";

function result(
  id: string,
  label: string,
  group: string,
  scale: number,
  peer?: string,
): CaseResult {
  return {
    id,
    group,
    label,
    peer,
    status: "ok",
    samples: {
      uploadMBps: [100 * scale, 110 * scale, 90 * scale],
      downloadMBps: [200 * scale, 190 * scale, 210 * scale],
      rttP50Us: [40 / scale, 41 / scale, 39 / scale],
      rttP99Us: [90 / scale, 95 / scale, 85 / scale],
      setupMs: [1 / scale, 1 / scale, 1 / scale],
      cpuSPerGB: [2, 2, 2],
    },
    peakRssMb: { "bench process": 100 },
    seconds: 1,
  };
}

function samplesOf(r: CaseResult): Samples {
  assert.ok(r.samples, r.id);
  return r.samples;
}

const run: RunResult = {
  tool: "spokewire-bench",
  version: 1,
  date: "2026-12-06T00:00:00.000Z",
  commit: "0123456789abcdef",
  runtime: "node",
  versions: { node: "v24.0.0" },
  machine: { cpus: "test cpu", cores: 2, memoryGiB: 24, os: "linux" },
  settings: { bytes: 1e6, rttSamples: 10, repeat: 3, quick: true },
  cases: [
    result(
      "tcp.spokewire",
      "spokewire TCP with a rather long label to test widths",
      "TCP",
      2,
      "tcp.node-net",
    ),
    result("tcp.node-net", "node:net", "TCP", 1),
    result("tls.spokewire", "spokewire mTLS", "TLS", 1.5, "tls.node-tls"),
    result("tls.node-tls", "node:tls mTLS", "TLS", 1),
    {
      id: "ssh.openssh",
      group: "SSH",
      label: "OpenSSH ssh -L",
      status: "skipped",
      reason: "ssh not installed (Debian package openssh-client)",
      seconds: 0,
    },
  ],
};

/** Decode a PNG (8-bit, not interlaced) to its unfiltered pixel bytes. */
function pngPixels(png: Uint8Array): {
  width: number;
  height: number;
  bpp: number;
  data: Uint8Array;
} {
  assert.deepEqual([...png.subarray(0, 8)], [137, 80, 78, 71, 13, 10, 26, 10], "PNG signature");
  const view = new DataView(png.buffer, png.byteOffset, png.byteLength);
  let off = 8;
  let width = 0;
  let height = 0;
  let bpp = 4;
  const idat: Uint8Array[] = [];
  while (off < png.byteLength) {
    const len = view.getUint32(off);
    const type = new TextDecoder().decode(png.subarray(off + 4, off + 8));
    if (type === "IHDR") {
      width = view.getUint32(off + 8);
      height = view.getUint32(off + 12);
      assert.equal(png[off + 16], 8, "8-bit depth");
      bpp = ({ 0: 1, 2: 3, 4: 2, 6: 4 } as Record<number, number>)[png[off + 17]] ?? 4;
    }
    if (type === "IDAT") idat.push(png.subarray(off + 8, off + 8 + len));
    off += 12 + len;
  }
  const raw = new Uint8Array(inflateSync(Buffer.concat(idat)));
  const stride = width * bpp;
  const out = new Uint8Array(stride * height);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)];
    const line = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    for (let i = 0; i < stride; i++) {
      const a = i >= bpp ? out[y * stride + i - bpp] : 0;
      const b = y > 0 ? out[(y - 1) * stride + i] : 0;
      const c = i >= bpp && y > 0 ? out[(y - 1) * stride + i - bpp] : 0;
      const p = a + b - c;
      const pa = Math.abs(p - a);
      const pb = Math.abs(p - b);
      const pc = Math.abs(p - c);
      const paeth = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      const pred = [0, a, b, (a + b) >> 1, paeth][filter] ?? 0;
      out[y * stride + i] = (line[i] + pred) & 0xff;
    }
  }
  return { width, height, bpp, data: out };
}

describe("bench report", () => {
  it("the SVG names every row that ran, once per panel, and each panel's legend", () => {
    const svg = chartSvg(run);
    const texts = [...svg.matchAll(/<text[^>]*>([^<]*)<\/text>/g)].map((m) => m[1]);
    for (const c of run.cases.filter((x) => x.status === "ok")) {
      const n = texts.filter((t) => t === c.label).length;
      assert.equal(n, 2, `${c.label} appears ${n} times`);
    }
    for (const l of ["upload", "download", "p50", "p99"]) assert.ok(texts.includes(l), l);
    assert.match(svg, /higher is better/);
    assert.match(svg, /lower is better/);
  });

  it("no label or value runs past the picture", () => {
    const svg = chartSvg(run);
    const width = Number(/width="(\d+)"/.exec(svg)?.[1]);
    for (const m of svg.matchAll(/<text x="([\d.]+)"[^>]*>([^<]*)<\/text>/g)) {
      const x = Number(m[1]);
      const end = m[0].includes('text-anchor="end"') ? x : x + m[2].length * 7.4;
      assert.ok(end <= width, `"${m[2]}" ends at ${end} > ${width}`);
      assert.ok(x >= 0);
    }
  });

  it("renders to a PNG that is not blank", { skip: peerSkip("rsvg-convert") }, () => {
    const dir = mkdtempSync(join(tmpdir(), "spokewire-svg-"));
    try {
      writeFileSync(join(dir, "chart.svg"), chartSvg(run));
      const rsvg = findProgram("rsvg-convert") ?? "rsvg-convert";
      execFileSync(rsvg, ["-o", join(dir, "chart.png"), join(dir, "chart.svg")], {
        timeout: 30_000,
      });
      const { width, height, data } = pngPixels(
        new Uint8Array(readFileSync(join(dir, "chart.png"))),
      );
      assert.ok(width > 500 && height > 200, `${width}x${height}`);
      let dark = 0;
      for (const b of data) if (b < 200) dark++;
      // Bars and text: well above nothing, well below everything.
      assert.ok(dark / data.length > 0.005, `only ${dark} of ${data.length} bytes are not light`);
      assert.ok(dark / data.length < 0.9, "the picture is almost all dark");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("tables: every row, the ratio to its peer, skips with their reason", () => {
    const md = markdown(run);
    const term = terminalTable(run);
    for (const c of run.cases) {
      assert.ok(md.includes(c.label), c.label);
      assert.ok(term.includes(c.label), c.label);
    }
    assert.equal(ratio(run.cases[0], run.cases[1], "uploadMBps"), 2);
    assert.equal(ratio(run.cases[0], run.cases[1], "rttP50Us"), 0.5);
    assert.match(md, /node:net: up 2\.00x, down 2\.00x, p50 0\.50x, setup 0\.50x/);
    assert.match(md, /skipped: ssh not installed/);
  });

  it("a ratio pairs the rounds: median of row/peer per round, with their range", () => {
    const row = {
      ...run.cases[0],
      samples: { ...samplesOf(run.cases[0]), uploadMBps: [100, 200, 300] },
    };
    const peer = {
      ...run.cases[1],
      samples: { ...samplesOf(run.cases[1]), uploadMBps: [100, 400, 150] },
    };
    // Per round 1, 0.5, 2: the median is 1 (the ratio of the medians would be 1.33).
    assert.deepEqual(ratioBand(row, peer, "uploadMBps"), {
      median: 1,
      min: 0.5,
      max: 2,
      noisy: true,
    });
    assert.equal(ratio(row, peer, "uploadMBps"), 1);
    assert.match(markdown({ ...run, cases: [row, peer] }), /up 1\.00x \[0\.50-2\.00\]/);
    // Different counts (a round failed): the ratio of the medians, no range.
    const short = { ...peer, samples: { ...samplesOf(peer), uploadMBps: [100, 150] } };
    assert.deepEqual(ratioBand(row, short, "uploadMBps"), {
      median: 1.6,
      min: 1.6,
      max: 1.6,
      noisy: false,
    });
    assert.equal(ratioBand(row, undefined, "uploadMBps"), undefined);
  });

  it("two runs agree on a ratio when its ranges overlap, and differ when not", () => {
    const scaled = (r: CaseResult, f: number[]): CaseResult => ({
      ...r,
      samples: { ...samplesOf(r), uploadMBps: samplesOf(r).uploadMBps.map((v, i) => v * f[i]) },
    });
    // Run A: TCP up ratio 2 in every round. Run B: 1.9-2.2 (overlaps); run C: 3 (does not).
    const b = { ...run, cases: [scaled(run.cases[0], [0.95, 1, 1.1]), ...run.cases.slice(1)] };
    const c = { ...run, cases: [scaled(run.cases[0], [1.5, 1.5, 1.5]), ...run.cases.slice(1)] };
    const ab = compareRuns(run, b);
    assert.ok(ab.length >= 8, `${ab.length} ratios`);
    assert.ok(ab.every((x) => x.agree));
    assert.match(comparisonText(ab), new RegExp(`${ab.length} of ${ab.length} ratios agree`));
    const ac = compareRuns(run, c);
    const up = ac.find((x) => x.row === run.cases[0].label && x.figure === "up");
    assert.equal(up?.agree, false);
    assert.deepEqual(
      ac.filter((x) => !x.agree).map((x) => `${x.row} ${x.figure}`),
      [`${run.cases[0].label} up`],
    );
    assert.match(comparisonText(ac), /DIFFER/);
    assert.match(comparisonText(ac), /1 differ/);
    // A ratio one run lacks (its peer did not run) is listed, not counted as agreeing.
    const d = { ...run, cases: run.cases.filter((x) => x.id !== "tls.node-tls") };
    const ad = compareRuns(run, d);
    assert.ok(ad.some((x) => x.row === "spokewire mTLS" && x.b === undefined && !x.agree));
    assert.match(comparisonText(ad), /one run only/);
  });

  it("a figure whose repeats differ by more than 25% is marked", () => {
    assert.equal(summarize([100, 101, 99])?.noisy, false);
    assert.equal(summarize([100, 140, 90])?.noisy, true);
    assert.equal(summarize([])?.median, undefined);
  });
});

const burst: BurstFigures = {
  type: "burst",
  clients: 10_000,
  bytesPerClient: [4096, 7168],
  ok: 2492,
  refused: 2403,
  lost: 5105,
  lostBy: { "connect EAGAIN": 2454, "reset before response": 2651 },
  openAllMs: 17_358,
  finishAllMs: 17_555.4,
  frontendRefusedBy: { 503: 2403 },
  warnings: { "konnectivity server: MaxListenersExceededWarning": 1 },
};

const storm: StormFigures = {
  type: "storm",
  agents: 2000,
  coldStartMs: 12_000,
  reregisterMs: 9012,
  reregisterFromKillMs: 10_480,
  serverRssIdleMb: 90,
  serverRssAgentsMb: 340,
  rssPerAgentKiB: 128,
  refusedBy: { "backlog-full": 3 },
  refused: 3,
  coldRefusedBy: {},
  agentErrors: { DIAL_FAILED: 12 },
};

const loadRun: RunResult = {
  ...run,
  cases: [
    ...run.cases,
    {
      id: "load.burst-10000",
      group: "Load",
      label: "10,000 CONNECTs at once",
      kind: "load",
      status: "ok",
      load: burst,
      peakRssMb: { "konnectivity server": 299.4, "konnectivity agent": 232 },
      seconds: 22,
    },
    {
      id: "load.storm",
      group: "Load",
      label: "agents reconnecting after a server restart",
      kind: "load",
      status: "ok",
      load: storm,
      seconds: 40,
    },
    {
      id: "load.burst-1000",
      group: "Load",
      label: "1,000 CONNECTs at once",
      kind: "load",
      status: "failed",
      reason: "not within 60000 ms: konnectivity server did not print\nmore",
      seconds: 60,
    },
  ],
};

describe("bench report: load rows", () => {
  it("a table of their own: counts, times, memory, causes; failures with their reason", () => {
    const rows = loadRows(loadRun);
    assert.deepEqual(rows[0], [
      "row",
      "load",
      "succeeded",
      "refused",
      "lost",
      "time",
      "memory",
      "notes",
    ]);
    assert.deepEqual(rows[1].slice(0, 7), [
      "10,000 CONNECTs at once",
      "10,000 CONNECTs x 4-7 KiB",
      "2,492",
      "2,403",
      "5,105",
      "all open 17.4 s, all done 17.6 s",
      "peak server 299 MB, agent 232 MB",
    ]);
    assert.equal(
      rows[1][7],
      "lost: reset before response 2,651, connect EAGAIN 2,454; frontend refused: 503 2,403; " +
        "warnings: konnectivity server: MaxListenersExceededWarning 1",
    );
    assert.deepEqual(rows[2].slice(0, 7), [
      "agents reconnecting after a server restart",
      "2,000 agents",
      "2,000 back",
      "3",
      "-",
      "all back 9.01 s (10.5 s after the kill)",
      "server 128 KiB/agent (90 -> 340 MB)",
    ]);
    assert.match(rows[2][7], /cold start \(1,000 a second\) 12\.0 s; refused: backlog-full 3/);
    assert.match(rows[2][7], /agents' failed attempts once it listened: DIAL_FAILED 12/);
    assert.deepEqual(rows[3], [
      "1,000 CONNECTs at once",
      "failed: not within 60000 ms: konnectivity server did not print",
    ]);
    assert.deepEqual(loadRows(run), [], "no load rows, no table");
  });

  it("terminal and markdown: a Load table after the main one, load rows not in the main table", () => {
    const term = terminalTable(loadRun);
    const md = markdown(loadRun);
    for (const text of [term, md]) {
      const [main, load] = text.split(/\nLoad\b/);
      assert.ok(load, "a Load section");
      for (const c of loadRun.cases) {
        assert.equal(main.includes(c.label), c.kind !== "load", `${c.label} in the main table`);
        assert.equal(load.includes(c.label), c.kind === "load", `${c.label} in the Load table`);
      }
      assert.ok(load.includes("2,403"));
      assert.ok(load.includes("all back 9.01 s"));
    }
    assert.match(
      md,
      /\| 10,000 CONNECTs at once \| 10,000 CONNECTs x 4-7 KiB \| 2,492 \| 2,403 \| 5,105 \|/,
    );
    assert.match(
      md,
      /\| row \| load \| succeeded \| refused \| lost \| time \| memory \| notes \|\n\| --- \| --- \| ---: \| ---: \| ---: \| --- \| --- \| --- \|/,
    );
    // Every markdown table row has as many cells as its header.
    for (const line of md.split("\n").filter((l) => l.startsWith("| 1,000 CONNECTs"))) {
      assert.equal(line.split(" | ").length, 8, line);
    }
    // The main table and its ratios are as without the load rows.
    assert.ok(md.startsWith(markdown(run).trimEnd()));
    assert.ok(term.startsWith(terminalTable(run)));
  });

  it("only load rows: no empty main table", () => {
    const only = { ...loadRun, cases: loadRun.cases.filter((c) => c.kind === "load") };
    const md = markdown(only);
    assert.doesNotMatch(md, /upload MB\/s/);
    assert.match(md, /\| 10,000 CONNECTs at once \|/);
    const term = terminalTable(only);
    assert.match(term, /^Load\n/);
    assert.doesNotMatch(term, /upload MB\/s/);
  });

  it("the chart and the comparison leave load rows out", () => {
    const svg = chartSvg(loadRun);
    for (const c of loadRun.cases.filter((x) => x.kind === "load")) {
      assert.ok(!svg.includes(c.label), c.label);
    }
    assert.equal(chartSvg(loadRun).length, chartSvg(run).length);
    const ab = compareRuns(loadRun, loadRun);
    assert.deepEqual(ab, compareRuns(run, run));
  });

  it("one progress line per kind", () => {
    assert.equal(
      loadText(burst),
      "2,492 ok, 2,403 refused (503), 5,105 lost; all open 17.4 s, all done 17.6 s",
    );
    assert.equal(
      loadText(storm),
      "2,000 agents back 9.01 s after the restart (10.5 s after the kill), 3 refused; 128 KiB server RSS per agent",
    );
  });
});

describe("bench cases", () => {
  it("ids are unique and every peer they name exists", () => {
    const ids = new Set(allCases.map((c) => c.id));
    assert.equal(ids.size, allCases.length);
    for (const c of allCases) {
      for (const p of [c.peer, ...(c.alsoVs ?? [])])
        if (p) assert.ok(ids.has(p), `${c.id} -> ${p}`);
    }
  });

  it("the load rows are listed, each a load case", () => {
    const load = allCases.filter((c) => c.kind === "load").map((c) => c.id);
    assert.deepEqual(load, ["load.burst-1000", "load.burst-10000", "load.storm"]);
  });

  it("a case runs end to end and reports every figure", { timeout: 60_000 }, async () => {
    const r = await runCase("tcp.spokewire", {
      quick: true,
      bytes: 1_000_000,
      rttSamples: 20,
      repeat: 2,
      setupSamples: 3,
    });
    assert.equal(r.status, "ok", r.reason);
    for (const k of [
      "uploadMBps",
      "downloadMBps",
      "rttP50Us",
      "rttP99Us",
      "setupMs",
      "setupP99Ms",
    ] as const) {
      assert.equal(r.samples?.[k]?.length, 2, k);
      for (const v of r.samples?.[k] ?? []) assert.ok(v > 0 && Number.isFinite(v), `${k} ${v}`);
    }
  });

  it("an unknown case is a failed result, not a crash", async () => {
    const r = await runCase("no.such", {
      quick: true,
      bytes: 1,
      rttSamples: 1,
      repeat: 1,
      setupSamples: 1,
    });
    assert.equal(r.status, "failed");
  });
});
