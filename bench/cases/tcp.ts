/**
 * Bench cases: TCP. spokewire's TCP Channel beside the runtime's own sockets
 * (`node:net`, and `Deno.connect` under Deno), all against the same target.
 *
 * @module
 */
import { connect as netConnect } from "node:net";
import { TcpDialer } from "../../mod.ts";
import { channelConn, type DenoConnLike, denoConn, duplexConn } from "../conn.ts";
import { startTcpTarget } from "../target.ts";
import type { BenchCase, Conn, Path } from "../types.ts";

interface DenoNet {
  connect(o: {
    hostname: string;
    port: number;
  }): Promise<DenoConnLike & { setNoDelay(v: boolean): void }>;
}
const deno = (globalThis as { Deno?: DenoNet }).Deno;

/** A `node:net` connection as a Conn, once connected. */
export function netConn(port: number): Promise<Conn> {
  return new Promise((resolve, reject) => {
    const s = netConnect({ host: "127.0.0.1", port, noDelay: true });
    s.once("connect", () => {
      s.off("error", reject);
      resolve(duplexConn(s));
    });
    s.once("error", reject);
  });
}

/** A path of `open` to a fresh target, closing the target afterwards. */
async function targetPath(open: (port: number) => Promise<Conn>): Promise<Path> {
  const target = await startTcpTarget();
  return { open: () => open(target.port), close: () => target.close() };
}

const spokewire: BenchCase = {
  id: "tcp.spokewire",
  group: "TCP",
  label: "spokewire TCP",
  peer: "tcp.node-net",
  alsoVs: ["tcp.deno-connect"],
  start: () => {
    const dialer = new TcpDialer();
    return targetPath(async (port) => channelConn(await dialer.dial({ host: "127.0.0.1", port })));
  },
};

const nodeNet: BenchCase = {
  id: "tcp.node-net",
  group: "TCP",
  label: "node:net",
  start: () => targetPath(netConn),
};

const denoConnect: BenchCase = {
  id: "tcp.deno-connect",
  group: "TCP",
  label: "Deno.connect",
  runtimes: ["deno"],
  start: () =>
    targetPath(async (port) => {
      if (!deno) throw new Error("Deno.connect needs Deno");
      const c = await deno.connect({ hostname: "127.0.0.1", port });
      c.setNoDelay(true);
      return denoConn(c);
    }),
};

/** The TCP rows. */
export const cases: readonly BenchCase[] = [spokewire, nodeNet, denoConnect];
