/**
 * `npm test`: every check, each run even when an earlier one failed, then one summary.
 *
 * Steps: lint (biome), typecheck (`tsc --noEmit`), build, the Node half (every
 * `tests/**\/*_test.ts` under `node --test`), the Deno half (`deno test tests/`, then the
 * doc tests of `mod.ts` and `src/`). Tests that need a program that is not installed skip
 * with one line naming it and its Debian package; those lines are collected (through
 * `$SPOKEWIRE_SKIP_LOG`) and listed at the end. With `CI=true` or
 * `SPOKEWIRE_REQUIRE_PEERS=1` such a skip is a failure instead. The exit code is non-zero
 * when any step failed.
 *
 * `node --import tsx tests/run.ts [lint|typecheck|build|node|deno ...]` runs only the
 * named steps.
 *
 * @module
 */
import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const BIN = join(ROOT, "node_modules", ".bin");

/** Every `*_test.ts` under `dir`, sorted, relative to the repository. */
function testFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (name.endsWith("_test.ts")) out.push(relative(ROOT, p));
    }
  };
  walk(dir);
  return out.sort();
}

interface Step {
  readonly name: string;
  readonly commands: readonly (readonly string[])[];
}

const STEPS: readonly Step[] = [
  { name: "lint", commands: [[join(BIN, "biome"), "check", "."]] },
  { name: "typecheck", commands: [[join(BIN, "tsc"), "--noEmit", "-p", "."]] },
  { name: "build", commands: [["npm", "run", "--silent", "build"]] },
  {
    name: "node",
    commands: [
      [
        process.execPath,
        "--import",
        "tsx",
        "--test",
        "--test-concurrency=1",
        "--test-timeout=600000",
        ...testFiles(join(ROOT, "tests")),
      ],
    ],
  },
  {
    name: "deno",
    commands: [
      [join(BIN, "deno"), "test", "-A", "--no-check", "tests/"],
      [join(BIN, "deno"), "test", "-A", "--doc", "mod.ts", "src/"],
    ],
  },
];

/** Run one command with inherited output; resolves with its exit code. */
function run(cmd: readonly string[], env: NodeJS.ProcessEnv): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(cmd[0], cmd.slice(1), { cwd: ROOT, stdio: "inherit", env });
    child.on("error", (e) => {
      process.stderr.write(`cannot start ${cmd[0]}: ${e.message}\n`);
      resolve(127);
    });
    child.on("close", (code, signal) => resolve(code ?? (signal ? 128 : 1)));
  });
}

async function main(): Promise<void> {
  const wanted = process.argv.slice(2);
  const unknown = wanted.filter((w) => !STEPS.some((s) => s.name === w));
  if (unknown.length) {
    process.stderr.write(
      `unknown step(s) ${unknown.join(", ")}; steps: ${STEPS.map((s) => s.name).join(", ")}\n`,
    );
    process.exit(2);
  }
  const steps = wanted.length ? STEPS.filter((s) => wanted.includes(s.name)) : STEPS;
  const dir = mkdtempSync(join(tmpdir(), "spokewire-test-"));
  const skipLog = join(dir, "skips.log");
  const env = { ...process.env, SPOKEWIRE_SKIP_LOG: skipLog };
  const results: { name: string; ok: boolean; seconds: number }[] = [];
  for (const step of steps) {
    process.stderr.write(`\n== ${step.name}\n`);
    const t0 = performance.now();
    let ok = true;
    for (const cmd of step.commands) {
      const code = await run(cmd, env);
      if (code !== 0) ok = false;
    }
    results.push({ name: step.name, ok, seconds: (performance.now() - t0) / 1000 });
  }
  let skips: string[] = [];
  try {
    skips = [...new Set(readFileSync(skipLog, "utf8").split("\n").filter(Boolean))];
  } catch {
    // nothing skipped
  }
  rmSync(dir, { recursive: true, force: true });
  const lines = ["", "== summary"];
  for (const r of results)
    lines.push(`${r.ok ? "pass" : "FAIL"}  ${r.name.padEnd(10)} ${r.seconds.toFixed(0)} s`);
  if (skips.length) {
    lines.push(`Skipped (${skips.length}), each for a program that is not installed:`);
    for (const s of skips) lines.push(`  ${s}`);
  } else lines.push("Skipped: none");
  const failed = results.filter((r) => !r.ok);
  lines.push(
    failed.length ? `FAILED: ${failed.map((r) => r.name).join(", ")}` : "all steps passed",
  );
  process.stdout.write(`${lines.join("\n")}\n`);
  process.exitCode = failed.length ? 1 : 0;
}

await main();
