/**
 * `npm run bench:micro`: the Konnectivity codec beside its naive twin (a plain,
 * copying encoder and decoder kept in src/testing/_fixtures/konnectivity_naive.ts),
 * in operations and MB per second. A guard against codec regressions, not part of the
 * main table: users pick transports, not codecs.
 *
 * @module
 */
import { Bench } from "tinybench";
import { decodePacket, encodePacket, type Packet, PacketType } from "../mod.ts";
import { naiveDecode, naiveEncode } from "../src/testing/_fixtures/konnectivity_naive.ts";

const TASK_TIME_MS = 400;

async function opsPerSec(fast: () => unknown, naive: () => unknown): Promise<[number, number]> {
  const bench = new Bench({ time: TASK_TIME_MS, warmup: true });
  bench.add("fast", fast, { async: false }).add("naive", naive, { async: false });
  await bench.run();
  const ops = bench.tasks.map((t) => {
    const r = t.result as { throughput?: { mean: number }; period?: number };
    return r.period ? 1000 / r.period : (r.throughput?.mean ?? 0);
  });
  return [ops[0], ops[1]];
}

const payload = new Uint8Array(16 * 1024).fill(0x61);
const data: Packet = { type: PacketType.DATA, connectID: 12345, error: "", data: payload };
const dataMsg = encodePacket(data);
const wu: Packet = { type: PacketType.WINDOW_UPDATE, connectID: 12345, credit: 262144 };
const mb = dataMsg.byteLength / 1e6;
const rows: [string, number, number, number][] = [];
const [encF, encN] = await opsPerSec(
  () => encodePacket(data),
  () => naiveEncode(data),
);
rows.push(["encode DATA 16 KiB", encF, encN, mb]);
const [decF, decN] = await opsPerSec(
  () => decodePacket(dataMsg),
  () => naiveDecode(dataMsg),
);
rows.push(["decode DATA 16 KiB (payload as a view)", decF, decN, mb]);
const [ctlF, ctlN] = await opsPerSec(
  () => decodePacket(encodePacket(wu)),
  () => naiveDecode(naiveEncode(wu)),
);
rows.push(["encode+decode WINDOW_UPDATE", ctlF, ctlN, 0]);
const runtime = "Deno" in globalThis ? "deno" : "node";
process.stdout.write(`konnectivity codec micro-benchmarks (${runtime})\n`);
process.stdout.write(
  `${"case".padEnd(40)}${"ops/s".padStart(12)}${"naive ops/s".padStart(14)}${"MB/s".padStart(10)}  ratio\n`,
);
for (const [name, f, n, size] of rows) {
  process.stdout.write(
    `${name.padEnd(40)}${Math.round(f).toString().padStart(12)}${Math.round(n).toString().padStart(14)}${(size ? (f * size).toFixed(0) : "-").padStart(10)}  ${(f / n).toFixed(2)}x\n`,
  );
}
