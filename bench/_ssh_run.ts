import { printTable } from "./report.ts";
import { benchSsh } from "./ssh.ts";

printTable(
  await benchSsh({
    bytes: Number(process.argv[2] ?? 64 * 1024 * 1024),
    rttSamples: 1000,
    rounds: 1,
  }),
);
