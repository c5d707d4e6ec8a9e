/**
 * The Konnectivity CLI as child processes, in this test's runtime: start, wait for a
 * line (stdout or stderr), wait for exit; and `curl`. Every child is the caller's to
 * stop by its PID.
 *
 * @module
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import process from "node:process";
import { fileURLToPath } from "node:url";

const MAIN = fileURLToPath(new URL("../../src/cli/main.ts", import.meta.url));
const IS_DENO = typeof (globalThis as { Deno?: unknown }).Deno !== "undefined";
const READY_TIMEOUT_MS = 30_000;

/** Start the CLI with `args`. */
export function cli(args: string[]): ChildProcess {
  const pre = IS_DENO ? ["run", "-A", MAIN] : ["--import", "tsx", MAIN];
  return spawn(process.execPath, [...pre, ...args], { stdio: ["ignore", "pipe", "pipe"] });
}

/** Resolve with the first output matching `re` (its match) on stdout (or `stream`), bounded in time. */
export function waitLine(
  child: ChildProcess,
  re: RegExp,
  what: string,
  stream: "stdout" | "stderr" = "stdout",
): Promise<RegExpMatchArray> {
  return new Promise((resolve, reject) => {
    let out = "";
    let err = "";
    const timer = setTimeout(
      () => reject(new Error(`${what}: not ready within ${READY_TIMEOUT_MS} ms\n${out}\n${err}`)),
      READY_TIMEOUT_MS,
    );
    const onOut = (b: Uint8Array): void => {
      out += new TextDecoder().decode(b);
      const m = out.match(re);
      if (m) {
        clearTimeout(timer);
        child[stream]?.off("data", onOut);
        resolve(m);
      }
    };
    child[stream]?.on("data", onOut);
    child[stream === "stdout" ? "stderr" : "stdout"]?.on("data", (b: Uint8Array) => {
      err += new TextDecoder().decode(b);
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited with ${code}\n${out}\n${err}`));
    });
  });
}

/** Resolve with the exit code. */
export function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((r) => child.once("exit", (code) => r(code)));
}

/** Run `curl -sS --max-time 20 ...args`. */
export function curl(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      "curl",
      ["-sS", "--max-time", "20", ...args],
      { timeout: 30_000 },
      (e, stdout, stderr) => {
        const code = e ? (e as { code?: unknown }).code : 0;
        resolve({ code: typeof code === "number" ? code : -1, stdout, stderr });
      },
    );
  });
}

/** The PEM files the CLI tests hand the server, agents and curl (a `TestPki`'s paths). */
export interface CliPki {
  readonly ca: { readonly certPath: string };
  readonly server: { readonly certPath: string; readonly keyPath: string };
  readonly client: { readonly certPath: string; readonly keyPath: string };
}

/** Kill by PID unless it is gone; resolves when it has exited. */
export function killChild(c: ChildProcess): Promise<number | null> {
  if (c.exitCode === null && c.signalCode === null && c.pid !== undefined) {
    process.kill(c.pid, "SIGKILL");
  }
  return exited(c);
}

/**
 * The CLI server on loopback (agent listener on `agentBind`, default any free port) with
 * an mTLS CONNECT frontend and `extra` flags; its ports once both are ready. The caller
 * stops it by its PID (it is also pushed onto `children`).
 */
export async function startCliServer(
  pki: CliPki,
  children: ChildProcess[],
  extra: string[] = [],
  agentBind = "127.0.0.1:0",
): Promise<{ server: ChildProcess; agentPort: number; frontendPort: number }> {
  const server = cli([
    "server",
    "--agent-bind",
    agentBind,
    "--cert",
    pki.server.certPath,
    "--key",
    pki.server.keyPath,
    "--ca",
    pki.ca.certPath,
    "--connect-bind",
    "127.0.0.1:0",
    ...extra,
  ]);
  children.push(server);
  const frontend = waitLine(server, /connect frontend on 127\.0\.0\.1:(\d+)/, "server");
  const agentPort = Number((await waitLine(server, /agent listener on [^:]+:(\d+)/, "server"))[1]);
  return { server, agentPort, frontendPort: Number((await frontend)[1]) };
}

/** curl `url` through the CLI server's mTLS CONNECT frontend, as `client` (default the pki's client). */
export function curlViaFrontend(
  pki: CliPki,
  frontendPort: number,
  url: string,
  client: { readonly certPath: string; readonly keyPath: string } = pki.client,
) {
  return curl([
    "-p",
    "--proxy",
    `https://localhost:${frontendPort}`,
    "--proxy-cacert",
    pki.ca.certPath,
    "--proxy-cert",
    client.certPath,
    "--proxy-key",
    client.keyPath,
    url,
  ]);
}
