/**
 * Load rows (the "Load" table), on the path users deploy: the CLI server
 * (`spokewire-konnectivity server`) as its own process.
 *
 * - `load.burst-1000`, `load.burst-10000`: that many HTTP CONNECTs at once on the
 *   server's Unix-socket frontend, all through one agent (the CLI, mutual TLS) to the
 *   echo target (in the case process); each client sends 4-7 KiB and checks every byte
 *   comes back. The clients run in a process of their own
 *   (`konnectivity_burst_clients.ts`): 10,000 sockets there, up to 1,024 at the agent
 *   and the target (its session's connection limit), none over the 20,000 file limit.
 *   Figures: succeeded, refused (503 with Retry-After), lost (anything else), time until
 *   every client had its response and until every one was done.
 * - `load.storm`: N token agents (`--agents`, default 2,000) in one process
 *   (`konnectivity_storm_agents.ts`), started 1,000 a second; once all are registered and idle,
 *   the server is killed (SIGKILL) and started again on the same port. Figures: time
 *   until all are registered again (counted from the server's `agent <id> registered`
 *   lines), server RSS per idle agent, refusals.
 *
 * Both sizes and N are the same with `--quick`. Every wait is bounded; every process
 * is stopped by its PID.
 *
 * @module
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { benchPki } from "../certs.ts";
import { peakRssMb } from "../procs.ts";
import type { BurstFigures, StormFigures } from "../results.ts";
import { startTcpTarget } from "../target.ts";
import { type CaseContext, DEFAULT_STORM_AGENTS, type LoadCase, type LoadRun } from "../types.ts";
import type { BurstOutcome } from "./konnectivity_burst_clients.ts";
import {
  type Child,
  CLI_MAIN,
  type PkiFiles,
  rssMb,
  startChild,
  writePkiFiles,
} from "./konnectivity_procs.ts";
import { stormTokenLines } from "./konnectivity_storm_agents.ts";

const CLIENTS_MAIN = fileURLToPath(new URL("./konnectivity_burst_clients.ts", import.meta.url));
const AGENTS_MAIN = fileURLToPath(new URL("./konnectivity_storm_agents.ts", import.meta.url));

/** How long a child process may take to start and report ready. */
const START_TIMEOUT_MS = 60_000;
/** Bound on a whole burst (the clients' own timeout is 120 s each). */
const BURST_TIMEOUT_MS = 240_000;
/** Bound on the agents' registering, cold or after the restart. */
const REGISTER_TIMEOUT_MS = 180_000;
/** Idle time before the server's memory is read (handshake garbage collected, timers settled). */
const SETTLE_MS = 3000;

const pause = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Tear down in reverse order, never throwing. */
async function teardown(steps: (() => Promise<void> | void)[]): Promise<void> {
  for (const s of steps.reverse()) {
    try {
      await s();
    } catch {
      // keep tearing down
    }
  }
}

/** Runtime warnings (`MaxListenersExceededWarning` ...) the processes print, by process and name. */
class Warnings {
  readonly counts: Record<string, number> = {};
  readonly #ctx: CaseContext;
  constructor(ctx: CaseContext) {
    this.#ctx = ctx;
  }
  watch(name: string): (line: string) => void {
    return (line) => {
      const m = /\b((?:[A-Z]\w*)?Warning)\b/.exec(line);
      if (!m) return;
      const k = `${name}: ${m[1]}`;
      if (!this.counts[k]) this.#ctx.log(`${name}: ${line.slice(0, 200)}`);
      this.counts[k] = (this.counts[k] ?? 0) + 1;
    };
  }
  get any(): Record<string, number> | undefined {
    return Object.keys(this.counts).length ? { ...this.counts } : undefined;
  }
}

/** The first capture of `re` printed by `child`, as a number. */
async function portFrom(child: Child, re: RegExp): Promise<number> {
  return Number((await child.waitForLine(re, START_TIMEOUT_MS))[1]);
}

/** Resolve once `done()` holds, polling; reject after `ms` with `what()`. */
async function until(done: () => boolean, ms: number, what: () => string): Promise<void> {
  const end = performance.now() + ms;
  while (!done()) {
    if (performance.now() > end) throw new Error(`not within ${ms} ms: ${what()}`);
    await pause(20);
  }
}

function peaks(children: readonly Child[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const c of children) {
    const v = peakRssMb(c.pid);
    if (v !== undefined) out[c.name] = v;
  }
  return out;
}

function serverArgs(files: PkiFiles, bind: string, extra: readonly string[]): string[] {
  return [
    "server",
    "--agent-bind",
    bind,
    "--cert",
    files.serverCert,
    "--key",
    files.serverKey,
    "--ca",
    files.ca,
    ...extra,
  ];
}

/** One burst of `n` CONNECTs through the CLI server's Unix socket and one CLI agent. */
async function runBurst(ctx: CaseContext, n: number): Promise<LoadRun> {
  const pki = await benchPki();
  const files = writePkiFiles(pki);
  const target = await startTcpTarget();
  const undo: (() => Promise<void> | void)[] = [() => files.remove(), () => target.close()];
  const warnings = new Warnings(ctx);
  const frontendRefused: Record<string, number> = {};
  try {
    const sock = join(files.dir, "connect.sock");
    const watchServer = warnings.watch("konnectivity server");
    const server = startChild(
      "konnectivity server",
      CLI_MAIN,
      serverArgs(files, "127.0.0.1:0", ["--connect-uds", sock]),
      (line) => {
        watchServer(line);
        const m = /^connect refused \((\d+)\)/.exec(line);
        if (m) frontendRefused[m[1]] = (frontendRefused[m[1]] ?? 0) + 1;
      },
    );
    undo.push(() => server.stop());
    const agentPort = await portFrom(server, /^agent listener on .*:(\d+)$/);
    await server.waitForLine(/^connect frontend on unix:/, START_TIMEOUT_MS);
    const agent = startChild(
      "konnectivity agent",
      CLI_MAIN,
      [
        "agent",
        "--server",
        `127.0.0.1:${agentPort}`,
        "--ca",
        files.ca,
        "--cert",
        files.clientCert,
        "--key",
        files.clientKey,
        "--allow",
        `127.0.0.1:${target.port}`,
      ],
      warnings.watch("konnectivity agent"),
    );
    undo.push(() => agent.stop());
    await server.waitForLine(/^agent node-1 registered/, START_TIMEOUT_MS);
    const clients = startChild(
      "burst clients",
      CLIENTS_MAIN,
      [sock, `127.0.0.1:${target.port}`, String(n)],
      warnings.watch("burst clients"),
    );
    undo.push(() => clients.kill());
    ctx.log(`${n} CONNECTs at once`);
    const line = await clients.waitForLine(/^burst (\{.*\})$/, BURST_TIMEOUT_MS);
    const o = JSON.parse(line[1]) as BurstOutcome;
    const peakRssMb = peaks([server, agent]);
    if (o.peakRssMb !== undefined) peakRssMb["burst clients"] = o.peakRssMb;
    const { ok = 0, refused = 0, ...lostBy } = o.byKind;
    const figures: BurstFigures = {
      type: "burst",
      clients: o.clients,
      bytesPerClient: o.bytesPerClient,
      ok,
      refused,
      lost: Object.values(lostBy).reduce((a, b) => a + b, 0),
      lostBy,
      openAllMs: o.openAllMs,
      finishAllMs: o.finishAllMs,
      doneP50Ms: o.doneP50Ms,
      doneP99Ms: o.doneP99Ms,
      frontendRefusedBy: frontendRefused,
      warnings: warnings.any,
    };
    ctx.log(
      `${figures.ok} ok, ${figures.refused} refused (503), ${figures.lost} lost ${JSON.stringify(lostBy)}; all open ${o.openAllMs.toFixed(0)} ms, all done ${o.finishAllMs.toFixed(0)} ms`,
    );
    return { figures, peakRssMb };
  } finally {
    await teardown(undo);
  }
}

/** A CLI server's own account of agents: who registered, what it refused (from its log). */
class ServerLog {
  readonly registered = new Set<string>();
  readonly refusedBy: Record<string, number> = {};
  readonly #warn: (line: string) => void;
  constructor(warn: (line: string) => void) {
    this.#warn = warn;
  }
  readonly onLine = (line: string): void => {
    this.#warn(line);
    const reg = /^agent (\S+) registered/.exec(line);
    if (reg) {
      this.registered.add(reg[1]);
      return;
    }
    // The causes of `server.refusals`, from the lines the server logs for each.
    const http = /^warning: agent refused \((\d+)\)/.exec(line);
    const cause = http
      ? `http-${http[1]}`
      : /^agent TLS handshake refused/.test(line)
        ? "tls"
        : /^warning: agent \S+ reset: .*maxWaitingAgents/.test(line)
          ? "backlog-full"
          : /^agent handshake failed/.test(line)
            ? "handshake-failed"
            : undefined;
    if (cause) this.refusedBy[cause] = (this.refusedBy[cause] ?? 0) + 1;
  };
}

const total = (r: Record<string, number>): number => Object.values(r).reduce((a, b) => a + b, 0);

/** `n` token agents, the server killed and restarted under them. */
async function runStorm(ctx: CaseContext, n: number): Promise<LoadRun> {
  const pki = await benchPki();
  const files = writePkiFiles(pki);
  const undo: (() => Promise<void> | void)[] = [() => files.remove()];
  const warnings = new Warnings(ctx);
  try {
    const tokens = join(files.dir, "agent-tokens");
    writeFileSync(tokens, stormTokenLines(n), { mode: 0o600 });
    const extra = ["--token-file", tokens, "--max-agents", String(Math.max(n, 1000))];
    const watchServer = warnings.watch("konnectivity server");
    const log1 = new ServerLog(watchServer);
    const server1 = startChild(
      "konnectivity server",
      CLI_MAIN,
      serverArgs(files, "127.0.0.1:0", extra),
      log1.onLine,
    );
    undo.push(() => server1.stop());
    const port = await portFrom(server1, /^agent listener on .*:(\d+)$/);
    await pause(1000);
    const rssIdle = rssMb(server1.pid);

    let status: { connected: number; dropped: number; errors: Record<string, number> } = {
      connected: 0,
      dropped: 0,
      errors: {},
    };
    const watchAgents = warnings.watch("storm agents");
    const agents = startChild(
      "storm agents",
      AGENTS_MAIN,
      [String(port), files.ca, String(n)],
      (l) => {
        watchAgents(l);
        if (l.startsWith("status ")) status = JSON.parse(l.slice(7));
      },
    );
    undo.push(() => agents.kill());
    ctx.log(`${n} agents starting`);
    const t0 = performance.now();
    await until(
      () => log1.registered.size >= n,
      REGISTER_TIMEOUT_MS,
      () => `${log1.registered.size} of ${n} agents registered (${status.connected} connected)`,
    );
    const coldStartMs = performance.now() - t0;
    ctx.log(
      `cold start: all registered in ${(coldStartMs / 1000).toFixed(1)} s; idle ${SETTLE_MS} ms`,
    );
    await pause(SETTLE_MS);
    const rssAgents = rssMb(server1.pid);
    const serverPeak = peakRssMb(server1.pid);

    const tKill = performance.now();
    await server1.kill();
    const log2 = new ServerLog(watchServer);
    const server2 = startChild(
      "konnectivity server",
      CLI_MAIN,
      serverArgs(files, `127.0.0.1:${port}`, extra),
      log2.onLine,
    );
    undo.push(() => server2.stop());
    await server2.waitForLine(/^agent listener on /, START_TIMEOUT_MS);
    const tListen = performance.now();
    const errorsAtListen = { ...status.errors };
    await until(
      () => log2.registered.size >= n,
      REGISTER_TIMEOUT_MS,
      () =>
        `${log2.registered.size} of ${n} agents registered again (${status.connected} connected)`,
    );
    const tAll = performance.now();
    await pause(200); // the agents' last status line
    const agentErrors: Record<string, number> = {};
    for (const [k, v] of Object.entries(status.errors)) {
      const d = v - (errorsAtListen[k] ?? 0);
      if (d > 0) agentErrors[k] = d;
    }
    const peakRss: Record<string, number> = {};
    const p2 = peakRssMb(server2.pid);
    const pa = peakRssMb(agents.pid);
    if (serverPeak !== undefined || p2 !== undefined)
      peakRss["konnectivity server"] = Math.max(serverPeak ?? 0, p2 ?? 0);
    if (pa !== undefined) peakRss["storm agents"] = pa;
    const figures: StormFigures = {
      type: "storm",
      agents: n,
      coldStartMs,
      reregisterMs: tAll - tListen,
      reregisterFromKillMs: tAll - tKill,
      serverRssIdleMb: rssIdle,
      serverRssAgentsMb: rssAgents,
      rssPerAgentKiB: ((rssAgents - rssIdle) * 1024) / n,
      refusedBy: log2.refusedBy,
      refused: total(log2.refusedBy),
      coldRefusedBy: log1.refusedBy,
      agentErrors,
      warnings: warnings.any,
    };
    ctx.log(
      `restart: all ${n} registered again ${(figures.reregisterMs / 1000).toFixed(1)} s after the server listened (${(figures.reregisterFromKillMs / 1000).toFixed(1)} s after the kill), ${figures.refused} refused; server RSS ${rssIdle.toFixed(0)} -> ${rssAgents.toFixed(0)} MB (${figures.rssPerAgentKiB.toFixed(0)} KiB per agent)`,
    );
    return { figures, peakRssMb: peakRss };
  } finally {
    await teardown(undo);
  }
}

function burstCase(n: number): LoadCase {
  return {
    kind: "load",
    id: `load.burst-${n}`,
    group: "Load",
    label: `${n.toLocaleString("en-US")} CONNECTs at once`,
    run: (ctx) => runBurst(ctx, n),
  };
}

/** load.storm: the agents' reconnect storm after a server restart. */
const stormCase: LoadCase = {
  kind: "load",
  id: "load.storm",
  group: "Load",
  label: "agents reconnecting after a server restart",
  run: (ctx) => runStorm(ctx, ctx.settings.agents ?? DEFAULT_STORM_AGENTS),
};

/** The load rows. */
export const cases: readonly LoadCase[] = [burstCase(1000), burstCase(10_000), stormCase];
