/**
 * CPU time and peak memory of the processes on a path, read from /proc (Linux).
 * Elsewhere the figures are reported as unavailable rather than guessed.
 *
 * @module
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import type { PathProcess } from "./types.ts";

const TICKS = 100; // USER_HZ on Linux
const haveProc = existsSync("/proc/self/stat");

function statOf(pid: number | "self"): { ppid: number; cpu: number } | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
    // fields after "(comm) ": state=0 ppid=1 ... utime=11 stime=12
    return { ppid: Number(f[1]), cpu: (Number(f[11]) + Number(f[12])) / TICKS };
  } catch {
    return undefined;
  }
}

/** The pid and all its descendants now alive. */
export function withDescendants(pid: number): number[] {
  if (!haveProc) return [pid];
  const parent = new Map<number, number>();
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    const st = statOf(Number(d));
    if (st) parent.set(Number(d), st.ppid);
  }
  const out = [pid];
  for (let i = 0; i < out.length; i++) {
    for (const [p, pp] of parent) if (pp === out[i]) out.push(p);
  }
  return out;
}

function expand(procs: readonly PathProcess[]): number[] {
  return procs.flatMap((p) => (p.withChildren ? withDescendants(p.pid) : [p.pid]));
}

/** CPU seconds (user + system) used so far by this process and `procs` (with children if asked). */
export function cpuSeconds(procs: readonly PathProcess[]): number | undefined {
  if (!haveProc) return undefined;
  let total = statOf("self")?.cpu ?? 0;
  for (const pid of expand(procs)) total += statOf(pid)?.cpu ?? 0;
  return total;
}

/** Peak resident set (VmHWM) in MB of one pid, or undefined. */
export function peakRssMb(pid: number | "self"): number | undefined {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) / 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** Peak RSS by process name: the bench process and each process on the path (children summed). */
export function peakRss(procs: readonly PathProcess[]): Record<string, number> {
  const out: Record<string, number> = {};
  const self = peakRssMb("self");
  if (self !== undefined) out["bench process"] = self;
  for (const p of procs) {
    const pids = p.withChildren ? withDescendants(p.pid) : [p.pid];
    let sum = 0;
    let any = false;
    for (const pid of pids) {
      const v = peakRssMb(pid);
      if (v !== undefined) {
        sum += v;
        any = true;
      }
    }
    if (any) out[p.name] = sum;
  }
  return out;
}
