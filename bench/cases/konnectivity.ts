/**
 * Bench cases: Konnectivity, on the path users deploy: caller -> server -> agent over
 * `wss://` with mutual TLS -> target, the agent (and for the CONNECT row the server
 * too) started from the CLI as its own process, beside what a user might pick instead:
 * a hand-rolled `ws` relay over node:tls (one WebSocket per stream) and
 * @chainsafe/libp2p-yamux over one mutual-TLS connection. Also the end-to-end row
 * "TLS to a kubelet" over a Konnectivity tunnel.
 *
 * All rows use the runtime's default TLS 1.3 suite on the tunnel (the CLI sets none),
 * so they compare the same cipher.
 *
 * @module
 */
import { type TLSSocket, connect as tlsConnect } from "node:tls";
import WebSocket, { createWebSocketStream } from "ws";
import { type Channel, KonnectivityServer } from "../../mod.ts";
import { benchPki } from "../certs.ts";
import { channelConn, duplexConn } from "../conn.ts";
import { kubeletClient, startKubelet } from "../kubelet.ts";
import { startTcpTarget } from "../target.ts";
import type { BenchCase, CaseContext, Conn, Path, PathProcess } from "../types.ts";
import { headOfLine, manyStreams, manyTunnels } from "./konnectivity_extras.ts";
import {
  type Child,
  CLI_MAIN,
  type PkiFiles,
  RELAY_MAIN,
  startChild,
  writePkiFiles,
} from "./konnectivity_procs.ts";

/** How long a child process may take to start and report ready (tsx / deno compile first). */
const START_TIMEOUT_MS = 60_000;

/** Tear down in reverse order, never throwing (close() must always finish). */
async function teardown(steps: (() => Promise<void> | void)[]): Promise<void> {
  for (const s of steps.reverse()) {
    try {
      await s();
    } catch {
      // keep tearing down
    }
  }
}

/** The agent CLI, dialing out to `agentPort` and allowed to reach only `allowPort`. */
function startAgent(files: PkiFiles, agentPort: number, allowPort: number): Child {
  return startChild("konnectivity agent", CLI_MAIN, [
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
    `127.0.0.1:${allowPort}`,
  ]);
}

/** The in-process server (as the CLI server sets it up) and an agent CLI process. */
interface DialSetup {
  readonly server: KonnectivityServer;
  readonly agent: Child;
  close(): Promise<void>;
}

async function startDialSetup(ctx: CaseContext, targetPort: number): Promise<DialSetup> {
  const pki = await benchPki();
  const files = writePkiFiles(pki);
  const undo: (() => Promise<void> | void)[] = [() => files.remove()];
  try {
    // What `spokewire-konnectivity server` does with --cert/--key/--ca (and its default
    // --max-agents 1000): mutual TLS on the agent listener, default session settings.
    const server = await KonnectivityServer.listen({
      host: "127.0.0.1",
      port: 0,
      tls: { credentials: { cert: pki.server.cert, key: pki.server.key, ca: pki.ca } },
      config: { maxAgents: 1000 },
      logger: { info: () => {}, warn: (m) => ctx.log(`konnectivity server: ${m}`) },
    });
    undo.push(() => server.close());
    const agent = startAgent(files, server.port, targetPort);
    undo.push(() => agent.stop());
    await server.waitForAgent("node-1", { timeoutMs: START_TIMEOUT_MS });
    return { server, agent, close: () => teardown(undo) };
  } catch (err) {
    await teardown(undo);
    throw err;
  }
}

const agentProcess = (agent: Child): PathProcess => ({
  name: "konnectivity agent",
  pid: agent.pid,
});

/** konnectivity.dial: the server's in-process dial() through a CLI agent. */
const dialCase: BenchCase = {
  id: "konnectivity.dial",
  group: "Konnectivity",
  label: "spokewire dial()",
  peer: "konnectivity.ws-tls",
  alsoVs: ["ssh.openssh", "konnectivity.yamux"],
  async start(ctx) {
    const target = await startTcpTarget();
    let setup: DialSetup;
    try {
      setup = await startDialSetup(ctx, target.port);
    } catch (err) {
      await target.close();
      throw err;
    }
    const address = `127.0.0.1:${target.port}`;
    const open = async (): Promise<Conn> => channelConn(await setup.server.dial(address));
    return {
      open,
      processes: () => [agentProcess(setup.agent)],
      async extras(c) {
        const quick = c.settings.quick;
        const windowMs = quick ? 1000 : 3000;
        const out = {
          ...(await manyStreams(open, 64, windowMs)),
          ...(await headOfLine(open, 8, windowMs, quick ? 1 : 2)),
          // Last: it leaves the largest memory behind. Dials in flight stay under the
          // session's default maxPendingDials (256).
          ...(await manyTunnels(open, 1000, setup.agent.pid, 128)),
        };
        return out;
      },
      close: () => teardown([() => target.close(), () => setup.close()]),
    };
  },
};

/** Read an HTTP response head from `sock`; bytes after it are put back for the next reader. */
function readResponseHead(sock: TLSSocket, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const done = (err?: Error, head?: string): void => {
      clearTimeout(timer);
      sock.off("data", onData);
      sock.off("error", onError);
      sock.off("end", onEnd);
      if (err) reject(err);
      else resolve(head!);
    };
    const onData = (c: Buffer): void => {
      buf = Buffer.concat([buf, c]);
      const end = buf.indexOf("\r\n\r\n");
      if (end < 0) {
        if (buf.byteLength > 16 * 1024) done(new Error("CONNECT response head too large"));
        return;
      }
      sock.pause();
      const rest = buf.subarray(end + 4);
      if (rest.byteLength > 0) sock.unshift(rest);
      done(undefined, buf.subarray(0, end).toString("latin1"));
    };
    const onError = (e: Error): void => done(e);
    const onEnd = (): void => done(new Error("CONNECT: connection ended before the response"));
    const timer = setTimeout(
      () => done(new Error(`CONNECT response not within ${timeoutMs} ms`)),
      timeoutMs,
    );
    sock.on("data", onData);
    sock.on("error", onError);
    sock.on("end", onEnd);
  });
}

/** Resolve once `sock` finished its TLS handshake. */
function secured(sock: TLSSocket): Promise<void> {
  return new Promise((resolve, reject) => {
    sock.once("secureConnect", () => {
      sock.off("error", reject);
      resolve();
    });
    sock.once("error", reject);
  });
}

/** konnectivity.connect: server and agent CLI processes, the caller through the mTLS CONNECT frontend. */
const connectCase: BenchCase = {
  id: "konnectivity.connect",
  group: "Konnectivity",
  label: "spokewire HTTP CONNECT",
  peer: "konnectivity.ws-tls",
  alsoVs: ["ssh.openssh", "konnectivity.yamux"],
  async start() {
    const pki = await benchPki();
    const target = await startTcpTarget();
    const files = writePkiFiles(pki);
    const undo: (() => Promise<void> | void)[] = [() => target.close(), () => files.remove()];
    try {
      const server = startChild("konnectivity server", CLI_MAIN, [
        "server",
        "--agent-bind",
        "127.0.0.1:0",
        "--cert",
        files.serverCert,
        "--key",
        files.serverKey,
        "--ca",
        files.ca,
        "--connect-bind",
        "127.0.0.1:0",
      ]);
      undo.push(() => server.stop());
      const agentPort = Number(
        (await server.waitForLine(/^agent listener on .*:(\d+)$/, START_TIMEOUT_MS))[1],
      );
      const frontPort = Number(
        (await server.waitForLine(/^connect frontend on .*:(\d+)$/, START_TIMEOUT_MS))[1],
      );
      const agent = startAgent(files, agentPort, target.port);
      undo.push(() => agent.stop());
      // The server's own report that the agent registered (its log line on stderr).
      await server.waitForLine(/^agent node-1 registered/, START_TIMEOUT_MS);
      const request = Buffer.from(
        `CONNECT 127.0.0.1:${target.port} HTTP/1.1\r\nHost: 127.0.0.1:${target.port}\r\n\r\n`,
        "latin1",
      );
      const open = async (): Promise<Conn> => {
        const sock = tlsConnect({
          host: "127.0.0.1",
          port: frontPort,
          ca: pki.ca,
          cert: pki.client.cert,
          key: pki.client.key,
        });
        try {
          await secured(sock);
          sock.setNoDelay(true);
          sock.write(request);
          const head = await readResponseHead(sock, 30_000);
          if (!/^HTTP\/1\.[01] 200 /.test(head)) {
            throw new Error(`CONNECT refused: ${head.split("\r\n")[0]}`);
          }
        } catch (err) {
          sock.destroy();
          throw err;
        }
        const conn = duplexConn(sock);
        sock.resume();
        return conn;
      };
      return {
        open,
        processes: () => [{ name: "konnectivity server", pid: server.pid }, agentProcess(agent)],
        close: () => teardown(undo),
      };
    } catch (err) {
      await teardown(undo);
      throw err;
    }
  },
};

/** A peer relay (`ws` or `yamux`) in its own process, in front of a fresh TCP target. */
async function startRelay(kind: "ws" | "yamux"): Promise<{
  port: number;
  relay: Child;
  undo: (() => Promise<void> | void)[];
}> {
  const pki = await benchPki();
  const target = await startTcpTarget();
  const files = writePkiFiles(pki);
  const undo: (() => Promise<void> | void)[] = [() => target.close(), () => files.remove()];
  try {
    const relay = startChild(`${kind} relay`, RELAY_MAIN, [
      "--konnectivity-relay",
      kind,
      files.dir,
      String(target.port),
    ]);
    undo.push(() => relay.stop());
    const port = Number((await relay.waitForLine(/^listening (\d+)$/, START_TIMEOUT_MS))[1]);
    return { port, relay, undo };
  } catch (err) {
    await teardown(undo);
    throw err;
  }
}

/** konnectivity.ws-tls: one `ws` WebSocket over node:tls per stream, no multiplexing. */
const wsTlsCase: BenchCase = {
  id: "konnectivity.ws-tls",
  group: "Konnectivity",
  label: "raw ws over node:tls",
  async start() {
    const pki = await benchPki();
    const { port, relay, undo } = await startRelay("ws");
    const open = (): Promise<Conn> =>
      new Promise((resolve, reject) => {
        const ws = new WebSocket(`wss://127.0.0.1:${port}`, {
          ca: pki.ca,
          cert: pki.client.cert,
          key: pki.client.key,
          perMessageDeflate: false,
        });
        ws.once("open", () => {
          // ws sets TCP_NODELAY on its socket itself.
          ws.off("error", reject);
          resolve(duplexConn(createWebSocketStream(ws)));
        });
        ws.once("error", reject);
      });
    return {
      open,
      processes: () => [{ name: "ws relay", pid: relay.pid }],
      close: () => teardown(undo),
    };
  },
};

/** konnectivity.yamux: one mutual-TLS connection carrying @chainsafe/libp2p-yamux. */
const yamuxCase: BenchCase = {
  id: "konnectivity.yamux",
  group: "Konnectivity",
  label: "libp2p-yamux over TLS",
  async start() {
    const { yamuxConn, yamuxOver } = await import("./konnectivity_yamux.ts");
    const pki = await benchPki();
    const { port, relay, undo } = await startRelay("yamux");
    try {
      const sock = tlsConnect({
        host: "127.0.0.1",
        port,
        ca: pki.ca,
        cert: pki.client.cert,
        key: pki.client.key,
      });
      undo.push(() => {
        sock.destroy();
      });
      await secured(sock);
      const muxer = yamuxOver(sock, "client");
      undo.push(() => muxer.abort(new Error("bench: done")));
      const open = async (): Promise<Conn> => yamuxConn(await muxer.createStream());
      return {
        open,
        processes: () => [{ name: "yamux relay", pid: relay.pid }],
        close: () => teardown(undo),
      };
    } catch (err) {
      await teardown(undo);
      throw err;
    }
  },
};

/** e2e.tls-over-konnectivity: the kubelet's mutual TLS inside a Konnectivity tunnel. */
const e2eCase: BenchCase = {
  id: "e2e.tls-over-konnectivity",
  group: "TLS to a kubelet",
  label: "TLS over Konnectivity",
  peer: "e2e.tls-over-tcp",
  alsoVs: ["e2e.tls-over-ssh", "tls.node-tls", "konnectivity.dial"],
  async start(ctx): Promise<Path> {
    const kubelet = await startKubelet();
    let setup: DialSetup;
    try {
      setup = await startDialSetup(ctx, kubelet.port);
    } catch (err) {
      await kubelet.close();
      throw err;
    }
    const client = await kubeletClient();
    const address = `127.0.0.1:${kubelet.port}`;
    return {
      async open() {
        const tunnel: Channel = await setup.server.dial(address);
        try {
          return channelConn(await client.over(tunnel));
        } catch (err) {
          tunnel.abort(err);
          throw err;
        }
      },
      processes: () => [agentProcess(setup.agent)],
      close: () => teardown([() => kubelet.close(), () => setup.close()]),
    };
  },
};

/** The Konnectivity rows, and the end-to-end row over a Konnectivity tunnel. */
export const cases: readonly BenchCase[] = [dialCase, connectCase, wsTlsCase, yamuxCase, e2eCase];
