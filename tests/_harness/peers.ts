/**
 * Tests that need an external program: skip with one line naming the program and its
 * Debian package, or, when peers are required (`CI=true` or `SPOKEWIRE_REQUIRE_PEERS=1`),
 * fail. Every skip is appended to `$SPOKEWIRE_SKIP_LOG` (set by `npm test`), which prints
 * the summary at the end.
 *
 * ```ts
 * describe("sshd interop", { skip: peerSkip("sshd", "ssh-keygen") }, () => { ... });
 * ```
 *
 * @module
 */
import { appendFileSync } from "node:fs";
import process from "node:process";
import { missingProgram, type ProgramName } from "../../src/testing/_fixtures/programs.ts";

/** True when a missing peer must fail the run instead of skipping. */
export function peersRequired(): boolean {
  const ci = (process.env.CI ?? "").toLowerCase();
  return (ci !== "" && ci !== "false" && ci !== "0") || process.env.SPOKEWIRE_REQUIRE_PEERS === "1";
}

/** Record a skip (stderr line and the run's skip log). */
export function recordSkip(where: string, reason: string): void {
  const line = `skipped: ${where}: ${reason}`;
  process.stderr.write(`${line}\n`);
  const log = process.env.SPOKEWIRE_SKIP_LOG;
  if (log) appendFileSync(log, `${line}\n`);
}

/**
 * The skip reason when one of `programs` is missing, else `false` (for node:test's
 * `skip` option). When peers are required, a missing program throws instead, which
 * fails the test file with that line.
 */
export function peerSkip(...programs: readonly ProgramName[]): string | false {
  const reason = missingProgram(...programs);
  if (!reason) return false;
  const where = callerFile();
  if (peersRequired()) {
    throw new Error(`${where}: ${reason}, and peers are required (CI or SPOKEWIRE_REQUIRE_PEERS)`);
  }
  recordSkip(where, reason);
  return reason;
}

function callerFile(): string {
  const stack = new Error().stack?.split("\n") ?? [];
  for (const l of stack.slice(2)) {
    const m = /(tests\/[^\s:)]+)/.exec(l);
    if (m && !m[1].includes("_harness/peers.ts")) return m[1];
  }
  return "a test";
}
