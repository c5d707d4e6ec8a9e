/**
 * The agents of a reconnect storm, all in this one process: `N` library agents
 * (`KonnectivityAgent`, default config: full-jitter backoff, reconnects after a drop
 * spread over `reconnectSpreadMs`), agent `i` authenticated by the bearer token
 * `storm-token-<i>` as `storm-<i>` (the server's `--token-file` lists them, see
 * {@link stormTokenLines}). They start {@link STARTS_PER_TICK} every
 * {@link START_TICK_MS} (1,000 a second): a cluster's nodes come up over time, and
 * 10,000 handshakes begun at once in this one process time out before any completes.
 * After a server restart they all reconnect together (their own spread only).
 *
 * Prints `status {"connected":k,"dropped":d,"errors":{...}}` on stdout whenever a count
 * changed (at most every 100 ms): `dropped` counts connections that were up and ended
 * (the server went away), `errors` the failed connection attempts by code
 * (`DIAL_FAILED`, `DIAL_FAILED busy`, `AUTH_FAILED`, `CHANNEL_RESET`, `TIMEOUT`, ...),
 * both since start.
 * Runs until killed.
 *
 * Usage: `konnectivity_storm_agents.ts <server port> <CA file> <N>`
 *
 * @module
 */
import { readFileSync } from "node:fs";
import process from "node:process";
import { DialBusyError, KonnectivityAgent, type SpokewireError } from "../../mod.ts";

/** How often the status line may be printed. */
const STATUS_EVERY_MS = 100;
/** Agents started per tick of {@link START_TICK_MS} at first. */
export const STARTS_PER_TICK = 100;
/** The start ramp's tick. */
export const START_TICK_MS = 100;

/** Agent `i`'s id. */
export function stormAgentId(i: number): string {
  return `storm-${i}`;
}

/** The server's `--token-file` text for `n` storm agents: `<id> <token>` per line. */
export function stormTokenLines(n: number): string {
  return Array.from({ length: n }, (_, i) => `${stormAgentId(i)} storm-token-${i}\n`).join("");
}

function errorKey(err: SpokewireError | undefined): string {
  if (!err) return "unknown";
  return err instanceof DialBusyError ? `${err.code} busy` : err.code;
}

function args(): string[] {
  const d = (globalThis as { Deno?: { args: string[] } }).Deno;
  return d ? d.args : process.argv.slice(2);
}

if (import.meta.main || process.argv[1]?.endsWith("konnectivity_storm_agents.ts")) {
  const [portText, caFile, count] = args();
  const port = Number(portText);
  const n = Number(count);
  if (!(port > 0) || !caFile || !Number.isInteger(n) || n < 1) {
    process.stderr.write("usage: konnectivity_storm_agents.ts <port> <CA file> <N>\n");
    process.exit(2);
  }
  const ca = readFileSync(caFile, "utf8");
  let connected = 0;
  let dropped = 0;
  const errors: Record<string, number> = {};
  let dirty = true;
  for (let i = 0; i < n; i++) {
    if (i > 0 && i % STARTS_PER_TICK === 0) {
      await new Promise((r) => setTimeout(r, START_TICK_MS));
    }
    const token = `storm-token-${i}`;
    let up = false;
    const agent = new KonnectivityAgent({
      server: { host: "127.0.0.1", port },
      credentials: { ca },
      agentId: stormAgentId(i),
      token: () => token,
      allow: ["127.0.0.1:9"],
      onStateChange: (state, err) => {
        if (state === "connected") {
          if (!up) connected++;
          up = true;
        } else if (up) {
          // The connection that was up ended (backoff) or the agent closed.
          up = false;
          connected--;
          if (state === "backoff") dropped++;
        } else if (state === "backoff") {
          const k = errorKey(err);
          errors[k] = (errors[k] ?? 0) + 1;
        }
        dirty = true;
      },
    });
    agent.start();
  }
  setInterval(() => {
    if (!dirty) return;
    dirty = false;
    process.stdout.write(`status ${JSON.stringify({ connected, dropped, errors })}\n`);
  }, STATUS_EVERY_MS);
}
