/** Run only the SSH rows and print them (writes no result files). */
import { printTable } from "./report.ts";
import { benchSsh } from "./ssh.ts";

const env = (k: string, d: number): number => Number(process.env[k] ?? d);
printTable(
  await benchSsh({
    bytes: env("BENCH_BYTES", 64 * 1024 * 1024),
    rttSamples: env("BENCH_RTT_SAMPLES", 2000),
    rounds: env("BENCH_ROUNDS", 3),
    // Per-round numbers on stderr, to show the spread behind the medians.
    onRound: (name, r, m) =>
      console.error(
        `round ${r} ${name.padEnd(9)} up ${m.up.toFixed(0)} MB/s  down ${m.down.toFixed(0)} MB/s  p50 ${m.p50.toFixed(1)} us`,
      ),
  }),
);
