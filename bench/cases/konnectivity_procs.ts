/**
 * Child processes of the Konnectivity rows: the spokewire CLI (`src/cli/main.ts server|agent`)
 * and the peers' relays (`konnectivity_relay.ts`), started with the bench's own runtime
 * (Node: `node --import tsx`; Deno: `deno run -A`), waited for by the lines they print,
 * and stopped by PID. Also the bench PKI as PEM files, for the CLI's flags.
 *
 * @module
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import type { BenchPki } from "../certs.ts";

/** The repository root (the CLI and tsx resolve from here). */
export const REPO_ROOT: string = fileURLToPath(new URL("../../", import.meta.url));

/** `src/cli/main.ts`, the spokewire-konnectivity command. */
export const CLI_MAIN: string = join(REPO_ROOT, "src", "cli", "main.ts");

/** The peers' relay script. */
export const RELAY_MAIN: string = fileURLToPath(
  new URL("./konnectivity_relay.ts", import.meta.url),
);

interface DenoLike {
  execPath(): string;
}
const deno = (globalThis as { Deno?: DenoLike }).Deno;

/** The bench PKI written as PEM files in a fresh temporary folder. */
export interface PkiFiles {
  readonly dir: string;
  readonly ca: string;
  readonly serverCert: string;
  readonly serverKey: string;
  readonly clientCert: string;
  readonly clientKey: string;
  remove(): void;
}

/** Write `pki` to a new temporary folder (mode 0600 keys). */
export function writePkiFiles(pki: BenchPki): PkiFiles {
  const dir = mkdtempSync(join(tmpdir(), "spokewire-bench-konn-"));
  const put = (name: string, text: string, mode = 0o644): string => {
    const p = join(dir, name);
    writeFileSync(p, text, { mode });
    return p;
  };
  return {
    dir,
    ca: put("ca.pem", pki.ca),
    serverCert: put("server.pem", pki.server.cert),
    serverKey: put("server-key.pem", pki.server.key, 0o600),
    clientCert: put("client.pem", pki.client.cert),
    clientKey: put("client-key.pem", pki.client.key, 0o600),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** The bench's runtime and the arguments that run a TypeScript file with it. */
export function scriptCommand(script: string, args: readonly string[]): [string, string[]] {
  if (deno) return [deno.execPath(), ["run", "-A", script, ...args]];
  return [process.execPath, ["--import", "tsx", script, ...args]];
}

/** A started child process, its output kept line by line. */
export interface Child {
  readonly name: string;
  readonly pid: number;
  /** Resolve with the first match of `re` on a line of stdout or stderr (past or future). */
  waitForLine(re: RegExp, timeoutMs: number): Promise<RegExpExecArray>;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once the process exited. */
  stop(graceMs?: number): Promise<void>;
  /** SIGKILL now (no chance to clean up); resolves once the process exited. */
  kill(): Promise<void>;
}

/** Children still running: killed if this process exits without stopping them (a crash). */
const running = new Set<number>();
let exitHook = false;

/**
 * Start `script` with the bench's runtime, in the repository root. `onLine`, if given,
 * sees every line of its stdout and stderr as it arrives (the kept lines are bounded).
 */
export function startChild(
  name: string,
  script: string,
  args: readonly string[],
  onLine?: (line: string) => void,
): Child {
  const [cmd, argv] = scriptCommand(script, args);
  const child: ChildProcess = spawn(cmd, argv, {
    cwd: REPO_ROOT,
    stdio: ["ignore", "pipe", "pipe"],
  });
  if (child.pid === undefined) throw new Error(`${name}: could not start ${cmd}`);
  const started = child.pid;
  running.add(started);
  if (!exitHook) {
    exitHook = true;
    process.on("exit", () => {
      for (const pid of running) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          // already gone
        }
      }
    });
  }
  const lines: string[] = [];
  const watchers = new Set<() => void>();
  let exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  const exit = new Promise<void>((resolve) => {
    child.once("exit", (code, signal) => {
      exited = { code, signal };
      running.delete(started);
      for (const w of [...watchers]) w();
      resolve();
    });
  });
  const feed = (stream: NodeJS.ReadableStream): void => {
    let partial = "";
    stream.setEncoding("utf8");
    stream.on("data", (text: string) => {
      const parts = (partial + text).split("\n");
      partial = parts.pop() ?? "";
      if (parts.length === 0) return;
      if (onLine) for (const l of parts) onLine(l);
      lines.push(...parts);
      if (lines.length > 2000) lines.splice(0, lines.length - 1000);
      for (const w of [...watchers]) w();
    });
  };
  feed(child.stdout!);
  feed(child.stderr!);
  const pid = child.pid;
  return {
    name,
    pid,
    waitForLine(re, timeoutMs) {
      return new Promise((resolve, reject) => {
        const check = (): void => {
          for (const l of lines) {
            const m = re.exec(l);
            if (m) {
              done();
              resolve(m);
              return;
            }
          }
          if (exited) {
            done();
            reject(
              new Error(
                `${name} exited (code ${exited.code}, signal ${exited.signal}) before printing ${re}:\n${lines.slice(-20).join("\n")}`,
              ),
            );
          }
        };
        const timer = setTimeout(() => {
          done();
          reject(
            new Error(
              `${name} did not print ${re} within ${timeoutMs} ms:\n${lines.slice(-20).join("\n")}`,
            ),
          );
        }, timeoutMs);
        const done = (): void => {
          clearTimeout(timer);
          watchers.delete(check);
        };
        watchers.add(check);
        check();
      });
    },
    async stop(graceMs = 5000) {
      if (exited) return;
      try {
        process.kill(pid, "SIGTERM");
      } catch {
        // already gone
      }
      let timer: ReturnType<typeof setTimeout> | undefined;
      const killed = new Promise<void>((resolve) => {
        timer = setTimeout(() => {
          try {
            process.kill(pid, "SIGKILL");
          } catch {
            // already gone
          }
          resolve();
        }, graceMs);
      });
      await Promise.race([exit, killed]);
      clearTimeout(timer);
      await exit;
    },
    async kill() {
      if (exited) return;
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // already gone
      }
      await exit;
    },
  };
}

/** Resident set now (VmRSS) in MB of `pid` ("self" = this process), or NaN off Linux. */
export function rssMb(pid: number | "self"): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) / 1024 : Number.NaN;
  } catch {
    return Number.NaN;
  }
}
