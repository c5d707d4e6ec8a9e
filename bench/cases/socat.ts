/**
 * Bench case: `socat` as a userspace TCP relay, the floor any relaying path pays
 * (one extra hop through a process), when socat is installed.
 *
 * @module
 */
import { type ChildProcess, spawn } from "node:child_process";
import { missingProgram } from "../../src/testing/_fixtures/programs.ts";
import { freePort } from "../../src/testing/_fixtures/sshd.ts";
import { startTcpTarget } from "../target.ts";
import type { BenchCase, Path } from "../types.ts";
import { netConn } from "./tcp.ts";

const socat: BenchCase = {
  id: "relay.socat",
  group: "Relay reference",
  label: "socat TCP relay",
  peer: "tcp.node-net",
  skipReason: async () => missingProgram("socat"),
  async start(): Promise<Path> {
    const target = await startTcpTarget();
    const port = await freePort();
    const child: ChildProcess = spawn(
      "socat",
      [
        `TCP-LISTEN:${port},bind=127.0.0.1,reuseaddr,fork,nodelay`,
        `TCP:127.0.0.1:${target.port},nodelay`,
      ],
      { stdio: "ignore" },
    );
    const exited = new Promise<void>((r) => child.once("exit", () => r()));
    const stop = async (): Promise<void> => {
      if (child.exitCode === null && child.pid) process.kill(child.pid, "SIGTERM");
      await exited;
      await target.close();
    };
    const deadline = Date.now() + 10_000;
    for (;;) {
      try {
        (await netConn(port)).destroy();
        break;
      } catch {
        if (Date.now() > deadline || child.exitCode !== null) {
          await stop();
          throw new Error("socat did not start");
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    }
    const pid = child.pid ?? 0;
    return {
      open: () => netConn(port),
      processes: () => [{ name: "socat", pid, withChildren: true }],
      close: stop,
    };
  },
};

/** The relay reference row. */
export const cases: readonly BenchCase[] = [socat];
