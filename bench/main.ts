/**
 * `npm run bench` (Node) / `deno task bench` (Deno): every transport against
 * its same-run baseline. Prints a table, writes bench/results/latest.json and
 * bench/results/latest.svg.
 *
 * Environment: BENCH_BYTES (default 268435456 = 256 MiB), BENCH_RTT_SAMPLES
 * (default 5000), BENCH_ROUNDS (default 5), BENCH_ONLY (comma list of suites).
 */
import { existsSync } from "node:fs";
import { arch, cpus, platform } from "node:os";
import { fileURLToPath } from "node:url";
import { printTable, type Row, writeChart, writeJson } from "./report.ts";
import { benchTcp } from "./tcp.ts";

const env = (k: string, d: number): number => {
  const v = process.env[k];
  return v ? Number(v) : d;
};
const bytes = env("BENCH_BYTES", 256 * 1024 * 1024);
const rttSamples = env("BENCH_RTT_SAMPLES", 5000);
const rounds = env("BENCH_ROUNDS", 5);
const only = process.env.BENCH_ONLY?.split(",").map((s) => s.trim());
const want = (s: string) => !only || only.includes(s);
const isDeno = "Deno" in globalThis;
const runtime = isDeno
  ? `deno ${(globalThis as unknown as { Deno: { version: { deno: string } } }).Deno.version.deno}`
  : `node ${process.version}`;
const here = fileURLToPath(new URL(".", import.meta.url));

type Suite = (o: { bytes: number; rttSamples: number; rounds: number }) => Promise<Row[]>;
/** Optional suites: each lives in its own file with one exported function. */
const optional: [string, string, string][] = [
  ["tls", "tls.ts", "benchTls"],
  ["ssh", "ssh.ts", "benchSsh"],
  ["konnectivity", "konnectivity.ts", "benchKonnectivity"],
];

const rows: Row[] = [];
console.log(
  `spokewire bench: ${runtime}, ${platform()} ${arch()}, ${cpus().length} cpus, ${bytes} bytes bulk, ${rttSamples} RTT samples, ${rounds} rounds`,
);
if (want("tcp")) rows.push(...(await benchTcp({ bytes, rttSamples, rounds })));
for (const [name, file, fn] of optional) {
  if (!want(name) || !existsSync(`${here}${file}`)) continue;
  const mod = (await import(`./${file}`)) as Record<string, Suite>;
  try {
    rows.push(...(await mod[fn]({ bytes, rttSamples, rounds })));
  } catch (err) {
    console.error(`suite ${name} failed: ${(err as Error).stack ?? err}`);
    process.exitCode = 1;
  }
}
printTable(rows);
const tag = isDeno ? "deno" : "node";
const meta = {
  runtime,
  date: new Date().toISOString(),
  bytes,
  rttSamples,
  rounds,
  cpus: cpus().length,
};
writeJson(`${here}results/latest.json`, meta, rows);
writeJson(`${here}results/latest-${tag}.json`, meta, rows);
writeChart(`${here}results/latest.svg`, `spokewire bench (${runtime})`, rows);
console.log(`wrote bench/results/latest.json, latest-${tag}.json and latest.svg`);
