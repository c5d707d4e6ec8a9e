/** Run only the SSH rows and print them (writes no result files). */
import { printTable } from "./report.ts";
import { benchSsh } from "./ssh.ts";

const env = (k: string, d: number): number => Number(process.env[k] ?? d);
printTable(
  await benchSsh({
    bytes: env("BENCH_BYTES", 64 * 1024 * 1024),
    rttSamples: env("BENCH_RTT_SAMPLES", 2000),
    rounds: env("BENCH_ROUNDS", 3),
  }),
);
