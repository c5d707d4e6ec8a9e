/**
 * Spawn `openssl s_server` / `s_client` on 127.0.0.1 for interop tests. Ready
 * when they say so on their output; stopped by PID.
 *
 * @module
 */

import { type ChildProcess, spawn } from "node:child_process";

/** A running openssl process with its collected output. */
export interface OpensslProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  /** stdout + stderr so far. */
  output(): string;
  /** Resolves when the output matches `re` (rejects after `ms` or on exit). */
  waitFor(re: RegExp, ms?: number): Promise<RegExpMatchArray>;
  /** Resolves with the exit code. */
  readonly exited: Promise<number | null>;
  /** Kill by PID (idempotent). */
  stop(): void;
}

/** Start `openssl` with `args`. */
export function startOpenssl(args: readonly string[]): OpensslProcess {
  const child = spawn("openssl", [...args], { stdio: ["pipe", "pipe", "pipe"] });
  let out = "";
  const listeners = new Set<() => void>();
  const onOut = (b: Uint8Array): void => {
    out += new TextDecoder().decode(b);
    for (const l of [...listeners]) l();
  };
  child.stdout?.on("data", onOut);
  child.stderr?.on("data", onOut);
  child.stdin?.on("error", () => {});
  const exited = new Promise<number | null>((resolve) =>
    child.once("exit", (code) => resolve(code)),
  );
  let stopped = false;
  exited.then(() => {
    stopped = true;
    for (const l of [...listeners]) l();
  });
  if (child.pid === undefined) throw new Error("openssl did not start");
  const pid = child.pid;
  return {
    child,
    pid,
    output: () => out,
    exited,
    waitFor(re: RegExp, ms = 10_000): Promise<RegExpMatchArray> {
      return new Promise((resolve, reject) => {
        const check = (): void => {
          const m = out.match(re);
          if (m) {
            done();
            resolve(m);
          } else if (stopped) {
            done();
            reject(new Error(`openssl exited before printing ${re}; output:\n${out}`));
          }
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`openssl did not print ${re} within ${ms} ms; output:\n${out}`));
        }, ms);
        const done = (): void => {
          clearTimeout(timer);
          listeners.delete(check);
        };
        listeners.add(check);
        check();
      });
    },
    stop(): void {
      if (stopped) return;
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // already gone
      }
    },
  };
}

/** Start `openssl s_server` on 127.0.0.1 with an OS-chosen port; resolves once it accepts. */
export async function startSServer(
  args: readonly string[],
): Promise<OpensslProcess & { port: number }> {
  const p = startOpenssl(["s_server", "-accept", "127.0.0.1:0", ...args]);
  try {
    const m = await p.waitFor(/ACCEPT\s+\S*:(\d+)/);
    return Object.assign(p, { port: Number(m[1]) });
  } catch (err) {
    p.stop();
    throw err;
  }
}
